"""The routing engine: who gets which work item, and when.

:class:`Router` holds agents, queues, waiting items and open offers in memory and
answers every request with a list of events (see :mod:`routing.events`). It reads no
clock: every method takes ``now`` in seconds. It is deterministic: the same calls in
the same order produce the same events.

Decisions
---------
Item arrives (or comes back after a decline, timeout or transfer): it is offered to the
best available agent who can take it, ranked by

1. proficiency in the item's topic (highest first; in the department stage the agent's
   best topic of that department, in the general stage not considered),
2. proficiency in the resident's language (highest first),
3. longest idle: the earliest ``idle_since``, the time the agent last received work or
   last became available,
4. agent id, so ties never depend on dictionary order.

An agent who declined or missed the item is not offered it again for
``reoffer_after_seconds`` (default 120); after that the item is routed again, so an item
whose only qualified agent said no once is not stranded.

Agent frees up (capacity released, presence set to available, wrap-up ends): the agent
is offered the waiting item they can serve with the lowest *rank*, repeatedly while they
have free capacity. The rank is fixed when the item starts waiting:

    rank = base_time + effective_class * aging_seconds

where ``base_time`` is the arrival time (the promised time for a scheduled callback),
``effective_class`` is the priority class (``urgency``, 0 most urgent) lowered by one,
not below 0, when the item carries a commitment (an accessibility need, a promised
callback or an interpreter), and ``aging_seconds`` (default 300) is how much waiting one
priority class is worth. This is the aging rule: an item of class ``k`` that has waited
``k * aging_seconds`` longer than a class-0 item ranks level with it, so urgency decides
first but nothing starves. Within a priority class ranks are in arrival order: first come,
first served; equal ranks fall back to arrival sequence. Residents are never ranked by any
notion of value: there is no such input.

Who can serve an item: the agent is ``available`` or ``busy`` (not in wrap-up, away or
offline), has free capacity on the item's channel (``voice`` and ``walkin`` are exclusive:
taken only with nothing else in hand, and block everything else), is under
``max_total``, speaks the item's language (any language when an interpreter is
required), and has the skill the item's overflow stage needs:

* stage ``queue``: the queue's topic at the queue's ``min_proficiency`` or better;
* after ``relax_proficiency``: the topic at any proficiency;
* after ``department``: any topic of a queue in the same department;
* after ``general``: no topic needed.

Offers: the agent's capacity is held while an offer is pending. ``accept`` assigns the
item; ``decline`` and timeouts (``expire_offers``) put the item back with its original rank
and offer it elsewhere. A timeout is a *miss*; after ``max_missed_offers`` consecutive
misses (default 2) the agent is set ``away`` and their other pending offers are withdrawn.
A decline is an answer, so it resets the count. Channels in ``auto_accept_channels`` are
assigned without an offer round trip.

SLA: every item gets ``sla_due = queued time + queue.sla_target_seconds``; ``tick`` emits
one :class:`SlaBreached` for an item not yet accepted by then. A transfer to another queue
starts a new SLA clock for that queue but keeps the item's rank, so nobody goes to the back
of the line because they were sent to the wrong desk.

Indexes: available agents are kept in heaps per pool key (topic or department or
"general", language, channel), waiting items in heaps per pool key and minimum
proficiency. Stale heap entries are skipped lazily (every agent and item carries a version
number) and heaps are compacted when stale entries outnumber live ones, so each decision
costs a few heap operations rather than a scan of all agents or items.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping
from dataclasses import asdict, fields
from typing import Any

from routing import errors
from routing.events import (
    AgentPresenceChanged,
    Assigned,
    CallbackDue,
    CallbackScheduled,
    Event,
    ItemAbandoned,
    ItemCompleted,
    ItemOverflowed,
    ItemQueued,
    ItemTransferred,
    OfferDeclined,
    OfferExpired,
    OfferMade,
    OfferWithdrawn,
    SlaBreached,
)
from routing.model import (
    ACCEPTED,
    ASSIGNED,
    AVAILABLE,
    AWAY,
    BUSY,
    CHANNELS,
    DECLINED,
    DEPARTMENT,
    EXCLUSIVE_CHANNELS,
    EXPIRED,
    GENERAL,
    ITEM_STATES,
    MAX_PROFICIENCY,
    MIN_PROFICIENCY,
    OFFERED,
    OFFLINE,
    OVERFLOW_ACTIONS,
    PENDING,
    PRESENCES,
    RELAX_PROFICIENCY,
    ROUTABLE_PRESENCES,
    SCHEDULED,
    WAITING,
    WITHDRAWN,
    WRAP_UP,
    Agent,
    BusinessHours,
    Offer,
    OverflowStep,
    Queue,
    WorkItem,
)

ANY_LANGUAGE = "*"
DEFAULT_WRAP_UP_SECONDS: dict[str, float] = {"voice": 30.0, "walkin": 60.0}

# A pool key names a set of agents: ("t", topic, language, channel),
# ("d", department, language, channel) or ("g", language, channel).
PoolKey = tuple[str, ...]
# Item heaps are keyed by (pool key, minimum topic proficiency).
ItemKey = tuple[PoolKey, int]


class Router:
    """In-memory routing state and decisions. See the module docstring for the rules.

    Configuration:
    ``offer_timeout_seconds`` (per channel or one number), ``max_missed_offers``,
    ``aging_seconds`` (waiting time worth one priority class), ``wrap_up_seconds`` (per
    channel default, overridden per agent), ``auto_accept_channels``,
    ``reoffer_after_seconds`` (how long a declining or missing agent is skipped),
    ``languages`` (languages the center serves, besides those agents and queues name;
    an item in a language nobody knows is refused with ``UnknownSkill``).
    """

    def __init__(
        self,
        *,
        offer_timeout_seconds: float | Mapping[str, float] = 20.0,
        max_missed_offers: int = 2,
        aging_seconds: float = 300.0,
        wrap_up_seconds: Mapping[str, float] | None = None,
        auto_accept_channels: Iterable[str] = (),
        reoffer_after_seconds: float = 120.0,
        languages: Iterable[str] = (),
        next_offer_number: int = 1,
    ) -> None:
        if isinstance(offer_timeout_seconds, Mapping):
            self.offer_timeout = {c: float(offer_timeout_seconds.get(c, 20.0)) for c in CHANNELS}
        else:
            self.offer_timeout = {c: float(offer_timeout_seconds) for c in CHANNELS}
        if max_missed_offers < 1:
            raise errors.RoutingError("max_missed_offers must be at least 1")
        if aging_seconds <= 0:
            raise errors.RoutingError("aging_seconds must be positive")
        self.max_missed_offers = max_missed_offers
        self.reoffer_after_seconds = float(reoffer_after_seconds)
        self.aging_seconds = float(aging_seconds)
        wrap = DEFAULT_WRAP_UP_SECONDS if wrap_up_seconds is None else wrap_up_seconds
        self.wrap_up_seconds = {c: float(wrap.get(c, 0.0)) for c in CHANNELS}
        self.auto_accept_channels = frozenset(auto_accept_channels)
        for channel in self.auto_accept_channels:
            _check_channel(channel)

        self.agents: dict[str, Agent] = {}
        self.queues: dict[str, Queue] = {}
        self.items: dict[str, WorkItem] = {}
        self.offers: dict[str, Offer] = {}
        self._next_offer = next_offer_number
        self._seq = 0
        # Which departments a topic belongs to (from queues).
        self._topic_departments: dict[str, set[str]] = {}
        # Agents with a topic, so a new queue can re-index them.
        self._topic_agents: dict[str, set[str]] = {}
        # Per agent: channel -> [(pool key, topic proficiency, language proficiency)].
        self._agent_keys: dict[str, dict[str, list[tuple[PoolKey, int, int]]]] = {}
        self._agent_items: dict[str, set[str]] = {}
        self._agent_offers: dict[str, set[str]] = {}
        # Heaps of (-topic prof, -language prof, idle_since, agent_id, version).
        self._agent_heaps: dict[PoolKey, list[tuple[int, int, float, str, int]]] = {}
        self._agent_key_population: dict[PoolKey, int] = {}
        # Heaps of (rank, seq, item_id, version).
        self._item_heaps: dict[ItemKey, list[tuple[float, int, str, int]]] = {}
        self._item_key_live: dict[ItemKey, int] = {}
        self._item_key_of: dict[str, ItemKey] = {}
        # Timers: (time, seq, id, epoch-or-version).
        self._offer_timers: list[tuple[float, str]] = []
        self._sla_timers: list[tuple[float, int, str, int]] = []
        self._overflow_timers: list[tuple[float, int, str, int, int]] = []
        self._callback_timers: list[tuple[float, int, str, int]] = []
        self._wrap_timers: list[tuple[float, str, int]] = []
        self._retry_timers: list[tuple[float, int, str, int]] = []
        self.known_languages: set[str] = set(languages)
        self.known_topics: set[str] = set()

    # ------------------------------------------------------------------ set-up

    def add_queue(self, queue: Queue) -> list[Event]:
        """Register a queue. Raises ``DuplicateQueue`` or ``InvalidQueue``."""
        if queue.queue_id in self.queues:
            raise errors.DuplicateQueue(f"queue {queue.queue_id!r} already exists")
        _validate_queue(queue)
        self.queues[queue.queue_id] = queue
        self.known_topics.add(queue.topic)
        self.known_languages.update(queue.languages)
        departments = self._topic_departments.setdefault(queue.topic, set())
        if queue.department not in departments:
            departments.add(queue.department)
            for agent_id in sorted(self._topic_agents.get(queue.topic, ())):
                self._index_agent_keys(self.agents[agent_id])
                self._reindex(self.agents[agent_id])
        return []

    def add_agent(self, agent: Agent, now: float | None = None) -> list[Event]:
        """Register an agent (usually ``offline``; if ``available``, they get work at once).

        Raises ``DuplicateAgent``, ``InvalidSkill``, ``InvalidCapacity``,
        ``InvalidPresence`` or ``UnknownChannel``.
        """
        if agent.agent_id in self.agents:
            raise errors.DuplicateAgent(f"agent {agent.agent_id!r} already exists")
        _validate_agent(agent)
        if agent.presence not in (AVAILABLE, AWAY, OFFLINE):
            raise errors.InvalidPresence("a new agent starts available, away or offline")
        when = agent.presence_since if now is None else now
        if now is not None:
            agent.presence_since = now
            agent.idle_since = now
        agent.load = {}
        agent.total_load = 0
        self._register_agent(agent)
        events: list[Event] = []
        if agent.presence == AVAILABLE:
            self._fill(agent, when, events)
        return events

    def _register_agent(self, agent: Agent) -> None:
        self.agents[agent.agent_id] = agent
        self._agent_items[agent.agent_id] = set()
        self._agent_offers[agent.agent_id] = set()
        self.known_topics.update(agent.topics)
        self.known_languages.update(agent.languages)
        for topic in agent.topics:
            self._topic_agents.setdefault(topic, set()).add(agent.agent_id)
        self._index_agent_keys(agent)
        self._reindex(agent)

    def _index_agent_keys(self, agent: Agent) -> None:
        """Compute the pool keys an agent belongs to, per channel they can work."""
        old = self._agent_keys.get(agent.agent_id)
        if old is not None:
            for keys in old.values():
                for key, _tp, _lp in keys:
                    self._agent_key_population[key] -= 1
        per_channel: dict[str, list[tuple[PoolKey, int, int]]] = {}
        languages = dict(agent.languages)
        languages[ANY_LANGUAGE] = 0
        dept_best: dict[str, int] = {}
        for topic, prof in agent.topics.items():
            for dept in self._topic_departments.get(topic, ()):
                dept_best[dept] = max(dept_best.get(dept, 0), prof)
        for channel in sorted(c for c, n in agent.capacity.items() if n > 0):
            keys: list[tuple[PoolKey, int, int]] = []
            for language, lprof in sorted(languages.items()):
                for topic, tprof in sorted(agent.topics.items()):
                    keys.append((("t", topic, language, channel), tprof, lprof))
                for dept, dprof in sorted(dept_best.items()):
                    keys.append((("d", dept, language, channel), dprof, lprof))
                keys.append((("g", language, channel), 0, lprof))
            per_channel[channel] = keys
            for key, _tp, _lp in keys:
                self._agent_key_population[key] = self._agent_key_population.get(key, 0) + 1
        self._agent_keys[agent.agent_id] = per_channel

    # ------------------------------------------------------------------ presence

    def set_presence(self, agent_id: str, presence: str, now: float) -> list[Event]:
        """Set an agent ``available``, ``away`` or ``offline``.

        ``busy`` and ``wrap_up`` are kept by the router and cannot be set. Going away or
        offline withdraws the agent's pending offers (their items are offered elsewhere);
        items already accepted stay with the agent until completed or transferred.
        Becoming available ends wrap-up early and offers work at once.
        """
        agent = self._agent(agent_id)
        if presence not in (AVAILABLE, AWAY, OFFLINE):
            raise errors.InvalidPresence(
                f"presence {presence!r} cannot be set; use available, away or offline"
            )
        events: list[Event] = []
        if presence == AVAILABLE:
            if agent.presence in ROUTABLE_PRESENCES:
                return events
            agent.wrap_up_until = None
            agent.missed_offers = 0
            agent.idle_since = now
            self._change_presence(agent, self._load_presence(agent), now, "set by agent", events)
            self._reindex(agent)
            self._fill(agent, now, events)
            return events
        if agent.presence == presence:
            return events
        agent.wrap_up_until = None
        self._change_presence(agent, presence, now, "set by agent", events)
        self._reindex(agent)
        self._withdraw_agent_offers(agent, now, f"agent {presence}", events)
        return events

    def _load_presence(self, agent: Agent) -> str:
        for channel in agent.capacity:
            if self._has_room(agent, channel):
                return AVAILABLE
        return BUSY

    def _change_presence(
        self, agent: Agent, new: str, now: float, reason: str, events: list[Event]
    ) -> None:
        if agent.presence == new:
            return
        events.append(AgentPresenceChanged(agent.agent_id, agent.presence, new, now, reason))
        agent.presence = new
        agent.presence_since = now

    def _refresh_load_presence(self, agent: Agent, now: float, events: list[Event]) -> None:
        if agent.presence in ROUTABLE_PRESENCES:
            self._change_presence(agent, self._load_presence(agent), now, "load", events)

    # ------------------------------------------------------------------ items

    def arrive(self, item: WorkItem, now: float) -> list[Event]:
        """A new work item enters its queue; offer it at once if an agent can take it.

        ``item.arrived_at`` defaults to ``now`` (set it to import an older backlog). A
        future ``callback_at`` holds the item until then. Raises ``DuplicateItem``,
        ``UnknownQueue``, ``UnknownChannel``, ``UnknownSkill`` or ``InvalidItem``.
        """
        if item.item_id in self.items:
            raise errors.DuplicateItem(f"item {item.item_id!r} already exists")
        queue = self._queue(item.queue_id)
        _check_channel(item.channel)
        if item.channel not in queue.channels:
            raise errors.InvalidItem(
                f"queue {queue.queue_id!r} does not take {item.channel} items"
            )
        topic = item.topic or queue.topic
        if topic not in self.known_topics:
            raise errors.UnknownSkill(f"unknown topic {topic!r}")
        if item.language not in self.known_languages:
            raise errors.UnknownSkill(f"unknown language {item.language!r}")
        if queue.languages and item.language not in queue.languages and not (
            item.interpreter_required
        ):
            raise errors.InvalidItem(
                f"queue {queue.queue_id!r} does not serve language {item.language!r}"
            )
        if isinstance(item.urgency, bool) or not isinstance(item.urgency, int) or (
            item.urgency < 0
        ):
            raise errors.InvalidItem("urgency must be a priority class 0 or more")
        item.topic = topic
        if item.arrived_at is None:
            item.arrived_at = now
        self._seq += 1
        item.seq = self._seq
        item.stage = 0
        item.agent_id = None
        item.offer_id = None
        item.declined_by = None
        item.sla_breached = False
        item.answered_at = None
        self.items[item.item_id] = item
        events: list[Event] = []
        if item.callback_at is not None and item.callback_at > now:
            item.state = SCHEDULED
            item.history.append({"at": now, "event": "callback_scheduled"})
            heapq.heappush(
                self._callback_timers, (item.callback_at, item.seq, item.item_id, item.epoch)
            )
            events.append(CallbackScheduled(item.item_id, queue.queue_id, item.callback_at, now))
            return events
        start = item.arrived_at if item.callback_at is None else max(item.callback_at, 0.0)
        item.rank = self._rank(item, start)
        self._start_queue_clocks(item, queue, start)
        item.history.append({"at": now, "event": "queued", "queue": queue.queue_id})
        events.append(ItemQueued(item.item_id, queue.queue_id, now))
        self._route_item(item, now, events)
        return events

    def _rank(self, item: WorkItem, base_time: float) -> float:
        effective = item.urgency - 1 if item.has_commitment else item.urgency
        return base_time + max(0, effective) * self.aging_seconds

    def _start_queue_clocks(self, item: WorkItem, queue: Queue, start: float) -> None:
        item.queued_at = start
        item.sla_due = start + queue.sla_target_seconds
        item.sla_breached = False
        heapq.heappush(self._sla_timers, (item.sla_due, item.seq, item.item_id, item.epoch))
        for index, step in enumerate(queue.overflow):
            heapq.heappush(
                self._overflow_timers,
                (start + step.after_seconds, item.seq, item.item_id, item.epoch, index),
            )

    def _item_key(self, item: WorkItem) -> ItemKey:
        queue = self.queues[item.queue_id]
        language = ANY_LANGUAGE if item.interpreter_required else item.language
        actions = {queue.overflow[i].action for i in range(item.stage)}
        if GENERAL in actions:
            return ("g", language, item.channel), 0
        if DEPARTMENT in actions:
            return ("d", queue.department, language, item.channel), 1
        assert item.topic is not None
        min_prof = 1 if RELAX_PROFICIENCY in actions else queue.min_proficiency
        return ("t", item.topic, language, item.channel), min_prof

    def _route_item(self, item: WorkItem, now: float, events: list[Event]) -> None:
        """Offer a waiting item to the best agent, or put it in its waiting heap."""
        key = self._item_key(item)
        agent = self._best_agent(item, key, now)
        if agent is not None:
            self._offer(item, agent, now, events)
            return
        item.state = WAITING
        item.version += 1
        heap = self._item_heaps.get(key)
        if heap is None:
            heap = self._item_heaps[key] = []
            self._item_key_live[key] = 0
        heapq.heappush(heap, (item.rank, item.seq, item.item_id, item.version))
        self._item_key_live[key] += 1
        self._item_key_of[item.item_id] = key
        if len(heap) > 2 * self._item_key_live[key] + 32:
            self._compact_item_heap(key)

    def _unqueue(self, item: WorkItem) -> None:
        """Take a waiting item out of its heap (lazily: its heap entry goes stale)."""
        key = self._item_key_of.pop(item.item_id, None)
        item.version += 1
        if key is not None:
            self._item_key_live[key] -= 1

    def _compact_item_heap(self, key: ItemKey) -> None:
        items = self.items
        heap = [
            e for e in self._item_heaps[key]
            if (it := items.get(e[2])) is not None and it.version == e[3] and it.state == WAITING
        ]
        heapq.heapify(heap)
        self._item_heaps[key] = heap

    def _best_agent(self, item: WorkItem, key: ItemKey, now: float) -> Agent | None:
        pool, min_prof = key
        heap = self._agent_heaps.get(pool)
        if not heap:
            return None
        agents = self.agents
        declined = item.declined_by
        skipped = []
        found = None
        while heap:
            entry = heap[0]
            agent = agents.get(entry[3])
            if agent is None or agent.version != entry[4]:
                heapq.heappop(heap)
                continue
            if -entry[0] < min_prof:
                break
            if declined and declined.get(agent.agent_id, now) > now:
                skipped.append(heapq.heappop(heap))
                continue
            found = agent
            break
        for entry in skipped:
            heapq.heappush(heap, entry)
        return found

    def _offer(self, item: WorkItem, agent: Agent, now: float, events: list[Event]) -> None:
        channel = item.channel
        agent.load[channel] = agent.load.get(channel, 0) + 1
        agent.total_load += 1
        agent.idle_since = now
        self._agent_items[agent.agent_id].add(item.item_id)
        item.agent_id = agent.agent_id
        if channel in self.auto_accept_channels:
            item.state = ASSIGNED
            item.offer_id = None
            self._answered(item, now)
            events.append(Assigned(item.item_id, agent.agent_id, None, now, now - item.queued_at))
        else:
            offer_id = f"offer-{self._next_offer}"
            self._next_offer += 1
            expires = now + self.offer_timeout[channel]
            offer = Offer(offer_id, item.item_id, agent.agent_id, now, expires)
            self.offers[offer_id] = offer
            self._agent_offers[agent.agent_id].add(offer_id)
            heapq.heappush(self._offer_timers, (expires, offer_id))
            item.state = OFFERED
            item.offer_id = offer_id
            events.append(OfferMade(offer_id, item.item_id, agent.agent_id, now, expires))
        self._refresh_load_presence(agent, now, events)
        self._reindex(agent)

    def _answered(self, item: WorkItem, now: float) -> None:
        if item.answered_at is None:
            item.answered_at = now
        item.history.append({"at": now, "event": "assigned", "agent": item.agent_id})

    def _release(self, item: WorkItem, agent: Agent) -> None:
        """Give back the capacity an item held at its agent."""
        channel = item.channel
        agent.load[channel] -= 1
        if not agent.load[channel]:
            del agent.load[channel]
        agent.total_load -= 1
        self._agent_items[agent.agent_id].discard(item.item_id)
        item.agent_id = None

    # ------------------------------------------------------------------ agent side

    def _has_room(self, agent: Agent, channel: str) -> bool:
        cap = agent.capacity.get(channel, 0)
        if cap <= 0 or agent.load.get(channel, 0) >= cap:
            return False
        if agent.max_total is not None and agent.total_load >= agent.max_total:
            return False
        if agent.total_load:
            if channel in EXCLUSIVE_CHANNELS:
                return False
            for exclusive in EXCLUSIVE_CHANNELS:
                if agent.load.get(exclusive):
                    return False
        return True

    def can_take(self, agent: Agent, channel: str) -> bool:
        """True when the agent is routable and has free capacity for the channel."""
        return agent.presence in ROUTABLE_PRESENCES and self._has_room(agent, channel)

    def _reindex(self, agent: Agent) -> None:
        """Invalidate the agent's heap entries and push fresh ones where they can work."""
        agent.version += 1
        if agent.presence not in ROUTABLE_PRESENCES:
            return
        version = agent.version
        idle = agent.idle_since
        agent_id = agent.agent_id
        for channel, keys in self._agent_keys[agent_id].items():
            if not self._has_room(agent, channel):
                continue
            for key, tprof, lprof in keys:
                heap = self._agent_heaps.get(key)
                if heap is None:
                    heap = self._agent_heaps[key] = []
                heapq.heappush(heap, (-tprof, -lprof, idle, agent_id, version))
                if len(heap) > 2 * self._agent_key_population[key] + 32:
                    self._compact_agent_heap(key)

    def _compact_agent_heap(self, key: PoolKey) -> None:
        agents = self.agents
        heap = [
            e for e in self._agent_heaps[key]
            if (a := agents.get(e[3])) is not None and a.version == e[4]
        ]
        heapq.heapify(heap)
        self._agent_heaps[key] = heap

    def _best_item_for(self, agent: Agent, now: float) -> WorkItem | None:
        """The lowest-ranked waiting item the agent can serve, or None."""
        best: tuple[float, int, str, int] | None = None
        items = self.items
        agent_id = agent.agent_id
        item_heaps = self._item_heaps
        for channel, keys in self._agent_keys[agent_id].items():
            if not self._has_room(agent, channel):
                continue
            for key, tprof, _lp in keys:
                kind = key[0]
                if kind == "t":
                    thresholds: Iterable[int] = range(1, tprof + 1)
                else:
                    thresholds = (1,) if kind == "d" else (0,)
                for min_prof in thresholds:
                    heap = item_heaps.get((key, min_prof))
                    if not heap:
                        continue
                    skipped = []
                    while heap:
                        entry = heap[0]
                        item = items.get(entry[2])
                        if item is None or item.version != entry[3] or item.state != WAITING:
                            heapq.heappop(heap)
                            continue
                        declined = item.declined_by
                        if declined and declined.get(agent_id, now) > now:
                            skipped.append(heapq.heappop(heap))
                            continue
                        if best is None or entry < best:
                            best = entry
                        break
                    for entry in skipped:
                        heapq.heappush(heap, entry)
        return None if best is None else items[best[2]]

    def _fill(self, agent: Agent, now: float, events: list[Event]) -> None:
        """Offer the agent waiting work while they are routable and have room."""
        while agent.presence in ROUTABLE_PRESENCES:
            item = self._best_item_for(agent, now)
            if item is None:
                return
            self._unqueue(item)
            self._offer(item, agent, now, events)

    # ------------------------------------------------------------------ offers

    def accept(self, offer_id: str, now: float) -> list[Event]:
        """The agent accepts an offer: the item is assigned to them.

        Raises ``UnknownOffer``, ``OfferAlreadyAccepted``, ``OfferClosed`` (declined,
        expired or withdrawn) or ``OfferTimedOut`` (``now`` is past the offer's expiry; the
        offer is then expired by the next ``expire_offers``/``tick``).
        """
        offer = self._open_offer(offer_id, now)
        item = self.items[offer.item_id]
        offer.state = ACCEPTED
        self._close_offer(offer)
        item.state = ASSIGNED
        agent = self.agents[offer.agent_id]
        agent.missed_offers = 0
        self._answered(item, now)
        return [Assigned(item.item_id, agent.agent_id, offer_id, now, now - item.queued_at)]

    def decline(self, offer_id: str, now: float) -> list[Event]:
        """The agent declines: the item is offered to someone else, the agent gets other work."""
        offer = self._open_offer(offer_id, now)
        agent = self.agents[offer.agent_id]
        agent.missed_offers = 0
        offer.state = DECLINED
        events: list[Event] = [OfferDeclined(offer_id, offer.item_id, agent.agent_id, now)]
        self._return_offer(offer, now, events, exclude_agent=True)
        return events

    def expire_offers(self, now: float) -> list[Event]:
        """Expire offers whose accept timeout has passed and offer their items elsewhere."""
        events: list[Event] = []
        timers = self._offer_timers
        while timers and timers[0][0] <= now:
            self._fire_offer_timer(heapq.heappop(timers), events)
        return events

    def _fire_offer_timer(self, timer: tuple[float, str], events: list[Event]) -> None:
        expires, offer_id = timer
        offer = self.offers.get(offer_id)
        if offer is not None and offer.state == PENDING:
            offer.state = EXPIRED
            agent = self.agents[offer.agent_id]
            events.append(OfferExpired(offer_id, offer.item_id, agent.agent_id, expires))
            agent.missed_offers += 1
            if agent.missed_offers >= self.max_missed_offers and agent.presence != AWAY:
                agent.wrap_up_until = None
                self._change_presence(
                    agent, AWAY, expires, f"missed {agent.missed_offers} offers", events
                )
                self._reindex(agent)
            self._return_offer(offer, expires, events, exclude_agent=True)
            if agent.presence == AWAY:
                self._withdraw_agent_offers(agent, expires, "agent away", events)

    def _open_offer(self, offer_id: str, now: float) -> Offer:
        offer = self.offers.get(offer_id)
        if offer is None:
            raise errors.UnknownOffer(f"unknown offer {offer_id!r}")
        if offer.state == ACCEPTED:
            raise errors.OfferAlreadyAccepted(f"offer {offer_id!r} was already accepted")
        if offer.state != PENDING:
            raise errors.OfferClosed(f"offer {offer_id!r} is {offer.state}")
        if now >= offer.expires_at:
            raise errors.OfferTimedOut(f"offer {offer_id!r} timed out")
        return offer

    def _close_offer(self, offer: Offer) -> None:
        """Forget a finished offer (accepted offers are kept until the item ends)."""
        self._agent_offers[offer.agent_id].discard(offer.offer_id)
        if offer.state != ACCEPTED:
            del self.offers[offer.offer_id]

    def _return_offer(
        self, offer: Offer, now: float, events: list[Event], *, exclude_agent: bool
    ) -> None:
        """An offer ended without acceptance: free the agent and route the item again."""
        item = self.items[offer.item_id]
        agent = self.agents[offer.agent_id]
        self._close_offer(offer)
        self._release(item, agent)
        item.offer_id = None
        if exclude_agent and self.reoffer_after_seconds > 0:
            if item.declined_by is None:
                item.declined_by = {}
            until = now + self.reoffer_after_seconds
            item.declined_by[agent.agent_id] = until
            heapq.heappush(self._retry_timers, (until, item.seq, item.item_id, item.epoch))
        self._refresh_load_presence(agent, now, events)
        self._reindex(agent)
        self._route_item(item, now, events)
        self._fill(agent, now, events)

    def _withdraw_agent_offers(
        self, agent: Agent, now: float, reason: str, events: list[Event]
    ) -> None:
        for offer_id in sorted(self._agent_offers[agent.agent_id]):
            offer = self.offers[offer_id]
            offer.state = WITHDRAWN
            events.append(OfferWithdrawn(offer_id, offer.item_id, agent.agent_id, now, reason))
            self._return_offer(offer, now, events, exclude_agent=False)

    # ------------------------------------------------------------------ endings

    def complete(self, item_id: str, now: float) -> list[Event]:
        """The agent finished an assigned item: free the capacity and start wrap-up.

        Wrap-up time is the agent's ``wrap_up_seconds`` or the router's default for the
        item's channel; with zero wrap-up the agent is offered new work at once.
        """
        item = self._item(item_id)
        if item.state != ASSIGNED:
            raise errors.InvalidState(f"item {item_id!r} is {item.state}, not assigned")
        agent = self.agents[item.agent_id]  # type: ignore[index]
        channel = item.channel
        self._drop_accepted_offer(item)
        self._release(item, agent)
        self._forget(item)
        events: list[Event] = [ItemCompleted(item_id, agent.agent_id, now)]
        wrap = agent.wrap_up_seconds
        if wrap is None:
            wrap = self.wrap_up_seconds[channel]
        agent.idle_since = now
        if wrap > 0 and agent.presence in (AVAILABLE, BUSY, WRAP_UP):
            until = now + wrap
            if agent.wrap_up_until is None or until > agent.wrap_up_until:
                agent.wrap_up_until = until
            self._change_presence(agent, WRAP_UP, now, "wrap-up", events)
            self._reindex(agent)
            heapq.heappush(self._wrap_timers, (until, agent.agent_id, agent.version))
            return events
        self._refresh_load_presence(agent, now, events)
        self._reindex(agent)
        self._fill(agent, now, events)
        return events

    def abandon(self, item_id: str, now: float) -> list[Event]:
        """The resident left (hung up, closed the chat, left the desk line)."""
        item = self._item(item_id)
        events: list[Event] = []
        queue_id = item.queue_id
        agent = self._detach(item, now, events, reason="resident left")
        self._forget(item)
        events.append(ItemAbandoned(item_id, queue_id, now, max(0.0, now - item.queued_at)))
        if agent is not None:
            self._refresh_load_presence(agent, now, events)
            self._reindex(agent)
            self._fill(agent, now, events)
        return events

    def _drop_accepted_offer(self, item: WorkItem) -> None:
        """Forget the accepted offer of an item that leaves its agent."""
        if item.offer_id is not None:
            offer = self.offers.get(item.offer_id)
            if offer is not None and offer.state == ACCEPTED:
                del self.offers[item.offer_id]
        item.offer_id = None

    def _detach(
        self, item: WorkItem, now: float, events: list[Event], reason: str
    ) -> Agent | None:
        """Take the item away from wherever it is (heap, offer, agent); return the agent."""
        agent = None
        if item.state == WAITING:
            self._unqueue(item)
        elif item.state == OFFERED:
            offer = self.offers[item.offer_id]  # type: ignore[index]
            offer.state = WITHDRAWN
            events.append(OfferWithdrawn(offer.offer_id, item.item_id, offer.agent_id, now, reason))
            self._close_offer(offer)
            agent = self.agents[offer.agent_id]
            self._release(item, agent)
            item.offer_id = None
        elif item.state == ASSIGNED:
            agent = self.agents[item.agent_id]  # type: ignore[index]
            self._drop_accepted_offer(item)
            self._release(item, agent)
        return agent

    def _forget(self, item: WorkItem) -> None:
        item.epoch += 1
        item.version += 1
        self._item_key_of.pop(item.item_id, None)
        del self.items[item.item_id]

    # ------------------------------------------------------------------ transfers

    def transfer(
        self,
        item_id: str,
        to_agent: str | None = None,
        to_queue: str | None = None,
        *,
        now: float,
    ) -> list[Event]:
        """Move an item to another queue and/or offer it to a named agent.

        The current agent (if any) gets the capacity back. A transfer to a queue starts
        that queue's SLA clock and overflow steps but keeps the item's rank. A transfer to
        an agent skips the skill check (a person chose them) but needs the agent to be
        available or busy with room on the channel; if they decline or miss the offer, the
        item waits in its queue. Every transfer is appended to ``item.history``.
        """
        item = self._item(item_id)
        if to_agent is None and to_queue is None:
            raise errors.InvalidTransfer("name an agent or a queue to transfer to")
        if item.state == SCHEDULED:
            raise errors.InvalidTransfer("a scheduled callback cannot be transferred yet")
        new_queue = self.queues[item.queue_id] if to_queue is None else self._queue(to_queue)
        if item.channel not in new_queue.channels:
            raise errors.InvalidTransfer(
                f"queue {new_queue.queue_id!r} does not take {item.channel} items"
            )
        target = None
        if to_agent is not None:
            target = self._agent(to_agent)
            if target.presence == OFFLINE:
                raise errors.AgentOffline(f"agent {to_agent!r} is offline")
            if target.presence not in ROUTABLE_PRESENCES:
                raise errors.AgentUnavailable(f"agent {to_agent!r} is {target.presence}")
            if target.agent_id == item.agent_id:
                raise errors.InvalidTransfer("the item is already with that agent")
            if not self._has_room(target, item.channel):
                raise errors.NoCapacity(f"agent {to_agent!r} has no room for {item.channel}")
        events: list[Event] = []
        from_agent = item.agent_id
        from_queue = item.queue_id
        was_answered = item.answered_at
        old_agent = self._detach(item, now, events, reason="transferred")
        item.history.append(
            {
                "at": now,
                "event": "transferred",
                "from_agent": from_agent,
                "to_agent": to_agent,
                "from_queue": from_queue,
                "to_queue": new_queue.queue_id,
            }
        )
        events.append(
            ItemTransferred(item_id, from_agent, to_agent, from_queue, new_queue.queue_id, now)
        )
        if to_queue is not None:
            item.queue_id = new_queue.queue_id
            item.topic = new_queue.topic
            item.stage = 0
            item.declined_by = None
            item.answered_at = None
            item.epoch += 1
            self._start_queue_clocks(item, new_queue, now)
        else:
            item.answered_at = was_answered
        item.state = WAITING
        if old_agent is not None:
            self._refresh_load_presence(old_agent, now, events)
            self._reindex(old_agent)
        if target is not None:
            self._offer(item, target, now, events)
        else:
            self._route_item(item, now, events)
        if old_agent is not None:
            self._fill(old_agent, now, events)
        return events

    # ------------------------------------------------------------------ time

    def tick(self, now: float) -> list[Event]:
        """Advance timers up to ``now``, in time order within each kind.

        Expires offers, releases due callbacks, ends wrap-ups, applies overflow steps and
        emits SLA breaches.
        """
        events: list[Event] = []
        heaps = (
            (self._offer_timers, self._fire_offer_timer),
            (self._callback_timers, self._fire_callback_timer),
            (self._wrap_timers, self._fire_wrap_timer),
            (self._retry_timers, self._fire_retry_timer),
            (self._overflow_timers, self._fire_overflow_timer),
            (self._sla_timers, self._fire_sla_timer),
        )
        while True:
            earliest = None
            fire = None
            for timers, handler in heaps:
                if timers and timers[0][0] <= now and (earliest is None or timers[0][0] < earliest):
                    earliest = timers[0][0]
                    fire = (timers, handler)
            if fire is None:
                return events
            timers, handler = fire
            handler(heapq.heappop(timers), events)

    def _fire_callback_timer(self, timer: tuple[float, int, str, int], events: list[Event]) -> None:
        due, _seq, item_id, epoch = timer
        item = self.items.get(item_id)
        if item is not None and item.epoch == epoch and item.state == SCHEDULED:
            queue = self.queues[item.queue_id]
            item.rank = self._rank(item, due)
            self._start_queue_clocks(item, queue, due)
            item.history.append({"at": due, "event": "queued", "queue": queue.queue_id})
            events.append(CallbackDue(item_id, queue.queue_id, due))
            self._route_item(item, due, events)

    def _fire_wrap_timer(self, timer: tuple[float, str, int], events: list[Event]) -> None:
        until, agent_id, _version = timer
        agent = self.agents.get(agent_id)
        if agent is not None and agent.presence == WRAP_UP and agent.wrap_up_until == until:
            agent.wrap_up_until = None
            agent.idle_since = until
            self._change_presence(agent, self._load_presence(agent), until, "wrap-up ended", events)
            self._reindex(agent)
            self._fill(agent, until, events)

    def _fire_overflow_timer(
        self, timer: tuple[float, int, str, int, int], events: list[Event]
    ) -> None:
        when, _seq, item_id, epoch, index = timer
        item = self.items.get(item_id)
        if item is None or item.epoch != epoch or index < item.stage:
            return
        if item.state in (WAITING, OFFERED):
            queue = self.queues[item.queue_id]
            item.stage = index + 1
            action = queue.overflow[index].action
            item.history.append({"at": when, "event": "overflow", "action": action})
            events.append(ItemOverflowed(item_id, queue.queue_id, action, when))
            if item.state == WAITING:
                self._unqueue(item)
                self._route_item(item, when, events)

    def _fire_sla_timer(self, timer: tuple[float, int, str, int], events: list[Event]) -> None:
        due, _seq, item_id, epoch = timer
        item = self.items.get(item_id)
        if item is None or item.epoch != epoch or item.sla_breached:
            return
        if item.answered_at is not None or item.state == ASSIGNED:
            return
        item.sla_breached = True
        events.append(SlaBreached(item_id, item.queue_id, due, due))

    def _fire_retry_timer(self, timer: tuple[float, int, str, int], events: list[Event]) -> None:
        """An agent's exclusion from an item lapsed: route the waiting item again."""
        when, _seq, item_id, epoch = timer
        item = self.items.get(item_id)
        if item is None or item.epoch != epoch or item.state != WAITING:
            return
        if item.declined_by:
            for agent_id, until in list(item.declined_by.items()):
                if until <= when:
                    del item.declined_by[agent_id]
        self._unqueue(item)
        self._route_item(item, when, events)

    # ------------------------------------------------------------------ lookups

    def _agent(self, agent_id: str) -> Agent:
        agent = self.agents.get(agent_id)
        if agent is None:
            raise errors.UnknownAgent(f"unknown agent {agent_id!r}")
        return agent

    def _queue(self, queue_id: str) -> Queue:
        queue = self.queues.get(queue_id)
        if queue is None:
            raise errors.UnknownQueue(f"unknown queue {queue_id!r}")
        return queue

    def _item(self, item_id: str) -> WorkItem:
        item = self.items.get(item_id)
        if item is None:
            raise errors.UnknownItem(f"unknown item {item_id!r}")
        return item

    def waiting_count(self, queue_id: str | None = None) -> int:
        """How many items wait (not offered, not assigned), optionally in one queue."""
        return sum(
            1
            for item in self.items.values()
            if item.state == WAITING and (queue_id is None or item.queue_id == queue_id)
        )

    def waiting_total(self) -> int:
        """How many items wait in all queues (from the index counters, no scan of items)."""
        return sum(self._item_key_live.values())

    def items_of(self, agent_id: str) -> list[str]:
        """Ids of the items an agent holds (offered or assigned), sorted."""
        self._agent(agent_id)
        return sorted(self._agent_items[agent_id])

    def can_serve(self, agent: Agent, item: WorkItem) -> bool:
        """Would the agent qualify for the item at its current overflow stage?

        Checks skills and room, not presence; used by tests and supervisors' tools.
        """
        (pool, min_prof) = self._item_key(item)
        if not self._has_room(agent, item.channel):
            return False
        for key, tprof, _lp in self._agent_keys[agent.agent_id].get(item.channel, ()):
            if key == pool and tprof >= min_prof:
                return True
        return False

    # ------------------------------------------------------------------ state

    def snapshot(self) -> dict[str, Any]:
        """Plain data (lists of dicts) for storage; feed it back to :meth:`from_state`."""
        return {
            "agents": [_agent_to_dict(a) for a in self.agents.values()],
            "queues": [_queue_to_dict(q) for q in self.queues.values()],
            "items": [_item_to_dict(i) for i in self.items.values()],
            "offers": [asdict(o) for o in self.offers.values()],
            "next_offer_number": self._next_offer,
        }

    @classmethod
    def from_state(
        cls,
        agents: Iterable[Mapping[str, Any] | Agent],
        queues: Iterable[Mapping[str, Any] | Queue],
        items: Iterable[Mapping[str, Any] | WorkItem],
        offers: Iterable[Mapping[str, Any] | Offer],
        *,
        next_offer_number: int | None = None,
        **config: Any,
    ) -> Router:
        """Rebuild a router from stored plain data (as produced by :meth:`snapshot`).

        Agent load is derived from the items they hold; timers (offer expiry, SLA,
        overflow, callbacks, wrap-up) are rebuilt from the stored fields, so a ``tick`` at
        the current time catches up on anything that fell due while the app was down. No
        new offers are made during the rebuild.
        """
        router = cls(**config)
        for q in queues:
            router.add_queue(q if isinstance(q, Queue) else _queue_from_dict(q))
        for a in agents:
            agent = a if isinstance(a, Agent) else _agent_from_dict(a)
            if agent.agent_id in router.agents:
                raise errors.DuplicateAgent(f"agent {agent.agent_id!r} already exists")
            _validate_agent(agent)
            if agent.presence not in PRESENCES:
                raise errors.InvalidPresence(f"unknown presence {agent.presence!r}")
            agent.load = {}
            agent.total_load = 0
            router._register_agent(agent)
            if agent.presence == WRAP_UP and agent.wrap_up_until is not None:
                heapq.heappush(router._wrap_timers, (agent.wrap_up_until, agent.agent_id, 0))
        offer_list = [o if isinstance(o, Offer) else Offer(**o) for o in offers]
        for o in offer_list:
            router.offers[o.offer_id] = o
            if o.state == PENDING:
                router._agent(o.agent_id)
                router._agent_offers[o.agent_id].add(o.offer_id)
                heapq.heappush(router._offer_timers, (o.expires_at, o.offer_id))
        item_list = [i if isinstance(i, WorkItem) else _item_from_dict(i) for i in items]
        item_list.sort(key=lambda i: i.seq)
        for item in item_list:
            router._restore_item(item)
        router._seq = max((i.seq for i in item_list), default=0)
        numbers = [_offer_number(o.offer_id) for o in offer_list]
        router._next_offer = next_offer_number or max(numbers, default=0) + 1
        for agent in router.agents.values():
            router._reindex(agent)
        return router

    def _restore_item(self, item: WorkItem) -> None:
        if item.item_id in self.items:
            raise errors.DuplicateItem(f"item {item.item_id!r} already exists")
        queue = self._queue(item.queue_id)
        if item.state not in ITEM_STATES:
            raise errors.InvalidItem(f"unknown item state {item.state!r}")
        self.items[item.item_id] = item
        if item.state == SCHEDULED:
            heapq.heappush(
                self._callback_timers,
                (item.callback_at or 0.0, item.seq, item.item_id, item.epoch),
            )
            return
        if item.sla_due is not None and not item.sla_breached:
            heapq.heappush(self._sla_timers, (item.sla_due, item.seq, item.item_id, item.epoch))
        for index in range(item.stage, len(queue.overflow)):
            step = queue.overflow[index]
            heapq.heappush(
                self._overflow_timers,
                (item.queued_at + step.after_seconds, item.seq, item.item_id, item.epoch, index),
            )
        for until in (item.declined_by or {}).values():
            heapq.heappush(self._retry_timers, (until, item.seq, item.item_id, item.epoch))
        if item.state in (OFFERED, ASSIGNED):
            agent = self._agent(item.agent_id or "")
            agent.load[item.channel] = agent.load.get(item.channel, 0) + 1
            agent.total_load += 1
            self._agent_items[agent.agent_id].add(item.item_id)
            return
        self._route_waiting_only(item)

    def _route_waiting_only(self, item: WorkItem) -> None:
        key = self._item_key(item)
        item.version += 1
        heap = self._item_heaps.setdefault(key, [])
        self._item_key_live.setdefault(key, 0)
        heapq.heappush(heap, (item.rank, item.seq, item.item_id, item.version))
        self._item_key_live[key] += 1
        self._item_key_of[item.item_id] = key


