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

import functools
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.exc import IntegrityError, OperationalError

from app import metrics, realtime
from app.extensions import db
from app.models import (
    ChannelProfile,
    Citizen,
    ContactPoint,
    FailedPayload,
    Interaction,
    Queue,
    ThreadKey,
    Ticket,
    open_status_sql,
    ticket_reference,
    utcnow,
)
from app.services import followup, message_write, metrics_service
from app.services.contacts import contact_for_message
from app.services.hotpath import Runner, autocommitted, in_transaction
from app.services.message_write import Write
from channels.base import InboundMessage

log = logging.getLogger(__name__)

REFERENCE_RE = re.compile(r"\bCL-(\d{4})-(\d{6,})\b")
PHONE_CHANNELS = ("sms", "voice")
# Deadlock victim, serialization failure: the statement failed whole and may be retried.
TRANSIENT_SQLSTATES = ("40P01", "40001")


@dataclass(frozen=True)
class IntakeResult:
    interaction_id: int
    ticket_id: int
    citizen_id: int
    ticket_reference: str
    created_ticket: bool
    duplicate: bool
    # The ticket had an active work item when the message arrived (see ``followup``).
    with_person: bool = False
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


# The hot path speaks SQLAlchemy Core: every webhook of every channel comes through here,
# and building, flushing and expiring ORM objects cost several times what the database
# itself takes. The statements below are built once; the writes are in
# ``message_write``; the ORM is kept for everything that happens after intake.
_CIT = Citizen.__table__
_CP = ContactPoint.__table__
_PROFILE = ChannelProfile.__table__
_TICKET = Ticket.__table__
_INTERACTION = Interaction.__table__
_KEYS = ThreadKey.__table__
# Read with the ticket itself: a chat line to an agent then needs no follow-up, and no
# query for it.
_WITH_PERSON = followup.WITH_PERSON.label("with_person")
_TICKET_COLUMNS = (
    _TICKET.c.id, _TICKET.c.status, _TICKET.c.channel, _TICKET.c.queue_id, _TICKET.c.subject,
    _TICKET.c.citizen_id, _TICKET.c.assigned_agent_id, _TICKET.c.language,
    _TICKET.c.priority, _TICKET.c.created_at, _WITH_PERSON,
)
PREFERRED_CHANNELS = {"phone": ["sms", "voice", "email"], "email": ["email", "sms", "voice"],
                      "chat": ["chat", "email", "sms"]}

_SELECT_DUPLICATE = sa.select(
    _INTERACTION.c.id, _INTERACTION.c.ticket_id, _INTERACTION.c.citizen_id,
    _TICKET.c.created_at,
).join_from(_INTERACTION, _TICKET, _TICKET.c.id == _INTERACTION.c.ticket_id).where(
    _INTERACTION.c.channel == sa.bindparam("channel"),
    _INTERACTION.c.provider_id == sa.bindparam("provider_id"),
)
_SELECT_POINT = sa.select(
    _CP.c.id, _CP.c.citizen_id, _CIT.c.merged_into_id, _CIT.c.language, _CIT.c.segment,
).join_from(_CP, _CIT, _CIT.c.id == _CP.c.citizen_id).where(
    _CP.c.kind == sa.bindparam("kind"), _CP.c.value == sa.bindparam("value"))
_SELECT_CITIZEN = sa.select(_CIT.c.merged_into_id, _CIT.c.language, _CIT.c.segment).where(
    _CIT.c.id == sa.bindparam("id"))
# A contact point of a merged citizen, moved to the citizen it was merged into.
_REPOINT = sa.update(_CP).where(_CP.c.id == sa.bindparam("point_id")).values(
    citizen_id=sa.bindparam("citizen_id"))
_INSERT_CITIZEN = sa.insert(_CIT).returning(_CIT.c.id)
_INSERT_POINT = sa.insert(_CP).returning(_CP.c.id)
_INSERT_PROFILE = sa.insert(_PROFILE)
_SELECT_BY_KEY = sa.select(*_TICKET_COLUMNS).join_from(
    _KEYS, _TICKET, _TICKET.c.id == _KEYS.c.ticket_id).where(
    _KEYS.c.kind == sa.bindparam("kind"), _KEYS.c.key == sa.bindparam("key"))
_SELECT_BY_ID = sa.select(*_TICKET_COLUMNS).where(_TICKET.c.id == sa.bindparam("id"))
_SELECT_QUEUE = sa.select(Queue.__table__.c.id).where(
    Queue.__table__.c.code == sa.bindparam("code"))
