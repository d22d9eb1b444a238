"""Discrete-event simulation of a contact center driving the real :class:`Router`.

Contacts arrive as Poisson processes per channel, language and topic; handle times are
exponential or lognormal; residents abandon after an exponential patience (optional);
agents have skills and optional staggered shifts. Every decision is made by the same
``Router`` the app uses; the simulator only plays the residents and the agents (agents
accept offers at once) and keeps score. All randomness comes from one seeded
``random.Random``, so a run is reproducible.

Reported per queue and overall: service level (share answered within the queue's SLA
target, abandoned contacts counted as missed), average speed of answer, abandonment,
occupancy (share of staffed agent time holding at least one item) and wait parity: mean
and 95th percentile wait by language, channel and segment.

Run ``python -m routing.sim --help``.
"""

from __future__ import annotations

import argparse
import heapq
import math
import random
import sys
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from routing.engine import Router
from routing.events import AgentPresenceChanged, Assigned, ItemCompleted
from routing.model import AVAILABLE, CHANNELS, OFFLINE, WAITING, Agent, Queue, WorkItem

LIVE_CHANNELS = frozenset({"voice", "chat", "walkin"})  # email and SMS residents do not hang up
DEFAULT_CAPACITY = {"voice": 1, "chat": 3, "email": 5, "sms": 5, "walkin": 1}


@dataclass(slots=True)
class SimConfig:
    """What to simulate. Rates are contacts per hour for each (channel, language, topic)."""

    seed: int = 1
    contacts: int = 10_000
    agents: int = 20
    topics: tuple[str, ...] = ("benefits", "licenses", "taxes")
    languages: tuple[str, ...] = ("en", "es")
    language_weights: tuple[float, ...] = (0.8, 0.2)
    channels: tuple[str, ...] = ("voice", "chat", "email")
    channel_weights: tuple[float, ...] = (0.5, 0.3, 0.2)
    segments: tuple[str, ...] = ("adult", "senior", "youth", "business")
    segment_weights: tuple[float, ...] = (0.55, 0.25, 0.1, 0.1)
    contacts_per_hour: float = 200.0
    handle_seconds: dict[str, float] = field(
        default_factory=lambda: {"voice": 300.0, "chat": 480.0, "email": 600.0,
                                 "sms": 400.0, "walkin": 600.0}
    )
    handle_distribution: str = "exponential"  # or "lognormal"
    lognormal_sigma: float = 0.8
    patience_seconds: float | None = 300.0  # mean; None: nobody abandons
    sla_target_seconds: float = 60.0
    wrap_up_seconds: float = 0.0
    capacity: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_CAPACITY))
    second_language_share: float = 0.3
    topics_per_agent: int = 2
    shift_seconds: float | None = None  # None: everyone works the whole run
    tick_seconds: float | None = None  # run timers (overflow, SLA) this often
    warmup_contacts: int = 0


@dataclass(slots=True)
class ContactRecord:
    queue_id: str
    channel: str
    language: str
    segment: str
    arrived_at: float
    wait: float | None = None
    abandoned: bool = False


@dataclass(slots=True)
class GroupStats:
    contacts: int
    answered: int
    abandoned: int
    service_level: float
    asa: float
    abandonment: float
    mean_wait: float
    p95_wait: float
    probability_of_waiting: float


@dataclass(slots=True)
class SimResult:
    overall: GroupStats
    per_queue: dict[str, GroupStats]
    by_language: dict[str, GroupStats]
    by_channel: dict[str, GroupStats]
    by_segment: dict[str, GroupStats]
    occupancy: float
    sim_seconds: float


def _percentile(sorted_values: Sequence[float], share: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, max(0, math.ceil(share * len(sorted_values)) - 1))
    return sorted_values[index]


def summarize(records: Sequence[ContactRecord], target: float) -> GroupStats:
    """Service level, ASA, abandonment and wait spread for a group of contacts."""
    waits = sorted(r.wait for r in records if r.wait is not None)
    abandoned = sum(1 for r in records if r.abandoned)
    total = len(records)
    answered = len(waits)
    within = sum(1 for w in waits if w <= target)
    return GroupStats(
        contacts=total,
        answered=answered,
        abandoned=abandoned,
        service_level=within / total if total else 0.0,
        asa=sum(waits) / answered if answered else 0.0,
        abandonment=abandoned / total if total else 0.0,
        mean_wait=sum(waits) / answered if answered else 0.0,
        p95_wait=_percentile(waits, 0.95),
        probability_of_waiting=sum(1 for w in waits if w > 1e-9) / answered if answered else 0.0,
    )


