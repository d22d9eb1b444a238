"""The email channel's app side: raw mail in (webhook and SMTP), replies out by SMTP.

Inbound, ``ingest`` parses one raw message with ``channels.email.parse``, stores its
attachments, and hands it to intake; a replay of the same Message-ID is a no-op. A
bounce that names a message we sent marks that delivery failed and sends the message
on the citizen's next channel; other auto-replies are recorded and never answered.

Attachments are kept on disk, content-addressed: ``<ATTACHMENTS_DIR>/<sha256>`` (default
``instance/attachments``) with a ``<sha256>.json`` side file holding the first name and
type seen. The interaction's ``attachments`` JSON keeps name, type, size and the
download URL ``/api/v1/attachments/<sha256>``. Files are written before intake commits,
so an accepted message never points at a missing file; identical files are stored once.

Outbound, ``reply_by_email`` queues a reply with the ticket reference in the subject and
the resident's last message as ``In-Reply-To``/``References``. The registered sender
completes any email queued elsewhere (agent replies, fallbacks) the same way, adds an
HTML part made from the text, and delivers by ``SMTP_URL``; without ``SMTP_URL`` the
outbox records the message in the simulator.

Self-service: the first message of a new email ticket gets the knowledge base's email
answer when it is confident, otherwise an acknowledgement with the reference and the
expected response time (``EMAIL_RESPONSE_TIME``, default "2 business days").
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import html
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from flask import current_app

from app.extensions import db
from app.models import ContactPoint, Interaction, Outbox, Ticket, utcnow
from app.services import ServiceError, commit_keeping_loaded, followup, knowledge, outbound
from app.services.intake import intake, store_failed_payload
from channels import email as email_channel
from channels.base import Attachment, DeliveryResult, OutboundMessage, ParseError
from channels.email import AttachmentTooLarge

log = logging.getLogger(__name__)

SOURCE = "email"
ATTACHMENT_URL = "/api/v1/attachments/{sha256}"
SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_SUBJECT_PREFIX = re.compile(r"^\s*(?:(?:re|aw|fwd?|rv|wg|tr|sv)\s*:\s*)+", re.IGNORECASE)
_REF_IN_SUBJECT = re.compile(r"\[?\s*CL-\d{4}-\d{6,}\s*\]?\s*", re.IGNORECASE)
_HASH_ID_SUFFIX = "@hash.civicline.invalid>"
_FINAL_BOUNCE_ACTIONS = ("failed",)
MAX_REFERENCES = 20


class UnreadableEmail(ServiceError):
    """A message that could not be parsed; it was kept as a failed payload."""

    status = 400
    code = "unreadable_email"

    def __init__(self, message: str, failed_payload_id: int):
        super().__init__(message, detail={"failed_payload_id": failed_payload_id})
        self.failed_payload_id = failed_payload_id


@dataclass(frozen=True)
class EmailOutcome:
    """What happened to one inbound message."""

    ticket_id: int | None
    ticket_reference: str | None
    interaction_id: int | None
    created_ticket: bool = False
    duplicate: bool = False
    auto_reply: bool = False
    bounce: dict[str, Any] | None = None
    bounced_outbox_id: int | None = None

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ticket": self.ticket_reference,
            "ticket_id": self.ticket_id,
            "interaction_id": self.interaction_id,
            "created_ticket": self.created_ticket,
            "duplicate": self.duplicate,
            "auto_reply": self.auto_reply,
        }
        if self.bounce is not None:
            body["bounce"] = {**self.bounce, "outbox_id": self.bounced_outbox_id}
        return body


# --- inbound -------------------------------------------------------------------------


def ingest(raw: bytes, *, content_type: str | None = "message/rfc822") -> EmailOutcome:
    """Parse, store and take in one raw RFC 5322 message (webhook or SMTP).

    Raises ``AttachmentTooLarge`` for an attachment over ``MAX_ATTACHMENT_BYTES`` and
    ``UnreadableEmail`` (after keeping the payload) for a message that cannot be read or
    that holds a value the database refuses to store.
    """
    limit = (
        current_app.config.get("MAX_ATTACHMENT_BYTES") or email_channel.DEFAULT_MAX_ATTACHMENT_BYTES
    )
    try:
        msg = email_channel.parse(raw, max_attachment_bytes=limit)
    except AttachmentTooLarge:
        raise
    except ParseError as exc:
        payload_id = store_failed_payload(SOURCE, raw, content_type, str(exc))
        raise UnreadableEmail(f"the message could not be read: {exc}", payload_id) from exc
    bounce = msg.metadata.get("bounce")
    if bounce and bounce.get("original_message_id"):
        outcome = _bounce(msg, bounce)
        if outcome is not None:
            return outcome
    if msg.attachments:
        msg.attachments = [store_attachment(a) for a in msg.attachments]
    references = (msg.thread_keys or {}).get("references") or []
    if references:
        # Kept so that a reply can carry the whole chain in its References header.
        msg.metadata["references"] = references[-MAX_REFERENCES:]
    try:
        result = intake(msg)
    except sa.exc.DataError as exc:
        db.session.rollback()
        error = str(exc.orig or exc).splitlines()[0]
        payload_id = store_failed_payload(SOURCE, raw, content_type, f"not storable: {error}")
        raise UnreadableEmail(f"the message could not be stored: {error}", payload_id) from exc
    return EmailOutcome(
        ticket_id=result.ticket_id,
        ticket_reference=result.ticket_reference,
        interaction_id=result.interaction_id,
        created_ticket=result.created_ticket,
        duplicate=result.duplicate,
        auto_reply=msg.is_auto_reply,
    )


def _bounce(msg, details: dict[str, Any]) -> EmailOutcome | None:
    """Record a bounce on the ticket of the message it returns and, when the delivery
    failed for good, fail that outbox row so the message goes out on the next channel.
    None when the bounced message is not one of ours (intake records it as it is)."""
    original = details["original_message_id"]
    row = db.session.scalar(
        sa.select(Outbox)
        .where(Outbox.channel == "email", Outbox.provider_id == original)
        .order_by(Outbox.id.desc())
        .limit(1)
    )
    if row is None:
        return None
    ticket = db.session.get(Ticket, row.ticket_id)
    existing = db.session.scalar(
        sa.select(Interaction).where(
            Interaction.channel == "email", Interaction.provider_id == msg.provider_id
        )
    )
    if existing is not None:
        return EmailOutcome(
            ticket.id,
            ticket.reference,
            existing.id,
            duplicate=True,
            auto_reply=True,
            bounce=details,
            bounced_outbox_id=row.id,
        )
    final = (details.get("action") or "failed") in _FINAL_BOUNCE_ACTIONS
    record = Interaction(
        ticket_id=ticket.id,
        citizen_id=None,
        channel="email",
        direction="inbound",
        author_kind="system",
        provider_id=msg.provider_id,
        subject=msg.subject,
        text=msg.text or "",
        full_text=msg.full_text,
        meta={
            **msg.metadata,
            "auto_reply": True,
            "bounced_outbox_id": row.id,
            "bounced_interaction_id": row.interaction_id,
        },
        created_at=utcnow(),
    )
    db.session.add(record)
    if final and details.get("recipient"):
        point = db.session.scalar(
            sa.select(ContactPoint).where(
                ContactPoint.kind == "email", ContactPoint.value == details["recipient"]
            )
        )
        if point is not None:
            point.last_failure = _bounce_reason(details)[:200]
    db.session.commit()
    if final and row.status == "sent":
        outbound.fail(row, _bounce_reason(details), code="bounce")
    log.info(
        "bounce for outbox %s (%s) recorded as interaction %s",
        row.id,
        details.get("action"),
        record.id,
    )
    return EmailOutcome(
        ticket.id,
        ticket.reference,
        record.id,
        auto_reply=True,
        bounce=details,
        bounced_outbox_id=row.id,
    )


def _bounce_reason(details: dict[str, Any]) -> str:
    parts = [f"bounced: {details.get('recipient') or 'the recipient'} could not be reached"]
    if details.get("status"):
        parts.append(f"status {details['status']}")
    if details.get("diagnostic"):
        parts.append(re.sub(r"\s+", " ", details["diagnostic"]))
    return "; ".join(parts)


def attachments_dir() -> Path:
    configured = current_app.config.get("ATTACHMENTS_DIR")
    return Path(configured) if configured else Path(current_app.instance_path) / "attachments"


def store_attachment(attachment: Attachment) -> Attachment:
    """Write the bytes once under their SHA-256; return the attachment with its URL."""
    if attachment.content is None:
        return attachment
    digest = hashlib.sha256(attachment.content).hexdigest()
    folder = attachments_dir()
    path = folder / digest
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        _write_atomically(path, attachment.content)
        info = {
            "filename": attachment.filename,
            "content_type": attachment.content_type,
            "size": len(attachment.content),
        }
        _write_atomically(folder / f"{digest}.json", json.dumps(info).encode())
    return dataclasses.replace(
        attachment, url=ATTACHMENT_URL.format(sha256=digest), size=len(attachment.content)
    )


def _write_atomically(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".incoming-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def stored_attachment(sha256: str) -> tuple[Path, dict[str, Any]] | None:
    """The file and its name/type for a download, or None when unknown."""
    if not SHA256_RE.match(sha256 or ""):
        return None
    path = attachments_dir() / sha256
    if not path.is_file():
        return None
    try:
        info = json.loads((attachments_dir() / f"{sha256}.json").read_text())
    except (OSError, ValueError):
        info = {}
    return path, info


# --- outbound ------------------------------------------------------------------------


def subject_with_reference(ticket: Ticket, subject: str | None = None) -> str:
    """``[CL-2026-000123] <subject>`` without Re:/Fwd: prefixes or a second reference."""
    base = _SUBJECT_PREFIX.sub("", subject or ticket.subject or "")
    base = _REF_IN_SUBJECT.sub("", base).strip() or "Your request"
    return f"[{ticket.reference}] {base}"[:300]


def text_to_html(text: str) -> str:
    """The HTML part of a plain-text reply: escaped, one paragraph per blank-line block."""
    paragraphs = [p for p in re.split(r"\n\s*\n", (text or "").strip()) if p.strip()]
    body = "\n".join(
        "<p>" + "<br>\n".join(html.escape(line) for line in p.splitlines()) + "</p>"
        for p in paragraphs
    )
    return f'<!DOCTYPE html>\n<html><body style="font-family: sans-serif">\n{body}\n</body></html>'


_LAST_INBOUND_EMAIL = (
    sa.select(Interaction)
    .where(
        Interaction.ticket_id == sa.bindparam("ticket_id"),
        Interaction.channel == "email",
        Interaction.direction == "inbound",
        Interaction.author_kind == "citizen",
    )
    .order_by(Interaction.id.desc())
    .limit(1)
)


def last_inbound_email(ticket_id: int) -> Interaction | None:
    return db.session.scalar(_LAST_INBOUND_EMAIL, {"ticket_id": ticket_id})


def threading_headers(parent: Interaction | None) -> tuple[str | None, list[str]]:
    """(In-Reply-To, References) answering ``parent``, the resident's last email on the
    ticket (``last_inbound_email``)."""
    if parent is None or not parent.provider_id or parent.provider_id.endswith(_HASH_ID_SUFFIX):
        return None, []
    references = list((parent.meta or {}).get("references") or [])[-(MAX_REFERENCES - 1) :]
    references.append(parent.provider_id)
    return parent.provider_id, list(dict.fromkeys(references))


def reply_by_email(
    ticket: Ticket,
    text: str,
    agent=None,
    *,
    subject: str | None = None,
    html_body: str | None = None,
    author_kind: str | None = None,
    kb: tuple[int, int] | None = None,
    automatic: bool = False,
    meta: dict[str, Any] | None = None,
    deliver_now: bool = False,
    parent: Interaction | None = None,
) -> Interaction:
    """Queue an email to the resident, threaded under ``parent``, by default their last
    message on the ticket. ``deliver_now``: from a job, send it in that job
    (``outbound.after_commit``)."""
    if parent is None:
        parent = last_inbound_email(ticket.id)
    to = None
    if parent is not None and parent.contact_point_id:
        point = db.session.get(ContactPoint, parent.contact_point_id)
        to = point.value if point is not None else None
    in_reply_to, references = threading_headers(parent)
    interaction = outbound.queue_message(
        ticket,
        "email",
        text,
        to=to,
        subject=subject_with_reference(ticket, subject),
        html=html_body or text_to_html(text),
        author_kind=author_kind or ("agent" if agent is not None else "system"),
        author_agent_id=getattr(agent, "id", None),
        kb=kb,
        meta=meta,
        commit=False,
        payload={"in_reply_to": in_reply_to, "references": references,
                 "automatic": automatic},
    )
    row = outbound.staged_outbox(interaction)
    commit_keeping_loaded()  # announced and sent as written: nothing to read back
    outbound.after_commit(row.id, interaction.id, deliver_now=deliver_now)
    return interaction


def complete_outbound(out: OutboundMessage) -> OutboundMessage:
    """Give any outbound email the ticket reference, threading headers and an HTML part,
    whatever service queued it (agent replies, fallbacks from another channel)."""
    ticket_id = out.metadata.get("ticket_id")
    ticket = db.session.get(Ticket, ticket_id) if ticket_id else None
    outbox_id = out.metadata.get("outbox_id")
    row = db.session.get(Outbox, outbox_id) if outbox_id else None
    changes: dict[str, Any] = {}
    if ticket is not None and (not out.subject or ticket.reference not in out.subject):
        changes["subject"] = subject_with_reference(ticket, out.subject)
    if not out.html:
        changes["html"] = text_to_html(out.text)
    if ticket is not None and not out.in_reply_to:
        in_reply_to, references = threading_headers(last_inbound_email(ticket.id))
        if in_reply_to:
            changes["in_reply_to"], changes["references"] = in_reply_to, references
    if row is not None and (row.payload or {}).get("automatic"):
        changes["metadata"] = {**out.metadata, email_channel.AUTOMATIC_FLAG: True}
    return dataclasses.replace(out, **changes) if changes else out


def email_sender(app) -> Any:
    """The outbox's email sender: SMTP when ``SMTP_URL`` is set, else None (simulator)."""
    smtp_url = app.config.get("SMTP_URL")
    if not smtp_url:
        return None
    from_addr = app.config["EMAIL_FROM"]
    domain = app.config["EMAIL_DOMAIN"]

    def send(out: OutboundMessage) -> DeliveryResult:
        return email_channel.send(
            complete_outbound(out), smtp_url, from_addr=from_addr, domain=domain
        )

    return send


