"""Routing in the app: the pure :class:`routing.Router` decides, the database remembers.

State
-----
The database is the only routing state: ``work_items`` (status, agent, queue clocks,
overflow stage, SLA breach), ``offers`` (pending, accepted, declined, expired, withdrawn;
``expires_at`` and ``responded_at``), ``users`` (presence and since when, idle and wrap-up
clocks, missed offers), agent skills and queues. No router lives between requests.

A routing step
--------------
Every change that routing must decide on (a new work item, a presence change, accept,
decline, complete, transfer, referral, the periodic tick) is one *step*:

1. take the routing lock (below);
2. load the open routing state and rebuild a router with :meth:`Router.from_state`;
3. ``tick`` it to now (offer timeouts, retries after a decline, overflow, SLA breaches,
   wrap-up ends), hand it any work item it has not seen yet (``queued_at`` is null),
   then apply the one request;
4. write the router's decisions back (offer rows, item status and clocks, agent presence
   and clocks, the ticket's assignee) together with the request's own changes (ticket
   status, internal notes, audit rows) and commit, which releases the lock;
5. after the commit, emit realtime events: ``offer.made``, ``offer.expired``,
   ``offer.withdrawn``, ``ticket.assigned``, ``presence.changed`` to ``agent:<id>``, and
   every router event as ``routing.<kind>`` to ``supervisors``.

Locking
-------
On PostgreSQL a step holds ``pg_advisory_xact_lock`` on one key from its first read to its
commit, so a second process (web or worker) loads only what the first committed: an item
is never offered or assigned twice and an agent's capacity is never booked twice. One
lock for the whole center rather than one per queue, because an agent serves several
queues: two per-queue steps could each fill the same agent's last free slot. Steps in
one process are also serialized by a process lock (the only lock needed on SQLite, where
the embedded mode runs one process).

A step costs time linear in agents and open work items: a few milliseconds for a city
contact center (about 100 ms of CPU with 3,000 items waiting). New work is routed by its
own job (``app.tasks.route_work``), and one step takes in every item that has arrived,
so a burst costs one step rather than one per arrival (and, with Redis, one job:
``followup.queue_routing``, which also starts routing jobs at most once per
``ROUTING_STEP_SPACING_SECONDS``). A backlog of many thousands of open items would still
call for a cached router kept in step with the database instead of a rebuild per step.

If a step fails inside the router, its own request is undone and the router's
catch-up (expired offers re-offered, and so on) is still committed; the caller gets the
error. Errors map to ``ServiceError``: unknown things 404, conflicts (double accept,
accept after the timeout, an offline or full agent) 409, bad input 400.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from flask import current_app

from app import realtime
from app.extensions import db
from app.models import (
    OPEN_STATUSES,
    Interaction,
    Offer,
    Queue,
    Ticket,
    User,
    WorkItem,
    utcnow,
)
from app.services import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    ServiceError,
    commit_keeping_loaded,
    followup,
)
from app.services.citizens import audit
from routing import events as ev
from routing import model as rm
from routing.engine import Router
from routing.errors import RoutingError
from routing.hours import is_open
from routing.referral import Referral, validate_referral

log = logging.getLogger(__name__)

ACTIVE = ("waiting", "offered", "assigned")
SETTABLE_PRESENCES = ("available", "away", "offline")
DEFAULT_LANGUAGE = "en"
LOCK_KEY = 7_310_112_105  # one advisory-lock key for every routing step
_PROCESS_LOCK = threading.RLock()
_STATUS = {
    "unknown_agent": 404,
    "unknown_queue": 404,
    "unknown_item": 404,
    "unknown_offer": 404,
    "offer_already_accepted": 409,
    "offer_closed": 409,
    "offer_timed_out": 409,
    "agent_offline": 409,
    "agent_unavailable": 409,
    "no_capacity": 409,
    "invalid_state": 409,
    "invalid_transfer": 409,
}
_OFFER_STATUS = {
    ev.OfferDeclined: "declined",
    ev.OfferExpired: "expired",
    ev.OfferWithdrawn: "withdrawn",
}
_OVERFLOW_KEYS = (
    ("relax_after", rm.RELAX_PROFICIENCY),
    ("department_after", rm.DEPARTMENT),
    ("general_after", rm.GENERAL),
)
# Called after each committed step with the step's events as plain dicts (metrics, audit).
EVENT_HOOKS: list[Callable[[list[dict[str, Any]]], None]] = []


# ---------------------------------------------------------------------- time


def _ts(moment: datetime | None) -> float | None:
    return None if moment is None else moment.replace(tzinfo=UTC).timestamp()


def _dt(seconds: float | None) -> datetime | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).replace(tzinfo=None)


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat() + "Z"


def _set_time(row: Any, attr: str, seconds: float | None) -> None:
    """Write a clock only when it moved, so unchanged rows cause no UPDATE."""
    current = getattr(row, attr)
    if seconds is None:
        if current is not None:
            setattr(row, attr, None)
    elif current is None or abs((_ts(current) or 0.0) - seconds) > 1e-3:
        setattr(row, attr, _dt(seconds))


# ---------------------------------------------------------------------- rows -> core


def _settings() -> dict[str, Any]:
    """The ``ROUTING_*`` settings (``app.config``; defaults repeated for bare configs)."""
    cfg = current_app.config
    return {
        "offer_timeout_seconds": cfg.get("ROUTING_OFFER_TIMEOUT_SECONDS", 30.0),
        "max_missed_offers": cfg.get("ROUTING_MAX_MISSED_OFFERS", 2),
        "aging_seconds": cfg.get("ROUTING_AGING_SECONDS", 300.0),
        "wrap_up_seconds": cfg.get("ROUTING_WRAP_UP_SECONDS"),
        "reoffer_after_seconds": cfg.get("ROUTING_REOFFER_AFTER_SECONDS", 120.0),
    }


def _overflow(spec: Any) -> tuple[rm.OverflowStep, ...]:
    """``{"relax_after": s, "department_after": s, "general_after": s}`` or a list of
    ``{"after_seconds", "action"}``."""
    steps = []
    if isinstance(spec, dict):
        for key, action in _OVERFLOW_KEYS:
            after = spec.get(key)
            if isinstance(after, int | float) and not isinstance(after, bool) and after >= 0:
                steps.append(rm.OverflowStep(float(after), action))
    elif isinstance(spec, list):
        for step in spec:
            if isinstance(step, dict) and step.get("action") in rm.OVERFLOW_ACTIONS:
                steps.append(rm.OverflowStep(max(0.0, float(step.get("after_seconds", 0))),
                                             step["action"]))
    return tuple(sorted(steps, key=lambda s: s.after_seconds))


def business_hours(queue: Queue) -> rm.BusinessHours | None:
    """``{"weekly": [{"days": [0..6], "open": "08:00", "close": "18:00", "tz": ...}]}``."""
    weekly = (queue.business_hours or {}).get("weekly")
    if not weekly:
        return None
    windows: dict[int, list[tuple[str, str]]] = {}
    tz = "UTC"
    for window in weekly:
        tz = window.get("tz", tz)
        for day in window.get("days", ()):
            windows.setdefault(int(day), []).append(
                (window.get("open", "00:00"), window.get("close", "24:00")))
    return rm.BusinessHours(tz=tz, windows={d: tuple(w) for d, w in windows.items()},
                            holidays=frozenset(queue.holidays or ()))


def core_queue(queue: Queue) -> rm.Queue:
    """A queue takes every channel here: a contact that already arrived must be served."""
    topic = next((s for s in queue.required_skills or () if s), queue.code)
    return rm.Queue(
        queue_id=queue.code,
        department=queue.department or "General",
        topic=topic,
        sla_target_seconds=float(max(1, queue.sla_target_seconds or 1)),
        overflow=_overflow(queue.overflow),
        hours=business_hours(queue),
        name=queue.name,
    )


def _proficiency(value: Any) -> int:
    try:
        return min(rm.MAX_PROFICIENCY, max(rm.MIN_PROFICIENCY, int(value)))
    except (TypeError, ValueError):
        return rm.MIN_PROFICIENCY


def core_agent(user: User) -> rm.Agent:
    """An agent from a user row and its skills; unusable values are dropped, not fatal."""
    topics: dict[str, int] = {}
    languages: dict[str, int] = {}
    for link in user.skills:
        code = link.skill.code
        if not code or code == "*":
            continue
        if link.skill.kind == "language":
            languages[code] = _proficiency(link.proficiency)
        elif link.skill.kind == "topic":
            topics[code] = _proficiency(link.proficiency)
    capacity = {
        channel: count
        for channel, count in (user.capacity or {}).items()
        if channel in rm.CHANNELS and isinstance(count, int) and not isinstance(count, bool)
        and count >= 0
    }
    presence = user.presence if user.active and user.presence in rm.PRESENCES else rm.OFFLINE
    since = _ts(user.presence_since) or 0.0
    wrap_until = _ts(user.wrap_up_until)
    if presence == rm.WRAP_UP and wrap_until is None:
        wrap_until = since
    return rm.Agent(
        agent_id=str(user.id), topics=topics, languages=languages, capacity=capacity,
        name=user.name, presence=presence, presence_since=since,
        idle_since=_ts(user.idle_since) or since, missed_offers=user.missed_offers or 0,
        wrap_up_until=wrap_until,
    )


def _urgency(priority: int | None) -> int:
    """Ticket priority 1 (most urgent) .. 5 becomes the router's class 0 .. 4."""
    return max(0, (priority if priority is not None else 3) - 1)


