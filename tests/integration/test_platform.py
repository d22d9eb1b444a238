"""Platform: config, migrations, jobs, realtime, health, metrics, CLI, outbound basics."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Interaction, Outbox, Queue, User
from app.services.intake import intake
from channels.base import InboundMessage

ROOT = Path(__file__).resolve().parents[2]


def test_production_refuses_to_start_without_a_real_secret(monkeypatch):
    from app import create_app
    from app.config import ConfigError, ProductionConfig

    class Prod(ProductionConfig):
        SECRET_KEY = "civicline-dev-key-change-me"

    with pytest.raises(ConfigError, match="SECRET_KEY"):
        create_app(Prod)


def test_migrations_have_one_head_and_match_the_models(app):
    from alembic.autogenerate import compare_metadata
    from alembic.config import Config
    from alembic.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from flask_migrate import Config as _unused  # noqa: F401

    cfg = Config(str(ROOT / "migrations" / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    assert len(ScriptDirectory.from_config(cfg).get_heads()) == 1
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True,
                                                     "render_as_batch": True})
        diff = compare_metadata(ctx, db.metadata)
    assert diff == []


def test_healthz_and_metrics(client, seeded):
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json["checks"]["database"] == "ok"
    intake(InboundMessage(channel="sms", provider_id="SM1", sender="+15555550500", text="x"),
           follow_up=False)
    m = client.get("/metrics")
    assert m.status_code == 200
    assert 'civicline_inbound_messages_total{channel="sms",duplicate="false"}' in m.text


def _gauge(text: str, name: str, queue: str) -> float:
    prefix = f'{name}{{queue="{queue}"}} '
    [line] = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(line[len(prefix):])


def test_metrics_count_open_tickets_and_queued_jobs_down_to_zero(client, seeded):
    """An operator reads the backlog of each service queue and each job queue; a queue
    that emptied reads 0, not its last count."""
    from app.models import Ticket

    runner = client.application.extensions["civicline_jobs"]
    result = intake(InboundMessage(channel="sms", provider_id="SM-gauge", sender="+15555550501",
                                   text="when is the pool open?"))
    text = client.get("/metrics").text
    assert _gauge(text, "civicline_jobs_queued", "inbound") == 1  # its follow-up
    assert _gauge(text, "civicline_jobs_queued", "outbound") == 0
    runner.run_pending()  # the follow-up files the ticket in a queue
    db.session.expire_all()
    ticket = db.session.get(Ticket, result.ticket_id)
    code = db.session.get(Queue, ticket.queue_id).code
    text = client.get("/metrics").text
    assert _gauge(text, "civicline_jobs_queued", "inbound") == 0
    assert _gauge(text, "civicline_open_tickets", code) == 1
    ticket.status = "resolved"
    db.session.commit()
    text = client.get("/metrics").text
    assert _gauge(text, "civicline_open_tickets", code) == 0


def test_metrics_leave_out_a_backlog_they_cannot_read(client, seeded, monkeypatch):
    from redis.exceptions import ConnectionError as RedisConnectionError

    runner = client.application.extensions["civicline_jobs"]
    assert _gauge(client.get("/metrics").text, "civicline_jobs_queued", "inbound") == 0

    def unreachable():
        raise RedisConnectionError("Redis is away")

    monkeypatch.setattr(runner, "backlog", unreachable)
    m = client.get("/metrics")
    assert m.status_code == 200
    assert "civicline_jobs_queued{" not in m.text  # not the last count, as if still true
    assert "civicline_open_tickets{" in m.text  # the rest still answers


def test_cli_users_create_and_seed_is_idempotent(runner, app):
    r = runner.invoke(args=["users", "create", "--email", "Sup@Example.org", "--role",
                            "supervisor", "--password", "long-enough-pw"])
    assert r.exit_code == 0, r.output
    user = db.session.scalar(sa.select(User).where(User.email == "sup@example.org"))
    assert user.role == "supervisor" and user.check_password("long-enough-pw")
    r = runner.invoke(args=["users", "create", "--email", "a@b.org", "--password", "short"])
    assert r.exit_code != 0 and "8 characters" in r.output
    assert runner.invoke(args=["seed-demo"]).exit_code == 0
    counts = db.session.scalar(sa.select(sa.func.count()).select_from(Queue))
    assert runner.invoke(args=["seed-demo"]).exit_code == 0
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Queue)) == counts >= 5


def test_worker_logs_each_job_only_when_asked(runner, app, caplog):
    """A busy worker logs failures and warnings, not four lines per job; ``--job-logs``
    brings the per-job lines back. Finished jobs are kept in Redis only a few seconds."""
    from app import jobs

    if not app.config.get("REDIS_URL"):
        assert runner.invoke(args=["worker", "--burst", "--job-logs"]).exit_code != 0
        return
    runner_ = app.extensions["civicline_jobs"]
    quiet = jobs.enqueue("app.tasks.sweep_outbox")
    assert runner.invoke(args=["worker", "--burst", "--no-schedules"]).exit_code == 0
    assert quiet not in caplog.text
    loud = jobs.enqueue("app.tasks.sweep_outbox")
    assert runner.invoke(args=["worker", "--burst", "--no-schedules", "--job-logs"]).exit_code == 0
    assert f"Job OK ({loud})" in caplog.text
    for job_id in (quiet, loud):
        assert 0 < runner_.connection.ttl(f"rq:job:{job_id}") <= jobs.RESULT_TTL


def test_worker_command(runner, app):
    """With Redis the worker serves the queues; without it, it says why none is needed."""
    r = runner.invoke(args=["worker", "--burst"])
    if app.config.get("REDIS_URL"):
        assert r.exit_code == 0 and "worker serving inbound" in r.output
    else:
        assert r.exit_code != 0 and "REDIS_URL" in r.output
    bad = runner.invoke(args=["worker", "--queues", "nope"])
    assert bad.exit_code != 0


def test_jobs_retry_transient_failures_then_succeed(app, run_jobs):
    from app import jobs
    from tests.integration import job_fixtures

    job_fixtures.CALLS.clear()
    jobs.enqueue(job_fixtures.flaky, "k1", 2)
    run_jobs()
    from app.extensions import redis_store

    if redis_store.client is not None:
        calls = [c.decode() for c in redis_store.client.lrange("test:flaky:calls", 0, -1)]
    else:
        calls = job_fixtures.CALLS
    assert calls == ["k1", "k1", "k1"]


def test_realtime_event_reaches_agent_console(app, live_server, make_user):
    """A real Socket.IO client connected to a real server gets intake's events."""
    import threading

    import socketio as sio

    from app.auth import issue_token

    agent = make_user(role="supervisor")
    token = issue_token(agent)
    received: dict[str, dict] = {}
    got = threading.Event()
    client = sio.Client(reconnection=False)

    # Only this test's message counts: another process sharing the Redis message queue
    # may publish its own events to the same rooms.
    @client.on("interaction.created", namespace="/agent")
    def _on_interaction(data):
        if data["interaction"]["text"] == "new here":
            received["interaction.created"] = data
            got.set()

    @client.on("ticket.created", namespace="/agent")
    def _on_ticket(data):
        if data["subject"] == "new here":
            received["ticket.created"] = data

    client.connect(live_server, namespaces=["/agent"], auth={"token": token},
                   transports=["websocket"], wait_timeout=10)
    try:
        intake(InboundMessage(channel="sms", provider_id="SM1", sender="+15555550600",
                              text="new here"), follow_up=False)
        assert got.wait(10), "no realtime event arrived"
        assert received["interaction.created"]["interaction"]["text"] == "new here"
        assert received["ticket.created"]["channel"] == "sms"
    finally:
        client.disconnect()
    refused = sio.Client(reconnection=False)
    with pytest.raises(sio.exceptions.ConnectionError):
        refused.connect(live_server, namespaces=["/agent"], auth={"token": "bad"},
                        transports=["websocket"], wait_timeout=5)


