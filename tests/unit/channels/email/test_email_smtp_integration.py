"""``send`` against a real SMTP server (aiosmtpd on 127.0.0.1) and real sockets.

The server's handler answers each stage with a reply chosen per test, so the
classification of 2xx, 4xx and 5xx replies and of network failures is checked
against what ``smtplib`` really does.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from channels.base import (
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from channels.email import send

pytestmark = pytest.mark.timeout(20)


@dataclass
class ScriptedHandler:
    """Captures delivered messages; ``rcpt_reply``/``data_reply`` override the 250s."""

    rcpt_reply: str | None = None
    data_reply: str | None = None
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply:
            return self.data_reply
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted for delivery"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                  auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (
        auth_data.login == b"desk" and auth_data.password == b"s3cret"
    )
    return AuthResult(success=ok)


@pytest.fixture
def smtp_server() -> Iterator[tuple[ScriptedHandler, int]]:
    handler = ScriptedHandler()
    port = _free_port()
    controller = Controller(
        handler, hostname="127.0.0.1", port=port, authenticator=_authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def _out(**fields: Any) -> OutboundMessage:
    values: dict[str, Any] = {
        "channel": "email",
        "to": "maria@example.org",
        "text": "Su permiso está listo.",
        "html": "<p>Su permiso está <b>listo</b>.</p>",
        "idempotency_key": "outbox-1001",
        "subject": "Re: [CL-2026-000123] Permiso de obra",
        "in_reply_to": "<CAF3kPq9@mail.gmail.com>",
        "references": ["<ob-1@city.gov>", "<CAF3kPq9@mail.gmail.com>"],
    }
    values.update(fields)
    return OutboundMessage(**values)


def _send(port: int, out: OutboundMessage | None = None, userinfo: str = "",
          timeout: float = 5) -> DeliveryResult:
    return send(out or _out(), f"smtp://{userinfo}127.0.0.1:{port}",
                from_addr="City Help <help@city.gov>", domain="city.gov", timeout=timeout)


def test_send_delivers_a_threaded_multipart_message(smtp_server) -> None:
    handler, port = smtp_server
    result = _send(port)

    assert result == DeliveryResult(provider_id="<outbox-1001@city.gov>", status="sent",
                                    detail={"smtp_host": "127.0.0.1", "smtp_port": port})
    assert handler.envelopes == [("help@city.gov", ["maria@example.org"])]
    [msg] = handler.messages
    assert msg["Message-ID"] == "<outbox-1001@city.gov>"
    assert msg["In-Reply-To"] == "<CAF3kPq9@mail.gmail.com>"
    assert msg["References"] == "<ob-1@city.gov> <CAF3kPq9@mail.gmail.com>"
    assert msg["Subject"] == "Re: [CL-2026-000123] Permiso de obra"
    assert msg["From"] == "City Help <help@city.gov>"
    assert msg["To"] == "maria@example.org"
    assert msg.get_content_type() == "multipart/alternative"
    assert msg.get_body(("plain",)).get_content().strip() == "Su permiso está listo."
    assert "<b>listo</b>" in msg.get_body(("html",)).get_content()
    assert msg["Auto-Submitted"] is None


def test_a_retried_send_keeps_the_message_id(smtp_server) -> None:
    handler, port = smtp_server
    _send(port)
    _send(port)
    assert [m["Message-ID"] for m in handler.messages] == ["<outbox-1001@city.gov>"] * 2


def test_automatic_notification_carries_auto_submitted(smtp_server) -> None:
    handler, port = smtp_server
    _send(port, _out(metadata={"automatic": True}))
    assert handler.messages[0]["Auto-Submitted"] == "auto-replied"


def test_login_with_credentials_from_the_url(smtp_server) -> None:
    handler, port = smtp_server
    _send(port, userinfo="desk:s3cret@")
    assert len(handler.messages) == 1


@pytest.mark.parametrize(
    ("stage", "reply", "error", "code"),
    [
        ("rcpt", "550 5.1.1 <maria@example.org>: User unknown", PermanentDeliveryError, "550"),
        ("rcpt", "451 4.7.1 Greylisted, try again later", TransientDeliveryError, "451"),
        ("rcpt", "421 4.3.2 Service shutting down", TransientDeliveryError, "421"),
        ("data", "550 5.7.1 Message rejected as spam", PermanentDeliveryError, "550"),
        ("data", "451 4.3.0 Temporary local problem", TransientDeliveryError, "451"),
        ("data", "421 4.3.2 Too busy, closing connection", TransientDeliveryError, "421"),
    ],
)
def test_smtp_replies_are_classified(smtp_server, stage: str, reply: str, error: type,
                                     code: str) -> None:
    handler, port = smtp_server
    setattr(handler, f"{stage}_reply", reply)
    with pytest.raises(error) as info:
        _send(port)
    assert info.value.code == code
    assert handler.messages == []


def test_refused_connection_is_transient() -> None:
    port = _free_port()  # nothing listens there any more
    with pytest.raises(TransientDeliveryError) as info:
        _send(port)
    assert info.value.code == "network"


def test_a_server_that_never_answers_times_out_as_transient() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    accepted: list[socket.socket] = []

    def accept() -> None:
        try:
            conn, _ = listener.accept()
            accepted.append(conn)  # hold it open without ever sending a greeting
        except OSError:
            pass

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        with pytest.raises(TransientDeliveryError) as info:
            _send(listener.getsockname()[1], timeout=0.5)
        assert info.value.code == "network"
    finally:
        listener.close()
        for conn in accepted:
            conn.close()
        thread.join(timeout=2)


def test_a_server_that_hangs_up_is_transient() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def greet_and_hang_up() -> None:
        try:
            conn, _ = listener.accept()
            conn.sendall(b"220 mail.example ESMTP\r\n")
            conn.recv(1024)
            conn.close()
        except OSError:
            pass

    thread = threading.Thread(target=greet_and_hang_up, daemon=True)
    thread.start()
    try:
        with pytest.raises(TransientDeliveryError):
            _send(listener.getsockname()[1], timeout=2)
    finally:
        listener.close()
        thread.join(timeout=2)
