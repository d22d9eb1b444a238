"""Command-line interface: ``flask users create``, ``flask seed-demo``, ``flask worker``,
``flask serve``."""

from __future__ import annotations

import os
import threading

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import AppGroup

from app.extensions import db
from app.models import ROLES, User

# How much lower than the web processes a worker's CPU priority is (``flask worker``).
WORKER_NICE = 10

users = AppGroup("users", help="Manage agents, supervisors and administrators.")


@users.command("create")
@click.option("--email", required=True)
@click.option("--role", type=click.Choice(ROLES), default="agent", show_default=True)
@click.option("--password", required=True)
@click.option("--name", default="")
def create_user(email: str, role: str, password: str, name: str) -> None:
    """Create a user (or reset an existing user's role and password)."""
    if len(password) < 8:
        raise click.BadParameter("use at least 8 characters", param_hint="--password")
    email = email.strip().lower()
    user = db.session.scalar(sa.select(User).where(User.email == email))
    created = user is None
    if created:
        user = User(email=email, name=name or email.split("@")[0], password_hash="")
        db.session.add(user)
    else:
        user.token_version += 1
    user.role = role
    user.set_password(password)
    db.session.commit()
    click.echo(f"{'Created' if created else 'Updated'} {role} {email} (id {user.id})")


@users.command("list")
def list_users() -> None:
    """List users with their roles and presence."""
    for user in db.session.scalars(sa.select(User).order_by(User.id)):
        click.echo(f"{user.id:4d}  {user.role:10s}  {user.presence:9s}  {user.email}")


@click.command("seed-demo")
def seed_demo() -> None:
    """Load demo queues, agents, citizens and knowledge base (safe to run twice)."""
    from app.seed import seed

    seed(echo=click.echo)


@click.command("worker")
@click.option("--queues", default="inbound,outbound,default,scheduled", show_default=True,
              help="Comma-separated queues this worker serves.")
@click.option("--order", type=click.Choice(["fair", "priority"]), default="fair",
              show_default=True,
              help="fair: the queues take turns, one job each, while several have work; "
                   "priority: a queue is served only when those before it are empty.")
@click.option("--burst", is_flag=True, help="Exit when the queues are empty.")
@click.option("--no-schedules", is_flag=True, help="Do not enqueue periodic jobs here.")
@click.option("--job-logs", is_flag=True,
              help="Log every job's start and end (RQ's INFO lines); by default only "
                   "failures, retries and warnings are logged.")
@click.option("--nice", "niceness", default=WORKER_NICE, show_default=True,
              type=click.IntRange(0, 19),
              help="Lower this worker's CPU priority by this much (0: as the web "
                   "processes). On a machine it shares with them, requests are served "
                   "first and jobs take the CPU they leave.")
def worker(queues: str, order: str, burst: bool, no_schedules: bool, job_logs: bool,
           niceness: int) -> None:
    """Run an RQ worker (with its scheduler) for the given queues. Needs REDIS_URL.

    A worker runs at a lower CPU priority than the web processes (``--nice``, 10 by
    default): a webhook holds a resident's message until it is stored and answered, and
    Twilio retries one it waits too long for, while a follow-up job can start a moment
    later. When web and workers share a machine that is busy, requests therefore keep
    their speed and the queues take up the slack, then empty once the burst passes
    (``bench/load.py`` prints how long that took). On a machine of its own a worker's
    priority changes nothing.

    The queues take turns (``--order fair``, RQ's round-robin dequeue): while several
    have work, the worker takes one job from each in turn. In a storm of texts the
    ``inbound`` queue never empties, and with strict priority (``--order priority``) an
    agent's reply (``outbound``), the routing of new work to agents (``default``) and
    the timers that expire offers and flag missed service levels (``scheduled``) would
    all wait until the storm passed: agents would get no offers just when they are
    needed most."""
    from rq import Queue

    from app import jobs
    from app.extensions import redis_store

    if redis_store.client is None:
        raise click.ClickException(
            "flask worker needs REDIS_URL. Without it, jobs run inside the web process "
            "(the embedded mode of `make run`), so no worker is needed."
        )
    names = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = [n for n in names if n not in jobs.QUEUES]
    if unknown:
        raise click.BadParameter(f"unknown queues {unknown}; choose from {jobs.QUEUES}")
    if niceness:
        os.nice(niceness)
    stop = threading.Event()
    if not no_schedules and not burst:
        app = current_app._get_current_object()
        threading.Thread(target=jobs.periodic_loop, args=(app, redis_store.client, stop),
                         daemon=True).start()
    rq_worker = jobs.worker_class()([Queue(n, connection=redis_store.client) for n in names],
                                    connection=redis_store.client)
    rq_worker.job_app = current_app._get_current_object()  # a context per job
    click.echo(f"worker serving {', '.join(names)}")
    try:
        # Four INFO lines per job cost a busy worker more than some of its jobs do.
        rq_worker.work(burst=burst, with_scheduler=True,
                       logging_level="INFO" if job_logs else "WARNING",
                       dequeue_strategy="round_robin" if order == "fair" else "default")
    finally:
        stop.set()


@click.command("serve")
@click.option("--host", default=None)
@click.option("--port", default=None, type=int)
def serve(host: str | None, port: int | None) -> None:
    """Serve the app with Socket.IO (development and the embedded default)."""
    from werkzeug.serving import run_simple

    app = current_app._get_current_object()
    host = host or app.config["HOST"]
    port = port or app.config["PORT"]
    app.extensions["civicline_jobs"].start()
    backend = app.extensions["civicline_jobs"].backend
    click.echo(f"CivicLine on http://{host}:{port}  (jobs: {backend})")
    # Werkzeug's threaded server carries Socket.IO's WebSocket transport (simple-websocket);
    # production uses gunicorn instead (see the README).
    run_simple(host, port, app, threaded=True, use_reloader=False, use_debugger=False)


def register(app) -> None:
    app.cli.add_command(users)
    app.cli.add_command(seed_demo)
    app.cli.add_command(worker)
    app.cli.add_command(serve)
    app.cli.add_command(__import__("app.kb_cli").kb_cli.kb)  # flask kb import/export
