"""Inbound SMS and MMS: Twilio's messaging webhook into an ``InboundMessage``.

Also the SMS keywords residents use to control the conversation (STOP, START, HELP,
AGENT, ...) and the TwiML answer to the messaging webhook. Message bodies are kept
exactly as sent: no trimming, no normalization, so 1,600-character bodies, emoji and
non-Latin scripts reach the ticket unchanged.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Literal

from twilio.twiml.messaging_response import MessagingResponse

from channels.base import Attachment, InboundMessage, ParseError

Keyword = Literal["opt_out", "opt_in", "help", "agent", "feedback"]

# Twilio's default opt-out, opt-in and help keywords (Advanced Opt-Out defaults), plus
# the words residents of a bilingual (English/Spanish) service use to reach a person.
KEYWORDS: dict[str, Keyword] = {
    **dict.fromkeys(
        ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"),
        "opt_out",
    ),
    **dict.fromkeys(("START", "YES", "UNSTOP"), "opt_in"),
    **dict.fromkeys(("HELP", "INFO", "AYUDA"), "help"),
    **dict.fromkeys(("AGENT", "PERSON", "REPRESENTATIVE", "AGENTE", "PERSONA"), "agent"),
    **dict.fromkeys(("FEEDBACK", "SURVEY", "COMENTARIOS", "ENCUESTA"), "feedback"),
}

# Twilio's own classification, sent as ``OptOutType`` when Advanced Opt-Out matched.
OPT_OUT_TYPES: dict[str, Keyword] = {"STOP": "opt_out", "START": "opt_in", "HELP": "help"}

# Twilio delivers at most ten media items per message.
MAX_MEDIA = 10

# Optional webhook parameters kept on the interaction, by their metadata name.
_EXTRA_PARAMS = {
    "AccountSid": "account_sid",
    "MessagingServiceSid": "messaging_service_sid",
    "NumSegments": "num_segments",
    "FromCity": "from_city",
    "FromState": "from_state",
    "FromZip": "from_zip",
    "FromCountry": "from_country",
    "ApiVersion": "api_version",
}


def classify_keyword(body: str | None, opt_out_type: str | None = None) -> Keyword | None:
    """Which control keyword, if any, the whole message is.

    Twilio's ``OptOutType`` (STOP/START/HELP) takes precedence: Twilio has already acted
    on it (blocked or unblocked the number), so our records must agree. Otherwise the
    message, trimmed and compared case-insensitively, must be exactly one keyword;
    trailing ``.``, ``!`` or ``?`` is ignored ("Stop!" opts out), but a keyword inside
    a sentence ("please stop calling me") is not a command.
    """
    if opt_out_type:
        kind = OPT_OUT_TYPES.get(opt_out_type.strip().upper())
        if kind:
            return kind
    if not body:
        return None
    word = body.strip().rstrip(".!?¡¿").strip().lstrip("¡¿").upper()
    return KEYWORDS.get(word)


def parse_sms(form: Mapping[str, str]) -> InboundMessage:
    """Turn Twilio's SMS/MMS webhook form into an ``InboundMessage``.

    ``provider_id`` is MessageSid (SmsSid or SmsMessageSid on older payloads), ``sender``
    is From and ``recipient`` is To, both as Twilio sent them. Media (MediaUrlN and
    MediaContentTypeN for N below NumMedia) become URL attachments; fetching them needs
    the account credentials and is the app's job. Metadata: ``keyword`` (see
    ``classify_keyword``), ``opt_out_type``, ``num_media`` and the optional Twilio
    parameters in ``_EXTRA_PARAMS``. ``thread_keys["phone"]`` is the sender.
    """
    provider_id = (
        form.get("MessageSid") or form.get("SmsSid") or form.get("SmsMessageSid") or ""
    ).strip()
    if not provider_id:
        raise ParseError("Twilio SMS webhook without MessageSid (or SmsSid)")
    sender = (form.get("From") or "").strip()
    if not sender:
        raise ParseError(f"Twilio SMS webhook {provider_id} without a From number")

    body = form.get("Body") or ""
    attachments = _media(form)
    opt_out_type = form.get("OptOutType") or None
    metadata: dict[str, object] = {
        "keyword": classify_keyword(body, opt_out_type),
        "opt_out_type": opt_out_type,
        "num_media": len(attachments),
    }
    for param, name in _EXTRA_PARAMS.items():
        value = form.get(param)
        if value:
            metadata[name] = value
    return InboundMessage(
        channel="sms",
        provider_id=provider_id,
        sender=sender,
        recipient=(form.get("To") or "").strip() or None,
        text=body,
        attachments=attachments,
        thread_keys={"phone": sender},
        metadata=metadata,
    )


def _media(form: Mapping[str, str]) -> list[Attachment]:
    """Media attachments; lenient, because losing a resident's text over a malformed media
    count would be worse than missing a picture: a bad or absurd NumMedia scans the
    positions Twilio can use, and a position without a URL is skipped."""
    try:
        count = int((form.get("NumMedia") or "0").strip())
    except ValueError:
        count = MAX_MEDIA
    attachments = []
    for index in range(min(max(count, 0), MAX_MEDIA)):
        url = (form.get(f"MediaUrl{index}") or "").strip()
        if not url:
            continue
        content_type = form.get(f"MediaContentType{index}") or "application/octet-stream"
        attachments.append(Attachment(filename=None, content_type=content_type, url=url))
    return attachments


def messaging_twiml(text: str | None = None) -> str:
    """The TwiML answer to the messaging webhook: one reply message, or nothing.

    An empty ``<Response/>`` acknowledges the message without replying (the usual case:
    replies go out later through the outbox so they are retried and tracked).
    """
    if not text:
        return _empty_messaging_twiml()
    response = MessagingResponse()
    response.message(text)
    return str(response)


@functools.cache
def _empty_messaging_twiml() -> str:
    """The answer to almost every messaging webhook, built once by the SDK."""
    return str(MessagingResponse())