def test_outbound_reply_is_delivered_to_simulator_outbox(app, run_jobs):
    from app.models import Ticket
    from app.services import outbound

    r = intake(InboundMessage(channel="sms", provider_id="SM1", sender="+15555550700",
                              text="hi"), follow_up=False)
    ticket = db.session.get(Ticket, r.ticket_id)
    reply = outbound.queue_message(ticket, "sms", "Hello from the city")
    assert reply.delivery_status == "queued"
    run_jobs()
    db.session.expire_all()
    row = db.session.scalar(sa.select(Outbox))
    assert row.status == "sent" and row.simulated and row.attempts == 1
    assert db.session.get(Interaction, reply.id).delivery_status == "delivered"
    # Running the job again does not send twice.
    outbound.deliver(row.id)
    db.session.expire_all()
    assert db.session.get(Outbox, row.id).attempts == 1


def test_opted_out_number_is_refused_and_failure_falls_back(app, run_jobs):
    from app.models import ContactPoint, Ticket
    from app.services import Invalid, outbound
    from channels.base import PermanentDeliveryError

    r = intake(InboundMessage(channel="sms", provider_id="SM1", sender="+15555550800",
                              text="hi"), follow_up=False)
    ticket = db.session.get(Ticket, r.ticket_id)
    db.session.add(ContactPoint(citizen_id=r.citizen_id, kind="email", value="r@example.org"))
    db.session.commit()

    def failing_sender(_app):
        def send(message):
            raise PermanentDeliveryError("unsubscribed", code="21610", opted_out=True)
        return send

    outbound.register_sender("sms", failing_sender)
    try:
        outbound.queue_message(ticket, "sms", "Your answer")
        run_jobs()
    finally:
        outbound._SENDERS.pop("sms", None)
    db.session.expire_all()
    rows = db.session.scalars(sa.select(Outbox).order_by(Outbox.id)).all()
    assert [(o.channel, o.status) for o in rows] == [("sms", "failed"), ("email", "sent")]
    assert rows[1].fallback_of_id == rows[0].id
    point = db.session.scalar(sa.select(ContactPoint).where(ContactPoint.kind == "phone"))
    assert point.opted_out
    with pytest.raises(Invalid) as err:
        outbound.queue_message(ticket, "sms", "again")
    assert err.value.code == "opted_out"


