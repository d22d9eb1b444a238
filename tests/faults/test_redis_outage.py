"""Redis stopped while SMS, email and chat messages keep arriving.

Every accepted message is committed before the webhook answers; enqueueing the follow-up
job fails while Redis is down, so the job is parked in ``pending_jobs`` and the webhook
still answers 200/202. When Redis is back, the ``pending-jobs`` schedule re-enqueues the
parked jobs and the workers catch up: every message gets its follow-up once, with no
duplicate interactions or work items. The test keeps Redis down for about 10 seconds;
the same reasoning holds for 30 seconds or longer (nothing is held in memory meanwhile,
only rows in PostgreSQL), it only takes longer to run. An RQ worker exits when Redis
drops in the middle of a job; like production (systemd ``Restart=always``), the test
runs it under a supervisor that restarts it.
"""

from __future__ import annotations

import time

import socketio
import sqlalchemy as sa

from app.extensions import db
from app.models import Interaction, PendingJob, Queue, WorkItem
from tests.faults.conftest import wait_until
from tests.faults.helpers import post_email, post_sms, raw_email, sms_form

OUTAGE_SECONDS = 10


def _seed_queue() -> None:
    db.session.add(Queue(code="general", name="General", channels=["sms", "email", "chat"],
                         business_hours={}, holidays=[]))
    db.session.commit()


def _followed_up_count() -> int:
    db.session.expire_all()
    return db.session.scalar(sa.select(sa.func.count(sa.distinct(WorkItem.ticket_id))))


def _inbound_ids(channel: str, provider_ids: list[str]) -> list[str]:
    db.session.expire_all()
    return db.session.scalars(sa.select(Interaction.provider_id).where(
        Interaction.channel == channel, Interaction.direction == "inbound",
        Interaction.provider_id.in_(provider_ids))).all()


def test_messages_arriving_while_redis_is_down_are_stored_and_followed_up(
        fault_app, processes, private_redis):
    _seed_queue()
    web = processes.web()
    processes.worker(supervised=True)
    sms_sids: list[str] = []
    email_ids: list[str] = []

    def send_sms(body: str) -> None:
        form = sms_form(body)
        response = post_sms(web, form)
        assert response.status_code == 200, response.text
        sms_sids.append(form["MessageSid"])

    def send_email(body: str, n: int) -> None:
        raw, message_id = raw_email(body, f"resident{n}@residents.example")
        response = post_email(web, raw)
        assert response.status_code in (200, 202), response.text
        email_ids.append(message_id)

    chat = socketio.Client(reconnection=False)
    chat.connect(web, namespaces=["/chat"], transports=["websocket"], wait_timeout=30)
    assert chat.call("chat.start", {"name": "Resident"}, namespace="/chat", timeout=30)["ok"]
    chat_ids: list[str] = []

    def send_chat(body: str) -> None:
        client_id = f"c{len(chat_ids)}"
        ack = chat.call("chat.message", {"text": body, "client_id": client_id},
                        namespace="/chat", timeout=30)
        assert ack["ok"], ack
        chat_ids.append(ack["message"]["id"])

    for n in range(3):
        send_sms(f"before the outage {n}")
        send_email(f"before the outage {n}", n)
    send_chat("before the outage")

    # This Redis keeps no data across restarts (like a cache-configured Redis), so let
    # the workers drain what is queued first; production Redis should use AOF (README).
    wait_until(lambda: _followed_up_count() == 6, 90, "work queued before the outage")
    private_redis.stop()
    replay = None
    started = time.monotonic()
    n = 100
    while time.monotonic() - started < OUTAGE_SECONDS:
        send_sms(f"during the outage {n}")
        send_email(f"during the outage {n}", n)
        if n % 5 == 0:  # residents' chat is rate-limited to 10 messages per 10 s
            send_chat(f"during the outage {n}")
        if replay is None:
            replay = sms_form("a copy Twilio sends again", sid=sms_sids[-1])
        n += 1
        time.sleep(0.25)
    # Twilio retrying a webhook during the outage: answered, never stored twice.
    assert post_sms(web, {**sms_form("x"), **{k: replay[k] for k in ("MessageSid",)},
                          "From": replay["From"]}).status_code == 200

    # Everything answered was committed before the answer, Redis or not.
    assert sorted(_inbound_ids("sms", sms_sids)) == sorted(sms_sids)
    assert sorted(_inbound_ids("email", email_ids)) == sorted(email_ids)
    stored_chat = db.session.scalars(sa.select(Interaction.id).where(
        Interaction.channel == "chat", Interaction.direction == "inbound")).all()
    assert sorted(stored_chat) == sorted(chat_ids)
    parked = db.session.scalar(sa.select(sa.func.count()).select_from(PendingJob))
    assert parked >= 2 * (n - 100), "follow-up jobs were not parked while Redis was down"

    private_redis.start()

    def all_followed_up():
        db.session.expire_all()
        if db.session.scalar(sa.select(sa.func.count()).select_from(PendingJob)):
            return False
        # SMS and email are routed to a queue; chat answers first and routes on request.
        tickets = db.session.scalars(sa.select(Interaction.ticket_id).where(
            Interaction.direction == "inbound", Interaction.channel != "chat")).all()
        routed = db.session.scalars(sa.select(WorkItem.ticket_id)).all()
        return set(tickets) <= set(routed)

    try:
        wait_until(all_followed_up, 120, "parked follow-ups to run after Redis came back",
                   interval=0.5)
    except AssertionError:
        routed = set(db.session.scalars(sa.select(WorkItem.ticket_id)).all())
        missing = db.session.execute(sa.select(
            Interaction.ticket_id, Interaction.channel, Interaction.text).where(
            Interaction.direction == "inbound", Interaction.channel != "chat",
            Interaction.ticket_id.not_in(routed))).all()
        pending = db.session.execute(sa.select(PendingJob.func, PendingJob.args)).all()
        raise AssertionError(f"not followed up: {missing}; still parked: {pending}") from None
    # No duplicates anywhere: one interaction per provider id, one work item per ticket.
    for channel, ids in (("sms", sms_sids), ("email", email_ids)):
        stored = _inbound_ids(channel, ids)
        assert len(stored) == len(set(ids)), f"duplicate {channel} interactions"
    per_ticket = db.session.execute(sa.select(WorkItem.ticket_id, sa.func.count()).group_by(
        WorkItem.ticket_id).having(sa.func.count() > 1)).all()
    assert per_ticket == []
    chat.disconnect()
