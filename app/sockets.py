"""Socket.IO namespaces. ``/agent`` (console) and ``/supervisor`` (metrics) need a bearer
token in the connection's ``auth`` payload (``{"token": T}``) or a logged-in session."""

from __future__ import annotations

import sqlalchemy as sa
from flask import session
from flask_socketio import Namespace, join_room, leave_room

from app.auth import user_from_token
from app.extensions import db
from app.models import AgentSkill, Queue, Skill, User, row_id


def _connect_user(auth) -> User | None:
    token = (auth or {}).get("token") if isinstance(auth, dict) else None
    user = user_from_token(token)
    if user is None and session.get("uid"):
        user = db.session.get(User, session["uid"])
    return user


def agent_queue_codes(user: User) -> list[str]:
    """Queues whose topic skill the agent has (all queues for supervisors)."""
    queues = db.session.scalars(sa.select(Queue).where(Queue.active.is_(True))).all()
    if user.has_role("supervisor"):
        return [q.code for q in queues]
    topics = set(db.session.scalars(
        sa.select(Skill.code).join(AgentSkill, AgentSkill.skill_id == Skill.id)
        .where(AgentSkill.agent_id == user.id, Skill.kind == "topic")).all())
    return [q.code for q in queues if q.code in topics or q.code == "general"]


class AgentNamespace(Namespace):
    def on_connect(self, auth=None):
        """A console connects: it joins its agent room and its queues' rooms."""
        user = _connect_user(auth)
        if user is None:
            raise ConnectionRefusedError("unauthorized")
        session["socket_uid"] = user.id
        join_room(f"agent:{user.id}")
        for code in agent_queue_codes(user):
            join_room(f"queue:{code}")
        if user.has_role("supervisor"):
            join_room("supervisors")
        db.session.remove()
        return True

    def on_watch_ticket(self, data):
        """The console opens a ticket and wants its live timeline."""
        ticket_id = row_id(data.get("ticket_id")) if isinstance(data, dict) else None
        if ticket_id and session.get("socket_uid"):
            join_room(f"ticket:{ticket_id}")
            return {"ok": True}
        return {"ok": False}

    def on_unwatch_ticket(self, data):
        """The console closes a ticket."""
        ticket_id = row_id(data.get("ticket_id")) if isinstance(data, dict) else None
        if ticket_id is None:
            return {"ok": False}
        leave_room(f"ticket:{ticket_id}")
        return {"ok": True}


class SupervisorNamespace(Namespace):
    def on_connect(self, auth=None):
        """The supervisor dashboard connects; only supervisors and admins may."""
        user = _connect_user(auth)
        if user is None or not user.has_role("supervisor"):
            raise ConnectionRefusedError("forbidden")
        join_room("supervisors")
        __import__("app.supervisor", fromlist=["start_push"]).start_push()
        db.session.remove()
        return True


NAMESPACES: list[Namespace] = [AgentNamespace("/agent"), SupervisorNamespace("/supervisor")]

from app.chat import ChatNamespace  # noqa: E402
from app.walkins import BoardNamespace  # noqa: E402

NAMESPACES += [ChatNamespace("/chat"), BoardNamespace("/board")]


def register(socketio) -> None:
    """Bind the namespaces to the server that ``init_app`` just created."""
    for namespace in NAMESPACES:
        socketio.on_namespace(namespace)