# --- self-service ----------------------------------------------------------------------

ACK_TEXT = {
    "en": (
        "Thank you for writing to us. We received your message and opened case {ref}.\n\n"
        "An agent will answer within {eta}. To add to your case, reply to this email "
        "and keep {ref} in the subject."
    ),
    "es": (
        "Gracias por escribirnos. Recibimos su mensaje y abrimos el caso {ref}.\n\n"
        "Un agente le responderá en un plazo de {eta}. Para agregar información, "
        "responda a este correo y mantenga {ref} en el asunto."
    ),
}
KB_FOOTER = {
    "en": (
        "Was this helpful?",
        "Yes",
        "No",
        "Reply to this email to reach a person. Your reference is {ref}.",
    ),
    "es": (
        "¿Le fue útil?",
        "Sí",
        "No",
        "Responda a este correo para hablar con una persona. Su referencia es {ref}.",
    ),
}
ETA = {"en": "2 business days", "es": "2 días hábiles"}


def _lang(ticket: Ticket) -> str:
    lang = (ticket.language or "en").split("-")[0].lower()
    return lang if lang in ACK_TEXT else "en"


def _is_first_message(interaction: Interaction) -> bool:
    if interaction.opened_ticket:
        return True
    earlier = db.session.scalar(
        sa.select(Interaction.id)
        .where(
            Interaction.ticket_id == interaction.ticket_id,
            Interaction.id < interaction.id,
            Interaction.direction == "inbound",
        )
        .limit(1)
    )
    return earlier is None


