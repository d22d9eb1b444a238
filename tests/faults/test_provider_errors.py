"""Providers failing for a while: Twilio answering 429 and 500, SMTP answering 421 and
451. Deliveries are retried with the job's backoff and then delivered once; a permanent
error fails once (no retry) and the message falls back to the next channel of the
citizen's channel-preference profile. Real PostgreSQL and Redis (RQ), the real twilio
SDK faked at its HTTP boundary, a real SMTP server."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import ChannelProfile, Citizen, ContactPoint, Outbox, Ticket
from app.services import outbound
from tests.fakes.twilio_http import RecordingHttpClient


@pytest.fixture
def resident(fault_app):
    citizen = Citizen(display_name="Maria")
    db.session.add(citizen)
    db.session.flush()
    db.session.add_all([
        ContactPoint(citizen_id=citizen.id, kind="phone", value="+15555550123"),
        ContactPoint(citizen_id=citizen.id, kind="email", value="maria@residents.example"),
        ChannelProfile(citizen_id=citizen.id, preferred_channels=["sms", "email"]),
    ])
    ticket = Ticket(citizen_id=citizen.id, subject="Passport", channel="sms", status="open")
    db.session.add(ticket)
    db.session.commit()
    return ticket


@pytest.fixture
def twilio(fault_app):
    fake = RecordingHttpClient()
    fault_app.config.update(TWILIO_HTTP_CLIENT=fake, TWILIO_ACCOUNT_SID="AC" + "1" * 32,
                            TWILIO_AUTH_TOKEN="fault-token", TWILIO_SIMULATOR=False)
    return fake


def _scheduled_retry_in(fault_app, since: float) -> float:
    """Seconds from ``since`` (just before the failing attempt) to the next attempt."""
    from rq import Queue
    from rq.registry import ScheduledJobRegistry

    runner = fault_app.extensions["civicline_jobs"]
    registry = ScheduledJobRegistry(queue=Queue("outbound", connection=runner.connection))
    (job_id,) = registry.get_job_ids()
    when = registry.get_scheduled_time(job_id)
    return when.timestamp() - since


def _row(interaction) -> Outbox:
    db.session.expire_all()
    return db.session.scalar(sa.select(Outbox).where(Outbox.interaction_id == interaction.id))


def test_twilio_429_and_500_are_retried_with_backoff_then_delivered_once(
        fault_app, resident, twilio):
    twilio.rate_limited(times=2).server_error(times=1)
    reply = outbound.queue_message(resident, "sms", "Your passport is ready")
    runner = fault_app.extensions["civicline_jobs"]
    started = time.time()
    runner.run_pending(include_delayed=False)
    took = time.time() - started
    assert _row(reply).status == "retrying"
    # RQ keeps scheduled times to the second.
    assert 1 <= _scheduled_retry_in(fault_app, started) <= 3 + took, "first retry backs off 2 s"
    runner.run_pending()
    row = _row(reply)
    assert (row.status, row.attempts) == ("sent", 4)
    sends = twilio.requests_to("/Messages.json")
    assert len(sends) == 4 and {r.data["Body"] for r in sends} == {"Your passport is ready"}
    assert row.provider_id and row.provider_id.startswith("SM")


def test_smtp_421_and_451_are_retried_then_delivered_once(fault_app, resident, smtp_capture):
    fault_app.config["SMTP_URL"] = smtp_capture.url
    smtp_capture.script("421 4.3.2 Service not available, closing channel")
    smtp_capture.script("451 4.3.0 Temporary local problem, try later")
    reply = outbound.queue_message(resident, "email", "Your passport is ready",
                                   subject="Your passport")
    runner = fault_app.extensions["civicline_jobs"]
    started = time.time()
    runner.run_pending(include_delayed=False)
    took = time.time() - started
    assert _row(reply).status == "retrying"
    assert 1 <= _scheduled_retry_in(fault_app, started) <= 3 + took
    runner.run_pending()
    row = _row(reply)
    assert (row.status, row.attempts) == ("sent", 3)
    assert [r[:3] for r in smtp_capture.replies] == ["421", "451", "250"]
    (mail,) = smtp_capture.messages
    assert mail["to"] == ["maria@residents.example"] and mail["message_id"] == row.provider_id


def test_a_permanent_error_fails_once_and_falls_back_to_the_next_channel(
        fault_app, resident, twilio, smtp_capture):
    fault_app.config["SMTP_URL"] = smtp_capture.url
    twilio.fail(400, 21211, "The 'To' number is not a valid phone number.")
    reply = outbound.queue_message(resident, "sms", "Your passport is ready")
    fault_app.extensions["civicline_jobs"].run_pending()
    failed = _row(reply)
    assert (failed.status, failed.attempts) == ("failed", 1)
    assert len(twilio.requests_to("/Messages.json")) == 1, "a permanent error is not retried"
    fallback = db.session.scalar(sa.select(Outbox).where(Outbox.fallback_of_id == failed.id))
    assert (fallback.channel, fallback.status) == ("email", "sent")
    (mail,) = smtp_capture.messages
    assert mail["to"] == ["maria@residents.example"]