_SELECT_SEGMENT = sa.select(_CIT.c.segment).where(_CIT.c.id == sa.bindparam("id"))

# Queue codes and ids never change once created (see ``realtime.queue_code``).
_QUEUE_IDS: dict[str, int] = {}


@dataclass
class _Who:
    """The resolved sender: citizen and contact point (``None`` ids: not stored yet)."""

    citizen_id: int | None
    point_id: int | None
    language: str | None
    segment: str
    name: str = ""
    contact: tuple[str, str] | None = None


def _point_select(with_open_ticket: bool):
    """The contact point and its citizen; for phones also the open ticket of that number
    (a correlated sub-select, so SMS threading costs no extra round trip)."""
    columns = [_CP.c.id, _CP.c.citizen_id, _CIT.c.merged_into_id, _CIT.c.language,
               _CIT.c.segment]
    joined = _CP.join(_CIT, _CIT.c.id == _CP.c.citizen_id)
    if with_open_ticket:
        # The statuses are written into the SQL, not passed as parameters, so that the
        # planner matches them to the partial index of open tickets in every plan.
        latest = (sa.select(_TICKET.c.id)
                  .where(_TICKET.c.contact_point_id == _CP.c.id,
                         sa.text(open_status_sql(f"{_TICKET.name}.status")))
                  .order_by(_TICKET.c.last_activity_at.desc(), _TICKET.c.id.desc())
                  .limit(1).correlate(_CP).scalar_subquery())
        joined = joined.outerjoin(_TICKET, _TICKET.c.id == latest)
        columns += [c.label(f"t_{c.name}") for c in _TICKET_COLUMNS]
    return sa.select(*columns).select_from(joined).where(
        _CP.c.kind == sa.bindparam("kind"), _CP.c.value == sa.bindparam("value"))


_SELECT_POINT_AND_TICKET = _point_select(True)
_TICKET_NAMES = tuple(c.name for c in _TICKET_COLUMNS)  # the ``t_`` columns, in order


def _point_and_keyed_select():
    """The contact point and its citizen (if known) and the ticket of a thread key (if
    any), in one row: a chat line or an email reply finds its sender and its thread in
    one round trip. Outer joins from a one-row table, so an unknown sender still reads
    the key's ticket."""
    keyed = (sa.select(_KEYS.c.ticket_id)
             .where(_KEYS.c.kind == sa.bindparam("key_kind"),
                    _KEYS.c.key == sa.bindparam("key_value"))
             .scalar_subquery())
    one = sa.select(sa.literal_column("1").label("one")).subquery("one")
    joined = one.outerjoin(
        _CP.join(_CIT, _CIT.c.id == _CP.c.citizen_id),
        sa.and_(_CP.c.kind == sa.bindparam("kind"), _CP.c.value == sa.bindparam("value")),
    ).outerjoin(_TICKET, _TICKET.c.id == keyed)
    return sa.select(
        _CP.c.id, _CP.c.citizen_id, _CIT.c.merged_into_id, _CIT.c.language, _CIT.c.segment,
        *(c.label(f"t_{c.name}") for c in _TICKET_COLUMNS),
    ).select_from(joined)


_SELECT_POINT_AND_KEYED = _point_and_keyed_select()


# Thread keys other than email's, in the order they are tried.
_KEY_KINDS = ("chat_session", "walkin_visit", "call_sid")


def _key_candidates(msg: InboundMessage) -> Iterator[tuple[str, str]]:
    """The thread keys that may name this message's ticket, in the order tried: an
    email's In-Reply-To, then its References newest first; else its session, visit or
    call."""
    keys = msg.thread_keys or {}
    if msg.channel == "email":
        if keys.get("in_reply_to"):
            yield "email", keys["in_reply_to"]
        for message_id in reversed(keys.get("references") or []):
            yield "email", message_id
        return
    for kind in _KEY_KINDS:
        if keys.get(kind):
            yield kind, str(keys[kind])


def _ticket_of(row) -> SimpleNamespace | None:
    """The ``t_`` columns of a look-up row as a ticket, or None when it found none."""
    if row.t_id is None:
        return None
    return SimpleNamespace(**dict(zip(_TICKET_NAMES, row[5:], strict=True)))