def helpful_url(answer: knowledge.KBAnswer, verdict: str) -> str:
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    query = urlencode({"v": answer.version, "answer": verdict, "channel": "email"})
    return f"{base}/kb/{answer.article_id}/helpful?{query}"


def render_kb_answer(answer: knowledge.KBAnswer, ticket: Ticket) -> tuple[str, str]:
    """(text, html) of a knowledge-base answer by email, with feedback links."""
    question, yes, no, person = KB_FOOTER[_lang(ticket)]
    person = person.format(ref=ticket.reference)
    yes_url, no_url = helpful_url(answer, "yes"), helpful_url(answer, "no")
    text = f"{answer.text.strip()}\n\n{question}\n{yes}: {yes_url}\n{no}: {no_url}\n\n{person}"
    body = answer.html or text_to_html(answer.text)
    footer = (
        f'<hr><p>{html.escape(question)} <a href="{html.escape(yes_url)}">{html.escape(yes)}</a>'
        f' &middot; <a href="{html.escape(no_url)}">{html.escape(no)}</a></p>'
        f"<p>{html.escape(person)}</p>"
    )
    if "</body>" in body:
        html_body = body.replace("</body>", footer + "</body>", 1)
    else:
        html_body = f"<!DOCTYPE html>\n<html><body>{body}\n{footer}</body></html>"
    return text, html_body