def core_item(row: WorkItem, queue: rm.Queue, known_languages: set[str]) -> rm.WorkItem:
    """A work item as the router sees it when it first arrives.

    The queue decides the topic. A language no agent speaks is served with an
    interpreter rather than refused.
    """
    commitments = [c for c in row.commitments or () if isinstance(c, str)]
    language = row.language or DEFAULT_LANGUAGE
    return rm.WorkItem(
        item_id=str(row.id),
        channel=row.channel,
        queue_id=queue.queue_id,
        language=language,
        topic=queue.topic,
        urgency=_urgency(row.priority),
        accessibility=tuple(c for c in commitments if c in rm.ACCESSIBILITY_NEEDS),
        interpreter_required="interpreter" in commitments or language not in known_languages,
        arrived_at=_ts(row.arrived_at),
    )


def _rank(item: rm.WorkItem, aging: float) -> float:
    effective = item.urgency - 1 if item.has_commitment else item.urgency
    return (item.arrived_at or 0.0) + max(0, effective) * aging


# ---------------------------------------------------------------------- the step


@dataclass
class Step:
    """One routing step: the rebuilt router and the rows it was built from."""

    now: float
    router: Router
    users: dict[str, User]
    rows: dict[str, WorkItem]
    offers: dict[str, Offer]
    queues: dict[str, Queue]
    unrouted: list[WorkItem]
    known_languages: set[str]
    stale_offers: list[Offer] = field(default_factory=list)
    outcomes: dict[str, str] = field(default_factory=dict)
    events: list[ev.Event] = field(default_factory=list)
    notices: list[tuple[str, dict[str, Any], list[str], str]] = field(default_factory=list)

    def item_for_ticket(self, ticket_id: int) -> rm.WorkItem | None:
        for item_id, row in self.rows.items():
            if row.ticket_id == ticket_id and item_id in self.router.items:
                return self.router.items[item_id]
        return None


