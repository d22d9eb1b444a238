"""Property tests of the provider payload parsers: whatever a provider (or an attacker
with a valid signature) sends, a parser either returns its result or raises
``ParseError``, which the webhook stores and answers with 400; never anything else.
(The MIME parser's byte-level property lives in ``tests/unit/channels/email``; the one
here builds structured multipart messages.)"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from channels import twilio as tw
from channels.base import InboundMessage, ParseError
from channels.email import parse as parse_email

TWILIO_FIELDS = ["MessageSid", "SmsSid", "SmsMessageSid", "CallSid", "From", "Caller", "To",
                 "Called", "Body", "NumMedia", "MediaUrl0", "MediaContentType0", "MediaUrl9",
                 "OptOutType", "SpeechResult", "Digits", "Confidence", "CallStatus",
                 "MessageStatus", "ErrorCode", "CallDuration", "RecordingUrl",
                 "RecordingDuration", "TranscriptionText", "TranscriptionStatus",
                 "QueuePosition", "QueueTime", "AccountSid", "Direction", "FromCountry"]
text = st.text(st.characters(codec="utf-8"), max_size=40) | st.sampled_from(
    ["", " ", "0", "-1", "1e309", "nan", "99999999999999999999", "STOP", "+15555550123",
     "SM" + "a" * 32, "\x00", "anonymous"])
forms = st.dictionaries(st.sampled_from(TWILIO_FIELDS) | st.text(max_size=12), text,
                        max_size=12)


def _only_parse_errors(parse, form) -> object | None:
    try:
        return parse(form)
    except ParseError:
        return None


@settings(max_examples=300, deadline=None)
@given(form=forms)
def test_twilio_sms_form_parses_or_raises_parse_error(form):
    message = _only_parse_errors(tw.parse_sms, form)
    if message is not None:
        assert isinstance(message, InboundMessage) and message.provider_id.strip()
        assert len(message.attachments) <= 10


@settings(max_examples=300, deadline=None)
@given(form=forms, language=st.none() | text, step=st.none() | text)
def test_twilio_voice_form_parses_or_raises_parse_error(form, language, step):
    message = _only_parse_errors(lambda f: tw.parse_voice(f, language, step), form)
    if message is not None:
        assert isinstance(message, InboundMessage) and message.channel == "voice"


@settings(max_examples=200, deadline=None)
@given(form=forms)
def test_twilio_status_recording_and_wait_forms_parse_or_raise_parse_error(form):
    for parse in (tw.parse_status, tw.parse_recording, tw.parse_wait):
        _only_parse_errors(parse, form)


part_bodies = st.binary(max_size=200)
content_types = st.sampled_from(["text/plain", "text/html", "application/pdf", "image/png",
                                 "message/rfc822", "multipart/alternative", "text/x-bogus",
                                 "", "text/plain; charset=utf-16", "text/html; charset=x-bad"])
encodings = st.sampled_from(["", "base64", "quoted-printable", "7bit", "8bit", "x-uuencode"])


@settings(max_examples=200, deadline=None)
@given(parts=st.lists(st.tuples(content_types, encodings, part_bodies), max_size=4),
       boundary=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=0,
                        max_size=20),
       subject=st.binary(max_size=60))
def test_multipart_email_parses_or_raises_parse_error(parts, boundary, subject):
    raw = (b"From: Pat <pat@example.org>\r\nTo: help@civicline.example\r\nSubject: " + subject
           + b"\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\""
           + boundary.encode() + b"\"\r\n\r\n")
    for content_type, encoding, body in parts:
        raw += b"--" + boundary.encode() + b"\r\nContent-Type: " + content_type.encode()
        if encoding:
            raw += b"\r\nContent-Transfer-Encoding: " + encoding.encode()
        raw += b"\r\nContent-Disposition: attachment; filename=\"a.bin\"\r\n\r\n" + body + b"\r\n"
    raw += b"--" + boundary.encode() + b"--\r\n"
    message = _only_parse_errors(parse_email, raw)
    if message is not None:
        assert isinstance(message, InboundMessage) and message.channel == "email"
