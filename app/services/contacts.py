"""Normalizing channel addresses into contact points."""

from __future__ import annotations

from functools import lru_cache

import phonenumbers

from app.services import Invalid

DEFAULT_REGION = "US"


def normalize_phone(raw: str, region: str = DEFAULT_REGION) -> str:
    """E.164 via ``phonenumbers``; raises Invalid for something that is not a number."""
    return _e164(raw.strip(), region)


@lru_cache(maxsize=65536)
def _e164(raw: str, region: str) -> str:
    """Parsing is pure and costs more than the rest of a lookup: remember recent senders
    (invalid input raises and is not remembered)."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise Invalid(f"not a phone number: {raw!r}", code="invalid_phone") from exc
    if not phonenumbers.is_possible_number(number):
        raise Invalid(f"not a possible phone number: {raw!r}", code="invalid_phone")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalize_email(raw: str) -> str:
    value = raw.strip().lower()
    if value.startswith("mailto:"):
        value = value[7:]
    if "@" not in value or value.startswith("@") or value.endswith("@") or " " in value:
        raise Invalid(f"not an email address: {raw!r}", code="invalid_email")
    return value


def normalize(kind: str, raw: str) -> str:
    if kind == "phone":
        return normalize_phone(raw)
    if kind == "email":
        return normalize_email(raw)
    if kind == "chat":
        value = raw.strip()
        if not value or len(value) > 200:
            raise Invalid("a chat visitor id is required", code="invalid_chat_id")
        return value
    raise Invalid(f"unknown contact kind {kind!r}")


CHANNEL_CONTACT_KIND = {"sms": "phone", "voice": "phone", "email": "email", "chat": "chat"}


def contact_for_message(channel: str, sender: str) -> tuple[str, str] | None:
    """The (kind, normalized value) a message's sender is, or None for an anonymous
    walk-in (sender ``anon:<id>``). Walk-ins with a phone number are phone contacts."""
    if sender.startswith("anon:"):
        return None
    if channel == "walkin":
        return ("phone", normalize_phone(sender))
    kind = CHANNEL_CONTACT_KIND[channel]
    if kind == "phone" and sender.startswith("client:"):
        return ("chat", sender)
    return (kind, normalize(kind, sender))