def self_service(interaction: Interaction, ticket: Ticket) -> bool:
    """SELF_SERVICE_HOOKS["email"]: answer a new email from the knowledge base when
    confident (True), else acknowledge it and let routing follow (False)."""
    if interaction.direction != "inbound" or (interaction.meta or {}).get("auto_reply"):
        return False
    if interaction.author_kind != "citizen" or not _is_first_message(interaction):
        return False  # an ongoing conversation: the resident wants a person
    query = "\n".join(p for p in (interaction.subject, interaction.text) if p)[:1000]
    answer = knowledge.answer_for(query, "email", ticket.language, ticket.id) if query else None
    if answer is not None and answer.self_service:
        followup.take_topic(ticket, answer)
        text, html_body = render_kb_answer(answer, ticket)
        # A reply to the answer reopens the ticket and reaches a person.
        ticket.self_served = True
        ticket.status = "resolved"
        ticket.resolved_at = utcnow()
        reply_by_email(
            ticket,
            text,
            html_body=html_body,
            author_kind="bot",
            kb=(answer.article_id, answer.version),
            automatic=True,
            meta={"kb_confidence": round(answer.confidence, 3)},
            deliver_now=True,  # the follow-up job sends it
            parent=interaction,  # the resident's first email, which it answers
        )
        return True
    lang = _lang(ticket)
    eta = current_app.config.get("EMAIL_RESPONSE_TIME") or ETA[lang]
    reply_by_email(
        ticket,
        ACK_TEXT[lang].format(ref=ticket.reference, eta=eta),
        author_kind="system",
        automatic=True,
        meta={"acknowledgement": True},
        deliver_now=True,
        parent=interaction,
    )
    return False


