"""Parsing one raw RFC 5322 message into an ``InboundMessage``.

The structure is read with the standard library's ``email`` package and
``policy.default``; header text and bodies are decoded by ``decoding`` so that a
lying charset label or an 8-bit header never stops a resident's message. HTML is
sanitized here, before anyone else sees it.
"""

from __future__ import annotations

import hashlib
import re
from email import policy
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

from channels.base import Attachment, InboundMessage, ParseError
from channels.email.classify import auto_reply_reason, bounce_details, looks_like_bounce
from channels.email.decoding import (
    decode_header_value,
    decode_part_text,
    message_ids,
    normalize_message_id,
    repair_surrogates,
)
from channels.email.errors import AttachmentTooLarge
from channels.email.html import html_to_text, sanitize_html
from channels.email.replies import is_forward, latest_reply

DEFAULT_MAX_ATTACHMENT_BYTES = 10 * 1024 * 1024
TICKET_REF = re.compile(r"\bCL-(\d{4})-(\d{6,})\b", re.IGNORECASE)
HASH_ID_DOMAIN = "hash.civicline.invalid"
_ADDRESS = re.compile(r"[^\s<>\"',;:()\[\]]+@[^\s<>\"',;:()\[\]]+")
_SIGNATURE_PARTS = {
    "application/pgp-signature", "application/pkcs7-signature",
    "application/x-pkcs7-signature",
}
_FORWARD_SUBJECT = re.compile(r"^\s*(?:fwd?|rv|wg|tr)\s*:", re.IGNORECASE)
_HEADER_DOCS = ("text/rfc822-headers", "message/rfc822-headers")


def parse(
    raw: bytes, *, max_attachment_bytes: int = DEFAULT_MAX_ATTACHMENT_BYTES
) -> InboundMessage:
    """Turn one raw message into an ``InboundMessage`` for the ``email`` channel.

    Raises ``ParseError`` when there is no message or no sender address, and
    ``AttachmentTooLarge`` (a ``ParseError``) when an attachment exceeds
    ``max_attachment_bytes``. Any charset problem is repaired, never raised.
    """
    if not isinstance(raw, (bytes, bytearray)):
        raise ParseError("an email message must be given as bytes")
    raw = bytes(raw)
    if not raw.strip():
        raise ParseError("empty email message")
    try:
        msg = BytesParser(policy=policy.default).parsebytes(raw)
    except Exception as exc:  # the parser is lenient; this is a last resort
        raise ParseError(f"unreadable email message: {exc}") from exc

    headers = _RawHeaders(msg)
    sender_name, sender = _sender(headers)
    to_list = [addr for _, addr in _addresses(headers.get("To"))]
    recipient = (to_list or [None])[0] or _first_address(
        headers.get("Delivered-To") or headers.get("X-Original-To")
    )
    subject_raw = headers.get("Subject")
    subject = decode_header_value(subject_raw) if subject_raw is not None else None

    body = _Body(max_attachment_bytes)
    body.walk(msg)
    html = sanitize_html("\n".join(body.html)) if body.html else None
    full_text = "\n\n".join(t for t in body.plain if t.strip()).strip()
    if not full_text and html:
        full_text = html_to_text(html)

    metadata = _metadata(headers, body, sender, to_list, subject or "", full_text)
    message_id = normalize_message_id(decode_header_value(headers.get("Message-ID")))
    if message_id:
        metadata["provider_id_source"] = "message-id"
    else:
        message_id = _content_hash_id(raw)
        metadata["provider_id_source"] = "content-hash"
    _classify(msg, headers, metadata, sender, sender_name, subject or "", full_text)

    ref = TICKET_REF.search(subject or "")
    language = decode_header_value(headers.get("Content-Language")).split(",")[0].strip()
    return InboundMessage(
        channel="email",
        provider_id=message_id,
        sender=sender,
        sender_name=sender_name,
        recipient=recipient,
        subject=subject,
        text=latest_reply(full_text),
        full_text=full_text,
        html=html,
        language=language.lower() or None,
        attachments=body.attachments,
        thread_keys={
            "in_reply_to": normalize_message_id(decode_header_value(headers.get("In-Reply-To"))),
            "references": message_ids(decode_header_value(headers.get("References"))),
            "subject_ref": f"CL-{ref.group(1)}-{ref.group(2)}" if ref else None,
        },
        metadata=metadata,
        is_auto_reply="auto_reply_reason" in metadata,
    )