def _lock() -> None:
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": LOCK_KEY})


def _load(now: float) -> Step:
    fresh = {"populate_existing": True}
    settings = _settings()
    queues = {q.code: q for q in db.session.scalars(
        sa.select(Queue).order_by(Queue.id).execution_options(**fresh))}
    core_queues = {q.id: core_queue(q) for q in queues.values()}
    users = {str(u.id): u for u in db.session.scalars(
        sa.select(User).order_by(User.id).execution_options(**fresh))}
    rows = db.session.scalars(
        sa.select(WorkItem).where(WorkItem.status.in_(ACTIVE)).order_by(WorkItem.id)
        .execution_options(**fresh)).all()
    pending = db.session.scalars(
        sa.select(Offer).where(Offer.status == "pending").order_by(Offer.id)
        .execution_options(**fresh)).all()
    refusals = db.session.execute(
        sa.select(Offer.work_item_id, Offer.agent_id, Offer.responded_at).where(
            Offer.status.in_(("declined", "expired")),
            Offer.responded_at > _dt(now - settings["reoffer_after_seconds"]),
        )).all()

    agents = [core_agent(u) for u in users.values()]
    known_languages = {lang for a in agents for lang in a.languages}
    offer_by_item = {o.work_item_id: o for o in pending}
    stale = {o.id: o for o in pending}
    items, offers, routed, unrouted = [], {}, {}, []
    for row in rows:
        item = core_item(row, core_queues[row.queue_id], known_languages)
        if row.queued_at is None:
            unrouted.append(row)
            continue
        _restore_runtime(item, row, settings["aging_seconds"])
        item.declined_by = {
            str(agent_id): (_ts(at) or 0.0) + settings["reoffer_after_seconds"]
            for item_id, agent_id, at in refusals
            if item_id == row.id and at is not None and at >= row.queued_at
        } or None
        offer = offer_by_item.get(row.id)
        if row.status == "offered" and offer is not None and offer.agent_id == row.agent_id:
            name = f"offer-{offer.id}"
            item.state, item.offer_id = rm.OFFERED, name
            offers[name] = offer
            del stale[offer.id]
        elif row.status == "assigned" and row.agent_id is not None:
            item.state = rm.ASSIGNED
        else:
            item.state, item.agent_id = rm.WAITING, None
        items.append(item)
        routed[item.item_id] = row
    core_offers = [
        rm.Offer(name, str(o.work_item_id), str(o.agent_id), _ts(o.created_at) or now,
                 _ts(o.expires_at) or now)
        for name, o in offers.items()
    ]
    # A language no agent speaks yet is served with an interpreter, not refused: the
    # router knows every language of the work it holds or is about to receive.
    languages = (known_languages | {DEFAULT_LANGUAGE} | {i.language for i in items}
                 | {row.language or DEFAULT_LANGUAGE for row in unrouted})
    router = Router.from_state(
        agents, list(core_queues.values()), items, core_offers,
        next_offer_number=max((o.id for o in pending), default=0) + 1,
        languages=languages, **settings,
    )
    step = Step(now=now, router=router, users=users, rows=routed, offers=offers, queues=queues,
                unrouted=unrouted, known_languages=known_languages,
                stale_offers=list(stale.values()))
    return step


def _restore_runtime(item: rm.WorkItem, row: WorkItem, aging: float) -> None:
    item.agent_id = str(row.agent_id) if row.agent_id is not None else None
    item.stage = row.overflow_stage or 0
    item.rank = _rank(item, aging)
    item.seq = row.id
    item.queued_at = _ts(row.queued_at) or 0.0
    item.sla_due = _ts(row.sla_due_at)
    item.sla_breached = bool(row.sla_breached)
    item.answered_at = _ts(row.assigned_at)


# Work items already reported as unroutable (e.g. a language no agent has yet): they are
# tried again at every step, so they route as soon as someone can take them, but the
# warning is logged once per item and process, not at every step.
_REPORTED_UNROUTABLE: OrderedDict[tuple, None] = OrderedDict()


