"""``flask smtp-server``: real mail sent with ``smtplib`` to the real listener becomes a
ticket; 250 only after the commit, 552 for oversized mail, 451 on internal errors."""

from __future__ import annotations

import os
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import OperationalError

from app.extensions import db
from app.models import FailedPayload, Interaction, Ticket
from app.services import email_service

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "data" / "email"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"smtp-server exited: {proc.stdout.read()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("smtp-server did not start listening")


def _message(message_id: str, subject: str = "Streetlight out on Pine Ave") -> bytes:
    return (
        "From: Lee Park <lee.park@example.org>\r\n"
        "To: help@city.gov\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: {message_id}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        "The streetlight in front of 42 Pine Ave has been out for a week.\r\n"
    ).encode()


@pytest.fixture
def attachments_dir(app, tmp_path):
    app.config["ATTACHMENTS_DIR"] = str(tmp_path / "attachments")
    return tmp_path / "attachments"


@pytest.fixture
def smtp_server_process(app, tmp_path):
    """``flask --app wsgi smtp-server`` in its own process, on the test database."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "CIVICLINE_ENV"}
    env["DATABASE_URL"] = os.environ.get("DATABASE_URL") or app.config["SQLALCHEMY_DATABASE_URI"]
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "flask"),
            "--app",
            "wsgi",
            "smtp-server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--max-size",
            "200000",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_for_port(port, proc)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        proc.stdout.close()


def test_mail_sent_to_the_smtp_server_command_becomes_a_ticket(app, smtp_server_process):
    with smtplib.SMTP("127.0.0.1", smtp_server_process, timeout=20) as client:
        code, _ = client.ehlo()
        assert code == 250
        assert int(client.esmtp_features["size"]) == 200000
        client.sendmail(
            "lee.park@example.org", ["help@city.gov"], _message("<light-1@example.org>")
        )
        # The 250 came after the commit: the ticket is there now.
        db.session.expire_all()
        row = db.session.scalar(
            sa.select(Interaction).where(Interaction.provider_id == "<light-1@example.org>")
        )
        assert row is not None and row.channel == "email"
        assert "42 Pine Ave" in row.text
        ticket = db.session.get(Ticket, row.ticket_id)
        assert ticket.subject == "Streetlight out on Pine Ave"

        # A replay is accepted again and changes nothing.
        client.sendmail(
            "lee.park@example.org", ["help@city.gov"], _message("<light-1@example.org>")
        )
        with pytest.raises(smtplib.SMTPSenderRefused) as too_big:
            client.sendmail(
                "lee.park@example.org",
                ["help@city.gov"],
                _message("<big-1@example.org>") + b"x" * 250_000,
            )
        assert too_big.value.smtp_code == 552
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count(Interaction.id))) == 1


@pytest.fixture
def listener(app, attachments_dir):
    """The same listener the command starts, in this process, so failures can be staged."""
    port = _free_port()
    controller = email_service.smtp_controller(app, "127.0.0.1", port, 5_000_000)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


def _send(port: int, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=20) as client:
        client.sendmail("resident@example.net", ["help@city.gov"], raw)


def test_oversized_attachment_is_refused_with_552(app, listener):
    app.config["MAX_ATTACHMENT_BYTES"] = 50
    with pytest.raises(smtplib.SMTPDataError) as err:
        _send(listener, (CORPUS / "attachment_image_jpeg.eml").read_bytes())
    assert err.value.smtp_code == 552
    assert b"IMG_2041.jpg" in err.value.smtp_error
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count(Interaction.id))) == 0


def test_internal_error_answers_451_so_the_sender_retries(app, listener, monkeypatch):
    def broken(msg, **kw):
        raise OperationalError("INSERT", {}, Exception("database is unavailable"))

    monkeypatch.setattr(email_service, "intake", broken)
    raw = _message("<retry-1@example.org>")
    with pytest.raises(smtplib.SMTPDataError) as err:
        _send(listener, raw)
    assert err.value.smtp_code == 451
    monkeypatch.undo()
    _send(listener, raw)  # the sender's retry
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count(Interaction.id))) == 1


def test_unreadable_message_is_kept_and_refused(app, listener):
    with pytest.raises(smtplib.SMTPDataError) as err:
        _send(listener, b"no headers here\r\n\r\nonly words\r\n")
    assert err.value.smtp_code == 554
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count(FailedPayload.id))) == 1


def test_attachments_arriving_by_smtp_are_stored(app, listener, attachments_dir):
    _send(listener, (CORPUS / "attachment_pdf.eml").read_bytes())
    db.session.expire_all()
    row = db.session.scalar(sa.select(Interaction))
    [att] = row.attachments
    assert (attachments_dir / att["url"].rsplit("/", 1)[1]).is_file()