def _exec_start(unit: str) -> list[str]:
    """The command a systemd unit of ``deploy/systemd`` runs, split."""
    import shlex

    text = (Path(__file__).resolve().parents[2] / "deploy/systemd" / unit).read_text()
    start = next(line for line in text.splitlines() if line.startswith("ExecStart="))
    return shlex.split(start.removeprefix("ExecStart="))


def test_the_procfile_systemd_units_and_readme_run_the_same_commands():
    """The fault and scale-out tests start the Procfile's web command (``bench.procfile``),
    and the load benchmark its web and worker commands; the systemd units and the README
    must run those same commands."""
    from bench.procfile import command

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    web = command("web")
    assert web[:3] == ["gunicorn", "-k", "gevent"] and web[-1] == "wsgi:app"
    argv = _exec_start("civicline-web@.service")
    assert Path(argv[0]).name == "gunicorn"
    bind = web.index("-b")
    assert argv[1:bind] + argv[bind + 2:] == web[1:bind] + web[bind + 2:]
    assert " ".join(web[1:bind]) in readme

    worker = command("worker")
    argv = _exec_start("civicline-worker@.service")
    assert Path(argv[0]).name == "flask" and argv[1:] == worker[1:]
    assert " ".join(worker[1:]) in readme


def test_socketio_runs_on_gevent_inside_gunicorns_gevent_worker():
    """gunicorn's gevent worker patches the standard library before it loads the app;
    the app must then pick Socket.IO's gevent mode (threads would block the loop)."""
    import subprocess
    import sys

    probe = ("from app import async_mode; before = async_mode(); "
             "from gevent import monkey; monkey.patch_all(); "
             "print(before, async_mode())")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2]).stdout.split()
    assert out == ["threading", "gevent"]


def test_the_checkout_check_does_not_yield_under_gevent():
    """Under gevent the connection check uses the system's ``poll`` (gevent's ``select``
    would hand the event loop to other requests on every checkout) and still tells an
    idle socket from one whose peer has hung up."""
    import subprocess
    import sys

    probe = (
        "from gevent import monkey; monkey.patch_all()\n"
        "import socket, select\n"
        "from app.extensions import _poll_class, _readable\n"
        "assert _poll_class() is monkey.get_original('select', 'poll')\n"
        "assert _poll_class() is not select.poll\n"
        "a, b = socket.socketpair()\n"
        "idle = _readable(a.fileno()); b.close()\n"
        "print(idle, _readable(a.fileno()))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2]).stdout.split()
    assert out == ["False", "True"]