def _report_unroutable(row: WorkItem, reason: str) -> None:
    key = (row.id, row.arrived_at)
    if key in _REPORTED_UNROUTABLE:
        log.debug("work item %s still cannot be routed: %s", row.id, reason)
        return
    _REPORTED_UNROUTABLE[key] = None
    if len(_REPORTED_UNROUTABLE) > 100_000:
        _REPORTED_UNROUTABLE.popitem(last=False)
    log.warning("work item %s cannot be routed: %s", row.id, reason)


def _arrive_unrouted(step: Step) -> list[ev.Event]:
    events: list[ev.Event] = []
    core_queues = {q.id: core_queue(q) for q in step.queues.values()}
    for row in step.unrouted:
        item = core_item(row, core_queues[row.queue_id], step.known_languages)
        try:
            events += step.router.arrive(item, step.now)
        except RoutingError as exc:
            _report_unroutable(row, exc.message)
            continue
        step.rows[item.item_id] = row
    return events


def _service_error(exc: RoutingError) -> ServiceError:
    return ServiceError(exc.message, code=exc.code, status=_STATUS.get(exc.code, 400))


Action = Callable[[Step], list[ev.Event]]


def run_step(action: Action | None = None, *, now: datetime | None = None) -> Step:
    """Run one routing step (see the module docstring). ``action`` applies the request.

    The step runs in its own transaction: whatever the caller changed is committed first.
    An error from the action undoes the action (the router validates before it changes
    anything) but keeps the catch-up, then is raised as a ``ServiceError``.
    """
    error: ServiceError | None = None
    with _PROCESS_LOCK:
        db.session.commit()
        try:
            _lock()
            at = _ts(now or utcnow()) or 0.0
            step = _load(at)
            step.events = step.router.tick(at)
            step.events += _arrive_unrouted(step)
            if action is not None:
                try:
                    step.events += action(step)
                except RoutingError as exc:
                    error = _service_error(exc)
                except ServiceError as exc:
                    error = exc
            _persist(step)
            step.notices = _notices(step)
            # What the step announces and returns is what it just wrote; expiring every
            # row it read (all open work, refreshed at the next step's read anyway)
            # would only cost time (5-10% of a step with 3,000 items waiting).
            commit_keeping_loaded()
        except Exception:
            db.session.rollback()
            raise
    _announce(step)
    if error is not None:
        raise error
    return step


# ---------------------------------------------------------------------- core -> rows


def _persist(step: Step) -> None:
    at = _dt(step.now)
    for offer in step.stale_offers:
        offer.status, offer.responded_at = "withdrawn", at
    for event in step.events:
        if isinstance(event, ev.OfferMade):
            row = Offer(work_item_id=int(event.item_id), agent_id=int(event.agent_id),
                        status="pending", expires_at=_dt(event.expires_at),
                        created_at=_dt(event.at))
            db.session.add(row)
            step.offers[event.offer_id] = row
        elif type(event) in _OFFER_STATUS:
            row = step.offers.get(event.offer_id)
            if row is not None:
                row.status, row.responded_at = _OFFER_STATUS[type(event)], _dt(event.at)
        elif isinstance(event, ev.Assigned):
            _persist_assigned(step, event)
        elif isinstance(event, ev.ItemCompleted | ev.ItemAbandoned):
            row = step.rows[event.item_id]
            row.status = "completed" if isinstance(event, ev.ItemCompleted) else "abandoned"
            row.outcome = step.outcomes.get(event.item_id, row.status)
            row.ended_at = _dt(event.at)
    _sync_items(step)
    _sync_agents(step)
    db.session.flush()


def _persist_assigned(step: Step, event: ev.Assigned) -> None:
    if event.offer_id is not None and event.offer_id in step.offers:
        offer = step.offers[event.offer_id]
        offer.status, offer.responded_at = "accepted", _dt(event.at)
    row = step.rows[event.item_id]
    ticket = db.session.get(Ticket, row.ticket_id)
    ticket.assigned_agent_id = int(event.agent_id)
    if ticket.status == "new":
        ticket.status = "open"
    ticket.last_activity_at = _dt(event.at)


def _sync_items(step: Step) -> None:
    queue_ids = {code: q.id for code, q in step.queues.items()}
    for item_id, row in step.rows.items():
        item = step.router.items.get(item_id)
        if item is None:
            continue
        if row.status != item.state:
            row.status = item.state
        agent_id = int(item.agent_id) if item.agent_id is not None else None
        if row.agent_id != agent_id:
            row.agent_id = agent_id
        if row.queue_id != queue_ids[item.queue_id]:
            row.queue_id = queue_ids[item.queue_id]
        if row.overflow_stage != item.stage:
            row.overflow_stage = item.stage
        if row.sla_breached != item.sla_breached:
            row.sla_breached = item.sla_breached
        _set_time(row, "queued_at", item.queued_at)
        _set_time(row, "sla_due_at", item.sla_due)
        _set_time(row, "assigned_at", item.answered_at)


def _sync_agents(step: Step) -> None:
    for agent_id, user in step.users.items():
        agent = step.router.agents[agent_id]
        if user.presence != agent.presence:
            user.presence = agent.presence
        if user.missed_offers != agent.missed_offers:
            user.missed_offers = agent.missed_offers
        _set_time(user, "presence_since", agent.presence_since)
        _set_time(user, "idle_since", agent.idle_since)
        _set_time(user, "wrap_up_until", agent.wrap_up_until)


