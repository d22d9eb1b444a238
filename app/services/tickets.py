"""Tickets for agents: filtered pages, and changes (status, priority, queue), audited."""

from __future__ import annotations

import sqlalchemy as sa

from app.extensions import db
from app.models import Queue, Ticket, User, utcnow
from app.services import Invalid, held
from app.services.citizens import audit

LIST_FILTERS = ("status", "channel", "citizen_id", "agent_id", "queue")
# Whatever is sent on a ticket needs its citizen and address (where it goes; the
# citizen's segment, which its metrics count): loaded with it.
WITH_CITIZEN = (sa.orm.joinedload(Ticket.citizen), sa.orm.joinedload(Ticket.contact_point))


# Built once: ``Session.get`` with options builds and keys a new statement on every call,
# which cost a ticket's read half as much again (0.45 against 0.30 ms of CPU).
_WITH_CITIZEN_BY_ID = sa.select(Ticket).where(
    Ticket.id == sa.bindparam("ticket_id")).options(*WITH_CITIZEN)


def get(ticket_id: int) -> Ticket | None:
    """A ticket with its citizen and address, read in one query: whatever is sent on it
    needs both (where it goes; the citizen's segment, which its metrics count). One the
    session holds already is not read again."""
    ticket = held(Ticket, ticket_id)
    if ticket is not None:
        return ticket
    return db.session.execute(_WITH_CITIZEN_BY_ID, {"ticket_id": ticket_id}).scalar_one_or_none()


def page(filters: dict, *, limit: int, before_id: int | None = None
         ) -> tuple[list[Ticket], bool]:
    """Tickets newest first, matching every given filter, with ids below ``before_id``
    (the cursor); returns the page and whether more follow."""
    stmt = sa.select(Ticket).order_by(Ticket.id.desc())
    if "status" in filters:
        stmt = stmt.where(Ticket.status == filters["status"])
    if "channel" in filters:
        stmt = stmt.where(Ticket.channel == filters["channel"])
    if "citizen_id" in filters:
        stmt = stmt.where(Ticket.citizen_id == filters["citizen_id"])
    if "agent_id" in filters:
        stmt = stmt.where(Ticket.assigned_agent_id == filters["agent_id"])
    if "queue" in filters:
        stmt = stmt.join(Queue, Ticket.queue_id == Queue.id).where(Queue.code == filters["queue"])
    if before_id is not None:
        stmt = stmt.where(Ticket.id < before_id)
    rows = db.session.scalars(stmt.limit(limit + 1)).unique().all()
    return list(rows[:limit]), len(rows) > limit


def update(ticket: Ticket, data: dict, actor: User | None) -> Ticket:
    changes = {}
    if "queue" in data:
        queue = db.session.scalar(sa.select(Queue).where(Queue.code == data["queue"]))
        if queue is None:
            raise Invalid(f"unknown queue {data['queue']!r}", code="unknown_queue")
        ticket.queue_id = queue.id
        changes["queue"] = queue.code
    if "priority" in data:
        ticket.priority = data["priority"]
        changes["priority"] = data["priority"]
    if "topic" in data:
        ticket.topic = data["topic"]
        changes["topic"] = data["topic"]
    if "status" in data and data["status"] != ticket.status:
        ticket.status = data["status"]
        now = utcnow()
        if ticket.status == "resolved":
            ticket.resolved_at = now
        elif ticket.status == "closed":
            ticket.closed_at = now
            ticket.resolved_at = ticket.resolved_at or now
        changes["status"] = ticket.status
    audit(actor, "ticket.update", "ticket", ticket.reference, changes)
    db.session.commit()
    return ticket
