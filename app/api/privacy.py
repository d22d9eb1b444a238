"""Records requests and erasure of a citizen's personal data (audited)."""

from apiflask import Schema
from apiflask.fields import Dict, Integer, String
from apiflask.validators import Length

from app.api import bp
from app.auth import current_user, token_auth
from app.services import privacy


class EraseIn(Schema):
    reason = String(required=True, validate=Length(min=3, max=200))


class EraseOut(Schema):
    citizen_id = Integer()
    erased = Dict(keys=String(), values=Integer())


@bp.get("/citizens/<int:citizen_id>/export")
@bp.auth_required(token_auth, roles=["supervisor"])
@bp.doc(summary="Export a citizen's data (records request)")
def export_citizen(citizen_id):
    """Called by a supervisor answering a records request: everything held, as JSON."""
    return privacy.export_citizen(citizen_id, current_user())


@bp.post("/citizens/<int:citizen_id>/erase")
@bp.auth_required(token_auth, roles=["admin"])
@bp.input(EraseIn, arg_name="body")
@bp.output(EraseOut)
def erase_citizen(citizen_id, body):
    """Called by an administrator carrying out an erasure request; the erasure is audited."""
    return privacy.erase_citizen(citizen_id, current_user(), body["reason"])
