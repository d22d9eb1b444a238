"""Unit tests for rendering outbound mail and reading SMTP_URL."""

from __future__ import annotations

from email import message_from_bytes, policy

import pytest

from channels.base import Attachment, OutboundMessage
from channels.email import AUTOMATIC_FLAG, build_message, parse, parse_smtp_url
from channels.email.outbound import SmtpSettings, message_id_for


def _out(**fields: object) -> OutboundMessage:
    values: dict[str, object] = {
        "channel": "email",
        "to": "maria@example.org",
        "text": "Your permit is ready.",
        "idempotency_key": "outbox-42",
        "subject": "Re: [CL-2026-000123] Permit",
    }
    values.update(fields)
    return OutboundMessage(**values)  # type: ignore[arg-type]


def test_message_id_comes_from_the_idempotency_key() -> None:
    first = build_message(_out(), from_addr="help@city.gov", domain="city.gov")
    again = build_message(_out(), from_addr="help@city.gov", domain="city.gov")
    assert first["Message-ID"] == again["Message-ID"] == "<outbox-42@city.gov>"


def test_unsafe_idempotency_key_characters_are_replaced() -> None:
    assert message_id_for("a b<c>@d", "city.gov") == "<a.b.c.d@city.gov>"
    assert message_id_for("", "city.gov") == "<message@city.gov>"


def test_threading_headers() -> None:
    msg = build_message(
        _out(in_reply_to="abc@example.org", references=["<r1@x>", "<r2@x> <r3@x>"]),
        from_addr="help@city.gov", domain="city.gov",
    )
    assert msg["In-Reply-To"] == "<abc@example.org>"
    assert msg["References"] == "<r1@x> <r2@x> <r3@x> <abc@example.org>"


def test_no_threading_headers_for_a_new_conversation() -> None:
    msg = build_message(_out(), from_addr="help@city.gov", domain="city.gov")
    assert msg["In-Reply-To"] is None
    assert msg["References"] is None


def test_text_and_html_alternatives_with_date_and_encoded_headers() -> None:
    out = _out(subject="Re: [CL-2026-000123] Información", html="<p>Su permiso está listo.</p>",
               text="Su permiso está listo.")
    msg = build_message(out, from_addr="Ayuda Municipal <help@city.gov>", domain="city.gov")
    raw = msg.as_bytes()
    assert raw.isascii()  # non-ASCII headers are RFC 2047-encoded, bodies transfer-encoded
    assert b"=?utf-8?" in raw
    again = message_from_bytes(raw, policy=policy.default)
    assert again["Subject"] == "Re: [CL-2026-000123] Información"
    assert again["Date"] is not None
    assert again.get_content_type() == "multipart/alternative"
    assert again.get_body(("plain",)).get_content().strip() == "Su permiso está listo."
    assert "<p>Su permiso está listo.</p>" in again.get_body(("html",)).get_content()
    assert "Auto-Submitted" not in again


def test_text_only_message_is_single_part() -> None:
    msg = build_message(_out(), from_addr="help@city.gov", domain="city.gov")
    assert msg.get_content_type() == "text/plain"


def test_automatic_notifications_are_marked() -> None:
    msg = build_message(_out(metadata={AUTOMATIC_FLAG: True}), from_addr="help@city.gov",
                        domain="city.gov")
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Auto-Response-Suppress"] == "All"


def test_header_injection_is_neutralized() -> None:
    msg = build_message(_out(subject="Hi\r\nBcc: victim@example.org"), from_addr="help@city.gov",
                        domain="city.gov")
    assert msg["Bcc"] is None
    assert msg["Subject"] == "Hi Bcc: victim@example.org"


def test_attachments_with_content_are_attached() -> None:
    out = _out(attachments=[
        Attachment(filename="permit.pdf", content_type="application/pdf", content=b"%PDF-1.4"),
        Attachment(filename="remote.jpg", content_type="image/jpeg", url="https://x/remote.jpg"),
    ])
    msg = build_message(out, from_addr="help@city.gov", domain="city.gov")
    parsed = parse(msg.as_bytes())
    assert [(a.filename, a.content) for a in parsed.attachments] == [("permit.pdf", b"%PDF-1.4")]


def test_own_messages_parse_back_consistently() -> None:
    msg = build_message(_out(in_reply_to="<abc@example.org>"),
                        from_addr="City Help <help@city.gov>", domain="city.gov")
    parsed = parse(msg.as_bytes())
    assert parsed.provider_id == "<outbox-42@city.gov>"
    assert parsed.sender == "help@city.gov"
    assert parsed.thread_keys["subject_ref"] == "CL-2026-000123"
    assert parsed.thread_keys["in_reply_to"] == "<abc@example.org>"
    assert parsed.text == "Your permit is ready."


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("smtp://mail.city.gov", SmtpSettings("mail.city.gov", 25)),
        ("smtp://u:p@mail.city.gov:2525", SmtpSettings("mail.city.gov", 2525, "u", "p")),
        ("smtps://u%40city.gov:p%2Fw@mail.city.gov",
         SmtpSettings("mail.city.gov", 465, "u@city.gov", "p/w", use_ssl=True)),
        ("smtp://u:p@mail.city.gov?starttls=1",
         SmtpSettings("mail.city.gov", 587, "u", "p", starttls=True)),
        ("smtp://mail.city.gov:25?starttls=true",
         SmtpSettings("mail.city.gov", 25, starttls=True)),
        ("SMTP://mail.city.gov?starttls=0", SmtpSettings("mail.city.gov", 25)),
    ],
)
def test_parse_smtp_url(url: str, expected: SmtpSettings) -> None:
    assert parse_smtp_url(url) == expected


@pytest.mark.parametrize("url", ["http://mail.city.gov", "smtp://", "smtp://host:notaport", ""])
def test_parse_smtp_url_rejects_bad_configuration(url: str) -> None:
    with pytest.raises(ValueError, match="SMTP_URL"):
        parse_smtp_url(url)
