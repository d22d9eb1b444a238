"""Supervisor API: the live snapshot, reports (JSON and CSV), the audit log, and the
supervisor's actions on live work (reassign a ticket, change an agent's presence)."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

import sqlalchemy as sa
from apiflask import Schema, abort
from apiflask.fields import Integer, String
from apiflask.validators import Length, OneOf, Range
from flask import Response

from app import supervisor as supervision
from app.api import bp
from app.api.schemas import DB_ID
from app.api.tickets import _ticket
from app.auth import current_user, token_auth
from app.extensions import db
from app.models import PRESENCES, AuditLog, User, utcnow
from app.services import metrics_service


class ReportQuery(Schema):
    days = Integer(load_default=7, validate=Range(1, 366))
    start = String(data_key="from", validate=Length(10, 10))
    end = String(data_key="to", validate=Length(10, 10))


class AuditQuery(Schema):
    action = String()
    object_type = String()
    object_id = String()
    actor_id = Integer(validate=DB_ID)
    before = Integer(validate=DB_ID)
    limit = Integer(load_default=100, validate=Range(1, 500))


class AssignIn(Schema):
    agent_id = Integer(required=True, validate=DB_ID)
    reason = String(load_default="", validate=Length(0, 300))


class PresenceIn(Schema):
    presence = String(required=True, validate=OneOf(list(PRESENCES)))


def _period(query: dict) -> tuple[datetime, datetime]:
    try:
        if "start" in query:
            since = datetime.strptime(query["start"], "%Y-%m-%d")
            until = (datetime.strptime(query["end"], "%Y-%m-%d") if "end" in query
                     else since) + timedelta(days=1)
        else:
            until = metrics_service.hour_of(utcnow()) + timedelta(hours=1)
            since = until - timedelta(days=query["days"])
    except (ValueError, OverflowError):  # not a date, or the day after 9999-12-31
        abort(400, "dates are YYYY-MM-DD", extra_data={"code": "invalid_date"})
    if until <= since:
        abort(400, "'to' must not be before 'from'", extra_data={"code": "invalid_period"})
    return since, until


@bp.get("/supervisor/snapshot")
@bp.auth_required(token_auth, roles=["supervisor"])
def supervisor_snapshot():
    """Called by the dashboard on load (then pushed over Socket.IO): live queue metrics,
    at most ``SUPERVISOR_SNAPSHOT_MAX_AGE`` seconds old (``at`` says when it was taken)."""
    return metrics_service.shared_snapshot()


@bp.get("/reports")
@bp.auth_required(token_auth, roles=["supervisor"])
def list_reports():
    """Called by the dashboard to list the reports and their export links."""
    return {"items": [{"name": n, "title": t, "json": f"/api/v1/reports/{n}",
                       "csv": f"/api/v1/reports/{n}.csv"}
                      for n, t in metrics_service.REPORTS.items()]}


@bp.get("/reports/<name>")
@bp.auth_required(token_auth, roles=["supervisor"])
@bp.input(ReportQuery, location="query", arg_name="query")
def get_report(name, query):
    """Called by the dashboard (JSON) or a supervisor exporting a report (``.csv``)."""
    base, _, ext = name.partition(".")
    if base not in metrics_service.REPORTS or ext not in ("", "json", "csv"):
        abort(404, f"no report {name!r}", extra_data={"code": "not_found"})
    since, until = _period(query)
    data = metrics_service.report(base, since, until)
    if ext != "csv":
        return data
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=data["columns"], extrasaction="ignore")
    writer.writeheader()
    for row in data["rows"]:
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    filename = f"civicline-{base}-{since:%Y%m%d}-{until:%Y%m%d}.csv"
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})


@bp.get("/audit")
@bp.auth_required(token_auth, roles=["supervisor"])
@bp.input(AuditQuery, location="query", arg_name="query")
def list_audit(query):
    """Called by supervisors reviewing who read or changed which record."""
    stmt = sa.select(AuditLog).order_by(AuditLog.id.desc()).limit(query["limit"])
    for field in ("action", "object_type", "object_id", "actor_id"):
        if field in query:
            stmt = stmt.where(getattr(AuditLog, field) == query[field])
    if "before" in query:
        stmt = stmt.where(AuditLog.id < query["before"])
    rows = db.session.scalars(stmt).all()
    actor_ids = {r.actor_id for r in rows if r.actor_id}
    names = {uid: email for uid, email in db.session.execute(
        sa.select(User.id, User.email).where(User.id.in_(actor_ids)))} if actor_ids else {}
    return {"items": [{"id": r.id, "at": r.at.isoformat() + "Z", "actor_id": r.actor_id,
                       "actor": names.get(r.actor_id), "action": r.action,
                       "object_type": r.object_type, "object_id": r.object_id,
                       "detail": r.detail} for r in rows],
            "next_before": rows[-1].id if len(rows) == query["limit"] else None}


@bp.post("/supervisor/tickets/<ref>/assign")
@bp.auth_required(token_auth, roles=["supervisor"])
@bp.input(AssignIn, arg_name="body")
def reassign_ticket(ref, body):
    """Called by a supervisor moving a ticket to another agent from the live view."""
    ticket = supervision.reassign(_ticket(ref), body["agent_id"], current_user(),
                                  body["reason"])
    return {"id": ticket.id, "reference": ticket.reference,
            "assigned_agent_id": ticket.assigned_agent_id, "status": ticket.status}


@bp.put("/supervisor/agents/<int:agent_id>/presence")
@bp.auth_required(token_auth, roles=["supervisor"])
@bp.input(PresenceIn, arg_name="body")
def set_agent_presence(agent_id, body):
    """Called by a supervisor changing an agent's presence from the live view."""
    agent = supervision.set_presence(agent_id, body["presence"], current_user())
    return {"id": agent.id, "presence": agent.presence,
            "presence_since": agent.presence_since.isoformat() + "Z"}
