"""Plain-data model of the routing core: agents, queues, work items and offers.

Everything here is a dataclass of standard-library values so that the app can build it
from database rows, and :meth:`routing.engine.Router.snapshot` can turn it back into
plain dictionaries. Times are seconds as floats (epoch seconds in the app, simulated
seconds in the simulator); the router never reads a clock itself.

Vocabulary
----------
* channel: ``voice``, ``sms``, ``email``, ``chat`` or ``walkin``. ``voice`` and
  ``walkin`` are *exclusive*: an agent on a call or at the walk-in desk takes nothing
  else, and only takes one when they hold nothing else.
* presence: ``available`` and ``busy`` are maintained by the router from the agent's
  load (``busy`` means no free capacity on any channel), ``wrap_up`` follows a completed
  item for the configured wrap-up time, ``away`` and ``offline`` are set by the agent or
  a supervisor (and ``away`` by the router after too many missed offers).
* priority class (``urgency``): 0 is the most urgent; larger numbers are less urgent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

VOICE = "voice"
SMS = "sms"
EMAIL = "email"
CHAT = "chat"
WALKIN = "walkin"
CHANNELS: tuple[str, ...] = (VOICE, SMS, EMAIL, CHAT, WALKIN)
EXCLUSIVE_CHANNELS: frozenset[str] = frozenset({VOICE, WALKIN})

AVAILABLE = "available"
BUSY = "busy"
WRAP_UP = "wrap_up"
AWAY = "away"
OFFLINE = "offline"
PRESENCES: tuple[str, ...] = (AVAILABLE, BUSY, WRAP_UP, AWAY, OFFLINE)
ROUTABLE_PRESENCES: frozenset[str] = frozenset({AVAILABLE, BUSY})

RELAX_PROFICIENCY = "relax_proficiency"
DEPARTMENT = "department"
GENERAL = "general"
OVERFLOW_ACTIONS: tuple[str, ...] = (RELAX_PROFICIENCY, DEPARTMENT, GENERAL)

# Work item states.
SCHEDULED = "scheduled"  # a callback promised for later
WAITING = "waiting"
OFFERED = "offered"
ASSIGNED = "assigned"
ITEM_STATES: tuple[str, ...] = (SCHEDULED, WAITING, OFFERED, ASSIGNED)

# Offer states.
PENDING = "pending"
ACCEPTED = "accepted"
DECLINED = "declined"
EXPIRED = "expired"
WITHDRAWN = "withdrawn"

ACCESSIBILITY_NEEDS: frozenset[str] = frozenset(
    {"deaf", "hard_of_hearing", "blind", "low_vision", "interpreter", "relay", "mobility"}
)

MIN_PROFICIENCY = 1
MAX_PROFICIENCY = 5


@dataclass(slots=True)
class Agent:
    """An agent who can be offered work.

    ``topics`` and ``languages`` map a skill name to a proficiency from 1 to 5.
    ``capacity`` maps a channel to how many items of that channel the agent may hold at
    once (e.g. ``{"voice": 1, "chat": 3, "email": 5}``); ``max_total`` caps the sum
    across channels. ``wrap_up_seconds`` overrides the router's per-channel default.

    The remaining fields are runtime state kept by the router; set them only when
    rebuilding a router from stored state.
    """

    agent_id: str
    topics: dict[str, int] = field(default_factory=dict)
    languages: dict[str, int] = field(default_factory=dict)
    capacity: dict[str, int] = field(default_factory=dict)
    max_total: int | None = None
    wrap_up_seconds: float | None = None
    name: str = ""
    presence: str = OFFLINE
    presence_since: float = 0.0
    idle_since: float = 0.0
    missed_offers: int = 0
    wrap_up_until: float | None = None
    # Maintained by the router (derived from items and offers, never stored).
    load: dict[str, int] = field(default_factory=dict)
    total_load: int = 0
    version: int = 0


@dataclass(frozen=True, slots=True)
class OverflowStep:
    """After ``after_seconds`` of waiting, widen who may serve the item.

    ``action`` is ``relax_proficiency`` (any proficiency in the topic),
    ``department`` (any agent with a topic of the queue's department) or ``general``
    (any agent who speaks the resident's language).
    """

    after_seconds: float
    action: str


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """Opening hours of a queue in its own time zone.

    ``windows`` maps a weekday (0 = Monday) to ``(start, end)`` pairs of ``"HH:MM"``
    strings; an end of ``"24:00"`` means midnight. ``holidays`` holds ISO dates
    (``"2026-07-04"``) on which the queue is closed all day.
    """

    tz: str = "UTC"
    windows: dict[int, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    holidays: frozenset[str] = frozenset()


@dataclass(slots=True)
class Queue:
    """A department's service line.

    Items in the queue need an agent with ``topic`` at ``min_proficiency`` or better
    who speaks the item's language. ``languages`` (empty: any) and ``channels`` limit
    what the queue accepts. ``sla_target_seconds`` is the time within which an item
    should be accepted by an agent. ``overflow`` steps widen the pool of agents over
    time. ``hours`` (None: always open) is read by :func:`routing.hours.is_open`.
    """

    queue_id: str
    department: str
    topic: str
    languages: tuple[str, ...] = ()
    channels: tuple[str, ...] = CHANNELS
    sla_target_seconds: float = 60.0
    min_proficiency: int = 1
    overflow: tuple[OverflowStep, ...] = ()
    hours: BusinessHours | None = None
    name: str = ""


@dataclass(slots=True)
class WorkItem:
    """One contact to be served: a call, chat, email, SMS thread or walk-in visit.

    ``urgency`` is the priority class (0 most urgent). ``accessibility`` lists needs
    such as ``deaf`` or ``blind``; ``callback_at`` is a promised callback time;
    ``interpreter_required`` means an interpreter joins, so the agent does not need the
    resident's language. ``topic`` defaults to the queue's topic. There is deliberately
    no field about how "valuable" a resident is: routing never ranks people by value.

    Fields after ``arrived_at`` are runtime state kept by the router.
    """

    item_id: str
    channel: str
    queue_id: str
    language: str
    topic: str | None = None
    urgency: int = 2
    accessibility: tuple[str, ...] = ()
    callback_at: float | None = None
    interpreter_required: bool = False
    arrived_at: float | None = None
    state: str = WAITING
    agent_id: str | None = None
    offer_id: str | None = None
    stage: int = 0
    rank: float = 0.0
    seq: int = 0
    sla_due: float | None = None
    sla_breached: bool = False
    answered_at: float | None = None
    queued_at: float = 0.0
    epoch: int = 0
    version: int = 0
    declined_by: dict[str, float] | None = None
    history: list[dict[str, Any]] = field(default_factory=list)

    @property
    def has_commitment(self) -> bool:
        """True when the item carries an accessibility, callback or interpreter promise."""
        return bool(self.accessibility) or self.callback_at is not None or (
            self.interpreter_required
        )


@dataclass(slots=True)
class Offer:
    """An item offered to one agent, waiting for accept or decline until ``expires_at``."""

    offer_id: str
    item_id: str
    agent_id: str
    made_at: float
    expires_at: float
    state: str = PENDING
