"""Outbound: every reply is an Interaction plus an Outbox row, sent by a job.

``queue_message`` writes both in one commit and enqueues ``deliver_outbox`` (a job that
writes a message, such as a self-service answer, sends it itself: ``after_commit``); the
job sends through the channel's registered sender, or, when the channel has no provider
configured (no Twilio or SMTP credentials), records the message in the simulator outbox.
Transient failures are retried with backoff (up to ``MAX_ATTEMPTS``); permanent failures
and exhausted retries mark the interaction failed and hand the message to the next
reachable channel of the citizen's channel-preference profile.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app
from sqlalchemy.orm.attributes import set_committed_value

from app import metrics
from app.extensions import db
from app.models import ContactPoint, Interaction, Outbox, ThreadKey, Ticket, utcnow
from app.services import (
    Invalid,
    NotFound,
    commit_keeping_loaded,
    held,
    message_write,
    metrics_service,
)
from app.services.hotpath import Runner, autocommitted, in_transaction
from channels.base import (
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
)

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
CHANNEL_CONTACT_KIND = {"sms": "phone", "voice": "phone", "email": "email", "chat": "chat"}
# Channels whose sender only shows the message on a socket the resident holds open: a
# message on them is delivered in the request that wrote it (``after_commit`` with
# ``deliver_now``), not by a job, so a live chat answer reaches the resident at once.
LIVE_CHANNELS = frozenset({"chat"})
Sender = Callable[[OutboundMessage], DeliveryResult]
_SENDERS: dict[str, Callable[[Any], Sender | None]] = {}


def register_sender(channel: str, factory: Callable[[Any], Sender | None]) -> None:
    """``factory(app)`` returns a sender for the channel, or None when unconfigured."""
    _SENDERS[channel] = factory


def sender_for(channel: str) -> Sender | None:
    factory = _SENDERS.get(channel)
    return factory(current_app) if factory else None


def _contact_point(citizen_id: int, channel: str, address: str | None) -> ContactPoint | None:
    kind = CHANNEL_CONTACT_KIND.get(channel)
    if kind is None:
        return None
    query = sa.select(ContactPoint).where(
        ContactPoint.citizen_id == citizen_id, ContactPoint.kind == kind
    )
    if address:
        query = query.where(ContactPoint.value == address)
    return db.session.scalar(query.order_by(ContactPoint.id.desc()).limit(1))


def contact_point_for(ticket: Ticket, channel: str, address: str | None = None
                      ) -> ContactPoint | None:
    """Where a message on ``channel`` about ``ticket`` goes: the address the resident
    opened the ticket from when it is on that channel (a resident with two phones is
    answered on the one that texted), else their newest address on it."""
    own = ticket.contact_point if ticket.contact_point_id else None
    if own is not None and own.citizen_id == ticket.citizen_id and (
            own.kind == CHANNEL_CONTACT_KIND.get(channel)) and address in (None, own.value):
        return own
    return _contact_point(ticket.citizen_id, channel, address)


def queue_message(
    ticket: Ticket,
    channel: str,
    text: str,
    *,
    to: str | None = None,
    subject: str | None = None,
    html: str | None = None,
    author_kind: str = "agent",
    author_agent_id: int | None = None,
    kb: tuple[int, int] | None = None,
    meta: dict[str, Any] | None = None,
    fallback_of: Outbox | None = None,
    commit: bool = True,
    point: ContactPoint | None = None,
    deliver_now: bool = False,
    payload: dict[str, Any] | None = None,
    opens: bool = False,
    audit: dict[str, Any] | None = None,
) -> Interaction:
    """Record an outbound message and queue its delivery. Refuses opted-out addresses.

    The interaction, its outbox row, the ticket's activity (and first response, for an
    agent's message) and the ``outbound`` counter are one write (``message_write``) in
    the session's transaction; the session then holds both rows as written.
    ``point``: the contact point of ``to`` when the caller has just read it.
    ``deliver_now``: see ``after_commit``. ``payload``: more delivery fields (an
    email's threading headers). ``opens``: a "new" ticket becomes "open". ``audit``: an
    audit entry's values (``citizens.audit_values``) written with it.
    ``commit=False``: the caller commits (``staged_outbox`` gives the row)."""
    if not text or not text.strip():
        raise Invalid("a reply needs text", code="empty_reply")
    if point is None or point.citizen_id != ticket.citizen_id or (to and point.value != to) \
            or point.kind != CHANNEL_CONTACT_KIND.get(channel):
        point = contact_point_for(ticket, channel, to)
    if to is None:
        if point is None:
            raise Invalid(f"the citizen has no {channel} address", code="unreachable")
        to = point.value
    if point is not None and point.opted_out and channel in ("sms", "voice"):
        raise Invalid(
            f"{point.value} opted out of text messages; choose another channel",
            code="opted_out",
            detail={"channel": channel, "address": point.value},
        )
    if db.session.new:
        db.session.flush()  # the ticket or the address may be new: the write refers to them
    now = utcnow()
    tried = list((fallback_of.payload or {}).get("tried", [])) if fallback_of else []
    answered = author_kind == "agent"
    write = message_write.Write(
        now=now, ticket_id=ticket.id, citizen_id=ticket.citizen_id,
        point_id=point.id if point else None, answered=answered, opens=opens,
        interaction=message_write.fill("i", {
            "channel": channel, "direction": "outbound", "author_kind": author_kind,
            "author_agent_id": author_agent_id, "subject": subject, "text": text,
            "html": html, "delivery_status": "queued",
            "kb_article_id": kb[0] if kb else None,
            "kb_article_version": kb[1] if kb else None,
            "metadata": meta or {}, "created_at": now}),
        outbox=message_write.fill("o", {
            "key": uuid.uuid4().hex, "ticket_id": ticket.id, "channel": channel,
            "to_address": to, "status": "pending",
            "payload": {"subject": subject, "tried": tried + [channel], **(meta or {}),
                        **(payload or {})},
            "fallback_of_id": fallback_of.id if fallback_of else None}),
        audit=message_write.fill("a", audit) if audit else None,
        # What the flush events count for ORM writes, counted here for this one.
        metrics={metrics_service.ticket_key(db.session, now, ticket, channel): {"outbound": 1}},
    )
    written = message_write.write(Runner(db.session.connection()), write)
    interaction = message_write.loaded(Interaction, {
        **write.interaction, "id": written.interaction_id, "ticket_id": ticket.id,
        "citizen_id": ticket.citizen_id, "contact_point_id": write.point_id})
    row = message_write.loaded(Outbox, {
        **write.outbox, "id": written.outbox_id, "interaction_id": interaction.id})
    set_committed_value(row, "interaction", interaction)
    # The ticket's new values, as written (no UPDATE of its own at the commit).
    changes = {"last_activity_at": now, "updated_at": now}
    if answered and ticket.first_response_at is None:
        changes["first_response_at"] = now
    if opens and ticket.status == "new":
        changes["status"] = "open"
    for name, value in changes.items():
        set_committed_value(ticket, name, value)
    # The session holds unchanged rows weakly: keep the row for ``staged_outbox``.
    interaction._staged_outbox = row
    if commit:
        commit_keeping_loaded()
        after_commit(row.id, interaction.id, deliver_now=deliver_now)
    return interaction


def staged_outbox(interaction: Interaction) -> Outbox:
    """The outbox row ``queue_message(..., commit=False)`` wrote for this interaction (no
    query)."""
    return interaction._staged_outbox


def after_commit(outbox_id: int, interaction_id: int, *, deliver_now: bool = False) -> None:
    """Announce a committed message and have it delivered: by its own job, or, with
    ``deliver_now``, at once, here (a job that writes a message, such as a self-service
    answer, or a live chat reply); a failed attempt then goes on in the delivery job, with
    its retries. Either way the outbox row was committed first: if this process dies
    while sending, the sweep settles the row as it settles a delivery job's."""
    if not deliver_now:
        from app import realtime

        # The announcement travels to Redis with the delivery job: one round trip.
        with realtime.held() as publishes:
            _announce(interaction_id)
            queue_delivery(outbox_id, publishes=publishes)
        return
    _announce(interaction_id)
    try:
        deliver(outbox_id)
    except TransientDeliveryError:
        queue_delivery(outbox_id, delay=2)  # attempt 1 is counted; the backoff goes on
    except Exception:  # noqa: BLE001 - the delivery job tries again what failed here
        log.warning("delivering outbox %s at once failed; its job takes over", outbox_id,
                    exc_info=True)
        db.session.rollback()
        queue_delivery(outbox_id)


def queue_delivery(outbox_id: int, delay: float | None = None, publishes=None) -> None:
    """The delivery job of one outbox row (one job id per row); ``publishes``: held
    realtime events to send with it (``realtime.held``)."""
    from app import jobs

    jobs.enqueue("app.tasks.deliver_outbox", outbox_id, job_id=f"outbox-{outbox_id}",
                 delay=delay, publishes=publishes)


def _announce(interaction_id: int) -> None:
    from app import realtime

    interaction = db.session.get(Interaction, interaction_id)
    ticket = db.session.get(Ticket, interaction.ticket_id)
    realtime.emit(
        "interaction.updated" if interaction.delivery_status != "queued" else "interaction.created",
        {"ticket": realtime.ticket_summary(ticket),
         "interaction": realtime.interaction_summary(interaction)},
        rooms=realtime.ticket_rooms(ticket),
    )


def _message_for(row: Outbox, interaction: Interaction) -> OutboundMessage:
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    payload = row.payload or {}
    return OutboundMessage(
        channel=row.channel,
        to=row.to_address,
        text=interaction.text,
        idempotency_key=row.key,
        subject=payload.get("subject"),
        html=interaction.html,
        in_reply_to=payload.get("in_reply_to"),
        references=payload.get("references") or [],
        status_callback=f"{base}/webhooks/twilio/status" if row.channel == "sms" else None,
        metadata={"ticket_id": row.ticket_id, "outbox_id": row.id},
    )


_OUTBOX = Outbox.__table__
_INTERACTIONS = Interaction.__table__
_POINTS = ContactPoint.__table__
# Claims a row for sending in one statement: "sending", with its lease (while "sending",
# ``next_attempt_at`` is when the sweep may settle the row), unless it is settled,
# already being sent, or bound for a number that opted out; ``deliver`` then reads the
# row to say which (``_claim_carefully``).
_OPTED_OUT = sa.exists().where(
    _INTERACTIONS.c.id == _OUTBOX.c.interaction_id,
    _POINTS.c.citizen_id == _INTERACTIONS.c.citizen_id,
    _POINTS.c.kind == "phone",
    _POINTS.c.value == _OUTBOX.c.to_address, _POINTS.c.opted_out.is_(True))
_CLAIM = (
    sa.update(_OUTBOX)
    .where(_OUTBOX.c.id == sa.bindparam("outbox_id"),
           _OUTBOX.c.status.in_(("pending", "retrying")),
           sa.or_(_OUTBOX.c.channel.not_in(("sms", "voice")), ~_OPTED_OUT))
    .values(status="sending", attempts=_OUTBOX.c.attempts + 1,
            next_attempt_at=sa.bindparam("lease", type_=_OUTBOX.c.next_attempt_at.type))
    .returning(*_OUTBOX.c)
)
# A message and its ticket, in one query, for a delivery job's session that holds neither.
_INTERACTION_AND_TICKET = (sa.select(Interaction, Ticket)
                           .join(Ticket, Ticket.id == Interaction.ticket_id)
                           .where(Interaction.id == sa.bindparam("interaction_id")))
# What a sent message changes: its outbox row, its interaction and, for an email, the
# Message-ID that replies will quote. One statement on PostgreSQL, one each elsewhere.
_SENT = {
    "o": f"UPDATE {_OUTBOX.name} SET status = 'sent', sent_at = :sent_at, "
         "provider_id = :provider_id, simulated = :simulated WHERE id = :outbox_id",
    "k": f"INSERT INTO {ThreadKey.__tablename__} (kind, key, ticket_id) VALUES ('email', "
         ":provider_id, :ticket_id) ON CONFLICT (kind, key) DO NOTHING",
    "i": f"UPDATE {_INTERACTIONS.name} SET provider_id = :provider_id, "
         "delivery_status = :delivery_status WHERE id = :interaction_id",
}


def _sent_text(sql: str) -> sa.TextClause:
    types = {"sent_at": _OUTBOX.c.sent_at.type, "simulated": sa.Boolean()}
    return sa.text(sql).bindparams(
        *(sa.bindparam(name, type_=kind) for name, kind in types.items() if f":{name}" in sql))


_SENT_ONE = {email: _sent_text(
    "WITH o AS (" + _SENT["o"] + ")" + (", k AS (" + _SENT["k"] + ")" if email else "")
    + " " + _SENT["i"]) for email in (False, True)}
_SENT_EACH = {name: _sent_text(sql) for name, sql in _SENT.items()}


def _write(one: sa.Executable, each: list[sa.Executable], params: dict[str, Any], *,
           returning: bool = False):
    """Run a write. On PostgreSQL, when the session has no transaction open, ``one``
    statement, autocommitted: one round trip instead of three. Otherwise ``each``
    statement in the session's transaction, then committed, keeping what the session
    holds. With ``returning``: the first statement's first row, or ``None``."""
    with autocommitted() as run:
        if run is not None:
            return run.first(one, params) if returning else run.execute(one, params)
    run = Runner(db.session.connection())
    first = run.first(each[0], params) if returning else run.execute(each[0], params)
    for statement in each[1:]:
        run.execute(statement, params)
    commit_keeping_loaded()
    return first


def _lease():
    """Until when a row being sent is ours: the sweep may settle it after that."""
    return utcnow() + timedelta(seconds=current_app.config.get("OUTBOX_SENDING_TIMEOUT", 300))


def deliver(outbox_id: int) -> None:
    """Send one outbox row; safe to run twice (a sent row is left alone).

    The row is claimed ("sending", with a lease) before anything is sent and marked sent
    after, each in one statement; a row that cannot be claimed is read to see why."""
    lease = _lease()
    claimed = _write(_CLAIM, [_CLAIM], {"outbox_id": outbox_id, "lease": lease},
                     returning=True)
    if claimed is None:
        _claim_carefully(outbox_id)
        return
    # The row as claimed: the session's own when it just wrote it (the claim's values set
    # on it), else made from what the claim returned. No read back either way.
    values = claimed._asdict()
    row = held(Outbox, outbox_id)
    if row is None:
        row = message_write.loaded(Outbox, values)
    else:
        for name in ("status", "attempts", "next_attempt_at"):
            set_committed_value(row, name, values[name])
    interaction = held(Interaction, row.interaction_id)
    ticket = None
    if interaction is None:  # a delivery job: its message and ticket in one query
        interaction, ticket = db.session.execute(
            _INTERACTION_AND_TICKET, {"interaction_id": row.interaction_id}).one()
    if in_transaction():
        commit_keeping_loaded()  # no transaction stays open while the provider answers
    _send(row, interaction)
    del ticket  # held until here: the announcements after the send read it


def _claim_carefully(outbox_id: int) -> None:
    """A row the claim did not take: settled or being sent (left alone), or bound for a
    number that opted out (failed, and handed to the next channel)."""
    row = db.session.get(Outbox, outbox_id, with_for_update=True, populate_existing=True)
    if row is None:
        raise NotFound(f"outbox row {outbox_id} not found")
    if row.status in ("sent", "failed", "cancelled", "unknown", "sending"):
        # "sending": an earlier attempt started and has not finished (or its worker
        # died); sending again could duplicate the message. The sweep settles it after
        # the lease.
        db.session.rollback()
        return
    interaction = db.session.get(Interaction, row.interaction_id)
    point = _contact_point(interaction.citizen_id, row.channel, row.to_address)
    if point is not None and point.opted_out and row.channel in ("sms", "voice"):
        fail(row, "opted_out: the number opted out of text messages", code="opted_out")
        return
    # Claimable after all (it became so since the claim looked): send it now.
    row.attempts += 1
    row.status = "sending"
    row.next_attempt_at = _lease()
    commit_keeping_loaded()
    _send(row, interaction)


def _send(row: Outbox, interaction: Interaction) -> None:
    """Send a claimed row and record the outcome."""
    sender = sender_for(row.channel)
    message = _message_for(row, interaction)
    try:
        if sender is None:
            result = DeliveryResult(provider_id=f"SIM-{row.key}", status="delivered")
        else:
            result = sender(message)
    except PermanentDeliveryError as exc:
        point = _contact_point(interaction.citizen_id, row.channel, row.to_address)
        if exc.opted_out and point is not None:
            point.opted_out = True
            point.opted_out_at = utcnow()
            point.consent_note = f"provider error {exc.code}"
        fail(row, str(exc), code=exc.code)
        return
    except TransientDeliveryError as exc:
        if row.attempts >= MAX_ATTEMPTS:
            fail(row, f"gave up after {row.attempts} attempts: {exc}", code=exc.code)
            return
        row.status = "retrying"
        row.last_error = str(exc)[:500]
        row.next_attempt_at = utcnow() + timedelta(seconds=30)
        db.session.commit()
        raise
    sent = {"outbox_id": row.id, "interaction_id": interaction.id, "ticket_id": row.ticket_id,
            "sent_at": utcnow(), "provider_id": result.provider_id,
            "simulated": sender is None, "delivery_status": result.status}
    email = row.channel == "email"
    _write(_SENT_ONE[email], [_SENT_EACH[name] for name in "oki" if email or name != "k"],
           sent)
    # The same values, as committed, on the objects announced below.
    for name, value in (("status", "sent"), ("sent_at", sent["sent_at"]),
                        ("provider_id", result.provider_id), ("simulated", sent["simulated"])):
        set_committed_value(row, name, value)
    set_committed_value(interaction, "provider_id", result.provider_id)
    set_committed_value(interaction, "delivery_status", result.status)
    metrics.OUTBOUND.labels(channel=row.channel, status="sent").inc()
    _announce(interaction.id)


def fail(row: Outbox, reason: str, code: str | None = None) -> None:
    """Mark a delivery failed for good and hand it to the next channel, if any."""
    interaction = db.session.get(Interaction, row.interaction_id)
    row.status = "failed"
    row.last_error = reason[:500]
    interaction.delivery_status = "failed"
    interaction.delivery_error = (f"{code}: " if code else "") + reason[:280]
    db.session.commit()
    metrics.OUTBOUND.labels(channel=row.channel, status="failed").inc()
    _announce(interaction.id)
    fallback(row)


def fallback(row: Outbox) -> Interaction | None:
    """Send the failed message on the next reachable channel from the profile."""
    from app.services import reach

    ticket = db.session.get(Ticket, row.ticket_id)
    interaction = db.session.get(Interaction, row.interaction_id)
    tried = set((row.payload or {}).get("tried", [row.channel]))
    decision = reach.choose_channel(ticket.citizen_id, exclude=tried, text_only=True)
    if decision is None:
        log.info("outbox %s failed with no fallback channel left", row.id)
        return None
    meta = {"fallback_reason": f"{row.channel} delivery failed; {decision.reason}"}
    subject = (row.payload or {}).get("subject") or f"[{ticket.reference}] {ticket.subject}"
    return queue_message(
        ticket, decision.channel, interaction.text, to=decision.address,
        subject=subject if decision.channel == "email" else None,
        author_kind=interaction.author_kind, author_agent_id=interaction.author_agent_id,
        kb=(interaction.kb_article_id, interaction.kb_article_version)
        if interaction.kb_article_id else None,
        meta=meta, fallback_of=row,
    )


def sweep() -> int:
    """Re-queue rows whose job was lost; settle rows stuck in "sending" as unknown.

    A row still "sending" after its lease (``OUTBOX_SENDING_TIMEOUT``) belonged to a
    worker that died mid-send. The provider may or may not have the message and Twilio's
    Messages API takes no idempotency key, so it is never re-sent automatically: it is
    marked "unknown" for an operator to check the provider's log (at most once)."""
    from app import jobs

    now = utcnow()
    stale = now - timedelta(seconds=current_app.config.get("OUTBOX_STALE_SECONDS", 300))
    rows = db.session.scalars(
        sa.select(Outbox).where(
            Outbox.status.in_(("pending", "retrying")), Outbox.created_at < stale
        )
    ).all()
    ids = [row.id for row in rows]
    stuck = db.session.scalars(
        sa.select(Outbox).where(Outbox.status == "sending", Outbox.next_attempt_at < now)
    ).all()
    for row in stuck:
        mark_unknown(row)
    for outbox_id in ids:
        jobs.enqueue("app.tasks.deliver_outbox", outbox_id)
    return len(ids) + len(stuck)


def mark_unknown(row: Outbox) -> None:
    """A send that was interrupted: neither sent nor failed until an operator checks."""
    interaction = db.session.get(Interaction, row.interaction_id)
    reason = ("the sending worker stopped mid-send; check the provider's log before "
              "resending")
    row.status = "unknown"
    row.last_error = reason
    interaction.delivery_status = "unknown"
    interaction.delivery_error = reason
    db.session.commit()
    log.warning("outbox %s settled as unknown after an interrupted send", row.id)
    metrics.OUTBOUND.labels(channel=row.channel, status="unknown").inc()
    _announce(interaction.id)