def _lookup(run: Runner, channel: str, sender: str, name: str | None,
            language: str | None, with_open_ticket: bool = False,
            thread_key: tuple[str, str] | None = None,
            ) -> tuple[_Who, SimpleNamespace | None, dict]:
    """Who sent this (following merges); for phones their open ticket, if any; and, when
    ``thread_key`` is given (not for phones), the ticket it names: ``{thread_key: ticket
    or None}`` for ``find_thread``.

    An unknown sender is not stored here: the write creates them with everything else.
    """
    contact = contact_for_message(channel, sender)
    if contact is None:
        return _Who(None, None, language, "", name or "Walk-in visitor"), None, {}
    kind, value = contact
    params = {"kind": kind, "value": value}
    keyed: dict = {}
    if with_open_ticket:
        statement = _SELECT_POINT_AND_TICKET
    elif thread_key is not None:
        statement = _SELECT_POINT_AND_KEYED
        params["key_kind"], params["key_value"] = thread_key
    else:
        statement = _SELECT_POINT
    row = run.first(statement, params)
    if thread_key is not None and not with_open_ticket:
        keyed[thread_key] = _ticket_of(row)
        if row.id is None:  # the sender is new; the key's ticket was read all the same
            row = None
    if row is None:
        return _Who(None, None, language, "", name or value, contact), None, keyed
    point_id, citizen_id, merged_into, citizen_language, segment = row[:5]
    if merged_into:
        seen = {citizen_id}
        while merged_into and merged_into not in seen:
            citizen_id = merged_into
            seen.add(citizen_id)
            merged_into, citizen_language, segment = run.one(
                _SELECT_CITIZEN, {"id": citizen_id})
        run.execute(_REPOINT, {"point_id": point_id, "citizen_id": citizen_id})
    ticket = _ticket_of(row) if with_open_ticket else None
    return _Who(citizen_id, point_id, citizen_language, segment or ""), ticket, keyed


def _new_citizen(who: _Who) -> tuple[dict, dict | None, dict | None]:
    """The rows that store a first-time sender: citizen, contact point, profile."""
    citizen = {"display_name": who.name, "language": who.language}
    if who.contact is None:
        return citizen, None, None
    kind, value = who.contact
    return (citizen, {"kind": kind, "value": value, "verified": False},
            {"preferred_channels": PREFERRED_CHANNELS[kind], "language": who.language})


def resolve_citizen(channel: str, sender: str, *, name: str | None = None,
                    language: str | None = None) -> tuple[Citizen, ContactPoint | None]:
    """Find the citizen behind a sender address, following merges, or create one."""
    conn = db.session.connection()
    who, _, _ = _lookup(Runner(conn), channel, sender, name, language)
    if who.citizen_id is None:
        citizen, point, profile = _new_citizen(who)
        who.citizen_id = conn.execute(_INSERT_CITIZEN, citizen).scalar_one()
        if point is not None:
            who.point_id = conn.execute(
                _INSERT_POINT, {**point, "citizen_id": who.citizen_id}).scalar_one()
            conn.execute(_INSERT_PROFILE, {**profile, "citizen_id": who.citizen_id})
    point = db.session.get(ContactPoint, who.point_id) if who.point_id else None
    return db.session.get(Citizen, who.citizen_id), point


def find_thread(run: Runner, msg: InboundMessage, phone_ticket: SimpleNamespace | None,
                keyed: dict | None = None) -> tuple[Any, str | None]:
    """The ticket row this message continues and the thread-key kind that found it.

    ``phone_ticket`` is the open ticket of the sender's number, and ``keyed`` the ticket
    of its first thread key, both looked up with the sender.
    """
    keyed = keyed or {}
    for kind, key in _key_candidates(msg):
        ticket = keyed[(kind, key)] if (kind, key) in keyed else run.first(
            _SELECT_BY_KEY, {"kind": kind, "key": key})
        if ticket is not None:
            return ticket, kind
    if msg.channel == "email":
        keys = msg.thread_keys or {}
        ref = keys.get("subject_ref")
        if not ref and msg.subject:
            match = REFERENCE_RE.search(msg.subject)
            ref = match.group(0) if match else None
        if ref:
            ticket_id = Ticket.id_from_reference(ref)
            ticket = run.first(_SELECT_BY_ID, {"id": ticket_id}) if ticket_id else None
            if ticket is not None and ticket_reference(ticket.id, ticket.created_at.year) == ref:
                return ticket, None
        return None, None
    return phone_ticket, None