def _sender(headers: _RawHeaders) -> tuple[str | None, str]:
    """(display name, address) of the author."""
    from_list = _addresses(headers.get("From"))
    if not any("@" in addr for _, addr in from_list):
        # "From: MAILER-DAEMON (Mail Delivery System)": the full address is elsewhere.
        fallback = _addresses(headers.get("Sender")) or _addresses(headers.get("Return-Path"))
        if any("@" in addr for _, addr in fallback):
            name = from_list[0][0] if from_list else None
            from_list = [(name or fallback[0][0], fallback[0][1])]
    if not from_list:
        raise ParseError("the message has no sender address")
    return from_list[0]


def _metadata(
    headers: _RawHeaders, body: _Body, sender: str, to_list: list[str], subject: str,
    full_text: str,
) -> dict[str, Any]:
    """Channel-specific facts kept on the interaction."""
    metadata: dict[str, Any] = {
        "to": to_list,
        "cc": [addr for _, addr in _addresses(headers.get("Cc"))],
    }
    reply_to = _first_address(headers.get("Reply-To"))
    if reply_to and reply_to != sender:
        metadata["reply_to"] = reply_to
    sent_at = _date(headers.get("Date"))
    if sent_at:
        metadata["sent_at"] = sent_at
    if body.charset_repaired:
        metadata["charset_repaired"] = True
    if body.inline_images:
        metadata["inline_images"] = body.inline_images
    if body.signed:
        metadata["signed"] = True
    if is_forward(full_text) or _FORWARD_SUBJECT.match(subject):
        metadata["forwarded"] = True
    return metadata


def _classify(
    msg: Message, headers: _RawHeaders, metadata: dict[str, Any], sender: str,
    sender_name: str | None, subject: str, full_text: str,
) -> None:
    """Set ``auto_reply_reason``, ``report_type`` and ``bounce`` in ``metadata``."""
    reason = auto_reply_reason(msg, subject, headers.get("Return-Path"))
    report_type = ""
    if msg.get_content_type() == "multipart/report":
        report_type = str(msg.get_param("report-type", "", header="content-type") or "").lower()
        metadata["report_type"] = report_type
    if report_type in ("delivery-status", "global-delivery-status") or looks_like_bounce(
        sender, sender_name, subject
    ):
        metadata["bounce"] = bounce_details(msg, full_text)
        reason = "bounce"
    elif report_type and reason is None:
        reason = f"report: {report_type}"
    if reason:
        metadata["auto_reply_reason"] = reason


class _RawHeaders:
    """First raw value of each header, bypassing policy header objects, which
    give up on some malformed values."""

    def __init__(self, msg: Message):
        self._values: dict[str, str] = {}
        for name, value in msg.raw_items():
            self._values.setdefault(name.lower(), str(value))

    def get(self, name: str) -> str | None:
        return self._values.get(name.lower())


def _addresses(value: str | None) -> list[tuple[str | None, str]]:
    """(display name, lower-cased address) pairs from an address header."""
    if not value:
        return []
    text = re.sub(r"\r?\n[ \t]+", " ", repair_surrogates(value))
    pairs: list[tuple[str | None, str]] = []
    try:
        parsed = getaddresses([text])
    except (ValueError, IndexError, TypeError):
        parsed = []
    for name, addr in parsed:
        addr = addr.strip().strip("<>").lower()
        if not addr or any(ch.isspace() for ch in addr):
            continue
        pairs.append((decode_header_value(name) or None, addr))
    if not pairs:
        pairs = [(None, m.lower()) for m in _ADDRESS.findall(decode_header_value(text))]
    return [(name, addr) for name, addr in pairs if "@" in addr] or pairs


def _first_address(value: str | None) -> str | None:
    found = _addresses(value)
    return found[0][1] if found else None


def _date(value: str | None) -> str | None:
    if not value:
        return None
    try:
        when = parsedate_to_datetime(decode_header_value(value))
    except (TypeError, ValueError, IndexError):
        return None
    return when.isoformat() if when else None


def _content_hash_id(raw: bytes) -> str:
    """A stable id for a message without a Message-ID, so a replay dedupes."""
    canonical = b"\n".join(line.rstrip() for line in raw.replace(b"\r\n", b"\n").split(b"\n"))
    digest = hashlib.sha256(canonical.strip()).hexdigest()[:40]
    return f"<{digest}@{HASH_ID_DOMAIN}>"


def _unflow(text: str, delsp: bool) -> str:
    """Join the soft line breaks of ``format=flowed`` text (RFC 3676)."""
    out: list[str] = []
    current = ""
    for line in text.split("\n"):
        line = line.removeprefix(" ")  # space-stuffing
        if line.endswith(" ") and line != "-- ":
            current += line[:-1] if delsp else line
            continue
        out.append(current + line)
        current = ""
    if current:
        out.append(current)
    return "\n".join(out)


