"""Realtime events held for a job's pipeline (``realtime.held``), on a real Redis: an
inbound message's events reach other processes in the same transaction as its follow-up
job, an agent's reply's with its delivery job, and an event held with nowhere to travel
is still published."""

from __future__ import annotations

import json
import time

import pytest
import redis
from flask import current_app

from app import jobs, realtime
from app.extensions import socketio
from app.services.intake import intake
from channels.base import InboundMessage
from tests.faults.conftest import wait_until
from tests.faults.helpers import Monitor

CHANNEL = "flask-socketio"


def _subscriber(url: str):
    pubsub = redis.Redis.from_url(url).pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(CHANNEL)
    return pubsub


def _events(pubsub, want: int, timeout: float = 10) -> list[str]:
    found, deadline = [], time.monotonic() + timeout
    while len(found) < want and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message and message["type"] == "message":
            found.append(json.loads(message["data"])["event"])
    return found


@pytest.fixture
def app_with_events(fault_app):
    fault_app.config["REALTIME_DISABLED"] = False  # this process emits here
    return fault_app


def _sms(n: int) -> InboundMessage:
    return InboundMessage(channel="sms", provider_id=f"SMheld{n:030d}",
                          sender="+15555550123", recipient="+15555550100",
                          text="When is my property tax due?")


def test_a_messages_events_travel_with_its_follow_up_job_in_one_transaction(
        app_with_events, private_redis):
    private_redis.flush()
    pubsub = _subscriber(private_redis.url)
    monitor = Monitor(private_redis.url)
    try:
        result = intake(_sms(1))
    finally:
        time.sleep(0.3)
        monitor.stop()

    # Other processes' consoles hear of the new ticket and its message...
    assert _events(pubsub, 2) == ["ticket.created", "interaction.created"]
    # ...and the follow-up job is queued for a worker.
    queued = redis.Redis.from_url(private_redis.url).lrange("rq:queue:inbound", 0, -1)
    assert len(queued) == 1
    # Both went to Redis in the job's MULTI/EXEC: no PUBLISH of their own.
    names = monitor.names()
    multi, exec_ = names.index("MULTI"), names.index("EXEC")
    assert [n for n in names[multi:exec_] if n == "PUBLISH"] == ["PUBLISH", "PUBLISH"]
    assert names.count("PUBLISH") == 2
    assert result.created_ticket


def test_events_held_with_no_job_to_carry_them_are_published_when_the_block_ends(
        app_with_events, private_redis):
    private_redis.flush()
    pubsub = _subscriber(private_redis.url)
    with realtime.held() as batch:
        realtime.emit("ticket.updated", {"id": 1}, rooms=["supervisors"])
        assert len(batch.messages) == 1
        assert _events(pubsub, 1, timeout=0.5) == []  # held, not yet sent
    assert _events(pubsub, 1) == ["ticket.updated"]


def test_a_message_queue_on_another_server_is_published_on_its_own(app_with_events,
                                                                   private_redis):
    private_redis.flush()
    manager = socketio.server.manager
    assert isinstance(manager, realtime.RedisMessageQueue) and manager.shares_server
    pubsub = _subscriber(private_redis.url)
    manager.shares_server = False  # as when SOCKETIO_MESSAGE_QUEUE names another Redis
    try:
        with realtime.held() as batch:
            realtime.emit("ticket.updated", {"id": 2}, rooms=["supervisors"])
            jobs.enqueue("app.tasks.process_inbound", 0, publishes=batch)
            assert len(batch.messages) == 1  # the jobs pipeline could not carry it
        assert _events(pubsub, 1) == ["ticket.updated"]
    finally:
        manager.shares_server = True
    wait_until(lambda: current_app.extensions["civicline_jobs"].queue("inbound").count == 1,
               10, "the job to be queued")


def test_an_agents_reply_is_announced_with_its_delivery_job_in_one_transaction(
        app_with_events, private_redis):
    from app.extensions import db
    from app.models import Ticket, User
    from app.services import replies

    private_redis.flush()
    ticket = db.session.get(Ticket, intake(_sms(2), follow_up=False).ticket_id)
    agent = User(email="replying-agent@example.org", name="Ana", role="agent",
                 password_hash="")
    db.session.add(agent)
    db.session.commit()
    pubsub = _subscriber(private_redis.url)
    monitor = Monitor(private_redis.url)
    try:
        reply = replies.reply(ticket, agent, "Property taxes are due January 31.")
    finally:
        time.sleep(0.3)
        monitor.stop()

    assert _events(pubsub, 1) == ["interaction.created"]  # consoles see it queued
    assert reply.delivery_status == "queued"
    queued = redis.Redis.from_url(private_redis.url).lrange("rq:queue:outbound", 0, -1)
    assert [job_id.decode() for job_id in queued] == [f"outbox-{reply._staged_outbox.id}"]
    names = monitor.names()
    multi, exec_ = names.index("MULTI"), names.index("EXEC")
    assert names[multi:exec_].count("PUBLISH") == 1 and names.count("PUBLISH") == 1
