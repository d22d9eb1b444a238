"""Unit tests for parsing inbound mail: limits, ids, charsets, HTML, replies, bounces."""

from __future__ import annotations

from email.message import EmailMessage

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.base import InboundMessage, ParseError
from channels.email import AttachmentTooLarge, parse
from channels.email.decoding import decode_bytes, decode_header_value, normalize_message_id
from channels.email.html import html_to_text, sanitize_html
from channels.email.replies import latest_reply


def _message(body: str = "Hello", **headers: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = headers.pop("From", "Resident <resident@example.org>")
    msg["To"] = headers.pop("To", "help@city.gov")
    msg["Subject"] = headers.pop("Subject", "A question")
    for name, value in headers.items():
        msg[name.replace("_", "-")] = value
    msg.set_content(body)
    return msg.as_bytes()


def test_parse_returns_an_email_inbound_message() -> None:
    msg = parse(_message(Message_ID="<abc@example.org>"))
    assert isinstance(msg, InboundMessage)
    assert msg.channel == "email"
    assert msg.provider_id == "<abc@example.org>"
    assert msg.sender == "resident@example.org"
    assert msg.sender_name == "Resident"
    assert msg.recipient == "help@city.gov"
    assert msg.text == "Hello"
    assert msg.thread_keys == {"in_reply_to": None, "references": [], "subject_ref": None}
    assert msg.is_auto_reply is False


def test_bytearray_is_accepted() -> None:
    assert parse(bytearray(_message())).text == "Hello"


@pytest.mark.parametrize("raw", [b"", b"   \r\n", b"text"])
def test_unusable_input_raises_parse_error(raw: bytes) -> None:
    with pytest.raises(ParseError):
        parse(raw)


def test_str_input_is_rejected() -> None:
    with pytest.raises(ParseError):
        parse("From: a@b\n\nhi")  # type: ignore[arg-type]


def test_missing_sender_raises_parse_error() -> None:
    with pytest.raises(ParseError, match="sender"):
        parse(b"To: help@city.gov\nSubject: x\n\nbody\n")


def test_missing_message_id_gets_a_stable_hash_id() -> None:
    raw = _message("No id here")
    first, second = parse(raw), parse(raw)
    assert first.provider_id == second.provider_id
    assert first.provider_id.endswith("@hash.civicline.invalid>")
    assert first.metadata["provider_id_source"] == "content-hash"
    # Line endings changed in transit still dedupe; different content does not.
    assert parse(raw.replace(b"\n", b"\r\n")).provider_id == first.provider_id
    assert parse(_message("Other text")).provider_id != first.provider_id


def test_attachment_over_the_limit_raises_attachment_too_large() -> None:
    msg = EmailMessage()
    msg["From"] = "resident@example.org"
    msg["To"] = "help@city.gov"
    msg.set_content("see attached")
    msg.add_attachment(b"x" * 2048, maintype="application", subtype="pdf", filename="big.pdf")
    raw = msg.as_bytes()
    with pytest.raises(AttachmentTooLarge) as info:
        parse(raw, max_attachment_bytes=1024)
    assert isinstance(info.value, ParseError)
    assert info.value.filename == "big.pdf"
    assert info.value.size == 2048
    assert info.value.limit == 1024
    assert "big.pdf" in str(info.value)
    assert "1024" in str(info.value)
    assert len(parse(raw, max_attachment_bytes=4096).attachments) == 1


def test_huge_body_parses_quickly() -> None:
    paragraph = "The sidewalk on Main Street is broken in several places. " * 20 + "\n\n"
    body = paragraph * 2000  # about 2 MB
    msg = parse(_message(body))
    assert len(msg.full_text) > 2_000_000
    assert msg.text.startswith("The sidewalk on Main Street")


def test_huge_html_only_body_is_sanitized_and_converted() -> None:
    html = "<p>Line <b>bold</b> <script>bad()</script></p>" * 20000
    raw = (
        "From: a@example.org\nTo: help@city.gov\nSubject: big\n"
        "Content-Type: text/html; charset=utf-8\n\n" + html
    ).encode()
    msg = parse(raw)
    assert "<script" not in msg.html
    assert "bad()" not in msg.text
    assert msg.text.startswith("Line bold")


def test_auto_submitted_reason_and_flag() -> None:
    msg = parse(_message(Auto_Submitted="auto-generated"))
    assert msg.is_auto_reply
    assert msg.metadata["auto_reply_reason"] == "auto-submitted: auto-generated"


@pytest.mark.parametrize(
    "subject",
    ["Out of Office: your request", "Automatic reply: Permit", "Autoreply: hi",
     "Abwesenheitsnotiz: Antrag", "Respuesta automática: Cita", "[Auto-Reply] Re: x",
     "Réponse automatique : demande", "RE: Out of the office"],
)
def test_out_of_office_subjects(subject: str) -> None:
    msg = parse(_message(Subject=subject))
    assert msg.is_auto_reply
    assert msg.metadata["auto_reply_reason"] == "subject"


@pytest.mark.parametrize("subject", ["Vacation rental permit", "Reply about my permit",
                                     "Office hours on Friday"])
def test_ordinary_subjects_are_not_auto_replies(subject: str) -> None:
    assert not parse(_message(Subject=subject)).is_auto_reply


@pytest.mark.parametrize("value", ["bulk", "junk", "list", "auto_reply"])
def test_precedence_marks_auto_reply(value: str) -> None:
    assert parse(_message(Precedence=value)).metadata["auto_reply_reason"] == f"precedence: {value}"


def test_ticket_reference_is_normalized_to_upper_case() -> None:
    msg = parse(_message(Subject="Re: [cl-2026-000123] permit"))
    assert msg.thread_keys["subject_ref"] == "CL-2026-000123"


def test_threading_headers_are_normalized() -> None:
    msg = parse(_message(In_Reply_To="abc@x.org", References="<a@x> <b@x> <a@x>"))
    assert msg.thread_keys["in_reply_to"] == "<abc@x.org>"
    assert msg.thread_keys["references"] == ["<a@x>", "<b@x>"]


def test_sender_is_lower_cased_and_display_name_decoded() -> None:
    raw = b"From: =?utf-8?q?Jos=C3=A9?= <Jose@Example.ORG>\nTo: help@city.gov\n\nhola\n"
    msg = parse(raw)
    assert msg.sender == "jose@example.org"
    assert msg.sender_name == "José"


def test_to_dict_leaves_out_attachment_bytes() -> None:
    msg = EmailMessage()
    msg["From"] = "resident@example.org"
    msg.set_content("photo")
    msg.add_attachment(b"\x89PNG", maintype="image", subtype="png", filename="a.png")
    data = parse(msg.as_bytes()).to_dict()
    assert data["attachments"] == [
        {"filename": "a.png", "content_type": "image/png", "size": 4, "url": None}
    ]


# decoding ---------------------------------------------------------------------


def test_decode_bytes_falls_back_and_never_raises() -> None:
    assert decode_bytes("café".encode(), "utf-8") == ("café", False)
    assert decode_bytes("café".encode("latin-1"), "utf-8") == ("café", True)
    assert decode_bytes("café".encode(), "iso-8859-1") == ("café", True)
    assert decode_bytes("“hi”".encode("cp1252"), "iso-8859-1") == ("“hi”", False)
    assert decode_bytes("да".encode("koi8-r"), "koi8-r") == ("да", False)
    assert decode_bytes(b"\x81\x8d\xff", "no-such-charset")[0]
    assert decode_bytes(b"", "utf-8") == ("", False)


def test_decode_header_value_handles_broken_encoded_words() -> None:
    assert decode_header_value("=?utf-8?q?caf=C3=A9?= ok") == "café ok"
    assert decode_header_value("=?bogus?q?caf=E9?=") == "café"
    assert decode_header_value("=?utf-8?b?not base64?=") == "=?utf-8?b?not base64?="
    assert decode_header_value("plain\n folded") == "plain folded"
    assert decode_header_value(None) == ""


@pytest.mark.parametrize(
    ("value", "expected"),
    [("<a@b>", "<a@b>"), ("a@b", "<a@b>"), ("  <a@b> (comment)", "<a@b>"), ("", None),
     ("two words", None), (None, None)],
)
def test_normalize_message_id(value: str | None, expected: str | None) -> None:
    assert normalize_message_id(value) == expected


# html -----------------------------------------------------------------------------


def test_sanitize_html_allows_formatting_and_web_links_only() -> None:
    html = sanitize_html(
        '<p onclick="x()">Hi <b>there</b> <a href="javascript:alert(1)">x</a>'
        '<a href="https://city.gov">city</a><img src="http://a.b/c.png">'
        '<img src="cid:123"><img src="data:image/png;base64,AAAA"></p>'
        "<script>alert(1)</script><style>p{}</style><iframe src=https://x></iframe>"
    )
    assert "onclick" not in html
    assert "javascript" not in html
    assert "<script" not in html and "alert" not in html
    assert "<style" not in html and "<iframe" not in html
    assert '<a href="https://city.gov"' in html
    assert '<img src="http://a.b/c.png">' in html
    assert "cid:" not in html and "data:" not in html
    assert "<b>there</b>" in html


def test_html_to_text_keeps_structure() -> None:
    text = html_to_text(
        "<h1>Title</h1><p>One<br>Two</p><ul><li>a</li><li>b</li></ul>"
        "<ol><li>x</li><li>y</li></ol><blockquote>quoted</blockquote>"
        '<p><a href="https://city.gov/p">the page</a></p>'
    )
    assert text == (
        "Title\n\nOne\nTwo\n\n- a\n- b\n\n1. x\n2. y\n\n> quoted\n\n"
        "the page <https://city.gov/p>"
    )


# replies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("New text.\n\nOn Mon, Mar 2, 2026 at 9:00 AM Help <h@city.gov> wrote:\n> old",
         "New text."),
        ("Nuevo.\n\nEl lun, 2 mar 2026 a las 9:00, Ayuda <h@city.gov> escribió:\n> viejo",
         "Nuevo."),
        ("Fine.\n\n-----Original Message-----\nFrom: Help\nSent: Monday\nTo: me\n\nold",
         "Fine."),
        ("Ok.\n\nFrom: Help <h@city.gov>\nSent: Monday, March 2, 2026\nTo: me\nSubject: x\n\nold",
         "Ok."),
        ("Sure.\n\n-- \nJane Doe\nClerk", "Sure."),
        ("> only a quote", "> only a quote"),
        ("", ""),
    ],
)
def test_latest_reply(body: str, expected: str) -> None:
    assert latest_reply(body) == expected


def test_full_text_keeps_the_quoted_history() -> None:
    body = "Yes.\n\nOn Mon, Mar 2, 2026 at 9:00 AM Help <h@city.gov> wrote:\n> old question"
    msg = parse(_message(body))
    assert msg.text == "Yes."
    assert "old question" in msg.full_text


# robustness -----------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    headers=st.binary(max_size=300),
    body=st.binary(max_size=500),
    charset=st.sampled_from(["utf-8", "iso-8859-1", "koi8-r", "x-bogus", "iso-2022-jp", ""]),
)
def test_arbitrary_bytes_only_ever_raise_parse_error(headers: bytes, body: bytes,
                                                     charset: str) -> None:
    raw = (
        b"From: someone@example.org\n" + headers + b"\nContent-Type: text/plain; charset="
        + charset.encode() + b"\n\n" + body
    )
    try:
        msg = parse(raw)
    except ParseError:
        return
    shown = msg.text + (msg.subject or "") + (msg.sender_name or "") + (msg.html or "")
    assert not any("\udc80" <= ch <= "\udcff" for ch in shown)  # no undecoded bytes