# ---------------------------------------------------------------------- realtime


def _event_data(step: Step, event: ev.Event) -> dict[str, Any]:
    data: dict[str, Any] = {"kind": event.kind}
    for name in (f.name for f in fields(event)):
        value = getattr(event, name)
        if name == "offer_id" and value in step.offers:
            value = step.offers[value].id
        elif name in ("item_id", "agent_id", "from_agent", "to_agent") and value is not None:
            value = int(value)
        elif name in ("at", "expires_at", "due_at") and value is not None:
            value = _iso(_dt(value))
        data["work_item_id" if name == "item_id" else name] = value
    if "work_item_id" in data and str(data["work_item_id"]) in step.rows:
        data["ticket_id"] = step.rows[str(data["work_item_id"])].ticket_id
    return data


def offer_payload(offer: Offer, row: WorkItem | None = None) -> dict[str, Any]:
    """What a console needs to show an offer: the ticket, the channel, the deadline."""
    row = row or db.session.get(WorkItem, offer.work_item_id)
    ticket = db.session.get(Ticket, row.ticket_id)
    return {
        "offer_id": offer.id,
        "work_item_id": row.id,
        "agent_id": offer.agent_id,
        "status": offer.status,
        "channel": row.channel,
        "made_at": _iso(offer.created_at),
        "expires_at": _iso(offer.expires_at),
        "ticket": realtime.ticket_summary(ticket),
    }


def _notices(step: Step) -> list[tuple[str, dict[str, Any], list[str], str]]:
    notices = []
    for event in step.events:
        data = _event_data(step, event)
        notices.append((f"routing.{event.kind}", data, ["supervisors"], "/supervisor"))
        notices.append((f"routing.{event.kind}", data, ["supervisors"], "/agent"))
        room = [f"agent:{data['agent_id']}"] if data.get("agent_id") is not None else []
        if isinstance(event, ev.OfferMade):
            row = step.rows[event.item_id]
            notices.append(("offer.made", offer_payload(step.offers[event.offer_id], row),
                            room, "/agent"))
        elif isinstance(event, ev.OfferExpired | ev.OfferWithdrawn):
            name = "offer.expired" if isinstance(event, ev.OfferExpired) else "offer.withdrawn"
            notices.append((name, data, room, "/agent"))
        elif isinstance(event, ev.Assigned):
            ticket = db.session.get(Ticket, step.rows[event.item_id].ticket_id)
            payload = {"ticket": realtime.ticket_summary(ticket), **data}
            notices.append(("ticket.assigned", payload, realtime.ticket_rooms(ticket), "/agent"))
        elif isinstance(event, ev.AgentPresenceChanged):
            # The console reads ``presence`` (as in the presence API's answer).
            notices.append(("presence.changed", {**data, "presence": event.new}, room,
                            "/agent"))
    return notices


def _announce(step: Step) -> None:
    for name, data, rooms, namespace in step.notices:
        if rooms:
            realtime.emit(name, data, rooms=rooms, namespace=namespace)
    if EVENT_HOOKS and step.events:
        plain = [_event_data(step, e) for e in step.events]
        for hook in EVENT_HOOKS:
            try:
                hook(plain)
            except Exception:  # noqa: BLE001 - a listener's failure never undoes routing
                log.exception("routing event hook failed")


# ---------------------------------------------------------------------- requests


def route(work_item_id: int | None = None) -> None:
    """Route new work (``work_item_id`` from intake's follow-up) and catch up on timers
    (``None`` from the periodic tick); also repairs what changed outside routing.

    A step takes in every new work item, so when ``work_item_id`` is already queued (or
    no longer active) an earlier step has routed it and no step is needed: a burst of
    arrivals costs one step, not one per arrival."""
    if work_item_id is not None and _already_routed(work_item_id):
        return
    run_step(_repair)


def _already_routed(work_item_id: int) -> bool:
    row = db.session.execute(
        sa.select(WorkItem.queued_at, WorkItem.status).where(WorkItem.id == work_item_id)
    ).first()
    db.session.commit()
    return row is None or row.queued_at is not None or row.status not in ACTIVE


def tick(now: datetime | None = None) -> Step:
    """One catch-up step at ``now`` (tests pass a later time to skip ahead)."""
    return run_step(_repair, now=now)


def _repair(step: Step) -> list[ev.Event]:
    """End routing for tickets resolved elsewhere, and offer waiting work to routable
    agents with room that nothing offered it to (presence or capacity changed directly
    in the database, e.g. by a supervisor's tool)."""
    events = _end_closed_tickets(step)
    router = step.router
    waiting = [i for i in router.items.values() if i.state == rm.WAITING]
    if not waiting:
        return events
    for agent in sorted(router.agents.values(), key=lambda a: (a.idle_since, a.agent_id)):
        if agent.presence not in rm.ROUTABLE_PRESENCES:
            continue
        if any(
            item.state == rm.WAITING and router.can_serve(agent, item)
            and (item.declined_by or {}).get(agent.agent_id, step.now) <= step.now
            for item in waiting
        ):
            events += _refill(step, agent.agent_id, keep_missed=True)
    return events