def _queue_id(run: Runner, msg: InboundMessage) -> int | None:
    code = msg.topic or msg.metadata.get("queue")
    if not code:
        return None
    if code not in _QUEUE_IDS:
        queue_id = run.scalar(_SELECT_QUEUE, {"code": code})
        if queue_id is None:
            return None
        _QUEUE_IDS[code] = queue_id
    return _QUEUE_IDS[code]


def _ticket_values(run: Runner, msg: InboundMessage, who: _Who,
                   now: datetime) -> dict[str, Any]:
    subject = (msg.subject or msg.text or "").strip().splitlines()[0][:300] if (
        msg.subject or msg.text) else f"{msg.channel} contact"
    return {
        "subject": subject,
        "topic": msg.topic,
        "queue_id": _queue_id(run, msg),
        "status": "new",
        "channel": msg.channel,
        "language": msg.language or who.language,
        "priority": 3,
        "assigned_agent_id": None,
        "last_activity_at": now,
        "created_at": now,
        "updated_at": now,
    }


def _thread_keys(msg: InboundMessage, found_by: str | None) -> list[tuple[str, str]]:
    """This message's thread keys to record. A key that found the ticket already points
    to it; an email's own Message-ID is new (intake deduped it), so replies to it thread
    too. A key that led to a closed ticket moves to the new one: later messages of the
    same chat, call or visit belong there."""
    keys = msg.thread_keys or {}
    out = [("email", msg.provider_id)] if msg.channel == "email" else []
    for kind in _KEY_KINDS:
        if keys.get(kind) and kind != found_by:
            out.append((kind, str(keys[kind])))
    return out


def _segment(run: Runner, ticket, who: _Who) -> str:
    if ticket is None or ticket.citizen_id == who.citizen_id:
        return who.segment
    return run.scalar(_SELECT_SEGMENT, {"id": ticket.citizen_id}) or ""


def _intake_once(msg: InboundMessage, check_first: bool,
                 run: Runner | None = None) -> IntakeResult:
    """One try. With ``run`` (on an autocommit connection) each statement commits itself;
    without it the work joins the session's transaction, which this commits."""
    own_transaction = run is None
    if own_transaction:
        run = Runner(db.session.connection())
    if check_first:
        # Replays are rare (about 2% of webhooks), so the first try relies on the unique
        # constraint alone and only a conflict pays for the look-up.
        existing = run.first(_SELECT_DUPLICATE, {"channel": msg.channel,
                                                 "provider_id": msg.provider_id})
        if existing is not None:
            return IntakeResult(existing.id, existing.ticket_id, existing.citizen_id or 0,
                                ticket_reference(existing.ticket_id, existing.created_at.year),
                                False, True)
    now = utcnow()
    who, phone_ticket, keyed = _lookup(
        run, msg.channel, msg.sender, msg.sender_name, msg.language,
        with_open_ticket=msg.channel in PHONE_CHANNELS, thread_key=next(_key_candidates(msg), None))
    ticket, found_by = find_thread(run, msg, phone_ticket, keyed)
    if ticket is not None and ticket.status == "closed":
        ticket = None
    created = ticket is None
    write = Write(now=now, citizen_id=who.citizen_id, point_id=who.point_id)
    if who.citizen_id is None:
        write.citizen, write.point, write.profile = _new_citizen(who)
    if created:
        write.ticket = _ticket_values(run, msg, who, now)
        ticket = SimpleNamespace(id=None, citizen_id=who.citizen_id, **write.ticket)
    else:
        ticket = SimpleNamespace(**(ticket._asdict() if hasattr(ticket, "_asdict")
                                    else vars(ticket)))
        write.ticket_id = ticket.id
        if ticket.status in ("resolved", "pending_citizen"):
            write.reopen = True
            ticket.status = "open"
    created_at = msg.received_at or now
    meta = {**(msg.metadata or {}), **({"auto_reply": True} if msg.is_auto_reply else {}),
            **({"references": list(msg.thread_keys.get("references") or [])}
               if msg.channel == "email" and msg.thread_keys else {})}
    write.interaction = {
        "channel": msg.channel, "direction": "inbound", "author_kind": "citizen",
        "provider_id": msg.provider_id, "subject": msg.subject, "text": msg.text or "",
        "html": msg.html, "full_text": msg.full_text,
        "attachments": [{"filename": a.filename, "content_type": a.content_type,
                         "size": a.size, "url": a.url} for a in msg.attachments],
        "metadata": meta, "created_at": created_at,
    }
    write.keys = _thread_keys(msg, None if created else found_by)
    # What the flush events count for ORM writes, counted here for these Core ones.
    segment = _segment(run, None if created else ticket, who)
    code = realtime.queue_code(ticket.queue_id) or ""
    contacts_key = (metrics_service.hour_of(created_at), code, msg.channel,
                    ticket.language or "", segment)
    write.metrics[contacts_key] = {"contacts": 1}
    if created:
        tickets_key = (metrics_service.hour_of(now), code, ticket.channel,
                       ticket.language or "", segment)
        write.metrics.setdefault(tickets_key, {})["tickets"] = 1
    written = message_write.write(run, write)
    ticket.id = written.ticket_id
    if created:
        ticket.citizen_id = written.citizen_id
    ticket.reference = ticket_reference(ticket.id, ticket.created_at.year)
    with_person = bool(getattr(ticket, "with_person", False))
    interaction = SimpleNamespace(
        id=written.interaction_id, ticket_id=ticket.id, delivery_status=None,
        kb_article_id=None, kb_article_version=None, **write.interaction)
    announcement = {"ticket": realtime.ticket_summary(ticket),
                    "interaction": realtime.interaction_summary(interaction),
                    "rooms": realtime.ticket_rooms(ticket)}
    if own_transaction:
        db.session.commit()
    return IntakeResult(interaction.id, ticket.id, written.citizen_id, ticket.reference,
                        created, False, with_person, announcement)


