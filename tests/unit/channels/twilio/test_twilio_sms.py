"""Inbound SMS/MMS parsing, control keywords and the messaging TwiML answer."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from werkzeug.datastructures import ImmutableMultiDict

from channels.base import ParseError
from channels.twilio.sms import classify_keyword, messaging_twiml, parse_sms

SID = "SM" + "a" * 32


def form(**extra: str) -> dict[str, str]:
    base = {
        "MessageSid": SID,
        "AccountSid": "AC" + "0" * 32,
        "From": "+15551234567",
        "To": "+15557654321",
        "Body": "When is trash pickup?",
        "NumMedia": "0",
        "NumSegments": "1",
    }
    base.update(extra)
    return base


def test_plain_sms():
    msg = parse_sms(form())
    assert msg.channel == "sms"
    assert msg.provider_id == SID
    assert msg.sender == "+15551234567"
    assert msg.recipient == "+15557654321"
    assert msg.text == "When is trash pickup?"
    assert msg.attachments == []
    assert msg.metadata["keyword"] is None
    assert msg.metadata["num_segments"] == "1"
    assert msg.thread_keys["phone"] == "+15551234567"
    assert msg.to_dict()["provider_id"] == SID


def test_sms_sid_of_older_payloads():
    data = form()
    del data["MessageSid"]
    data["SmsSid"] = "SM" + "b" * 32
    assert parse_sms(data).provider_id == "SM" + "b" * 32


def test_mms_media_become_attachments():
    msg = parse_sms(
        form(
            Body="",
            NumMedia="2",
            MediaUrl0="https://api.twilio.com/2010-04-01/Accounts/AC0/Messages/MM1/Media/ME1",
            MediaContentType0="image/jpeg",
            MediaUrl1="https://api.twilio.com/2010-04-01/Accounts/AC0/Messages/MM1/Media/ME2",
            MediaContentType1="application/pdf",
        )
    )
    assert [(a.content_type, a.url.rsplit("/", 1)[1]) for a in msg.attachments] == [
        ("image/jpeg", "ME1"),
        ("application/pdf", "ME2"),
    ]
    assert msg.text == ""
    assert msg.metadata["num_media"] == 2


def test_media_missing_url_is_skipped_not_fatal():
    msg = parse_sms(form(NumMedia="2", MediaUrl1="https://m/2", MediaContentType1="image/png"))
    assert [a.url for a in msg.attachments] == ["https://m/2"]
    assert (
        parse_sms(form(NumMedia="lots", MediaUrl0="https://m/0")).attachments[0].content_type
        == "application/octet-stream"
    )


@pytest.mark.parametrize(
    "body",
    [
        "x" * 1600,
        "Necesito ayuda con mi solicitud de beneficios. " * 34,
        "🏠🗑️ pickup? 👍🏽 👨‍👩‍👧",
        "我需要帮助申请护照。谢谢！",
        "مرحبا، أحتاج إلى مساعدة",
        "Xin chào, tôi cần giúp đỡ về thuế",
        "  leading and trailing spaces \n second line\r\n",
    ],
)
def test_bodies_kept_exactly(body):
    assert parse_sms(form(Body=body)).text == body


def test_flask_form_works():
    msg = parse_sms(ImmutableMultiDict(form(Body="STOP")))
    assert msg.metadata["keyword"] == "opt_out"


@pytest.mark.parametrize("missing", ["MessageSid", "From"])
def test_missing_required_params(missing):
    data = form()
    del data[missing]
    with pytest.raises(ParseError, match=missing):
        parse_sms(data)


def test_blank_from_is_an_error():
    with pytest.raises(ParseError, match="From"):
        parse_sms(form(From="  "))


def test_opt_out_type_kept():
    msg = parse_sms(form(Body="Stop please", OptOutType="STOP"))
    assert msg.metadata["opt_out_type"] == "STOP"
    assert msg.metadata["keyword"] == "opt_out"


@pytest.mark.parametrize(
    "body, expected",
    [
        *[
            (word, "opt_out")
            for word in (
                "STOP",
                "stopall",
                "Unsubscribe",
                "CANCEL",
                "end",
                "QUIT",
                "revoke",
                "OPTOUT",
                "  stop  ",
                "Stop.",
                "STOP!",
                "stop\n",
            )
        ],
        *[(word, "opt_in") for word in ("START", "yes", "Unstop")],
        *[(word, "help") for word in ("HELP", "info", "Ayuda", "help?")],
        *[(word, "agent") for word in ("AGENT", "person", "Representative", "AGENTE", "agente")],
        *[(word, "feedback") for word in ("FEEDBACK", "survey", "Encuesta")],
        ("please stop texting me", None),
        ("stop it", None),
        ("I need help", None),
        ("", None),
        (None, None),
        ("yes please", None),
        ("STOPP", None),
    ],
)
def test_classify_keyword(body, expected):
    assert classify_keyword(body) == expected


@pytest.mark.parametrize(
    "body, opt_out_type, expected",
    [
        ("Para", "STOP", "opt_out"),
        ("arriba", "START", "opt_in"),
        ("?", "HELP", "help"),
        ("HELP", "STOP", "opt_out"),
        ("AGENT", "start", "opt_in"),
        ("AGENT", "", "agent"),
        ("AGENT", "SOMETHINGNEW", "agent"),
    ],
)
def test_opt_out_type_takes_precedence(body, opt_out_type, expected):
    assert classify_keyword(body, opt_out_type) == expected


def test_messaging_twiml_reply():
    root = ET.fromstring(messaging_twiml("Reply STOP to opt out. Respuesta: sí ✅ <&>"))
    assert root.tag == "Response"
    [message] = list(root)
    assert message.tag == "Message"
    assert message.text == "Reply STOP to opt out. Respuesta: sí ✅ <&>"


@pytest.mark.parametrize("text", [None, ""])
def test_messaging_twiml_empty(text):
    root = ET.fromstring(messaging_twiml(text))
    assert root.tag == "Response"
    assert list(root) == []
