"""Types shared by every channel adapter.

One ``InboundMessage`` shape for every door into CivicLine (voice, SMS, email, chat,
walk-in) and one ``OutboundMessage`` shape for every reply. Adapters turn provider
payloads into these; the app's intake and outbound services only ever see these.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

CHANNELS = ("voice", "sms", "email", "chat", "walkin")


class ParseError(ValueError):
    """A provider payload that cannot be understood; the caller stores it for inspection."""


class TransientDeliveryError(Exception):
    """A delivery that may succeed if retried (rate limits, 5xx, network, SMTP 4xx)."""

    def __init__(self, message: str, code: str | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.code = code
        self.retry_after = retry_after


class PermanentDeliveryError(Exception):
    """A delivery that will never succeed as addressed (invalid number, opted out, SMTP 5xx)."""

    def __init__(self, message: str, code: str | None = None, opted_out: bool = False):
        super().__init__(message)
        self.code = code
        self.opted_out = opted_out


# What the database keeps of a message's identifiers and headers (the columns' lengths).
ID_MAX = 300  # provider ids and thread keys
SUBJECT_MAX = 300
NAME_MAX = 200
TOPIC_MAX = 50


def fit(value: str, limit: int) -> str:
    """``value`` when it has at most ``limit`` characters; otherwise its start and a digest
    of the whole, so one long identifier always gives the same key (dedupe and threading
    still work) and two different ones stay different."""
    if len(value) <= limit:
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{value[:limit - len(digest) - 1]}#{digest}"


def _fit_id(value: Any) -> Any:
    """An identifier or thread key made to fit ``ID_MAX`` (``fit``); other values as
    they are."""
    return fit(value, ID_MAX) if isinstance(value, str) else value


_LANGUAGE_TAG = re.compile(r"([A-Za-z]{2,3})(?:[-_][A-Za-z0-9]{1,8})*")


def language_code(tag: str | None) -> str | None:
    """The primary subtag of a language tag, lower-cased ("es-MX" -> "es"), which is
    what knowledge-base languages and agents' language skills name; ``None`` when ``tag``
    is not a language tag at all (a Content-Language header may carry anything)."""
    if not tag or not tag.isascii():
        return None
    match = _LANGUAGE_TAG.fullmatch(tag.strip())
    return match.group(1).lower() if match else None


@dataclass(frozen=True)
class Attachment:
    """A file that came with (or goes with) a message. ``url`` for provider-hosted media
    (MMS), ``content`` for bytes we hold (email)."""

    filename: str | None
    content_type: str
    size: int | None = None
    url: str | None = None
    content: bytes | None = field(default=None, repr=False)


@dataclass
class InboundMessage:
    """One message, call event, visit or chat line from a resident, normalized.

    ``channel``: one of CHANNELS. ``provider_id``: the provider's unique id for this
    message (MessageSid, CallSid, Message-ID, chat message uuid, visit id); intake dedupes
    on (channel, provider_id). ``sender``: the raw address (phone number, email address,
    chat visitor id, or a phone number given at the kiosk); intake normalizes it.
    ``thread_keys``: hints for threading into an open ticket, e.g.
    ``{"in_reply_to": "<id@x>", "references": [...], "subject_ref": "CL-2026-000123",
    "chat_session": "...", "call_sid": "..."}``. ``metadata``: channel-specific extras
    kept on the interaction (IVR language, email headers of interest, auto-reply flag).
    """

    channel: str
    provider_id: str
    sender: str
    text: str = ""
    recipient: str | None = None
    subject: str | None = None
    html: str | None = None
    full_text: str | None = None
    language: str | None = None
    sender_name: str | None = None
    received_at: datetime | None = None
    attachments: list[Attachment] = field(default_factory=list)
    thread_keys: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    topic: str | None = None
    is_auto_reply: bool = False

    def __post_init__(self) -> None:
        # Identifiers and headers come from outside: they are made to fit what the
        # database keeps instead of failing the statement that stores the message.
        self.language = language_code(self.language)
        for name in ("text", "full_text", "html", "subject", "sender_name"):
            value = getattr(self, name)
            if value and "\x00" in value:  # no database text column takes NUL
                setattr(self, name, value.replace("\x00", ""))
        self.provider_id = _fit_id(self.provider_id)
        self.thread_keys = {kind: [_fit_id(v) for v in value] if isinstance(value, list)
                            else _fit_id(value)
                            for kind, value in (self.thread_keys or {}).items()}
        if self.subject:
            self.subject = self.subject[:SUBJECT_MAX]
        if self.sender_name:
            self.sender_name = self.sender_name[:NAME_MAX]
        if self.topic:
            self.topic = self.topic[:TOPIC_MAX]
        if self.channel not in CHANNELS:
            raise ParseError(f"unknown channel {self.channel!r}")
        if not self.provider_id:
            raise ParseError("a provider id is required")
        if not self.sender:
            raise ParseError("a sender is required")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        for att in data["attachments"]:
            att.pop("content", None)
        if self.received_at:
            data["received_at"] = self.received_at.isoformat()
        return data


@dataclass
class OutboundMessage:
    """One reply to a resident on one channel. ``to`` is the normalized address.
    ``idempotency_key`` is the outbox row's key: adapters pass it to providers that
    accept one, and use it as the email Message-ID's left part."""

    channel: str
    to: str
    text: str
    idempotency_key: str
    subject: str | None = None
    html: str | None = None
    sender: str | None = None
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    message_id: str | None = None
    status_callback: str | None = None
    attachments: list[Attachment] = field(default_factory=list)
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DeliveryResult:
    """What a provider said when it accepted a message: its id and initial status."""

    provider_id: str
    status: str = "sent"
    detail: dict[str, Any] = field(default_factory=dict)
