"""Ticket changes by agents: status, priority, queue. Audited."""

from __future__ import annotations

import sqlalchemy as sa

from app.extensions import db
from app.models import Queue, Ticket, User, utcnow
from app.services import Invalid
from app.services.citizens import audit


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