def _offer_number(offer_id: str) -> int:
    tail = offer_id.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _check_channel(channel: str) -> None:
    if channel not in CHANNELS:
        raise errors.UnknownChannel(f"unknown channel {channel!r}")


def _check_proficiency(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not (
        MIN_PROFICIENCY <= value <= MAX_PROFICIENCY
    ):
        raise errors.InvalidSkill(
            f"proficiency for {name!r} must be {MIN_PROFICIENCY}-{MAX_PROFICIENCY}, got {value!r}"
        )


def _validate_agent(agent: Agent) -> None:
    if not agent.agent_id:
        raise errors.InvalidSkill("an agent needs an id")
    for name, prof in {**agent.topics, **agent.languages}.items():
        if not name or name == ANY_LANGUAGE:
            raise errors.InvalidSkill(f"invalid skill name {name!r}")
        _check_proficiency(name, prof)
    for channel, cap in agent.capacity.items():
        _check_channel(channel)
        if isinstance(cap, bool) or not isinstance(cap, int) or cap < 0:
            raise errors.InvalidCapacity(f"capacity for {channel} must be 0 or more, got {cap!r}")
    if agent.max_total is not None and agent.max_total < 0:
        raise errors.InvalidCapacity("max_total must be 0 or more")
    if agent.wrap_up_seconds is not None and agent.wrap_up_seconds < 0:
        raise errors.InvalidCapacity("wrap_up_seconds must be 0 or more")


def _validate_queue(queue: Queue) -> None:
    if not queue.queue_id or not queue.department or not queue.topic:
        raise errors.InvalidQueue("a queue needs an id, a department and a topic")
    for channel in queue.channels:
        _check_channel(channel)
    if queue.sla_target_seconds <= 0:
        raise errors.InvalidQueue("sla_target_seconds must be positive")
    _check_proficiency(queue.topic, queue.min_proficiency)
    for step in queue.overflow:
        if step.action not in OVERFLOW_ACTIONS:
            raise errors.InvalidQueue(f"unknown overflow action {step.action!r}")
        if step.after_seconds < 0:
            raise errors.InvalidQueue("overflow after_seconds must be 0 or more")


def _agent_to_dict(agent: Agent) -> dict[str, Any]:
    data = {f.name: getattr(agent, f.name) for f in fields(Agent)}
    for derived in ("load", "total_load", "version"):
        del data[derived]
    for name in ("topics", "languages", "capacity"):
        data[name] = dict(data[name])
    return data


def _agent_from_dict(data: Mapping[str, Any]) -> Agent:
    clean = {k: v for k, v in data.items() if k not in ("load", "total_load", "version")}
    return Agent(**clean)


def _queue_to_dict(queue: Queue) -> dict[str, Any]:
    data = asdict(queue)
    if queue.hours is not None:
        data["hours"] = {
            "tz": queue.hours.tz,
            "windows": {str(k): [list(w) for w in v] for k, v in queue.hours.windows.items()},
            "holidays": sorted(queue.hours.holidays),
        }
    data["overflow"] = [{"after_seconds": s.after_seconds, "action": s.action}
                        for s in queue.overflow]
    data["languages"] = list(queue.languages)
    data["channels"] = list(queue.channels)
    return data


def _queue_from_dict(data: Mapping[str, Any]) -> Queue:
    values = dict(data)
    hours = values.get("hours")
    if isinstance(hours, Mapping):
        values["hours"] = BusinessHours(
            tz=hours.get("tz", "UTC"),
            windows={
                int(k): tuple((w[0], w[1]) for w in v)
                for k, v in hours.get("windows", {}).items()
            },
            holidays=frozenset(hours.get("holidays", ())),
        )
    values["overflow"] = tuple(
        s if isinstance(s, OverflowStep) else OverflowStep(**s)
        for s in values.get("overflow", ())
    )
    values["languages"] = tuple(values.get("languages", ()))
    values["channels"] = tuple(values.get("channels", CHANNELS))
    return Queue(**values)


def _item_to_dict(item: WorkItem) -> dict[str, Any]:
    data = {f.name: getattr(item, f.name) for f in fields(WorkItem)}
    data["accessibility"] = list(item.accessibility)
    data["declined_by"] = dict(sorted(item.declined_by.items())) if item.declined_by else {}
    data["history"] = [dict(h) for h in item.history]
    del data["version"]
    return data


def _item_from_dict(data: Mapping[str, Any]) -> WorkItem:
    values = {k: v for k, v in data.items() if k != "version"}
    values["accessibility"] = tuple(values.get("accessibility", ()))
    declined = values.get("declined_by")
    values["declined_by"] = dict(declined) if declined else None
    values["history"] = [dict(h) for h in values.get("history", ())]
    return WorkItem(**values)
