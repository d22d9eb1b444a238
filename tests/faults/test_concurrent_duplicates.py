"""Fifty concurrent copies of the same webhook (a provider retrying aggressively, or a
load balancer replaying) against gunicorn on PostgreSQL: one interaction."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from app.extensions import db
from app.models import Citizen, ContactPoint, Interaction, Ticket
from tests.faults.helpers import post_email, post_sms, raw_email, sms_form

COPIES = 50


def _fire(send) -> list[int]:
    barrier = threading.Barrier(COPIES)
    statuses: list[int] = []
    lock = threading.Lock()

    def one() -> None:
        barrier.wait(30)
        status = send().status_code
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=one) for _ in range(COPIES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return statuses


def _count(model, *where) -> int:
    db.session.expire_all()
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def test_fifty_copies_of_one_sms_make_one_interaction(fault_app, processes):
    web = processes.web()
    form = sms_form("is the library open on Sunday?", sender="+15555550777")
    statuses = _fire(lambda: post_sms(web, form, timeout=120))
    assert statuses == [200] * COPIES
    assert _count(Interaction, Interaction.provider_id == form["MessageSid"]) == 1
    # The first message from a new number: one citizen, one contact point, one ticket.
    assert _count(ContactPoint, ContactPoint.value == "+15555550777") == 1
    assert _count(Citizen) == 1 and _count(Ticket) == 1


def test_fifty_copies_of_one_email_make_one_interaction(fault_app, processes):
    web = processes.web()
    raw, message_id = raw_email("My trash was not picked up", "resident@residents.example")
    statuses = _fire(lambda: post_email(web, raw, timeout=120))
    assert set(statuses) <= {200, 202} and len(statuses) == COPIES
    assert _count(Interaction, Interaction.provider_id == message_id) == 1
    assert _count(Ticket) == 1
