"""Routing jobs on a real Redis: a burst of arrivals queues one routing job, whose step
takes in every item of the burst (``followup.queue_routing``); an item that arrives once
that job has started queues a job of its own, to start no sooner than the spacing
after that one."""

from __future__ import annotations

import time

import sqlalchemy as sa
from rq import Queue, SimpleWorker

from app.extensions import db
from app.models import Queue as ServiceQueue
from app.models import WorkItem
from app.services import followup
from app.services.intake import intake
from channels.base import InboundMessage


def _routing_jobs(redis) -> list[str]:
    return [i.decode() for i in redis.lrange(Queue("default", connection=redis).key, 0, -1)]


def _work(redis, queue: str) -> None:
    SimpleWorker([Queue(queue, connection=redis)], connection=redis).work(
        burst=True, with_scheduler=False)


def test_arrivals_while_a_routing_job_waits_queue_no_other(fault_app):
    redis = fault_app.extensions["civicline_jobs"].connection
    for item_id in (101, 102, 103):
        followup.queue_routing(item_id)
    assert _routing_jobs(redis) == ["route-101"]
    assert 0 < redis.ttl(followup.ROUTING_PENDING_KEY) <= followup.ROUTING_PENDING_TTL
    assert followup.take_routing_flag() is True  # the job starts: its step must run
    assert followup.take_routing_flag() is False  # a later job finds no flag
    redis.delete(followup.ROUTING_STEP_AT_KEY)  # ...at once with no spacing (next test)
    followup.queue_routing(104)  # arrived after the job started: a job of its own...
    assert _routing_jobs(redis) == ["route-101", "route-104"]


def test_routing_jobs_start_at_least_the_spacing_apart(fault_app):
    """In a storm, a routing job (whose step reads every open item) starts at most once
    per ``ROUTING_STEP_SPACING_SECONDS``; in a quiet moment at once."""
    redis = fault_app.extensions["civicline_jobs"].connection
    fault_app.config["ROUTING_STEP_SPACING_SECONDS"] = 3.0
    followup.queue_routing(101)
    assert followup.take_routing_flag() is True  # route-101 starts now
    started = float(redis.get(followup.ROUTING_STEP_AT_KEY))
    followup.queue_routing(102)  # a second later than that at most
    followup.queue_routing(103)  # rides on route-102
    assert _routing_jobs(redis) == ["route-101"]
    registry = Queue("default", connection=redis).scheduled_job_registry
    assert registry.get_job_ids() == ["route-102"]
    due = registry.get_scheduled_time("route-102").timestamp()
    assert started + 3.0 - 1.0 <= due <= started + 3.0 + 1.0  # RQ keeps whole seconds

    redis.delete(followup.ROUTING_PENDING_KEY)
    redis.set(followup.ROUTING_STEP_AT_KEY, repr(time.time() - 3.5))  # long past
    followup.queue_routing(104)
    assert _routing_jobs(redis) == ["route-101", "route-104"]
    assert registry.get_job_ids() == ["route-102"]

    # A step "in the future" (another machine's clock runs ahead) delays no more than
    # the spacing.
    redis.delete(followup.ROUTING_PENDING_KEY)
    redis.set(followup.ROUTING_STEP_AT_KEY, repr(time.time() + 60))
    followup.queue_routing(105)
    due = registry.get_scheduled_time("route-105").timestamp()
    assert due <= time.time() + 3.0 + 1.0


def test_one_routing_job_takes_in_every_item_of_a_burst(fault_app):
    redis = fault_app.extensions["civicline_jobs"].connection
    db.session.add(ServiceQueue(code="general", name="General", business_hours={},
                                holidays=[], channels=["sms"]))
    db.session.commit()
    for n in range(3):
        intake(InboundMessage(channel="sms", provider_id=f"SMburst{n}",
                              sender=f"+1555555{n:04d}", text="my permit application"))
    _work(redis, "inbound")  # the follow-ups: acknowledgements and work items
    items = db.session.scalars(sa.select(WorkItem)).all()
    assert len(items) == 3
    assert all(item.status == "waiting" and item.queued_at is None for item in items)
    [job_id] = _routing_jobs(redis)
    assert job_id == f"route-{min(item.id for item in items)}"
    _work(redis, "default")
    db.session.expire_all()
    items = db.session.scalars(sa.select(WorkItem)).all()
    assert all(item.queued_at is not None for item in items)
    assert not redis.exists(followup.ROUTING_PENDING_KEY)
