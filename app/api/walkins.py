"""Walk-ins: kiosk check-in (public), the waiting list and desk calls (agents)."""

from apiflask import Schema
from apiflask.fields import Boolean, Dict, Integer, List, Nested, String
from apiflask.validators import Length, OneOf

from app import walkins
from app.api import bp
from app.auth import current_user, token_auth
from app.extensions import limiter

STATUSES = ["waiting", "called", "done", "missed"]


class CheckInIn(Schema):
    queue = String(required=True, validate=Length(1, 50))
    language = String(validate=Length(0, 10))
    phone = String(validate=Length(0, 32))
    client_id = String(validate=Length(0, 64))


class VisitOut(Schema):
    id = Integer()
    number = String()
    queue = String()
    service = String()
    status = String()
    language = String(allow_none=True)
    desk = String(allow_none=True)
    people_ahead = Integer()
    estimated_wait_seconds = Integer()
    estimated_wait_minutes = Integer()
    ticket_reference = String(allow_none=True)
    text_when_near = Boolean()
    recalls = Integer()
    service_day = String()
    called_at = String(allow_none=True)
    created_at = String(allow_none=True)


class VisitList(Schema):
    items = List(Nested(VisitOut))


class VisitQuery(Schema):
    queue = String(validate=Length(1, 50))
    status = String(validate=OneOf(STATUSES))


class NextIn(Schema):
    desk = String(validate=Length(0, 20))


class NextOut(Schema):
    visit = Nested(VisitOut, allow_none=True)
    message = String()


class BoardOut(Schema):
    serving = List(Dict())
    waiting = List(Dict())


@bp.post("/walkins")
@limiter.limit("30 per minute")
@bp.input(CheckInIn, arg_name="body")
@bp.output(VisitOut, status_code=201)
@bp.doc(security=[], responses={200: "A repeated client_id: the first check-in",
                                404: "Unknown service", 409: "Service closed to walk-ins"})
def check_in(body):
    """Called by the lobby kiosk when a visitor checks in: a number and an estimated wait."""
    visit, created = walkins.check_in(body)
    return visit, 201 if created else 200


@bp.get("/walkins")
@bp.auth_required(token_auth, roles=["agent"])
@bp.input(VisitQuery, location="query", arg_name="query")
@bp.output(VisitList)
def list_visits(query):
    """Called by desk agents to see today's visitors, each waiting one with its wait."""
    return {"items": walkins.list_visits(query.get("queue"), query.get("status"))}


@bp.post("/walkins/next")
@bp.auth_required(token_auth, roles=["agent"])
@bp.input(NextIn, arg_name="body")
@bp.output(NextOut)
def call_next(body):
    """Called by a desk agent to call the next visitor they can serve to their desk."""
    visit = walkins.call_next(current_user(), body.get("desk"))
    if visit is None:
        return {"visit": None, "message": "Nobody you can serve is waiting."}
    return {"visit": visit, "message": f"{visit['number']} → desk {visit['desk']}"}


@bp.post("/walkins/<int:visit_id>/recall")
@bp.auth_required(token_auth, roles=["agent"])
@bp.output(VisitOut)
def recall(visit_id):
    """Called by a desk agent when the called visitor has not come: call once more."""
    return walkins.recall(visit_id, current_user())


@bp.post("/walkins/<int:visit_id>/missed")
@bp.auth_required(token_auth, roles=["agent"])
@bp.output(VisitOut)
def missed(visit_id):
    """Called by a desk agent when a recalled visitor still has not come."""
    return walkins.finish(visit_id, current_user(), "missed")


@bp.post("/walkins/<int:visit_id>/done")
@bp.auth_required(token_auth, roles=["agent"])
@bp.output(VisitOut)
def done(visit_id):
    """Called by a desk agent when they have finished serving the visitor."""
    return walkins.finish(visit_id, current_user(), "done")


@bp.get("/walkins/board")
@bp.output(BoardOut)
@bp.doc(security=[])
def board():
    """Called by a now-serving screen that cannot keep a socket open."""
    return walkins.board_state()
