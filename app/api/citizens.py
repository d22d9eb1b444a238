"""Citizens, their channel-preference profiles, and merges."""

from app.api import bp
from app.api.schemas import (
    AuditList,
    CitizenList,
    CitizenOut,
    CitizenQuery,
    MergeIn,
    ProfileIn,
    ProfileOut,
)
from app.auth import current_user, token_auth
from app.extensions import db
from app.services import citizens


@bp.get("/citizens")
@bp.auth_required(token_auth, roles=["agent"])
@bp.input(CitizenQuery, location="query", arg_name="query")
@bp.output(CitizenList)
def search_citizens(query):
    """Called by agents to find a citizen by phone number or email address."""
    found = citizens.find_by_contact(phone=query.get("phone"), email=query.get("email"))
    return {"items": found}


@bp.get("/citizens/<int:citizen_id>")
@bp.auth_required(token_auth, roles=["agent"])
@bp.output(CitizenOut)
def get_citizen(citizen_id):
    """Called by the console to show a citizen; the read is audited."""
    citizen = citizens.get_citizen(citizen_id)
    citizens.audit(current_user(), "citizen.read", "citizen", citizen.id)
    db.session.commit()
    return citizen


@bp.get("/citizens/<int:citizen_id>/profile")
@bp.auth_required(token_auth, roles=["agent"])
@bp.output(ProfileOut)
def get_profile(citizen_id):
    """Called by the console to show how the citizen wants to be reached."""
    profile = citizens.get_profile(citizens.get_citizen(citizen_id))
    db.session.commit()
    return profile


@bp.patch("/citizens/<int:citizen_id>/profile")
@bp.auth_required(token_auth, roles=["agent"])
@bp.input(ProfileIn, arg_name="body")
@bp.output(ProfileOut)
def update_profile(citizen_id, body):
    """Called by agents to edit a citizen's channel-preference profile."""
    return citizens.update_profile(citizen_id, body, current_user())


@bp.post("/citizens/merge")
@bp.auth_required(token_auth, roles=["agent"])
@bp.input(MergeIn, arg_name="body")
@bp.output(CitizenOut)
def merge_citizens(body):
    """Called by an agent who found one person under two identities."""
    return citizens.merge(body["source_id"], body["target_id"], current_user(), body["reason"])


@bp.get("/citizens/merges")
@bp.auth_required(token_auth, roles=["supervisor"])
@bp.output(AuditList)
def list_merges():
    """Called by supervisors to review identity merges."""
    return {"items": citizens.list_merges()}
