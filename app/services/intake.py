"""Intake: every inbound message from every channel becomes one Interaction in a Ticket.

Steps, in one transaction: dedupe on (channel, provider id); resolve or create the
citizen from the normalized contact point; thread into an open ticket or open a new one;
append the interaction; commit. Only then: realtime events and follow-up jobs (routing,
knowledge-base self-service). Persist first, then acknowledge: the webhook answers the
provider after ``intake`` returns.

Threading rules, in order:
1. email: ``In-Reply-To`` / ``References`` matching a Message-ID we sent or received on
   a ticket; then a ticket reference (``CL-2026-000123``) in the subject;
2. chat: the chat session; walk-in: the visit; voice: the call SID (IVR steps of one call);
3. SMS and voice: the most recent open ticket started from the same phone number;
4. otherwise a new ticket.
A reply that threads into a resolved ticket reopens it; a closed ticket is never
reopened (a new ticket is started and links to it in its metadata).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError

from app import metrics
from app.extensions import db
from app.models import (
    OPEN_STATUSES,
    ChannelProfile,
    Citizen,
    ContactPoint,
    FailedPayload,
    Interaction,
    Queue,
    ThreadKey,
    Ticket,
    utcnow,
)
from app.services.contacts import contact_for_message
from channels.base import InboundMessage

log = logging.getLogger(__name__)

REFERENCE_RE = re.compile(r"\bCL-(\d{4})-(\d{6,})\b")
PHONE_CHANNELS = ("sms", "voice")


@dataclass(frozen=True)
class IntakeResult:
    interaction_id: int
    ticket_id: int
    citizen_id: int
    ticket_reference: str
    created_ticket: bool
    duplicate: bool
    # The realtime payload, built from memory before the commit so announcing it after
    # the commit costs no queries (None for a duplicate: nothing new to announce).
    announcement: dict | None = field(default=None, compare=False, repr=False)


def store_failed_payload(source: str, body: bytes | str, content_type: str | None,
                         error: str) -> int:
    """Keep a payload that could not be parsed, for inspection; returns its id."""
    if isinstance(body, str):
        body = body.encode("utf-8", "replace")
    row = FailedPayload(source=source, body=body, content_type=content_type, error=error[:500])
    db.session.add(row)
    db.session.commit()
    metrics.FAILED_PAYLOADS.labels(source=source).inc()
    log.warning("stored unparseable %s payload #%s: %s", source, row.id, error)
    return row.id


def _existing(channel: str, provider_id: str) -> Interaction | None:
    return db.session.scalar(
        sa.select(Interaction).where(
            Interaction.channel == channel, Interaction.provider_id == provider_id
        )
    )


def resolve_citizen(channel: str, sender: str, *, name: str | None = None,
                    language: str | None = None) -> tuple[Citizen, ContactPoint | None]:
    """Find the citizen behind a sender address, following merges, or create one."""
    contact = contact_for_message(channel, sender)
    if contact is None:
        citizen = Citizen(display_name=name or "Walk-in visitor", language=language)
        db.session.add(citizen)
        return citizen, None
    kind, value = contact
    row = db.session.execute(
        sa.select(ContactPoint, Citizen)
        .join(Citizen, Citizen.id == ContactPoint.citizen_id)
        .where(ContactPoint.kind == kind, ContactPoint.value == value)
    ).first()
    point = row[0] if row else None
    if point is not None:
        citizen = row[1]
        seen = set()
        while citizen.merged_into_id and citizen.id not in seen:
            seen.add(citizen.id)
            citizen = db.session.get(Citizen, citizen.merged_into_id)
        if citizen.id != point.citizen_id:
            point.citizen_id = citizen.id
        return citizen, point
    citizen = Citizen(display_name=name or value, language=language)
    db.session.add(citizen)
    db.session.flush()
    point = ContactPoint(citizen_id=citizen.id, kind=kind, value=value, verified=False)
    preferred = {"phone": ["sms", "voice", "email"], "email": ["email", "sms", "voice"],
                 "chat": ["chat", "email", "sms"]}[kind]
    db.session.add(point)
    db.session.add(ChannelProfile(citizen_id=citizen.id, preferred_channels=preferred,
                                  language=language))
    return citizen, point


def _ticket_by_thread_key(kind: str, key: str) -> Ticket | None:
    ticket_id = db.session.scalar(
        sa.select(ThreadKey.ticket_id).where(ThreadKey.kind == kind, ThreadKey.key == key)
    )
    return db.session.get(Ticket, ticket_id) if ticket_id else None


def find_thread(msg: InboundMessage, citizen: Citizen, point: ContactPoint | None) -> Ticket | None:
    keys = msg.thread_keys or {}
    if msg.channel == "email":
        candidates = []
        if keys.get("in_reply_to"):
            candidates.append(keys["in_reply_to"])
        candidates.extend(reversed(keys.get("references") or []))
        for message_id in candidates:
            ticket = _ticket_by_thread_key("email", message_id)
            if ticket is not None:
                return ticket
        ref = keys.get("subject_ref")
        if not ref and msg.subject:
            match = REFERENCE_RE.search(msg.subject)
            ref = match.group(0) if match else None
        if ref:
            ticket_id = Ticket.id_from_reference(ref)
            ticket = db.session.get(Ticket, ticket_id) if ticket_id else None
            if ticket is not None and ticket.reference == ref:
                return ticket
        return None
    for kind in ("chat_session", "walkin_visit", "call_sid"):
        if keys.get(kind):
            ticket = _ticket_by_thread_key(kind, str(keys[kind]))
            if ticket is not None:
                ticket.found_by = kind
                return ticket
    if msg.channel in PHONE_CHANNELS and point is not None:
        return db.session.scalar(
            sa.select(Ticket)
            .where(Ticket.contact_point_id == point.id, Ticket.status.in_(OPEN_STATUSES))
            .order_by(Ticket.last_activity_at.desc(), Ticket.id.desc())
            .limit(1)
        )
    return None


def _queue_for(msg: InboundMessage) -> Queue | None:
    code = msg.topic or msg.metadata.get("queue")
    if code:
        queue = db.session.scalar(sa.select(Queue).where(Queue.code == code))
        if queue is not None:
            return queue
    return None


def _open_ticket(msg: InboundMessage, citizen: Citizen, point: ContactPoint | None) -> Ticket:
    now = utcnow()
    subject = (msg.subject or msg.text or "").strip().splitlines()[0][:300] if (
        msg.subject or msg.text) else f"{msg.channel} contact"
    queue = _queue_for(msg)
    ticket = Ticket(
        citizen_id=citizen.id,
        contact_point_id=point.id if point else None,
        subject=subject,
        topic=msg.topic,
        queue_id=queue.id if queue else None,
        status="new",
        channel=msg.channel,
        language=msg.language or citizen.language,
        last_activity_at=now,
        created_at=now,
    )
    db.session.add(ticket)
    db.session.flush()
    return ticket


def _add_thread_keys(msg: InboundMessage, ticket: Ticket, found_by: str | None) -> None:
    """Record this message's thread keys. A key that found the ticket already exists; an
    email's own Message-ID is new (intake deduped it), so replies to it thread too."""
    keys = msg.thread_keys or {}
    if msg.channel == "email":
        db.session.add(ThreadKey(kind="email", key=msg.provider_id, ticket_id=ticket.id))
    for kind in ("chat_session", "walkin_visit", "call_sid"):
        if keys.get(kind) and kind != found_by:
            existing = db.session.scalar(
                sa.select(ThreadKey).where(ThreadKey.kind == kind, ThreadKey.key == str(keys[kind]))
            )
            if existing is None:
                db.session.add(ThreadKey(kind=kind, key=str(keys[kind]), ticket_id=ticket.id))
            elif existing.ticket_id != ticket.id:
                # The key led to a closed ticket and this message opened a new one: later
                # messages of the same chat, call or visit belong to the new ticket.
                existing.ticket_id = ticket.id


