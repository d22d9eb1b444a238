"""The database ending a session or failing a statement, on the private PostgreSQL
cluster (these are PostgreSQL's behaviours, so they run on it whatever ``DATABASE_URL``
says): a pooled connection the server ended is replaced before use, a deadlock victim
is written again, and each process keeps its pool of connections open."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Interaction
from app.services.hotpath import autocommitted
from app.services.intake import intake
from channels.base import InboundMessage


def test_a_pooled_connection_the_database_ended_is_replaced_before_use(fault_app):
    """A restart or an administrator ends idle sessions; the pool hands out a live one
    instead (checked at checkout without a query), so the next request just works."""
    with db.engine.connect() as conn:
        ended = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    # The connection is idle in the pool now; end its session from another one.
    admin = sa.create_engine(db.engine.url)
    with admin.connect() as other:
        assert other.execute(sa.text("SELECT pg_terminate_backend(:pid)"),
                             {"pid": ended}).scalar_one()
    admin.dispose()
    time.sleep(0.2)  # the server's goodbye reaches the socket
    with db.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one() != ended
        assert conn.execute(sa.text("SELECT count(*) FROM queues")).scalar_one() >= 0


BACKEND = sa.text("SELECT pg_backend_pid()")
NOTE = sa.text("INSERT INTO audit_log (at, action, object_type, object_id, detail) "
               "VALUES (now(), 'test.autocommit', 'test', :n, '{}')")


def test_autocommitted_statements_commit_and_the_connection_returns_as_it_came(fault_app):
    """``hotpath.autocommitted`` runs each statement committed on its own, then hands the
    connection back to the pool in transaction mode, as the session expects it; a
    connection the server ended under it fails with SQLAlchemy's ``OperationalError``
    (a 503 for a webhook) and is dropped from the pool, never handed out again."""
    with autocommitted() as run:
        first = run.scalar(BACKEND, {})
        run.execute(NOTE, {"n": "1"})
    with db.engine.connect() as conn:  # the same pooled connection, in a transaction
        assert conn.connection.driver_connection.autocommit is False
        assert conn.execute(BACKEND).scalar_one() == first
        assert conn.execute(sa.text(
            "SELECT count(*) FROM audit_log WHERE action = 'test.autocommit'")).scalar_one() == 1

    admin = sa.create_engine(db.engine.url)
    with pytest.raises(sa.exc.OperationalError), autocommitted() as run:
        ended = run.scalar(BACKEND, {})
        with admin.connect() as other:
            other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": ended})
        run.execute(NOTE, {"n": "2"})
    admin.dispose()
    with autocommitted() as run:
        assert run.scalar(BACKEND, {}) != ended
        run.execute(NOTE, {"n": "3"})


DEADLOCK = sa.text("DO $$ BEGIN RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01'; "
                   "END $$")


def test_a_deadlock_victim_is_tried_again_and_stored_once(fault_app, monkeypatch):
    """Two messages on one ticket can deadlock in the database, which then fails one of
    them whole; intake tries that one again, and the message is stored exactly once."""
    from app.services import message_write

    write, calls = message_write.write, []

    def deadlocking_once(run, w):
        calls.append(1)
        if len(calls) == 1:  # the database's own deadlock error, through the real driver
            run.execute(DEADLOCK, {})
        return write(run, w)

    monkeypatch.setattr(message_write, "write", deadlocking_once)
    result = intake(InboundMessage(channel="sms", provider_id="SM-deadlock",
                                   sender="+15555550123", text="is my permit ready?"))
    assert len(calls) == 2 and not result.duplicate
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Interaction)) == 1
    assert db.session.get(Interaction, result.interaction_id).text == "is my permit ready?"


def test_postgresql_pool_keeps_the_configured_connections(fault_app):
    """25 kept open and none opened for a burst (a request waits for a free one)."""
    assert db.engine.pool.size() == fault_app.config["DB_POOL_SIZE"] == 25
    assert db.engine.pool._max_overflow == fault_app.config["DB_MAX_OVERFLOW"] == 0


def test_postgresql_pool_hands_out_the_connection_returned_last(fault_app):
    """Last in, first out: a process works on as few server processes as it needs."""
    db.session.remove()
    first, second = db.engine.connect(), db.engine.connect()
    pids = [c.exec_driver_sql("SELECT pg_backend_pid()").scalar() for c in (first, second)]
    first.close()
    second.close()
    with db.engine.connect() as again:
        assert again.exec_driver_sql("SELECT pg_backend_pid()").scalar() == pids[1]
