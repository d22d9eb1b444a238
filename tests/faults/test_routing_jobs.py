"""Routing jobs on a real Redis: a burst of arrivals queues one routing job, whose step
takes in every item of the burst (``followup.queue_routing``); an item that arrives once
that job has started queues a job of its own."""

from __future__ import annotations

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
    followup.queue_routing(104)  # arrived after the job started: a job of its own
    assert _routing_jobs(redis) == ["route-101", "route-104"]


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
