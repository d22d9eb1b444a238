"""Health and metrics endpoints for load balancers and Prometheus."""

from __future__ import annotations

import sqlalchemy as sa
from apiflask import APIBlueprint
from flask import Response

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
        rows = db.session.execute(
            sa.select(Queue.code, sa.func.count(Ticket.id))
            .join(Ticket, Ticket.queue_id == Queue.id)
            .where(Ticket.status.in_(OPEN_STATUSES))
            .group_by(Queue.code)
        ).all()
        for code, count in rows:
            metrics.OPEN_TICKETS.labels(queue=code).set(count)
        waiting = db.session.execute(
            sa.select(Queue.code, sa.func.count(WorkItem.id))
            .join(WorkItem, WorkItem.queue_id == Queue.id)
            .where(WorkItem.status == "waiting")
            .group_by(Queue.code)
        ).all()
        for code, count in waiting:
            metrics.WAITING_ITEMS.labels(queue=code).set(count)
    except Exception:  # noqa: BLE001 - metrics must still answer when the DB is down
        db.session.rollback()
    return Response(metrics.render(), mimetype="text/plain; version=0.0.4; charset=utf-8")