def _intake_once(msg: InboundMessage, check_first: bool) -> IntakeResult:
    # Replays are rare (about 2% of webhooks), so the first try relies on the unique
    # constraint alone and only a conflict pays for the look-up.
    existing = _existing(msg.channel, msg.provider_id) if check_first else None
    if existing is not None:
        ticket = db.session.get(Ticket, existing.ticket_id)
        return IntakeResult(existing.id, existing.ticket_id, existing.citizen_id or 0,
                            ticket.reference, False, True)
    citizen, point = resolve_citizen(msg.channel, msg.sender, name=msg.sender_name,
                                     language=msg.language)
    db.session.flush()
    ticket = find_thread(msg, citizen, point)
    created = False
    if ticket is not None and ticket.status == "closed":
        ticket = None
    if ticket is None:
        ticket = _open_ticket(msg, citizen, point)
        created = True
    else:
        if ticket.status in ("resolved", "pending_citizen"):
            ticket.status = "open"
            ticket.resolved_at = None
        ticket.last_activity_at = utcnow()
    interaction = Interaction(
        ticket_id=ticket.id,
        citizen_id=citizen.id,
        contact_point_id=point.id if point else None,
        channel=msg.channel,
        direction="inbound",
        author_kind="citizen",
        provider_id=msg.provider_id,
        subject=msg.subject,
        text=msg.text or "",
        html=msg.html,
        full_text=msg.full_text,
        attachments=[
            {"filename": a.filename, "content_type": a.content_type, "size": a.size, "url": a.url}
            for a in msg.attachments
        ],
        meta={**(msg.metadata or {}), **({"auto_reply": True} if msg.is_auto_reply else {}),
              **({"references": list(msg.thread_keys.get("references") or [])}
                 if msg.channel == "email" and msg.thread_keys else {})},
        created_at=msg.received_at or utcnow(),
    )
    db.session.add(interaction)
    _add_thread_keys(msg, ticket, None if created else getattr(ticket, "found_by", None))
    db.session.flush()
    from app import realtime

    announcement = {"ticket": realtime.ticket_summary(ticket),
                    "interaction": realtime.interaction_summary(interaction),
                    "rooms": realtime.ticket_rooms(ticket)}
    result = IntakeResult(interaction.id, ticket.id, citizen.id, ticket.reference, created,
                          False, announcement)
    db.session.commit()
    return result


def intake(msg: InboundMessage, *, follow_up: bool = True) -> IntakeResult:
    """Persist one inbound message (idempotently), then announce it and queue follow-ups."""
    for attempt in range(4):
        try:
            result = _intake_once(msg, check_first=attempt > 0)
            break
        except IntegrityError:
            # A concurrent copy of this webhook, or a concurrent first message from the
            # same new address, won the race: start again and find what it stored.
            db.session.rollback()
            if attempt == 3:
                raise
    metrics.INBOUND.labels(channel=msg.channel, duplicate=str(result.duplicate).lower()).inc()
    if not result.duplicate:
        announce(result)
        if follow_up and not msg.is_auto_reply:
            from app import jobs

            jobs.enqueue("app.tasks.process_inbound", result.interaction_id)
    return result


def announce(result: IntakeResult) -> None:
    """Tell connected consoles about a new interaction (and a new ticket)."""
    from app import realtime

    if current_app.config.get("REALTIME_DISABLED") or result.announcement is None:
        return
    payload = dict(result.announcement)
    rooms = payload.pop("rooms")
    if result.created_ticket:
        realtime.emit("ticket.created", payload["ticket"], rooms=rooms)
    realtime.emit("interaction.created", payload, rooms=rooms)
