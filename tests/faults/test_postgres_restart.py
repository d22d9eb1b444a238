"""PostgreSQL restarted under load. Webhooks that arrive while the database is down get
503 (TwiML for Twilio, which retries; JSON elsewhere), never a 200 for data that was not
stored; when PostgreSQL is back the app reconnects on its own (the pool's checkout check) and
every message answered 200 is in the database exactly once."""

from __future__ import annotations

import threading
import time

import sqlalchemy as sa

from app.extensions import db
from app.models import Interaction
from tests.faults.conftest import wait_until
from tests.faults.helpers import post_sms, sms_form

THREADS = 8


def test_webhooks_during_a_database_restart_get_503_and_nothing_answered_200_is_lost(
        fault_app, processes, private_pg):
    web = processes.web()
    outcomes: list[tuple[str, int]] = []
    stop = threading.Event()
    lock = threading.Lock()

    def load(worker: int) -> None:
        while not stop.is_set():
            form = sms_form(f"load {worker}")
            try:
                status = post_sms(web, form, timeout=60).status_code
            except Exception:  # noqa: BLE001 - a refused request is an answer too
                status = -1
            with lock:
                outcomes.append((form["MessageSid"], status))
            time.sleep(0.05)

    threads = [threading.Thread(target=load, args=(n,), daemon=True) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    wait_until(lambda: sum(1 for _, s in outcomes if s == 200) >= 20, 60, "load to start")
    db.session.remove()
    db.engine.dispose()
    private_pg.stop("immediate")  # a crash, not a polite shutdown
    wait_until(lambda: sum(1 for _, s in outcomes if s == 503) >= 5, 60,
               "webhooks to be refused while the database is down")
    private_pg.start()
    restarted = len(outcomes)
    wait_until(lambda: sum(1 for _, s in outcomes[restarted:] if s == 200) >= 20, 90,
               "the app to reconnect and store messages again")
    stop.set()
    for thread in threads:
        thread.join(70)

    statuses = {s for _, s in outcomes}
    assert statuses <= {200, 503}, f"unexpected answers: {statuses - {200, 503}}"
    answered = [sid for sid, s in outcomes if s == 200]
    stored = db.session.scalars(sa.select(Interaction.provider_id).where(
        Interaction.channel == "sms", Interaction.direction == "inbound")).all()
    missing = set(answered) - set(stored)
    assert not missing, f"{len(missing)} messages answered 200 were not stored"
    assert len(stored) == len(set(stored)), "a message was stored twice"
    # Twilio's retry of a refused webhook is stored once, after the outage.
    refused = next(sid for sid, s in outcomes if s == 503)
    retry = post_sms(web, sms_form("retried by Twilio", sid=refused))
    assert retry.status_code == 200
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Interaction).where(
        Interaction.provider_id == refused)) == 1
