"""Realtime events over Socket.IO.

Rooms: ``agent:<id>`` (one agent's offers and assignments), ``queue:<code>`` (agents
serving a queue), ``ticket:<id>`` (everyone viewing a ticket), ``supervisors``.
Events are emitted only after the database commit that they describe. In a worker
process ``socketio`` is bound with the same Redis ``message_queue`` and acts as a
write-only emitter, so a job's emit reaches clients connected to any web process.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import socketio as python_socketio
from flask import current_app

from app.extensions import socketio

log = logging.getLogger(__name__)


class RedisMessageQueue(python_socketio.RedisManager):
    """The Socket.IO Redis message queue, able to hold publishes for a caller's pipeline.

    An emit is delivered at once to this process's own clients, and published on Redis
    for the other processes. Inside ``held()`` that publish waits instead, so the caller
    sends it with its own Redis writes in one round trip (intake: the interaction's events
    travel with its follow-up job). ``shares_server``: the jobs' Redis is this one, so a
    jobs pipeline can carry the publishes (PUBLISH reaches every database of a server).
    """

    def __init__(self, url: str, *, shares_server: bool, **kwargs: Any):
        super().__init__(url, **kwargs)
        self.shares_server = shares_server

    def _publish(self, data):
        batch = _HELD.get()
        if batch is None:
            return super()._publish(data)
        batch.messages.append((self, data))
        return None


class HeldPublishes:
    """Publishes held by ``held()``, in emit order."""

    def __init__(self) -> None:
        self.messages: list[tuple[RedisMessageQueue, Any]] = []

    def add_to(self, pipeline) -> None:
        """Put the held publishes on ``pipeline`` (one to the jobs' Redis), which the
        caller executes; those of a message queue on another server stay held."""
        for channel, payload in self.take_shared():
            pipeline.publish(channel, payload)

    def take_shared(self) -> list[tuple[str, str]]:
        """The held publishes of a message queue on the jobs' Redis, encoded as the
        library would (channel, payload), and no longer held; the others stay held."""
        kept, shared = [], []
        for manager, data in self.messages:
            if manager.shares_server:
                shared.append((manager.channel, manager.json.dumps(data)))
            else:
                kept.append((manager, data))
        self.messages = kept
        return shared

    def send(self) -> None:
        """Publish what is still held, each on its own (the library's retries apply)."""
        messages, self.messages = self.messages, []
        for manager, data in messages:
            python_socketio.RedisManager._publish(manager, data)


_HELD: ContextVar[HeldPublishes | None] = ContextVar("civicline_held_publishes",
                                                     default=None)


@contextmanager
def held() -> Iterator[HeldPublishes]:
    """Hold this block's publishes to other processes; pass the batch to
    ``jobs.enqueue(..., publishes=batch)`` to send them with the job. What no pipeline
    carried is published when the block ends, so nothing held is ever dropped."""
    batch = HeldPublishes()
    token = _HELD.set(batch)
    try:
        yield batch
    finally:
        _HELD.reset(token)
        if batch.messages:
            try:
                batch.send()
            except Exception:  # noqa: BLE001 - as ``emit``: never undo committed work
                log.warning("realtime publish failed", exc_info=True)


def emit(event: str, data: dict[str, Any], *, rooms: list[str], namespace: str = "/agent") -> None:
    """Emit to rooms; a realtime failure never undoes committed work."""
    if current_app.config.get("REALTIME_DISABLED"):
        return
    try:
        # One emit to all rooms: a client in several of them gets the event once.
        socketio.emit(event, data, to=list(dict.fromkeys(rooms)), namespace=namespace)
    except Exception:  # noqa: BLE001 - clients resync from the API on reconnect
        log.warning("realtime emit of %s failed", event, exc_info=True)


_QUEUE_CODES: dict[int, str] = {}


def queue_code(queue_id: int | None, session=None) -> str | None:
    """Queue codes never change once created, so a process-wide cache is safe.
    ``session``: the session to read a code not seen yet with (the app's by default)."""
    if queue_id is None:
        return None
    if queue_id not in _QUEUE_CODES:
        from app.extensions import db
        from app.models import Queue

        queue = (session or db.session).get(Queue, queue_id)
        if queue is None:
            return None
        _QUEUE_CODES[queue_id] = queue.code
    return _QUEUE_CODES[queue_id]


def ticket_summary(ticket) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "reference": ticket.reference,
        "status": ticket.status,
        "channel": ticket.channel,
        "queue": queue_code(ticket.queue_id),
        "subject": ticket.subject,
        "citizen_id": ticket.citizen_id,
        "assigned_agent_id": ticket.assigned_agent_id,
        "language": ticket.language,
        "priority": ticket.priority,
    }


def interaction_summary(interaction) -> dict[str, Any]:
    return {
        "id": interaction.id,
        "ticket_id": interaction.ticket_id,
        "channel": interaction.channel,
        "direction": interaction.direction,
        "author_kind": interaction.author_kind,
        "text": interaction.text,
        "subject": interaction.subject,
        "delivery_status": interaction.delivery_status,
        "created_at": (
            interaction.created_at.isoformat() + "Z" if interaction.created_at else None
        ),
        "kb_article_id": interaction.kb_article_id,
        "kb_article_version": interaction.kb_article_version,
    }


def ticket_rooms(ticket) -> list[str]:
    rooms = [f"ticket:{ticket.id}", "supervisors"]
    code = queue_code(ticket.queue_id)
    if code:
        rooms.append(f"queue:{code}")
    if ticket.assigned_agent_id:
        rooms.append(f"agent:{ticket.assigned_agent_id}")
    return rooms
