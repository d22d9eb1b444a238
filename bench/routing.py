"""Benchmark of the routing core at city scale.

Builds 5,000 agents, 200 queues (20 departments of 10 service lines), an email backlog
of 100,000 waiting items, then plays 200,000 arrival, completion and presence events
(accepting every offer right away) and reports events per second, p50/p99 time per
decision (each router call timed with ``time.perf_counter_ns``), peak memory, and an
Erlang C table comparing theory with the simulator. The last line is the p99 figure.

Run: ``python -m bench.routing`` (add ``--quick`` for a smaller run).
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time

from routing.engine import Router
from routing.erlang import evaluate
from routing.events import OfferMade
from routing.model import AVAILABLE, AWAY, Agent, OverflowStep, Queue, WorkItem
from routing.sim import run_simulation, theory_config

LANGUAGES = ("en", "es", "zh", "vi")
LANGUAGE_WEIGHTS = (0.7, 0.2, 0.06, 0.04)


class Bench:
    def __init__(self, seed: int, agents: int, departments: int, topics_per_department: int):
        self.rng = random.Random(seed)
        self.router = Router(offer_timeout_seconds=30.0)
        self.now = 0.0
        self.timings: list[int] = []
        self.pending_offers: list[str] = []
        self.assigned: list[str] = []
        self.assigned_pos: dict[str, int] = {}
        self.item_number = 0
        self.topics: list[str] = []
        self.departments = departments
        self.topics_per_department = topics_per_department
        self.agent_count = agents

    def timed(self, call, *args):
        start = time.perf_counter_ns()
        events = call(*args)
        self.timings.append(time.perf_counter_ns() - start)
        self.collect(events)
        return events

    def collect(self, events) -> None:
        for event in events:
            if isinstance(event, OfferMade):
                self.pending_offers.append(event.offer_id)

    def accept_all(self) -> None:
        router = self.router
        while self.pending_offers:
            offer_id = self.pending_offers.pop()
            offer = router.offers.get(offer_id)
            if offer is None or offer.state != "pending":
                continue
            self.timed(router.accept, offer_id, self.now)
            self._mark_assigned(offer.item_id)

    def _mark_assigned(self, item_id: str) -> None:
        self.assigned_pos[item_id] = len(self.assigned)
        self.assigned.append(item_id)

    def _unmark(self, item_id: str) -> None:
        pos = self.assigned_pos.pop(item_id)
        last = self.assigned.pop()
        if last != item_id:
            self.assigned[pos] = last
            self.assigned_pos[last] = pos

    def build(self) -> None:
        rng = self.rng
        for d in range(self.departments):
            for t in range(self.topics_per_department):
                topic = f"dept{d:02d}-topic{t}"
                self.topics.append(topic)
                self.router.add_queue(
                    Queue(
                        queue_id=f"q-{topic}",
                        department=f"dept{d:02d}",
                        topic=topic,
                        sla_target_seconds=60.0,
                        min_proficiency=2,
                        overflow=(
                            OverflowStep(60.0, "relax_proficiency"),
                            OverflowStep(180.0, "department"),
                            OverflowStep(600.0, "general"),
                        ),
                    )
                )
        for n in range(self.agent_count):
            d = n % self.departments
            topic_ids = rng.sample(range(self.topics_per_department), 3)
            topics = {f"dept{d:02d}-topic{t}": rng.randint(1, 5) for t in topic_ids}
            languages = {"en": 5}
            if rng.random() < 0.35:
                languages[rng.choice(LANGUAGES[1:])] = rng.randint(3, 5)
            agent = Agent(
                agent_id=f"agent-{n:05d}",
                topics=topics,
                languages=languages,
                capacity={"voice": 1, "chat": 3, "email": 2},
                presence=AVAILABLE,
            )
            self.collect(self.router.add_agent(agent, now=0.0))

    def new_item(self, channel: str, arrived_at: float | None = None) -> WorkItem:
        self.item_number += 1
        topic = self.rng.choice(self.topics)
        language = self.rng.choices(LANGUAGES, LANGUAGE_WEIGHTS)[0]
        return WorkItem(
            item_id=f"item-{self.item_number:07d}",
            channel=channel,
            queue_id=f"q-{topic}",
            language=language,
            urgency=self.rng.choice((1, 2, 2, 3)),
            accessibility=("deaf",) if self.rng.random() < 0.02 else (),
            arrived_at=arrived_at,
        )

    def backlog(self, waiting: int) -> None:
        """Email backlog: fill every agent's email capacity, then ``waiting`` more."""
        target = waiting
        while self.router.waiting_total() < target:
            item = self.new_item("email", arrived_at=-self.rng.uniform(0, 86400.0))
            self.collect(self.router.arrive(item, self.now))
            self.accept_all()

    def step(self) -> None:
        rng = self.rng
        roll = rng.random()
        self.now += 0.005
        router = self.router
        if roll < 0.45:
            channel = rng.choices(("voice", "chat", "email"), (0.5, 0.3, 0.2))[0]
            self.timed(router.arrive, self.new_item(channel), self.now)
        elif roll < 0.9 and self.assigned:
            item_id = self.assigned[rng.randrange(len(self.assigned))]
            self._unmark(item_id)
            self.timed(router.complete, item_id, self.now)
        else:
            agent_id = f"agent-{rng.randrange(self.agent_count):05d}"
            agent = router.agents[agent_id]
            presence = AWAY if agent.presence in (AVAILABLE, "busy") else AVAILABLE
            self.timed(router.set_presence, agent_id, presence, self.now)
        self.accept_all()


