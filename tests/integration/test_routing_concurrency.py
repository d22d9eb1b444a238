"""No duplicate offers or assignments when two workers route, accept and complete at once.

On PostgreSQL the workers are two OS processes (the advisory lock is what keeps them
apart); on SQLite, where the embedded mode runs one process, they are two threads.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import threading
import time
from collections import defaultdict

import sqlalchemy as sa

from app.extensions import db
from app.models import AgentSkill, Citizen, Offer, Queue, Skill, Ticket, User, WorkItem
from app.services import ServiceError, followup, routing_service

AGENTS = 4
CHAT_CAPACITY = 2
ITEMS = 40
TIME_LIMIT = 90.0


def _setup() -> None:
    queue = Queue(code="benefits", name="Benefits", department="Human Services",
                  required_skills=["benefits"], channels=["chat"], sla_target_seconds=60)
    topic = Skill(kind="topic", code="benefits", name="benefits")
    language = Skill(kind="language", code="en", name="en")
    db.session.add_all([queue, topic, language])
    db.session.flush()
    for n in range(AGENTS):
        user = User(email=f"agent{n}@example.org", name=f"Agent {n}", password_hash="x",
                    role="agent", capacity={"chat": CHAT_CAPACITY}, presence="offline")
        db.session.add(user)
        db.session.flush()
        db.session.add_all([AgentSkill(agent_id=user.id, skill_id=topic.id, proficiency=3),
                            AgentSkill(agent_id=user.id, skill_id=language.id, proficiency=5)])
    for n in range(ITEMS):
        citizen = Citizen(display_name=f"Resident {n}", language="en")
        db.session.add(citizen)
        db.session.flush()
        ticket = Ticket(citizen_id=citizen.id, subject=f"Question {n}", topic="benefits",
                        channel="chat", language="en")
        db.session.add(ticket)
        db.session.flush()
        followup.ensure_work_item(ticket)
    db.session.commit()


def _work(seed: int, start_at: float) -> dict[str, int]:
    """One worker: route, accept any open offer, complete assigned work, until done."""
    rng = random.Random(seed)
    counts = {"steps": 0, "accepted": 0, "completed": 0, "conflicts": 0}
    agents = list(db.session.scalars(sa.select(User).order_by(User.id)))
    while time.time() < start_at:
        time.sleep(0.005)
    for user in agents:
        routing_service.set_presence(user.id, "available", user)
    deadline = time.monotonic() + TIME_LIMIT
    while time.monotonic() < deadline:
        db.session.expire_all()
        open_items = db.session.scalar(sa.select(sa.func.count()).select_from(WorkItem).where(
            WorkItem.status.in_(("waiting", "offered", "assigned"))))
        if not open_items:
            break
        routing_service.route(None)
        counts["steps"] += 1
        offers = db.session.scalars(sa.select(Offer).where(Offer.status == "pending")).all()
        for offer in rng.sample(offers, len(offers)):
            try:
                routing_service.accept(offer.id, db.session.get(User, offer.agent_id))
                counts["accepted"] += 1
            except ServiceError as exc:
                assert exc.status in (404, 409), exc.message
                counts["conflicts"] += 1
        assigned = db.session.scalars(sa.select(WorkItem).where(
            WorkItem.status == "assigned")).all()
        for item in rng.sample(assigned, len(assigned))[:3]:
            ticket = db.session.get(Ticket, item.ticket_id)
            try:
                routing_service.complete(ticket, db.session.get(User, item.agent_id), "answered")
                counts["completed"] += 1
            except ServiceError as exc:
                assert exc.status in (403, 409), exc.message
                counts["conflicts"] += 1
    return counts


def _process_main(seed: int, start_at: float, results) -> None:
    """Entry point of a child process: its own app, engine and connections."""
    from app import create_app
    from tests.conftest import _test_config

    app = create_app(_test_config())
    with app.app_context():
        results.put(_work(seed, start_at))
        db.session.remove()
        db.engine.dispose()


def _intervals_never_exceed(intervals: list[tuple], limit: int) -> int:
    """The most intervals open at once (an interval closing at t ends before one opening)."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                   key=lambda e: (e[0], e[1]))
    open_now = peak = 0
    for _, delta in edges:
        open_now += delta
        peak = max(peak, open_now)
    return peak


def test_two_workers_never_offer_or_assign_an_item_twice(app):
    _setup()
    postgres = db.engine.dialect.name == "postgresql"
    start_at = time.time() + (4.0 if postgres else 0.2)
    if postgres:
        ctx = multiprocessing.get_context("spawn")
        results = ctx.Queue()
        workers = [ctx.Process(target=_process_main, args=(seed, start_at, results))
                   for seed in (1, 2)]
        for worker in workers:
            worker.start()
        counts = [results.get(timeout=TIME_LIMIT + 60) for _ in workers]
        for worker in workers:
            worker.join(timeout=30)
            assert worker.exitcode == 0
        assert len({w.pid for w in workers} | {os.getpid()}) == 3  # three OS processes
    else:
        counts, failures = [], []

        def run(seed: int) -> None:
            with app.app_context():
                try:
                    counts.append(_work(seed, start_at))
                except Exception as exc:  # noqa: BLE001 - reported below
                    failures.append(exc)
                finally:
                    db.session.remove()

        threads = [threading.Thread(target=run, args=(seed,)) for seed in (1, 2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIME_LIMIT + 60)
        assert failures == []
    assert all(c["steps"] > 0 for c in counts)

    db.session.expire_all()
    items = {i.id: i for i in db.session.scalars(sa.select(WorkItem))}
    assert len(items) == ITEMS
    assert all(i.status == "completed" for i in items.values())
    assert sum(c["accepted"] for c in counts) == ITEMS
    assert sum(c["completed"] for c in counts) == ITEMS

    offers = db.session.scalars(sa.select(Offer).order_by(Offer.id)).all()
    by_item: dict[int, list[Offer]] = defaultdict(list)
    for offer in offers:
        by_item[offer.work_item_id].append(offer)
    for item_id, item_offers in by_item.items():
        assert [o.status for o in item_offers].count("accepted") == 1, item_id
        for earlier, later in zip(item_offers, item_offers[1:], strict=False):
            assert later.created_at >= earlier.responded_at, (item_id, earlier.id, later.id)
        assert all(o.status != "pending" for o in item_offers)
        tickets = db.session.get(Ticket, items[item_id].ticket_id)
        accepted = next(o for o in item_offers if o.status == "accepted")
        assert tickets.assigned_agent_id == accepted.agent_id

    held: dict[int, list[tuple]] = defaultdict(list)
    for offer in offers:
        end = items[offer.work_item_id].ended_at if offer.status == "accepted" else (
            offer.responded_at)
        held[offer.agent_id].append((offer.created_at, end))
    for agent_id, intervals in held.items():
        assert _intervals_never_exceed(intervals, CHAT_CAPACITY) <= CHAT_CAPACITY, agent_id
