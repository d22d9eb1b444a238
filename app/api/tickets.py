"""Tickets: filtered lists with cursor pagination, and one ticket with its timeline."""

import base64

import sqlalchemy as sa
from apiflask import abort

from app.api import bp
from app.api.schemas import (
    InteractionOut,
    NoteIn,
    ReplyIn,
    ReplyOptionsOut,
    TicketDetail,
    TicketOut,
    TicketPage,
    TicketQuery,
    TicketUpdate,
)
from app.auth import current_user, token_auth
from app.extensions import db
from app.models import Interaction, Ticket, db_id
from app.services import citizens
from app.services import tickets as ticket_service


def _decode_cursor(cursor: str) -> int:
    try:
        ticket_id = db_id(base64.urlsafe_b64decode(cursor.encode() + b"==").decode())
    except (ValueError, UnicodeDecodeError):
        ticket_id = None
    if ticket_id is None:
        abort(400, "invalid cursor", extra_data={"code": "invalid_cursor"})
    return ticket_id


def _encode_cursor(ticket_id: int) -> str:
    return base64.urlsafe_b64encode(str(ticket_id).encode()).decode().rstrip("=")


@bp.get("/tickets")
@bp.auth_required(token_auth, roles=["agent"])
@bp.input(TicketQuery, location="query", arg_name="query")
@bp.output(TicketPage)
def list_tickets(query):
    """Called by the console and integrations to list tickets, newest first."""
    before = _decode_cursor(query["cursor"]) if "cursor" in query else None
    filters = {k: query[k] for k in ticket_service.LIST_FILTERS if k in query}
    rows, more = ticket_service.page(filters, limit=query["limit"], before_id=before)
    return {"items": rows, "next_cursor": _encode_cursor(rows[-1].id) if more and rows else None}


def _ticket(ref: str) -> Ticket:
    numeric = ref.isascii() and ref.isdigit()
    ticket_id = db_id(ref) if numeric else Ticket.id_from_reference(ref)
    ticket = ticket_service.get(ticket_id) if ticket_id else None
    if ticket is not None and not numeric and ticket.reference != ref.upper():
        ticket = None
    if ticket is None:
        abort(404, f"ticket {ref} not found", extra_data={"code": "not_found"})
    return ticket


@bp.get("/tickets/<ref>")
@bp.auth_required(token_auth, roles=["agent"])
@bp.output(TicketDetail)
def get_ticket(ref):
    """Called by the console to open one ticket (by id or reference) with its timeline."""
    ticket = _ticket(ref)
    timeline = db.session.scalars(
        sa.select(Interaction).where(Interaction.ticket_id == ticket.id)
        .order_by(Interaction.created_at, Interaction.id)
    ).unique().all()
    citizens.audit(current_user(), "citizen.read", "citizen", ticket.citizen_id,
                   {"via": "ticket", "ticket": ticket.reference})
    db.session.commit()
    ticket.timeline = timeline  # a plain attribute for the response schema
    return ticket


@bp.patch("/tickets/<ref>")
@bp.auth_required(token_auth, roles=["agent"])
@bp.input(TicketUpdate, arg_name="body")
@bp.output(TicketOut)
def update_ticket(ref, body):
    """Called by agents to change a ticket's status, priority or queue."""
    return ticket_service.update(_ticket(ref), body, current_user())


@bp.get("/tickets/<ref>/reply-options")
@bp.auth_required(token_auth, roles=["agent"])
@bp.output(ReplyOptionsOut)
def reply_options(ref):
    """Called by the console's composer: the default reply channel, why, and the others."""
    from app.services import replies

    return replies.reply_options(_ticket(ref))


@bp.post("/tickets/<ref>/reply")
@bp.auth_required(token_auth, roles=["agent"])
@bp.input(ReplyIn, arg_name="body")
@bp.output(InteractionOut, status_code=201)
def reply(ref, body):
    """Called by an agent sending a reply to the resident."""
    from app.services import replies

    kb = None
    if body.get("kb_article_id") and body.get("kb_version"):
        kb = (body["kb_article_id"], body["kb_version"])
    return replies.reply(_ticket(ref), current_user(), body["text"],
                         channel=body.get("channel"), kb=kb)


@bp.post("/tickets/<ref>/notes")
@bp.auth_required(token_auth, roles=["agent"])
@bp.input(NoteIn, arg_name="body")
@bp.output(InteractionOut, status_code=201)
def add_note(ref, body):
    """Called by an agent writing an internal note on a ticket."""
    from app.services import replies

    return replies.add_note(_ticket(ref), current_user(), body["text"])