def _store(msg: InboundMessage, check_first: bool) -> IntakeResult:
    """Store the message: in the caller's transaction when the session has one open (so
    what the caller wrote and this commit together), otherwise, on PostgreSQL, as
    autocommitted statements. The write is one statement (``message_write``), atomic on
    its own, and the look-ups before it only read; dropping BEGIN and COMMIT saves two of
    the five round trips a webhook costs. Races are settled by unique constraints either
    way: a conflict raises ``IntegrityError`` and the caller tries again.

    (``hotpath.autocommitted`` decides which.)"""
    with autocommitted() as run:
        if run is not None:
            return _intake_once(msg, check_first, run)
    return _intake_once(msg, check_first)


@functools.lru_cache(maxsize=64)
def _inbound_counter(channel: str, duplicate: bool):
    """The ``civicline_inbound_messages_total`` child of a channel (``labels`` looks it up
    under a lock on every call; the children live as long as the process)."""
    return metrics.INBOUND.labels(channel=channel, duplicate=str(duplicate).lower())


def intake(msg: InboundMessage, *, follow_up: bool = True) -> IntakeResult:
    """Persist one inbound message (idempotently), then announce it and queue follow-ups."""
    for attempt in range(4):
        try:
            result = _store(msg, attempt > 0)
            break
        except IntegrityError:
            # A concurrent copy of this webhook, or a concurrent first message from the
            # same new address, won the race: start again and find what it stored.
            db.session.rollback()
            if attempt == 3:
                raise
        except OperationalError as exc:
            # The write's statements take row locks in an order the database chooses, so
            # two concurrent messages on one ticket can deadlock; the database then fails
            # one of them, whole. Autocommitted, nothing of it was stored: try again.
            # (Inside a caller's transaction the caller's own work is gone too: re-raise.)
            if (in_transaction() or attempt == 3
                    or getattr(exc.orig, "sqlstate", None) not in TRANSIENT_SQLSTATES):
                raise
            log.info("intake of %s %s: %s, trying again", msg.channel, msg.provider_id,
                     type(exc.orig).__name__)
    _inbound_counter(msg.channel, result.duplicate).inc()
    if not result.duplicate:
        # The events travel to Redis with the follow-up job: one round trip for both.
        with realtime.held() as publishes:
            announce(result)
            # A message to a person needs a follow-up only for a pre-hook that may want
            # it (a "helpful" vote): the agent sees it live.
            if follow_up and not msg.is_auto_reply and (
                    not result.with_person
                    or followup.pre_hooks_may_want(msg.channel, msg.text)):
                from app import jobs

                jobs.enqueue("app.tasks.process_inbound", result.interaction_id,
                             result.created_ticket, publishes=publishes)
    return result


def announce(result: IntakeResult) -> None:
    """Tell connected consoles about a new interaction (and a new ticket)."""
    if current_app.config.get("REALTIME_DISABLED") or result.announcement is None:
        return
    payload = dict(result.announcement)
    rooms = payload.pop("rooms")
    if result.created_ticket:
        realtime.emit("ticket.created", payload["ticket"], rooms=rooms)
    realtime.emit("interaction.created", payload, rooms=rooms)
