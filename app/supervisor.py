"""The supervisor dashboard: its page, the live metrics push, and the supervisor's
actions on live work. Also the one-question satisfaction page linked from survey emails.

Live metrics are pushed to the ``supervisors`` room of the ``/supervisor`` namespace every
``SUPERVISOR_PUSH_SECONDS`` (default 2) by one background task per process, started by
the first supervisor connection and stopped when no supervisor has been connected for a
while.
"""

from __future__ import annotations

import logging
import threading
import time

import sqlalchemy as sa
from apiflask import APIBlueprint
from flask import current_app, render_template, request

from app.console import page_user
from app.extensions import db, socketio
from app.models import PRESENCES, Offer, Ticket, User, WorkItem, utcnow
from app.services import Invalid, NotFound, metrics_service, surveys
from app.services.citizens import audit

log = logging.getLogger(__name__)
bp = APIBlueprint("supervisor", __name__)

metrics_service.install()
surveys.install()


@bp.get("/supervisor")
def dashboard():
    """A supervisor or administrator opens the live dashboard and reports."""
    from app.auth import issue_token

    user = page_user("supervisor")
    return render_template("supervisor.html", user=user, token=issue_token(user),
                           reports=metrics_service.REPORTS, presences=PRESENCES)


@bp.route("/survey/<token>", methods=["GET", "POST"])
def survey_page(token):
    """A resident follows the link in a survey email and picks a score."""
    try:
        ticket_id = surveys.ticket_from_token(token)
    except NotFound:
        return render_template("supervisor_survey.html", state="invalid"), 404
    ticket = db.session.get(Ticket, ticket_id)
    if ticket is None:
        return render_template("supervisor_survey.html", state="invalid"), 404
    if request.method == "POST":
        try:
            surveys.record_survey(ticket.id, "email", request.form.get("score", ""),
                                  request.form.get("comment"))
        except Invalid as exc:
            return render_template("supervisor_survey.html", state="ask", ticket=ticket,
                                   error=exc.message), 400
        return render_template("supervisor_survey.html", state="thanks", ticket=ticket)
    score = request.args.get("score")
    return render_template("supervisor_survey.html", state="ask", ticket=ticket,
                           preset=score if score in {"1", "2", "3", "4", "5"} else None)


# --- supervisor actions -----------------------------------------------------------------


def _emit(event: str, data: dict, rooms: list[str], namespace: str = "/agent") -> None:
    from app import realtime

    realtime.emit(event, data, rooms=rooms, namespace=namespace)


def _routing():
    """The routing service when this deployment has it (it owns offers and presence)."""
    try:
        from app.services import routing_service
    except ImportError:
        return None
    return routing_service


def set_presence(agent_id: int, presence: str | None, actor: User | None) -> User:
    """Change an agent's presence (the agent's own menu, or a supervisor); audited."""
    if presence not in PRESENCES:
        raise Invalid(f"presence must be one of {PRESENCES}", code="invalid_presence")
    routing = _routing()
    if routing is not None and presence in routing.SETTABLE_PRESENCES and actor is not None:
        # Routing offers waiting work or withdraws offers as the presence changes.
        agent = routing.set_presence(agent_id, presence, actor)
        _emit("presence.changed", {"agent_id": agent.id, "presence": agent.presence},
              ["supervisors"], "/supervisor")
        return agent
    agent = db.session.get(User, agent_id)
    if agent is None:
        raise NotFound(f"agent {agent_id} not found")
    if agent.presence != presence:
        before = agent.presence
        agent.presence = presence
        agent.presence_since = utcnow()
        audit(actor, "agent.presence", "user", agent.id, {"from": before, "to": presence})
        db.session.commit()
        data = {"agent_id": agent.id, "presence": presence,
                "presence_since": agent.presence_since.isoformat() + "Z",
                "by": actor.id if actor else None}
        _emit("presence.changed", data, [f"agent:{agent.id}"])
        _emit("presence.changed", data, ["supervisors"], "/supervisor")
        if presence == "available":
            from app import jobs

            jobs.enqueue("app.tasks.routing_tick")
    return agent


def reassign(ticket: Ticket, agent_id: int, actor: User | None, reason: str = "") -> Ticket:
    """Give a ticket (and its live work item) to another agent; audited."""
    agent = db.session.get(User, agent_id)
    if agent is None or not agent.active:
        raise NotFound(f"agent {agent_id} not found")
    if ticket.status in ("resolved", "closed"):
        raise Invalid("this ticket is already resolved", code="ticket_resolved")
    previous = ticket.assigned_agent_id
    routing = _routing()
    if routing is not None and actor is not None:
        ticket = routing.transfer(ticket, actor, agent_id=agent.id, reason=reason)
        audit(actor, "ticket.reassign", "ticket", ticket.reference,
              {"from": previous, "to": agent.id, "reason": reason})
        db.session.commit()
        return ticket
    now = utcnow()
    ticket.assigned_agent_id = agent.id
    if ticket.status == "new":
        ticket.status = "open"
    item = db.session.scalar(
        sa.select(WorkItem).where(WorkItem.ticket_id == ticket.id,
                                  WorkItem.status.in_(("waiting", "offered", "assigned")))
        .order_by(WorkItem.id.desc()).limit(1))
    if item is not None:
        for offer in db.session.scalars(sa.select(Offer).where(
                Offer.work_item_id == item.id, Offer.status == "pending")):
            offer.status = "cancelled"
            offer.responded_at = now
        item.agent_id = agent.id
        item.status = "assigned"
        item.assigned_at = item.assigned_at or now
    audit(actor, "ticket.reassign", "ticket", ticket.reference,
          {"from": previous, "to": agent.id, "reason": reason})
    db.session.commit()
    from app.realtime import ticket_summary

    summary = ticket_summary(ticket)
    _emit("ticket.assigned", {"ticket": summary, "by": actor.id if actor else None},
          [f"agent:{agent.id}"] + ([f"agent:{previous}"] if previous else []))
    return ticket


# --- live push --------------------------------------------------------------------------

_push_lock = threading.Lock()
IDLE_STOP_SECONDS = 10


def _supervisors_here() -> int:
    try:
        rooms = socketio.server.manager.rooms.get("/supervisor", {})
        return len(rooms.get("supervisors", {}))
    except AttributeError:
        return 0


def _push_loop(app) -> None:
    every = float(app.config.get("SUPERVISOR_PUSH_SECONDS", 2))
    idle_since = None
    while True:
        started = time.monotonic()
        if _supervisors_here():
            idle_since = None
            try:
                with app.app_context():
                    snapshot = metrics_service.shared_snapshot()
                    db.session.remove()
                socketio.emit("metrics.snapshot", snapshot, to="supervisors",
                              namespace="/supervisor")
            except Exception:  # noqa: BLE001 - a bad tick must not stop the dashboard
                log.warning("supervisor snapshot failed", exc_info=True)
        else:
            idle_since = idle_since or started
            if started - idle_since > IDLE_STOP_SECONDS:
                break
        socketio.sleep(max(0.05, every - (time.monotonic() - started)))
    with _push_lock:
        app.extensions.pop("civicline_supervisor_push", None)


def start_push() -> None:
    """Start this process's metrics push if it is not running (first supervisor)."""
    app = current_app._get_current_object()
    with _push_lock:
        if app.extensions.get("civicline_supervisor_push"):
            return
        app.extensions["civicline_supervisor_push"] = socketio.start_background_task(
            _push_loop, app)