def _refill(step: Step, key: str, *, keep_missed: bool) -> list[ev.Event]:
    """Offer a routable agent the waiting work they can take, through the router's own
    away-then-available path, without it showing as a presence change or costing the
    agent their place in the longest-idle order. Skipped while they have an open offer
    (answering it brings the next one)."""
    router = step.router
    agent = router.agents[key]
    if agent.presence not in rm.ROUTABLE_PRESENCES or any(
        o.agent_id == key and o.state == rm.PENDING for o in router.offers.values()
    ):
        return []
    original, since = agent.presence, agent.presence_since
    idle, missed = agent.idle_since, agent.missed_offers
    events = router.set_presence(key, rm.AWAY, step.now)
    events += router.set_presence(key, rm.AVAILABLE, step.now)
    if keep_missed:
        agent.missed_offers = missed
    if not any(isinstance(e, ev.OfferMade | ev.Assigned) and e.agent_id == key for e in events):
        agent.idle_since = idle
    out = [e for e in events
           if not (isinstance(e, ev.AgentPresenceChanged) and e.agent_id == key)]
    if agent.presence == original:
        agent.presence_since = since
    else:
        out.append(ev.AgentPresenceChanged(key, original, agent.presence, step.now, "load"))
    return out


def _end_closed_tickets(step: Step) -> list[ev.Event]:
    closed = db.session.scalars(
        sa.select(WorkItem.id).join(Ticket, Ticket.id == WorkItem.ticket_id).where(
            WorkItem.status.in_(ACTIVE), Ticket.status.not_in(OPEN_STATUSES))).all()
    events: list[ev.Event] = []
    for item_id in closed:
        item = step.router.items.get(str(item_id))
        if item is None:
            continue
        try:
            events += _end_item(step, item, "closed")
        except RoutingError as exc:
            log.warning("work item %s could not be ended: %s", item_id, exc.message)
    return events


def _end_item(step: Step, item: rm.WorkItem, outcome: str) -> list[ev.Event]:
    step.outcomes[item.item_id] = outcome
    if item.state == rm.ASSIGNED:
        return step.router.complete(item.item_id, step.now)
    return step.router.abandon(item.item_id, step.now)


def _agent_row(agent_id: int) -> User:
    user = db.session.get(User, agent_id)
    if user is None:
        raise NotFound(f"agent {agent_id} not found", code="unknown_agent")
    return user


def validate_capacity(capacity: dict[str, Any]) -> dict[str, int]:
    clean = {}
    for channel, count in capacity.items():
        if channel not in rm.CHANNELS:
            raise Invalid(f"unknown channel {channel!r}", code="unknown_channel")
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise Invalid(f"capacity for {channel} must be 0 or more, got {count!r}",
                          code="invalid_capacity")
        clean[channel] = count
    return clean


def set_presence(agent_id: int, presence: str, actor: User,
                 capacity: dict[str, Any] | None = None) -> User:
    """An agent (or a supervisor for them) sets presence and optionally channel capacity.

    Becoming available offers waiting work at once; away or offline withdraws pending
    offers. Setting available when already available re-reads skills and capacity.
    """
    if presence not in SETTABLE_PRESENCES:
        raise Invalid(f"presence must be one of {', '.join(SETTABLE_PRESENCES)}",
                      code="invalid_presence")
    if actor.id != agent_id and not actor.has_role("supervisor"):
        raise Forbidden("only supervisors set another agent's presence")
    user = _agent_row(agent_id)
    if not user.active:
        raise Conflict(f"agent {agent_id} is deactivated", code="agent_inactive")
    clean = validate_capacity(capacity) if capacity is not None else None
    if clean is not None:
        user.capacity = {**(user.capacity or {}), **clean}
        audit(actor, "agent.capacity", "user", user.id, {"capacity": user.capacity})
    key = str(agent_id)

    def action(step: Step) -> list[ev.Event]:
        agent = step.router.agents[key]
        if presence == rm.AVAILABLE and agent.presence in rm.ROUTABLE_PRESENCES:
            return _refill(step, key, keep_missed=False)
        return step.router.set_presence(key, presence, step.now)

    run_step(action)
    if actor.id != agent_id:
        audit(actor, "agent.presence", "user", agent_id, {"presence": presence})
        db.session.commit()
    return _agent_row(agent_id)


def pending_offers(agent: User) -> list[dict[str, Any]]:
    """The agent's open offers, oldest first."""
    rows = db.session.scalars(
        sa.select(Offer).where(Offer.agent_id == agent.id, Offer.status == "pending",
                               Offer.expires_at > utcnow()).order_by(Offer.id)).all()
    return [offer_payload(o) for o in rows]


def _offer_for(offer_id: int, actor: User) -> Offer:
    offer = db.session.get(Offer, offer_id)
    if offer is None:
        raise NotFound(f"offer {offer_id} not found", code="unknown_offer")
    if offer.agent_id != actor.id:
        raise Forbidden("this offer was made to another agent")
    return offer


