"""Queues and agents."""

import sqlalchemy as sa

from app.api import bp
from app.api.schemas import AgentList, AgentOut, QueueList
from app.auth import token_auth
from app.extensions import db
from app.models import Queue, User
from app.services import NotFound


@bp.get("/queues")
@bp.auth_required(token_auth, roles=["agent"])
@bp.output(QueueList)
def list_queues():
    """Called by the console and supervisors to list service lines."""
    return {"items": db.session.scalars(sa.select(Queue).order_by(Queue.code)).all()}


@bp.get("/agents")
@bp.auth_required(token_auth, roles=["supervisor"])
@bp.output(AgentList)
def list_agents():
    """Called by supervisors to see every agent and their presence."""
    return {"items": db.session.scalars(sa.select(User).order_by(User.id)).all()}


@bp.get("/agents/<int:agent_id>")
@bp.auth_required(token_auth, roles=["agent"])
@bp.output(AgentOut)
def get_agent(agent_id):
    """Called by the console to show an agent's skills, capacity and presence."""
    agent = db.session.get(User, agent_id)
    if agent is None:
        raise NotFound(f"agent {agent_id} not found")
    return agent
