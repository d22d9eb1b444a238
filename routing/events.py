"""Events returned by the router.

The router performs no I/O: every method returns the list of events its decision
produced, in order, and the app persists them, notifies consoles and sends messages.
Every event is a frozen dataclass with an ``at`` time and a ``kind`` class attribute.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class Event:
    kind: ClassVar[str] = "event"


@dataclass(frozen=True, slots=True)
class ItemQueued(Event):
    kind: ClassVar[str] = "item_queued"
    item_id: str
    queue_id: str
    at: float


@dataclass(frozen=True, slots=True)
class CallbackScheduled(Event):
    kind: ClassVar[str] = "callback_scheduled"
    item_id: str
    queue_id: str
    due_at: float
    at: float


@dataclass(frozen=True, slots=True)
class CallbackDue(Event):
    kind: ClassVar[str] = "callback_due"
    item_id: str
    queue_id: str
    at: float


@dataclass(frozen=True, slots=True)
class OfferMade(Event):
    kind: ClassVar[str] = "offer_made"
    offer_id: str
    item_id: str
    agent_id: str
    at: float
    expires_at: float


@dataclass(frozen=True, slots=True)
class OfferDeclined(Event):
    kind: ClassVar[str] = "offer_declined"
    offer_id: str
    item_id: str
    agent_id: str
    at: float


@dataclass(frozen=True, slots=True)
class OfferExpired(Event):
    kind: ClassVar[str] = "offer_expired"
    offer_id: str
    item_id: str
    agent_id: str
    at: float


@dataclass(frozen=True, slots=True)
class OfferWithdrawn(Event):
    kind: ClassVar[str] = "offer_withdrawn"
    offer_id: str
    item_id: str
    agent_id: str
    at: float
    reason: str


@dataclass(frozen=True, slots=True)
class Assigned(Event):
    kind: ClassVar[str] = "assigned"
    item_id: str
    agent_id: str
    offer_id: str | None
    at: float
    waited_seconds: float


@dataclass(frozen=True, slots=True)
class ItemCompleted(Event):
    kind: ClassVar[str] = "item_completed"
    item_id: str
    agent_id: str
    at: float


@dataclass(frozen=True, slots=True)
class ItemAbandoned(Event):
    kind: ClassVar[str] = "item_abandoned"
    item_id: str
    queue_id: str
    at: float
    waited_seconds: float


@dataclass(frozen=True, slots=True)
class ItemTransferred(Event):
    kind: ClassVar[str] = "item_transferred"
    item_id: str
    from_agent: str | None
    to_agent: str | None
    from_queue: str
    to_queue: str
    at: float


@dataclass(frozen=True, slots=True)
class ItemOverflowed(Event):
    kind: ClassVar[str] = "item_overflowed"
    item_id: str
    queue_id: str
    action: str
    at: float


@dataclass(frozen=True, slots=True)
class SlaBreached(Event):
    kind: ClassVar[str] = "sla_breached"
    item_id: str
    queue_id: str
    due_at: float
    at: float


@dataclass(frozen=True, slots=True)
class AgentPresenceChanged(Event):
    kind: ClassVar[str] = "agent_presence_changed"
    agent_id: str
    old: str
    new: str
    at: float
    reason: str
