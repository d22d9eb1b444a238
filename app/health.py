"""Health and metrics endpoints for load balancers and Prometheus."""

from __future__ import annotations

import sqlalchemy as sa
from apiflask import APIBlueprint
from flask import Response, current_app

from app import metrics
from app.extensions import db, redis_store

bp = APIBlueprint("health", __name__, enable_openapi=False)


@bp.get("/healthz")
def healthz():
    """Called by load balancers and operators: is the database (and Redis) reachable?"""
    checks = {}
    ok = True
    try:
        db.session.execute(sa.text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["database"] = f"error: {exc.__class__.__name__}"
        ok = False
    if redis_store.client is not None:
        try:
            redis_store.client.ping()
            checks["redis"] = "ok"
        except Exception as exc:  # noqa: BLE001
            checks["redis"] = f"error: {exc.__class__.__name__}"
            ok = False
    else:
        checks["redis"] = "not configured (embedded jobs)"
    return {"status": "ok" if ok else "unavailable", "checks": checks}, 200 if ok else 503


@bp.get("/metrics")
def prometheus():
    """Scraped by Prometheus: counters and gauges in the text exposition format."""
    from app.models import OPEN_STATUSES, Queue, Ticket, WorkItem

    try:
        # Every service queue gets a figure, 0 included: a queue that emptied must not
        # keep showing its last count.
        codes = db.session.scalars(sa.select(Queue.code)).all()
        for gauge, model, condition in (
            (metrics.OPEN_TICKETS, Ticket, Ticket.status.in_(OPEN_STATUSES)),
            (metrics.WAITING_ITEMS, WorkItem, WorkItem.status == "waiting"),
        ):
            counts = dict(db.session.execute(
                sa.select(Queue.code, sa.func.count(model.id))
                .join(model, model.queue_id == Queue.id)
                .where(condition)
                .group_by(Queue.code)
            ).all())
            for code in codes:
                gauge.labels(queue=code).set(counts.get(code, 0))
    except Exception:  # noqa: BLE001 - metrics must still answer when the DB is down
        db.session.rollback()
        # A figure that cannot be read is left out, not shown as it last was.
        metrics.OPEN_TICKETS.clear()
        metrics.WAITING_ITEMS.clear()
    try:  # the job queues' backlog: add workers when "inbound" keeps growing
        for name, count in current_app.extensions["civicline_jobs"].backlog().items():
            metrics.JOBS_QUEUED.labels(queue=name).set(count)
    except Exception:  # noqa: BLE001 - nor when Redis is (/healthz reports it)
        metrics.JOBS_QUEUED.clear()
    return Response(metrics.render(), mimetype="text/plain; version=0.0.4; charset=utf-8")