class _Body:
    """Walks the MIME tree, collecting text, HTML and attachments."""

    def __init__(self, max_attachment_bytes: int):
        self.max_attachment_bytes = max_attachment_bytes
        self.plain: list[str] = []
        self.html: list[str] = []
        self.attachments: list[Attachment] = []
        self.inline_images: dict[str, str | None] = {}
        self.charset_repaired = False
        self.signed = False

    def walk(self, part: Message) -> None:
        content_type = part.get_content_type()
        if content_type in ("message/rfc822", "message/global"):
            self._attach_message(part)
            return
        if part.is_multipart():
            children = [c for c in part.get_payload() if isinstance(c, Message)]
            if content_type == "multipart/alternative":
                self._alternative(children)
            elif content_type == "multipart/report":
                # Only the human-readable part; the machine parts are read as a bounce.
                if children:
                    self.walk(children[0])
            else:
                self.signed = self.signed or content_type == "multipart/signed"
                for child in children:
                    self.walk(child)
            return
        if content_type in _SIGNATURE_PARTS:
            self.signed = True
            return
        if content_type in ("message/delivery-status", *_HEADER_DOCS):
            return
        filename = _filename(part)
        disposition = part.get_content_disposition()
        if content_type in ("text/plain", "text/html") and disposition != "attachment" and (
            not filename
        ):
            text, repaired = decode_part_text(part)
            text = text.replace("\r\n", "\n").replace("\r", "\n")
            self.charset_repaired = self.charset_repaired or repaired
            if content_type == "text/html":
                self.html.append(text)
            else:
                if str(part.get_param("format", "")).lower() == "flowed":
                    text = _unflow(text, str(part.get_param("delsp", "")).lower() == "yes")
                self.plain.append(text)
            return
        self._attach(part, content_type, filename)

    def _alternative(self, children: list[Message]) -> None:
        # Each alternative is a whole rendering; keep the first plain text and the
        # last (richest) HTML, and the attachments of all (inline images of the HTML).
        plain: list[str] | None = None
        html: list[str] | None = None
        for child in children:
            sub = _Body(self.max_attachment_bytes)
            sub.walk(child)
            if sub.plain and plain is None:
                plain = sub.plain
            if sub.html:
                html = sub.html
            self.attachments.extend(sub.attachments)
            self.inline_images.update(sub.inline_images)
            self.charset_repaired = self.charset_repaired or sub.charset_repaired
        self.plain.extend(plain or [])
        self.html.extend(html or [])

    def _check_size(self, filename: str | None, size: int) -> None:
        if size > self.max_attachment_bytes:
            raise AttachmentTooLarge(filename, size, self.max_attachment_bytes)

    def _attach(self, part: Message, content_type: str, filename: str | None) -> None:
        try:
            data = part.get_payload(decode=True)
        except Exception:  # noqa: BLE001 - a broken encoding still leaves the file
            data = None
        if not isinstance(data, bytes):
            data = b""
        self._check_size(filename, len(data))
        content_id = normalize_message_id(decode_header_value(part.get("Content-ID", "")))
        if content_id:
            self.inline_images[content_id.strip("<>")] = filename
        self.attachments.append(
            Attachment(filename=filename, content_type=content_type, size=len(data), content=data)
        )

    def _attach_message(self, part: Message) -> None:
        payload = part.get_payload()
        inner = payload[0] if isinstance(payload, list) and payload else None
        try:
            data = inner.as_bytes() if isinstance(inner, Message) else b""
        except Exception:  # noqa: BLE001 - an inner message the policy cannot serialize
            data = str(inner).encode("utf-8", "replace") if inner is not None else b""
        filename = _filename(part)
        if not filename and isinstance(inner, Message):
            subject = decode_header_value(str(inner.get("Subject", "") or ""))
            filename = (_safe_name(subject) or "message") + ".eml"
        self._check_size(filename, len(data))
        self.attachments.append(
            Attachment(
                filename=filename, content_type=part.get_content_type(), size=len(data),
                content=data,
            )
        )


def _safe_name(name: str) -> str:
    name = re.split(r"[\\/]", name)[-1]
    name = re.sub(r"[\x00-\x1f\x7f]", "", name).strip().strip(".")
    return name[:200]


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except (ValueError, LookupError, TypeError, IndexError):
        name = None
    if not name:
        try:
            name = part.get_param("name", header="content-type")
        except (ValueError, LookupError, TypeError, IndexError):
            name = None
        if isinstance(name, tuple):  # RFC 2231 value the policy left undecoded
            name = name[2]
    if not name:
        return None
    return _safe_name(decode_header_value(repair_surrogates(str(name)))) or None
