"""An RQ worker (``flask worker``) killed with SIGKILL in the middle of sending.

Decision (see the README's reliability section): Twilio's Messages API takes no
idempotency key, so a message whose send was interrupted cannot be proven sent or unsent.
The outbox therefore never re-sends a row left in "sending": after its lease
(``OUTBOX_SENDING_TIMEOUT``) the sweep settles it as "unknown" for an operator to check
the provider's log. Every other message is delivered exactly once after the restart.
Result: each message reached the provider at most once, and each row ends "sent"
(exactly one provider request) or "unknown" (at most one)."""

from __future__ import annotations

import signal
from collections import Counter

import sqlalchemy as sa

from app.extensions import db
from app.models import Citizen, ContactPoint, Interaction, Outbox, Ticket
from app.services import outbound
from channels.email.outbound import message_id_for
from tests.faults.conftest import wait_until
from tests.faults.fakes import read_twilio_log

SMS_COUNT, EMAIL_COUNT = 8, 4


def _tickets() -> tuple[Ticket, Ticket]:
    citizen = Citizen(display_name="Maria")
    db.session.add(citizen)
    db.session.flush()
    db.session.add_all([
        ContactPoint(citizen_id=citizen.id, kind="phone", value="+15555550123"),
        ContactPoint(citizen_id=citizen.id, kind="email", value="maria@residents.example"),
    ])
    sms = Ticket(citizen_id=citizen.id, subject="Benefits", channel="sms", status="open")
    email = Ticket(citizen_id=citizen.id, subject="Trash", channel="email", status="open")
    db.session.add_all([sms, email])
    db.session.commit()
    return sms, email


def _statuses() -> Counter:
    db.session.expire_all()
    return Counter(db.session.scalars(sa.select(Outbox.status)).all())


def test_worker_killed_mid_send_delivers_at_most_once_and_settles_the_rest(
        fault_app, processes, smtp_capture):
    sms_ticket, email_ticket = _tickets()
    for n in range(SMS_COUNT):
        outbound.queue_message(sms_ticket, "sms", f"SMS reply number {n}")
    for n in range(EMAIL_COUNT):
        outbound.queue_message(email_ticket, "email", f"Email reply number {n}",
                               subject="Your case")
    env = {"SMTP_URL": smtp_capture.url, "OUTBOX_SENDING_TIMEOUT": "3"}
    twilio_log = processes.env["FAULT_TWILIO_LOG"]
    # Twilio takes 3 s to answer: the kill lands while it "has" the third message.
    worker = processes.worker("worker-1", extra_env={**env, "FAULT_TWILIO_DELAY": "3"})
    wait_until(lambda: len(read_twilio_log(twilio_log)) >= 3, 120, "three sends to start",
               interval=0.02)
    processes.kill(worker, signal.SIGKILL)
    assert _statuses()["sending"] == 1, "the kill should interrupt one send"

    processes.worker("worker-2", extra_env=env)
    wait_until(lambda: _statuses()["sent"] == SMS_COUNT + EMAIL_COUNT - 1, 120,
               "the other messages to be delivered after the restart", interval=0.25)
    # The worker's schedule runs the sweep every minute; run it here too once the lease
    # has expired, so the test need not wait for the next minute.
    try:
        wait_until(lambda: outbound.sweep() is not None and _statuses()["unknown"] == 1, 30,
                   "the interrupted send to be settled", interval=0.5)
    except AssertionError:
        rows = db.session.execute(sa.select(Outbox.id, Outbox.status, Outbox.next_attempt_at,
                                            Outbox.attempts)).all()
        raise AssertionError(f"outbox after the sweep: {rows}") from None
    assert _statuses() == {"sent": SMS_COUNT + EMAIL_COUNT - 1, "unknown": 1}

    sends = Counter(r["data"]["Body"] for r in read_twilio_log(twilio_log)
                    if r["url"].endswith("/Messages.json"))
    mails = Counter(m["message_id"] for m in smtp_capture.messages)
    db.session.expire_all()
    for row in db.session.scalars(sa.select(Outbox)):
        if row.channel == "sms":
            copies = sends[db.session.get(Interaction, row.interaction_id).text]
        else:
            copies = mails[message_id_for(row.key, fault_app.config["EMAIL_DOMAIN"])]
        if row.status == "sent":
            assert copies == 1, f"{row.channel} outbox {row.id} reached the provider {copies}x"
        else:
            assert copies <= 1 and row.last_error.startswith("the sending worker stopped")