def _open_offer_name(step: Step, offer_id: int) -> str:
    """The router's name for a pending offer, or the 409 that tells why it is not open."""
    row = db.session.execute(
        sa.select(Offer).where(Offer.id == offer_id).execution_options(populate_existing=True)
    ).scalar_one()
    for name, loaded in step.offers.items():
        if loaded.id == offer_id and name in step.router.offers:
            if step.router.offers[name].state == rm.PENDING:
                return name
    expired = any(isinstance(e, ev.OfferExpired) and step.offers.get(e.offer_id) is row
                  for e in step.events)
    if expired or row.status == "expired" or (
        row.status == "pending" and row.expires_at <= _dt(step.now)
    ):
        raise Conflict(f"offer {offer_id} timed out", code="offer_timed_out")
    if row.status == "accepted":
        raise Conflict(f"offer {offer_id} was already accepted", code="offer_already_accepted")
    raise Conflict(f"offer {offer_id} is {row.status}", code="offer_closed")


def _answer_offer(offer_id: int, actor: User, answer: str) -> dict[str, Any]:
    """Apply the agent's answer (the router's ``accept`` or ``decline``) to an offer."""
    offer = _offer_for(offer_id, actor)

    def action(step: Step) -> list[ev.Event]:
        return getattr(step.router, answer)(_open_offer_name(step, offer_id), step.now)

    run_step(action)
    db.session.refresh(offer)
    return offer_payload(offer)


def accept(offer_id: int, actor: User) -> dict[str, Any]:
    """The agent accepts an offer: the ticket is theirs (409 when late or already taken)."""
    return _answer_offer(offer_id, actor, "accept")


def decline(offer_id: int, actor: User) -> dict[str, Any]:
    """The agent declines: the item goes to someone else."""
    return _answer_offer(offer_id, actor, "decline")


def _may_handle(ticket: Ticket, actor: User) -> None:
    if actor.has_role("supervisor"):
        return
    if ticket.assigned_agent_id not in (None, actor.id):
        raise Forbidden("the ticket is assigned to another agent")


def _note(ticket: Ticket, actor: User | None, text: str, meta: dict[str, Any]) -> Interaction:
    note = Interaction(ticket_id=ticket.id, citizen_id=ticket.citizen_id, channel="note",
                       direction="internal", author_kind="agent" if actor else "system",
                       author_agent_id=actor.id if actor else None, text=text[:10_000],
                       meta=meta, created_at=utcnow())
    db.session.add(note)
    ticket.last_activity_at = utcnow()
    return note


def transfer(ticket: Ticket, actor: User, *, agent_id: int | None = None,
             queue: str | None = None, reason: str = "") -> Ticket:
    """Move a ticket to another agent (offered to them) or queue; kept as a note and audit."""
    if agent_id is None and not queue:
        raise Invalid("name an agent_id or a queue to transfer to", code="invalid_transfer")
    _may_handle(ticket, actor)
    target = _agent_row(agent_id) if agent_id is not None else None
    if queue is not None and db.session.scalar(sa.select(Queue).where(Queue.code == queue)) is None:
        raise NotFound(f"queue {queue!r} not found", code="unknown_queue")
    if target is not None and target.presence == rm.OFFLINE:
        raise Conflict(f"agent {agent_id} is offline", code="agent_offline")
    ticket_id = ticket.id

    def action(step: Step) -> list[ev.Event]:
        item = step.item_for_ticket(ticket_id)
        if item is None:
            raise Conflict("the ticket is not waiting or being served", code="not_in_routing")
        from_agent, from_queue = item.agent_id, item.queue_id
        events = step.router.transfer(
            item.item_id, to_agent=str(agent_id) if agent_id is not None else None,
            to_queue=queue, now=step.now)
        row = db.session.get(Ticket, ticket_id)
        row.assigned_agent_id = None
        row.queue_id = step.queues[item.queue_id].id
        detail = {"from_agent": int(from_agent) if from_agent else None, "to_agent": agent_id,
                  "from_queue": from_queue, "to_queue": item.queue_id, "reason": reason}
        to_text = f"agent {target.name or target.email}" if target else f"queue {queue}"
        _note(row, actor, f"Transferred from queue {from_queue} to {to_text}"
              + (f": {reason}" if reason else ""), {"transfer": detail})
        audit(actor, "ticket.transfer", "ticket", row.reference, detail)
        return events

    run_step(action)
    return db.session.get(Ticket, ticket_id)


def complete(ticket: Ticket, actor: User, disposition: str, note: str = "") -> Ticket:
    """Wrap-up: the agent finishes the ticket with a disposition code; it is resolved."""
    _may_handle(ticket, actor)
    if ticket.status not in OPEN_STATUSES:
        raise Conflict(f"ticket {ticket.reference} is {ticket.status}", code="invalid_state")
    ticket_id = ticket.id

    def action(step: Step) -> list[ev.Event]:
        item = step.item_for_ticket(ticket_id)
        if item is None or item.state != rm.ASSIGNED:
            raise Conflict("the ticket is not assigned to an agent", code="not_assigned")
        events = _end_item(step, item, "resolved")
        row = db.session.get(Ticket, ticket_id)
        row.status, row.disposition, row.resolved_at = "resolved", disposition, utcnow()
        if note:
            _note(row, actor, note, {"disposition": disposition})
        audit(actor, "ticket.complete", "ticket", row.reference, {"disposition": disposition})
        return events

    run_step(action)
    ticket = db.session.get(Ticket, ticket_id)
    realtime.emit("ticket.updated", realtime.ticket_summary(ticket),
                  rooms=realtime.ticket_rooms(ticket))
    return ticket