def register() -> None:
    """Wire the email channel into the outbox and the follow-up of intake."""
    outbound.register_sender("email", email_sender)
    followup.SELF_SERVICE_HOOKS["email"] = self_service


# --- SMTP listener -----------------------------------------------------------------------


def _smtp_text(text: str) -> str:
    return re.sub(r"[\r\n]+", " ", text).encode("ascii", "replace").decode()[:400]


class SmtpIntakeHandler:
    """aiosmtpd handler: each message goes through ``ingest`` in an app context, and the
    sender hears 250 only after the commit, 552 for an oversized attachment, 554 for an
    unreadable message (kept for review) and 451 for anything else, so it retries."""

    def __init__(self, app):
        self.app = app

    async def handle_DATA(self, server, session, envelope) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        return await asyncio.get_running_loop().run_in_executor(None, self.deliver, raw)

    def deliver(self, raw: bytes) -> str:
        with self.app.app_context():
            try:
                outcome = ingest(raw)
            except AttachmentTooLarge as exc:
                return _smtp_text(f"552 5.3.4 {exc}")
            except UnreadableEmail as exc:
                return _smtp_text(f"554 5.6.0 {exc.message} (kept as #{exc.failed_payload_id})")
            except Exception:  # noqa: BLE001 - the sender keeps the message and retries
                log.exception("SMTP intake failed; answering 451 so the sender retries")
                db.session.rollback()
                return "451 4.3.0 Temporary failure, please try again later"
        note = "duplicate" if outcome.duplicate else "accepted"
        return _smtp_text(f"250 2.0.0 {note} {outcome.ticket_reference or ''}".strip())


def smtp_controller(app, host: str, port: int, max_size: int):
    """An aiosmtpd controller (not started) serving ``SmtpIntakeHandler``."""
    from aiosmtpd.controller import Controller

    return Controller(
        SmtpIntakeHandler(app),
        hostname=host,
        port=port,
        data_size_limit=max_size,
        enable_SMTPUTF8=True,
        server_hostname=app.config.get("EMAIL_DOMAIN"),
    )
