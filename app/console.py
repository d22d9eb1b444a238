"""The live agent console: the page, and the one call that fills its side panels.

The page gets a bearer token for the signed-in user so its API calls and its Socket.IO
connection carry ``Authorization`` instead of relying on the session cookie (no CSRF
surface). Which optional features are shown (offers, transfer, wrap-up, knowledge-base
suggestions, softphone) depends on which endpoints this deployment has.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from apiflask import APIBlueprint
from flask import (
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    render_template_string,
    request,
    session,
    url_for,
)

from app.api.schemas import InteractionOut
from app.auth import current_user, issue_token, token_auth
from app.extensions import db
from app.models import OPEN_STATUSES, Interaction, Offer, Queue, Ticket, User, WorkItem, utcnow
from app.realtime import ticket_summary
from app.sockets import agent_queue_codes

bp = APIBlueprint("console", __name__)

# Optional endpoints the console uses when another feature provides them.
FEATURES = {
    "presence_api": ("PUT", "/api/v1/agents/me/presence"),
    "offers_api": ("GET", "/api/v1/agents/me/offers"),
    "accept": ("POST", "/api/v1/offers/<offer_id>/accept"),
    "transfer": ("POST", "/api/v1/tickets/<ref>/transfer"),
    "complete": ("POST", "/api/v1/tickets/<ref>/complete"),
    "kb_suggestions": ("GET", "/api/v1/kb/tickets/<ticket_id>/suggestions"),
    "voice_token": ("GET", "/api/v1/voice/token"),
    "simulator": ("GET", "/simulator"),
}


def available_features() -> dict[str, bool]:
    """Which optional endpoints exist in this app (by path shape, ignoring converters)."""

    def shape(path: str) -> str:
        return "/".join("<>" if part.startswith("<") else part for part in path.split("/"))

    rules = {(shape(r.rule), m) for r in current_app.url_map.iter_rules() for m in r.methods}
    return {name: (shape(path), method) in rules for name, (method, path) in FEATURES.items()}


def page_user(role: str) -> User:
    """The signed-in user of a page, or a redirect to sign in, or 403 for a lower role."""
    user = db.session.get(User, session["uid"]) if session.get("uid") else None
    if user is None or not user.active:
        abort(redirect(url_for("pages.login", next=request.path)))
    if not user.has_role(role):
        abort(Response(render_template_string(FORBIDDEN_PAGE, role=role), 403))
    return user


FORBIDDEN_PAGE = """{% extends "base.html" %}
{% block title %}Not for your role · CivicLine{% endblock %}
{% block main %}<h1>This page is for the {{ role }} role</h1>
<p>Your account cannot open it. <a href="/console">Go to the agent console</a>.</p>
{% endblock %}"""


@bp.get("/console")
def console():
    """An agent (or supervisor) opens the live console."""
    user = page_user("agent")
    return render_template("console.html", user=user, token=issue_token(user),
                           features=available_features())


def _waiting(codes: list[str], now) -> list[dict[str, Any]]:
    if not codes:
        return []
    rows = db.session.execute(
        sa.select(WorkItem, Ticket, Queue.code)
        .join(Ticket, Ticket.id == WorkItem.ticket_id)
        .join(Queue, Queue.id == WorkItem.queue_id)
        .where(Queue.code.in_(codes), WorkItem.status.in_(("waiting", "offered")))
        .order_by(WorkItem.priority, WorkItem.arrived_at).limit(200)).all()
    return [{**ticket_summary(ticket), "queue": code, "wait_seconds":
             max(0, int((now - item.arrived_at).total_seconds()))}
            for item, ticket, code in rows]


def _offers(user: User, now) -> list[dict[str, Any]]:
    rows = db.session.execute(
        sa.select(Offer, WorkItem, Ticket)
        .join(WorkItem, WorkItem.id == Offer.work_item_id)
        .join(Ticket, Ticket.id == WorkItem.ticket_id)
        .where(Offer.agent_id == user.id, Offer.status == "pending", Offer.expires_at > now)
        .order_by(Offer.id)).all()
    return [{"id": offer.id, "expires_in": max(0, int((offer.expires_at - now).total_seconds())),
             "expires_at": offer.expires_at.isoformat() + "Z", "channel": item.channel,
             "ticket": ticket_summary(ticket)} for offer, item, ticket in rows]


@bp.get("/api/v1/console/state")
@bp.auth_required(token_auth, roles=["agent"])
def console_state():
    """Called by the console on load and on reconnect: me, my offers, tickets and queues."""
    user = current_user()
    now = utcnow()
    mine = db.session.scalars(
        sa.select(Ticket).where(Ticket.assigned_agent_id == user.id,
                                Ticket.status.in_(OPEN_STATUSES))
        .order_by(Ticket.last_activity_at.desc()).limit(100)).all()
    codes = agent_queue_codes(user)
    return {
        "me": {"id": user.id, "name": user.name or user.email, "role": user.role,
               "presence": user.presence,
               "presence_since": user.presence_since.isoformat() + "Z"},
        "offers": _offers(user, now),
        "tickets": [ticket_summary(t) for t in mine],
        "queues": codes,
        "waiting": _waiting(codes, now),
    }


@bp.put("/api/v1/console/presence")
@bp.auth_required(token_auth, roles=["agent"])
def console_presence():
    """Called by the console's presence menu when routing has no presence endpoint."""
    from app.supervisor import set_presence

    presence = (request.get_json(silent=True) or {}).get("presence")
    agent = set_presence(current_user().id, presence, current_user())
    return {"presence": agent.presence, "presence_since": agent.presence_since.isoformat() + "Z"}


@bp.get("/api/v1/console/interactions/<int:interaction_id>")
@bp.auth_required(token_auth, roles=["agent"])
@bp.output(InteractionOut)
def console_interaction(interaction_id):
    """Called by the console when a live event names a message of an open ticket (the
    ticket's opening already audited the read)."""
    interaction = db.session.get(Interaction, interaction_id)
    if interaction is None:
        abort(404, "interaction not found")
    return interaction