def refer(ticket: Ticket, actor: User, data: dict[str, Any]) -> Ticket:
    """A misdirected contact is referred to another agency: stored, noted, resolved."""
    _may_handle(ticket, actor)
    if ticket.status not in OPEN_STATUSES:
        raise Conflict(f"ticket {ticket.reference} is {ticket.status}", code="invalid_state")
    referral = Referral(
        ticket_ref=ticket.reference, agency=(data.get("agency") or "").strip(),
        reason=data.get("reason") or "", phone=data.get("phone") or None,
        email=data.get("email") or None, url=data.get("url") or None,
        note=data.get("note") or "")
    problems = validate_referral(referral)
    if problems:
        raise Invalid("; ".join(problems), code="invalid_referral",
                      detail={"problems": problems})
    ticket_id = ticket.id
    stored = {
        "agency": referral.agency, "reason": referral.reason, "phone": referral.phone,
        "email": referral.email, "url": referral.url, "note": referral.note,
        "by": actor.id, "at": _iso(utcnow()),
    }

    def action(step: Step) -> list[ev.Event]:
        item = step.item_for_ticket(ticket_id)
        events = _end_item(step, item, "referred") if item is not None else []
        row = db.session.get(Ticket, ticket_id)
        row.referral = stored
        row.status, row.disposition, row.resolved_at = "resolved", "referred", utcnow()
        how = ", ".join(x for x in (referral.phone, referral.email, referral.url) if x)
        _note(row, actor, f"Referred to {referral.agency} ({referral.reason.replace('_', ' ')})"
              f": {how}" + (f". {referral.note}" if referral.note else ""),
              {"referral": stored})
        audit(actor, "ticket.referral", "ticket", row.reference, stored)
        return events

    run_step(action)
    ticket = db.session.get(Ticket, ticket_id)
    realtime.emit("ticket.updated", realtime.ticket_summary(ticket),
                  rooms=realtime.ticket_rooms(ticket))
    return ticket


def referral_report(since: datetime | None = None,
                    until: datetime | None = None) -> dict[str, Any]:
    """Referrals per agency and per reason, so supervisors see where residents get lost."""
    stmt = sa.select(Ticket).where(Ticket.disposition == "referred")
    if since is not None:
        stmt = stmt.where(Ticket.resolved_at >= since)
    if until is not None:
        stmt = stmt.where(Ticket.resolved_at < until)
    tickets = db.session.scalars(stmt).all()
    agencies: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for ticket in tickets:
        referral = ticket.referral or {}
        agencies[referral.get("agency") or "unknown"] += 1
        reasons[referral.get("reason") or "unknown"] += 1
    return {
        "total": len(tickets),
        "by_agency": [{"agency": a, "count": n} for a, n in sorted(
            agencies.items(), key=lambda kv: (-kv[1], kv[0]))],
        "by_reason": [{"reason": r, "count": n} for r, n in sorted(
            reasons.items(), key=lambda kv: (-kv[1], kv[0]))],
    }


def queue_items(code: str) -> dict[str, Any]:
    """A queue's open work in routing order (priority class, aging, arrival) with waits."""
    queue = db.session.scalar(sa.select(Queue).where(Queue.code == code))
    if queue is None:
        raise NotFound(f"queue {code!r} not found", code="unknown_queue")
    now = utcnow()
    aging = float(_settings()["aging_seconds"])
    rows = db.session.execute(
        sa.select(WorkItem, Ticket).join(Ticket, Ticket.id == WorkItem.ticket_id).where(
            WorkItem.queue_id == queue.id, WorkItem.status.in_(ACTIVE))).all()

    shape = core_queue(queue)

    def order(pair: tuple[WorkItem, Ticket]) -> tuple[int, float, int]:
        row = pair[0]
        item = core_item(row, shape, {row.language or DEFAULT_LANGUAGE})
        return (0 if row.status == "waiting" else 1, _rank(item, aging), row.id)

    items = []
    position = 0
    for row, ticket in sorted(rows, key=order):
        if row.status == "waiting":
            position += 1
        items.append({
            "work_item_id": row.id, "ticket_id": ticket.id, "reference": ticket.reference,
            "subject": ticket.subject, "status": row.status, "channel": row.channel,
            "language": row.language, "priority": row.priority,
            "commitments": list(row.commitments or ()), "agent_id": row.agent_id,
            "position": position if row.status == "waiting" else None,
            "arrived_at": _iso(row.arrived_at), "queued_at": _iso(row.queued_at),
            "wait_seconds": round((now - (row.queued_at or row.arrived_at)).total_seconds(), 1),
            "sla_due_at": _iso(row.sla_due_at), "sla_breached": row.sla_breached,
        })
    waiting = [i for i in items if i["status"] == "waiting"]
    try:
        open_now = is_open(shape, now)
    except (ValueError, KeyError):
        open_now = True
    return {
        "queue": code, "name": queue.name, "open": open_now,
        "sla_target_seconds": queue.sla_target_seconds, "waiting": len(waiting),
        "longest_wait_seconds": max((i["wait_seconds"] for i in waiting), default=0.0),
        "items": items,
    }


if route not in followup.ROUTE_HOOKS:
    followup.ROUTE_HOOKS.append(route)