class Simulation:
    """One simulated run. ``run()`` returns a :class:`SimResult`."""

    def __init__(self, config: SimConfig, progress: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.rng = random.Random(config.seed)
        self.progress = progress
        self.router = Router(
            auto_accept_channels=CHANNELS,
            wrap_up_seconds={c: config.wrap_up_seconds for c in CHANNELS},
        )
        self.events: list[tuple[float, int, str, str]] = []
        self._seq = 0
        self.records: dict[str, ContactRecord] = {}
        self.finished: list[ContactRecord] = []
        self._busy_since: dict[str, float] = {}
        self._load: dict[str, int] = defaultdict(int)
        self._busy_seconds = 0.0
        self._staffed_since: dict[str, float] = {}
        self._staffed_seconds = 0.0
        self.now = 0.0
        self._next_report = 1
        self._build()

    def _push(self, when: float, kind: str, key: str) -> None:
        self._seq += 1
        heapq.heappush(self.events, (when, self._seq, kind, key))

    def _build(self) -> None:
        cfg = self.config
        for topic in cfg.topics:
            self.router.add_queue(
                Queue(
                    queue_id=topic,
                    department="general",
                    topic=topic,
                    channels=tuple(cfg.channels),
                    sla_target_seconds=cfg.sla_target_seconds,
                )
            )
        for n in range(cfg.agents):
            primary = cfg.languages[n % len(cfg.languages)] if n < len(cfg.languages) else (
                self.rng.choices(cfg.languages, cfg.language_weights)[0]
            )
            languages = {primary: 5}
            others = [lang for lang in cfg.languages if lang != primary]
            if others and self.rng.random() < cfg.second_language_share:
                languages[self.rng.choice(others)] = self.rng.randint(2, 5)
            count = min(len(cfg.topics), cfg.topics_per_agent)
            topics = {t: self.rng.randint(2, 5) for t in self.rng.sample(cfg.topics, count)}
            agent = Agent(
                agent_id=f"agent-{n:04d}",
                topics=topics,
                languages=languages,
                capacity={c: cfg.capacity.get(c, 0) for c in cfg.channels},
            )
            self.router.add_agent(agent, now=0.0)
            if cfg.shift_seconds:
                offset = cfg.shift_seconds * (n % 3) / 3
                self._push(offset, "shift_start", agent.agent_id)
            else:
                self._push(0.0, "shift_start", agent.agent_id)
        self._push(self._next_gap(), "arrival", "")
        if cfg.tick_seconds:
            self._push(cfg.tick_seconds, "tick", "")

    def _next_gap(self) -> float:
        rate = self.config.contacts_per_hour / 3600.0
        return self.rng.expovariate(rate)

    def _handle_time(self, channel: str) -> float:
        cfg = self.config
        mean = cfg.handle_seconds.get(channel, 300.0)
        if cfg.handle_distribution == "lognormal":
            sigma = cfg.lognormal_sigma
            mu = math.log(mean) - sigma * sigma / 2
            return self.rng.lognormvariate(mu, sigma)
        return self.rng.expovariate(1.0 / mean)

    def _handle_events(self, events: list) -> None:
        for event in events:
            if isinstance(event, Assigned):
                record = self.records.get(event.item_id)
                if record is not None and record.wait is None:
                    record.wait = event.waited_seconds
                channel = self.router.items[event.item_id].channel
                self._agent_load(event.agent_id, +1)
                self._push(self.now + self._handle_time(channel), "complete", event.item_id)
            elif isinstance(event, ItemCompleted):
                self._agent_load(event.agent_id, -1)
            elif isinstance(event, AgentPresenceChanged) and event.new == "wrap_up":
                self._push(self.now + self.config.wrap_up_seconds + 1e-9, "tick", "wrap")

    def _agent_load(self, agent_id: str, delta: int) -> None:
        before = self._load[agent_id]
        after = before + delta
        self._load[agent_id] = after
        if before == 0 and after > 0:
            self._busy_since[agent_id] = self.now
        elif before > 0 and after == 0:
            self._busy_seconds += self.now - self._busy_since.pop(agent_id)

    def _arrival(self) -> None:
        cfg = self.config
        rng = self.rng
        n = len(self.records) + len(self.finished)
        item_id = f"item-{n:07d}"
        channel = rng.choices(cfg.channels, cfg.channel_weights)[0]
        language = rng.choices(cfg.languages, cfg.language_weights)[0]
        topic = rng.choice(cfg.topics)
        segment = rng.choices(cfg.segments, cfg.segment_weights)[0]
        record = ContactRecord(topic, channel, language, segment, self.now)
        self.records[item_id] = record
        item = WorkItem(item_id, channel, topic, language)
        self._handle_events(self.router.arrive(item, self.now))
        if cfg.patience_seconds and record.wait is None and channel in LIVE_CHANNELS:
            patience = rng.expovariate(1.0 / cfg.patience_seconds)
            self._push(self.now + patience, "abandon", item_id)
        if n + 1 < cfg.contacts:
            self._push(self.now + self._next_gap(), "arrival", "")

    def _finish(self, item_id: str) -> None:
        record = self.records.pop(item_id, None)
        if record is not None:
            self.finished.append(record)

    def _more_to_come(self) -> bool:
        return bool(self.records) or len(self.finished) < self.config.contacts

    def _on_arrival(self, when: float, key: str) -> None:
        self._arrival()
        done = len(self.records) + len(self.finished)
        if self.progress and done >= self._next_report:
            self.progress(f"  {done:,} / {self.config.contacts:,} contacts, t={when / 3600:.1f} h")
            self._next_report += max(1, self.config.contacts // 10)

    def _on_complete(self, when: float, key: str) -> None:
        if key in self.router.items:
            self._handle_events(self.router.complete(key, when))
        self._finish(key)

    def _on_abandon(self, when: float, key: str) -> None:
        item = self.router.items.get(key)
        if item is not None and item.state == WAITING:
            self.router.abandon(key, when)
            self.records[key].abandoned = True
            self._finish(key)

    def _on_tick(self, when: float, key: str) -> None:
        self._handle_events(self.router.tick(when))
        if key == "" and self._more_to_come():
            self._push(when + (self.config.tick_seconds or 1.0), "tick", "")

    def _on_shift_start(self, when: float, key: str) -> None:
        self._staffed_since[key] = when
        self._handle_events(self.router.set_presence(key, AVAILABLE, when))
        if self.config.shift_seconds:
            self._push(when + self.config.shift_seconds * 2 / 3, "shift_end", key)

    def _on_shift_end(self, when: float, key: str) -> None:
        shift = self.config.shift_seconds or 0.0
        self._staffed_seconds += when - self._staffed_since.pop(key)
        self._handle_events(self.router.set_presence(key, OFFLINE, when))
        if self._more_to_come():
            self._push(when + shift / 3, "shift_start", key)

    def run(self) -> SimResult:
        """Play events in time order until every contact is answered or abandoned."""
        handlers = {
            "arrival": self._on_arrival,
            "complete": self._on_complete,
            "abandon": self._on_abandon,
            "tick": self._on_tick,
            "shift_start": self._on_shift_start,
            "shift_end": self._on_shift_end,
        }
        self._next_report = max(1, self.config.contacts // 10)
        while self.events:
            when, _seq, kind, key = heapq.heappop(self.events)
            self.now = when
            handlers[kind](when, key)
            if not self._more_to_come():
                break
        end = self.now
        for since in self._staffed_since.values():
            self._staffed_seconds += end - since
        for since in self._busy_since.values():
            self._busy_seconds += end - since
        return self._result(end)

    def _result(self, end: float) -> SimResult:
        cfg = self.config
        records = self.finished[cfg.warmup_contacts:]
        target = cfg.sla_target_seconds

        def grouped(attr: str) -> dict[str, GroupStats]:
            groups: dict[str, list[ContactRecord]] = defaultdict(list)
            for r in records:
                groups[getattr(r, attr)].append(r)
            return {k: summarize(v, target) for k, v in sorted(groups.items())}

        return SimResult(
            overall=summarize(records, target),
            per_queue=grouped("queue_id"),
            by_language=grouped("language"),
            by_channel=grouped("channel"),
            by_segment=grouped("segment"),
            occupancy=self._busy_seconds / self._staffed_seconds if self._staffed_seconds else 0.0,
            sim_seconds=end,
        )


def run_simulation(config: SimConfig, progress: Callable[[str], None] | None = None) -> SimResult:
    """Run one simulation and return its figures."""
    return Simulation(config, progress).run()


def theory_config(agents: int, contacts: int, seed: int = 7) -> SimConfig:
    """One skill, one channel, no abandonment: the M/M/N system Erlang C describes.

    100 contacts per 30 minutes, 180 s exponential handle time, 20 s target.
    """
    return SimConfig(
        seed=seed,
        contacts=contacts,
        agents=agents,
        topics=("general",),
        languages=("en",),
        language_weights=(1.0,),
        channels=("voice",),
        channel_weights=(1.0,),
        contacts_per_hour=200.0,
        handle_seconds={"voice": 180.0},
        patience_seconds=None,
        sla_target_seconds=20.0,
        second_language_share=0.0,
        topics_per_agent=1,
        warmup_contacts=min(1000, contacts // 20),
    )


def format_table(title: str, rows: dict[str, GroupStats]) -> list[str]:
    lines = [title, f"  {'group':<12}{'contacts':>9}{'SL':>8}{'ASA s':>9}{'aband':>8}"
             f"{'mean s':>9}{'p95 s':>9}"]
    for name, s in rows.items():
        lines.append(
            f"  {name:<12}{s.contacts:>9}{s.service_level:>8.1%}{s.asa:>9.1f}"
            f"{s.abandonment:>8.1%}{s.mean_wait:>9.1f}{s.p95_wait:>9.1f}"
        )
    return lines


def report(result: SimResult) -> list[str]:
    """Human-readable figures for a run."""
    lines = format_table("per queue:", result.per_queue)
    lines += format_table("overall:", {"all": result.overall})
    lines.append(f"occupancy: {result.occupancy:.1%}")
    lines += format_table("wait parity by language:", result.by_language)
    lines += format_table("wait parity by channel:", result.by_channel)
    lines += format_table("wait parity by segment:", result.by_segment)
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m routing.sim",
        description="Simulate a CivicLine contact center with the real routing core.",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--contacts", type=int, default=10_000)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--rate", type=float, default=200.0, help="contacts per hour")
    parser.add_argument("--topics", default="benefits,licenses,taxes")
    parser.add_argument("--languages", default="en,es")
    parser.add_argument("--channels", default="voice,chat,email")
    parser.add_argument("--handle", choices=("exponential", "lognormal"), default="exponential")
    parser.add_argument("--patience", type=float, default=300.0,
                        help="mean patience in seconds; 0 for no abandonment")
    parser.add_argument("--sla", type=float, default=60.0, help="SLA target seconds")
    parser.add_argument("--wrap-up", type=float, default=0.0)
    parser.add_argument("--shift-hours", type=float, default=0.0,
                        help="staggered shifts of this length; 0 for always on")
    parser.add_argument("--theory", type=int, metavar="AGENTS", default=0,
                        help="run the Erlang C check with this many agents instead")
    args = parser.parse_args(argv)

    if args.theory:
        from routing.erlang import evaluate

        config = theory_config(args.theory, args.contacts, args.seed)
    else:
        languages = tuple(args.languages.split(","))
        channels = tuple(args.channels.split(","))
        config = SimConfig(
            seed=args.seed,
            contacts=args.contacts,
            agents=args.agents,
            contacts_per_hour=args.rate,
            topics=tuple(args.topics.split(",")),
            languages=languages,
            language_weights=(0.8,) + (0.2 / max(1, len(languages) - 1),) * (len(languages) - 1),
            channels=channels,
            channel_weights=(1.0 / len(channels),) * len(channels),
            handle_distribution=args.handle,
            patience_seconds=args.patience or None,
            sla_target_seconds=args.sla,
            wrap_up_seconds=args.wrap_up,
            shift_seconds=args.shift_hours * 3600 or None,
        )
    print(f"simulating {config.contacts:,} contacts with {config.agents} agents", flush=True)
    result = run_simulation(config, progress=lambda line: print(line, flush=True))
    for line in report(result):
        print(line)
    if args.theory:
        theory = evaluate(config.agents, 10.0, 180.0, 20.0)
        simulated = result.overall
        print(
            f"Erlang C: P(wait) {theory.probability_of_waiting:.3f}, "
            f"SL {theory.service_level:.3f}, ASA {theory.average_speed_of_answer:.1f} s; "
            f"simulated: P(wait) {simulated.probability_of_waiting:.3f}, "
            f"SL {simulated.service_level:.3f}, ASA {simulated.asa:.1f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