def percentile(sorted_values: list[int], share: float) -> int:
    return sorted_values[min(len(sorted_values) - 1, int(share * len(sorted_values)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.routing")
    parser.add_argument("--quick", action="store_true", help="a tenth of the size")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args(argv)
    scale = 10 if args.quick else 1
    agents, backlog, events = 5000 // scale, 100_000 // scale, 200_000 // scale

    started = time.perf_counter()
    bench = Bench(args.seed, agents, departments=20, topics_per_department=10)
    bench.build()
    print(f"built {agents:,} agents and {len(bench.router.queues)} queues "
          f"in {time.perf_counter() - started:.1f} s", flush=True)
    bench.backlog(backlog)
    bench.timings.clear()
    print(f"email backlog: {bench.router.waiting_total():,} waiting items, "
          f"{len(bench.assigned):,} assigned, {time.perf_counter() - started:.1f} s", flush=True)

    run_start = time.perf_counter()
    for n in range(1, events + 1):
        bench.step()
        if n % 1000 == 0:
            bench.router.tick(bench.now)
        if n % (events // 10) == 0:
            elapsed = time.perf_counter() - run_start
            print(f"  {n:,} events, {n / elapsed:,.0f} events/s, "
                  f"{bench.router.waiting_total():,} waiting", flush=True)
    elapsed = time.perf_counter() - run_start
    timings = sorted(bench.timings)
    p50 = percentile(timings, 0.50) / 1e6
    p99 = percentile(timings, 0.99) / 1e6
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"events: {events:,} in {elapsed:.1f} s = {events / elapsed:,.0f} events/s "
          f"({len(timings):,} decisions incl. accepts)")
    print(f"decision time: p50 {p50:.3f} ms, p99 {p99:.3f} ms, max {timings[-1] / 1e6:.1f} ms")
    print(f"peak memory (max RSS): {peak_mib:,.0f} MiB")

    print("Erlang C vs simulation (200 contacts/h, 180 s handle, 20 s target, "
          "30,000 contacts each):")
    print(f"  {'agents':>6} {'P(wait) th':>11} {'sim':>7} {'SL th':>7} {'sim':>7} "
          f"{'ASA th':>7} {'sim':>7} {'occ th':>7} {'sim':>7}")
    for count in (12, 13, 14, 16):
        theory = evaluate(count, 10.0, 180.0, 20.0)
        sim = run_simulation(theory_config(count, 30_000, seed=args.seed))
        print(f"  {count:>6} {theory.probability_of_waiting:>11.3f} "
              f"{sim.overall.probability_of_waiting:>7.3f} {theory.service_level:>7.3f} "
              f"{sim.overall.service_level:>7.3f} {theory.average_speed_of_answer:>7.1f} "
              f"{sim.overall.asa:>7.1f} {theory.occupancy:>7.3f} {sim.occupancy:>7.3f}")
    print(f"routing decision p99: {p99:.1f} ms" if p99 >= 0.1 else
          f"routing decision p99: {p99:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
