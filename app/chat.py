"""Web chat: the ``/chat`` Socket.IO namespace for residents, the agent side of a chat,
the chat outbound sender and the embeddable widget's pages.

A chat starts with the knowledge base answering (``SELF_SERVICE_HOOKS["chat"]``) and an
offer to talk to a person; asking for one puts the ticket in its queue as a work item.
Every resident message goes through ``intake`` with the client's message id in the
provider id, so a resend after a reconnect is never stored twice. The resumable session
token lives in the browser; resuming replays the whole conversation.

The resident is reachable in chat while the session is ``active`` (connected) or
``away`` (disconnected, within the reconnect grace period). After the grace period the
session is ``left``; when no agent takes the chat within the queue's
``max_wait_seconds`` it is ``handed_off``. In both cases the conversation continues on
the resident's next channel (the email or phone number from the chat form or the
profile): the chat sender refuses, and outbound falls back.

Rooms: ``chat:<token>`` (every tab of one resident's chat, namespace ``/chat``);
agents receive chat events in ``ticket:<id>`` on ``/agent``.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from apiflask import APIBlueprint
from flask import current_app, render_template, request, send_from_directory, session
from flask_socketio import Namespace, join_room

from app import realtime
from app.extensions import db
from app.jobs import job
from app.models import (
    ChatSession,
    Citizen,
    ContactPoint,
    Interaction,
    Outbox,
    Queue,
    Ticket,
    User,
    WorkItem,
    row_id,
    utcnow,
)
from app.services import (
    Forbidden,
    Invalid,
    NotFound,
    ServiceError,
    commit_keeping_loaded,
    followup,
    outbound,
)
from app.services.contacts import normalize_email, normalize_phone
from channels.base import DeliveryResult, InboundMessage, OutboundMessage, PermanentDeliveryError

log = logging.getLogger(__name__)

NAMESPACE = "/chat"
MAX_MESSAGE_CHARS = 2000
RATE_MESSAGES, RATE_SECONDS = 10, 10.0
RECONNECT_GRACE_SECONDS = 30
REACHABLE = ("active", "away")
CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(-[A-Za-z]{2})?$")
# Interactions recorded for the record but not part of the conversation a resident sees.
HIDDEN_META = ("transcript", "fallback_reason", "chat_handoff", "chat_unread")

bp = APIBlueprint("chat", __name__, enable_openapi=False)
STATIC = Path(__file__).resolve().parent / "static"


# --- connections ------------------------------------------------------------------------


@dataclass
class _Connection:
    """What one socket knows between events: its chat and its rate windows."""

    session_id: int | None = None
    token: str | None = None
    ticket_id: int | None = None
    language: str | None = None
    sent: deque = field(default_factory=deque)
    typing: deque = field(default_factory=deque)


_CONNECTIONS: dict[str, _Connection] = {}
_LOCK = threading.Lock()


def _connection() -> _Connection:
    with _LOCK:
        return _CONNECTIONS.setdefault(request.sid, _Connection())


def _allow(window: deque, limit: int, seconds: float) -> float:
    """0 when one more event fits in the sliding window, else seconds to wait."""
    now = time.monotonic()
    while window and now - window[0] > seconds:
        window.popleft()
    if len(window) >= limit:
        return round(seconds - (now - window[0]), 1)
    window.append(now)
    return 0.0


def visitor_id(token: str) -> str:
    """The chat contact point's value: derived from the token, never revealing it."""
    return "visitor-" + hashlib.sha256(token.encode()).hexdigest()[:24]


def _config(name: str, default):
    return current_app.config.get(name, default)


# --- services ---------------------------------------------------------------------------


def _language(value: Any) -> str | None:
    value = (value or "").strip() if isinstance(value, str) else ""
    return value.lower() if LANGUAGE_RE.match(value.lower()) else None


def _text(data: dict, key: str, limit: int) -> str:
    value = data.get(key)
    return value.replace("\x00", "").strip()[:limit] if isinstance(value, str) else ""


def _chat_citizen(visitor: str, name: str, language: str | None,
                  contacts: list[tuple[str, str]]) -> Citizen:
    """The citizen behind a new chat: the owner of an email or phone number given in the
    chat form when one is on file (so nobody repeats themselves), else a new citizen."""
    from app.services.intake import resolve_citizen

    for kind, value in contacts:
        point = db.session.scalar(sa.select(ContactPoint).where(
            ContactPoint.kind == kind, ContactPoint.value == value))
        if point is not None:
            citizen = db.session.get(Citizen, point.citizen_id)
            while citizen.merged_into_id:
                citizen = db.session.get(Citizen, citizen.merged_into_id)
            break
    else:
        citizen, _ = resolve_citizen("chat", visitor, name=name or "Web chat visitor",
                                     language=language)
        db.session.flush()
    existing = {(p.kind, p.value) for p in db.session.scalars(
        sa.select(ContactPoint).where(ContactPoint.citizen_id == citizen.id))}
    for kind, value in [("chat", visitor), *contacts]:
        if (kind, value) in existing:
            continue
        taken = db.session.scalar(sa.select(ContactPoint.id).where(
            ContactPoint.kind == kind, ContactPoint.value == value))
        if taken is None:
            db.session.add(ContactPoint(citizen_id=citizen.id, kind=kind, value=value,
                                        consent_note="given in the web chat form"))
    if language and not citizen.language:
        citizen.language = language
    return citizen


def start_chat(data: dict) -> ChatSession:
    """Open a chat session from the widget's form: name, email, phone, language."""
    contacts: list[tuple[str, str]] = []
    if _text(data, "email", 254):
        contacts.append(("email", normalize_email(_text(data, "email", 254))))
    if _text(data, "phone", 32):
        contacts.append(("phone", normalize_phone(_text(data, "phone", 32))))
    language = _language(data.get("language"))
    token = secrets.token_urlsafe(32)
    citizen = _chat_citizen(visitor_id(token), _text(data, "name", 120), language, contacts)
    chat = ChatSession(token=token, citizen_id=citizen.id, status="active",
                       last_seen_at=utcnow())
    db.session.add(chat)
    db.session.commit()
    return chat


def session_by_token(token: Any) -> ChatSession:
    chat = None
    if isinstance(token, str) and 0 < len(token) <= 64:
        chat = db.session.scalar(sa.select(ChatSession).where(ChatSession.token == token))
    if chat is None:
        raise NotFound("this chat session is unknown or has expired; start a new chat",
                       code="unknown_session")
    return chat


def message_payload(interaction: Interaction, agent_name: str | None = None) -> dict[str, Any]:
    """One message as the resident's widget shows it."""
    meta = interaction.meta or {}
    author = {"citizen": "resident"}.get(interaction.author_kind, interaction.author_kind)
    return {
        "id": interaction.id,
        "client_id": meta.get("client_id"),
        "author": author,
        "name": agent_name if author == "agent" else None,
        "text": interaction.text,
        "channel": interaction.channel,
        "at": interaction.created_at.isoformat() + "Z" if interaction.created_at else None,
        "kb": {"article_id": interaction.kb_article_id, "version": interaction.kb_article_version}
        if interaction.kb_article_id else None,
        "offer_person": bool(meta.get("offer_person")),
    }


def conversation(chat: ChatSession) -> list[dict[str, Any]]:
    """The whole conversation of a chat, in order, as the resident sees it."""
    if chat.ticket_id is None:
        return []
    rows = db.session.execute(
        sa.select(Interaction, User.name)
        .outerjoin(User, User.id == Interaction.author_agent_id)
        .where(Interaction.ticket_id == chat.ticket_id, Interaction.direction != "internal")
        .order_by(Interaction.id)
    ).all()
    return [message_payload(i, name) for i, name in rows
            if not any(k in (i.meta or {}) for k in HIDDEN_META)]


def _emit_to_resident(chat_token: str, event: str, data: dict[str, Any],
                      skip_sid: str | None = None) -> None:
    if current_app.config.get("REALTIME_DISABLED"):
        return
    from app.extensions import socketio

    try:
        socketio.emit(event, data, to=f"chat:{chat_token}", namespace=NAMESPACE,
                      skip_sid=skip_sid)
    except Exception:  # noqa: BLE001 - the resident resyncs on resume
        log.warning("chat emit of %s failed", event, exc_info=True)


def post_notice(chat: ChatSession, ticket: Ticket, text: str, *, author_kind: str = "bot",
                kb: tuple[int, int] | None = None, meta: dict | None = None) -> Interaction:
    """Record a knowledge-base answer or a notice in the chat and show it to the resident."""
    interaction = Interaction(
        ticket_id=ticket.id, citizen_id=ticket.citizen_id, channel="chat",
        direction="outbound", author_kind=author_kind, provider_id=f"note-{secrets.token_hex(12)}",
        text=text, delivery_status="delivered", meta=meta or {}, created_at=utcnow(),
        kb_article_id=kb[0] if kb else None, kb_article_version=kb[1] if kb else None,
    )
    db.session.add(interaction)
    ticket.last_activity_at = utcnow()
    commit_keeping_loaded()  # shown as written: nothing to read back
    _emit_to_resident(chat.token, "chat.message", message_payload(interaction))
    realtime.emit("interaction.created", {"ticket": realtime.ticket_summary(ticket),
                                          "interaction": realtime.interaction_summary(interaction)},
                  rooms=realtime.ticket_rooms(ticket))
    return interaction


def resident_message(conn: _Connection, data: dict) -> dict[str, Any]:
    """Store one resident message (once, whatever the resends) and return its payload."""
    if conn.session_id is None:
        raise Invalid("start or resume a chat first", code="no_session")
    text = data.get("text") if isinstance(data.get("text"), str) else ""
    text = text.strip()
    if not text:
        raise Invalid("a message needs text", code="empty_message")
    limit = _config("CHAT_MAX_MESSAGE_CHARS", MAX_MESSAGE_CHARS)
    if len(text) > limit:
        raise Invalid(f"messages are limited to {limit} characters", code="message_too_long",
                      detail={"limit": limit})
    client_id = data.get("client_id")
    if not isinstance(client_id, str) or not CLIENT_ID_RE.match(client_id):
        raise Invalid("each message needs a client_id (1-64 letters, digits, - or _)",
                      code="invalid_client_id")
    from app.services.intake import intake

    topic = data.get("topic") if isinstance(data.get("topic"), str) else None
    msg = InboundMessage(
        channel="chat", provider_id=f"{conn.session_id}:{client_id}",
        sender=visitor_id(conn.token), text=text, language=conn.language,
        thread_keys={"chat_session": str(conn.session_id)},
        metadata={"chat_session": conn.session_id, "client_id": client_id},
        topic=topic[:50] if topic else None,
    )
    # The follow-up (knowledge-base answer, work item, routing) is queued below only when
    # the chat is not already with a person or a pre-hook may want the line, the rule of
    # intake's own follow-up: asked for after the commit, so a line is never left without
    # one that it needs.
    result = intake(msg, follow_up=False)
    if conn.ticket_id != result.ticket_id:
        db.session.execute(sa.update(ChatSession).where(ChatSession.id == conn.session_id)
                           .values(ticket_id=result.ticket_id))
        db.session.commit()
        conn.ticket_id = result.ticket_id
    if result.duplicate or result.announcement is None:
        payload = message_payload(db.session.get(Interaction, result.interaction_id))
    else:
        payload = _resident_payload(result.announcement["interaction"], client_id)
    if not result.duplicate:
        if not result.with_person or followup.pre_hooks_may_want("chat", text):
            from app import jobs

            jobs.enqueue("app.tasks.process_inbound", result.interaction_id,
                         result.created_ticket)
        db.session.commit()  # hand the connection back before the emits
        _emit_to_resident(conn.token, "chat.message", payload, skip_sid=request.sid)
    return {"ok": True, "duplicate": result.duplicate, "reference": result.ticket_reference,
            "message": payload}


def _resident_payload(summary: dict[str, Any], client_id: str) -> dict[str, Any]:
    """A new resident message as the widget shows it, from what intake announced (the
    same fields ``message_payload`` reads from the stored row)."""
    return {"id": summary["id"], "client_id": client_id, "author": "resident", "name": None,
            "text": summary["text"], "channel": "chat", "at": summary["created_at"],
            "kb": None, "offer_person": False}


def kb_feedback(conn: _Connection, data: dict) -> dict[str, Any]:
    """Record one "was this helpful?" vote on a KB answer shown in this chat (once per
    answer: a second vote on the same answer changes nothing)."""
    from app.models import KBFeedback
    from app.services import knowledge

    interaction_id, helpful = data.get("interaction_id"), data.get("helpful")
    if not _message_id(interaction_id) or not isinstance(helpful, bool):
        raise Invalid("feedback needs interaction_id and helpful (true or false)",
                      code="invalid_feedback")
    interaction = db.session.get(Interaction, interaction_id)
    if (interaction is None or conn.ticket_id is None
            or interaction.ticket_id != conn.ticket_id or not interaction.kb_article_id):
        raise Invalid("that message is not an answer in this chat", code="unknown_answer")
    already = db.session.scalar(sa.select(KBFeedback.id).where(
        KBFeedback.interaction_id == interaction.id).limit(1))
    if already is None:
        knowledge.record_feedback(interaction.kb_article_id, interaction.kb_article_version,
                                  "chat", helpful, interaction_id=interaction.id)
    return {"ok": True, "recorded": already is None}


def _wants_person(ticket: Ticket) -> bool:
    if ticket.assigned_agent_id:
        return True
    return db.session.scalar(
        sa.select(WorkItem.id).where(WorkItem.ticket_id == ticket.id).limit(1)) is not None


def _chat_for_ticket(ticket_id: int) -> ChatSession | None:
    return db.session.scalar(sa.select(ChatSession).where(ChatSession.ticket_id == ticket_id)
                             .order_by(ChatSession.id.desc()).limit(1))


def self_service(interaction: Interaction, ticket: Ticket) -> bool:
    """SELF_SERVICE_HOOKS["chat"], run by the follow-up job of each resident message: the
    knowledge base answers until the resident asks for a person (True), then routing
    takes over (False)."""
    if interaction.direction != "inbound" or interaction.author_kind != "citizen":
        return False
    if _wants_person(ticket):
        return False
    chat = _chat_for_ticket(ticket.id)
    if chat is None:
        return False
    from app.services import knowledge

    answer = knowledge.answer_for(interaction.text, "chat", ticket.language, ticket.id)
    if answer is not None and answer.self_service:
        text = answer.text.strip()
        if answer.url and answer.url not in text:  # the chat rendering links it already
            text += f"\n\nMore: {answer.url}"
        followup.take_topic(ticket, answer)
        ticket.self_served = True
        post_notice(chat, ticket, text, kb=(answer.article_id, answer.version),
                    meta={"offer_person": True, "kb_confidence": round(answer.confidence, 3)})
    else:
        post_notice(chat, ticket, "I could not find an answer to that. You can ask in other "
                    "words, or talk to a person.", meta={"offer_person": True})
    return True


def request_person(conn: _Connection) -> dict[str, Any]:
    """The resident asks to talk to a person: the chat becomes a work item in its queue."""
    if conn.session_id is None:
        raise Invalid("start or resume a chat first", code="no_session")
    chat = db.session.get(ChatSession, conn.session_id)
    ticket = db.session.get(Ticket, chat.ticket_id) if chat.ticket_id else None
    if ticket is None:
        raise Invalid("type your question first, then ask for a person", code="no_question")
    if ticket.assigned_agent_id:
        return {"ok": True, "status": "assigned", "reference": ticket.reference}
    already = _wants_person(ticket)
    ticket.self_served = False
    if ticket.status == "resolved":
        ticket.status, ticket.resolved_at = "open", None
    item = followup.ensure_work_item(ticket)
    db.session.commit()
    if item is None:
        hand_off(chat, ticket, "no queue can take this chat now")
        return {"ok": True, "status": chat.status, "reference": ticket.reference}
    if not already:
        for route in followup.ROUTE_HOOKS:
            route(item.id)
        queue = db.session.get(Queue, item.queue_id)
        post_notice(chat, ticket, f"Connecting you with a person. Your reference is "
                    f"{ticket.reference}.", author_kind="system")
        from app import jobs

        jobs.enqueue("app.chat.chat_wait_expired", chat.id, delay=queue.max_wait_seconds,
                     job_id=f"chat-wait-{chat.id}-{item.id}")
    return {"ok": True, "status": "waiting", "reference": ticket.reference}


def _mask(address: str) -> str:
    if "@" in address:
        local, _, domain = address.partition("@")
        return f"{local[:1]}***@{domain}"
    return "***" + address[-4:]


def hand_off(chat: ChatSession, ticket: Ticket, reason: str) -> bool:
    """Continue the conversation on the resident's next channel; False when none."""
    from app.services import reach

    decision = reach.choose_channel(ticket.citizen_id, exclude={"chat"}, text_only=True)
    if decision is None:
        post_notice(chat, ticket, "Everyone is still busy. Please stay here; a person will "
                    "answer as soon as one is free.", author_kind="system")
        return False
    chat.status = "handed_off"
    db.session.commit()
    where = "email" if decision.channel == "email" else "text message"
    post_notice(chat, ticket, f"No one is free right now. We will answer by {where} at "
                f"{_mask(decision.address)} (reference {ticket.reference}).",
                author_kind="system")
    last = db.session.scalar(
        sa.select(Interaction.text).where(Interaction.ticket_id == ticket.id,
                                          Interaction.direction == "inbound")
        .order_by(Interaction.id.desc()).limit(1)) or ""
    text = (f"We received your chat question: \"{last[:300]}\". A person will answer here "
            f"soon. Your reference is {ticket.reference}.")
    outbound.queue_message(ticket, decision.channel, text, to=decision.address,
                           subject=f"[{ticket.reference}] Your chat with the city"
                           if decision.channel == "email" else None,
                           author_kind="system", meta={"chat_handoff": reason})
    return True


def agent_typing(ticket_id: int, agent: User, typing: bool) -> None:
    """Show the resident that an agent is (or stopped) typing."""
    chat = _chat_for_ticket(ticket_id)
    if chat is not None and chat.status in REACHABLE:
        _emit_to_resident(chat.token, "chat.typing",
                          {"typing": bool(typing), "author": "agent", "name": agent.name})


def send_chat_message(ticket_id: int, text: str, agent_id: int) -> Interaction:
    """An agent's chat reply: recorded as an outbound chat interaction with its outbox row,
    shown live in the resident's chat, or (when the resident left) sent on their next
    channel by outbound's fallback."""
    ticket = db.session.get(Ticket, ticket_id)
    agent = db.session.get(User, agent_id)
    if ticket is None or agent is None:
        raise NotFound("ticket or agent not found")
    if ticket.assigned_agent_id not in (None, agent.id) and not agent.has_role("supervisor"):
        raise Forbidden("this chat is assigned to another agent", code="not_assigned")
    chat = _chat_for_ticket(ticket.id)
    if chat is None:
        raise Invalid("this ticket has no web chat", code="no_chat")
    if len(text or "") > _config("CHAT_MAX_MESSAGE_CHARS", MAX_MESSAGE_CHARS):
        raise Invalid("the message is too long", code="message_too_long")
    interaction = outbound.queue_message(ticket, "chat", text, to=visitor_id(chat.token),
                                         author_agent_id=agent.id, commit=False, opens=True)
    row = outbound.staged_outbox(interaction)
    commit_keeping_loaded()  # announced as written: nothing to read back
    # Announced, then shown to the resident live; the delivery job takes over a failure.
    outbound.after_commit(row.id, interaction.id, deliver_now=True)
    db.session.expire_all()
    return db.session.get(Interaction, interaction.id)


def deliver_to_chat(message: OutboundMessage) -> DeliveryResult:
    """The chat channel's sender: shows the message in the resident's open chat, or
    refuses when the resident left so outbound falls back to email or SMS."""
    chat = _chat_for_ticket(int(message.metadata.get("ticket_id") or 0))
    if chat is None or visitor_id(chat.token) != message.to:
        raise PermanentDeliveryError("no web chat is open for this resident", code="chat_closed")
    if chat.status not in REACHABLE:
        raise PermanentDeliveryError(f"the resident's chat is {chat.status.replace('_', ' ')}",
                                     code="chat_left")
    row = db.session.get(Outbox, message.metadata.get("outbox_id"))
    interaction = db.session.get(Interaction, row.interaction_id)
    name = interaction.author_agent.name if interaction.author_agent else None
    _emit_to_resident(chat.token, "chat.message", message_payload(interaction, name))
    return DeliveryResult(provider_id=f"out-{message.idempotency_key}", status="delivered")


def _message_id(value: Any) -> bool:
    """Whether ``value`` (from the widget's JSON) can be a message's id: a JSON number
    (the widget sends nothing else) that an id column holds."""
    return type(value) is int and row_id(value) is not None


def mark_read(conn: _Connection, data: dict) -> dict[str, Any]:
    """Store the resident's read receipt (only ever forward) and tell the agents."""
    if conn.session_id is None or conn.ticket_id is None:
        raise Invalid("start or resume a chat first", code="no_session")
    interaction_id = data.get("interaction_id")
    if not _message_id(interaction_id):
        raise Invalid("interaction_id must be a message's number", code="invalid_read")
    owned = db.session.scalar(sa.select(Interaction.id).where(
        Interaction.id == interaction_id, Interaction.ticket_id == conn.ticket_id))
    if owned is None:
        raise Invalid("that message is not part of this chat", code="invalid_read")
    db.session.execute(
        sa.update(ChatSession).where(
            ChatSession.id == conn.session_id,
            sa.or_(ChatSession.last_read_interaction_id.is_(None),
                   ChatSession.last_read_interaction_id < interaction_id))
        .values(last_read_interaction_id=interaction_id))
    db.session.commit()
    realtime.emit("chat.read", {"ticket_id": conn.ticket_id, "interaction_id": interaction_id},
                  rooms=[f"ticket:{conn.ticket_id}"])
    return {"ok": True, "interaction_id": interaction_id}


def transcript_text(chat: ChatSession, ticket: Ticket) -> str:
    labels = {"resident": "You", "bot": "CivicLine", "system": "CivicLine"}
    lines = [f"Your chat with the city, reference {ticket.reference}", ""]
    for m in conversation(chat):
        who = (m["name"] or "Agent") if m["author"] == "agent" else labels.get(m["author"], "")
        lines.append(f"[{(m['at'] or '')[:16].replace('T', ' ')} UTC] {who}: {m['text']}")
    return "\n".join(lines)


def send_transcript(conn: _Connection, data: dict) -> dict[str, Any]:
    """Email the conversation to the address given (or the one on file)."""
    if conn.session_id is None or conn.ticket_id is None:
        raise Invalid("there is no conversation to send yet", code="no_question")
    chat = db.session.get(ChatSession, conn.session_id)
    ticket = db.session.get(Ticket, chat.ticket_id)
    address = _text(data, "email", 254)
    if address:
        address = normalize_email(address)
    else:
        address = db.session.scalar(
            sa.select(ContactPoint.value).where(ContactPoint.citizen_id == ticket.citizen_id,
                                                ContactPoint.kind == "email")
            .order_by(ContactPoint.id.desc()).limit(1))
    if not address:
        raise Invalid("give an email address for the transcript", code="no_email")
    outbound.queue_message(ticket, "email", transcript_text(chat, ticket), to=address,
                           subject=f"[{ticket.reference}] Your chat transcript",
                           author_kind="system", meta={"transcript": True})
    return {"ok": True, "email": _mask(address)}


# --- jobs -------------------------------------------------------------------------------


@job(queue="scheduled")
def chat_wait_expired(chat_id: int) -> None:
    """Triggered max_wait_seconds after a resident asked for a person: when no agent has
    taken the chat, the conversation continues on the resident's next channel."""
    chat = db.session.get(ChatSession, chat_id)
    if chat is None or chat.status not in REACHABLE or chat.ticket_id is None:
        return
    ticket = db.session.get(Ticket, chat.ticket_id)
    taken = ticket.assigned_agent_id or db.session.scalar(
        sa.select(WorkItem.id).where(WorkItem.ticket_id == ticket.id,
                                     WorkItem.status == "assigned").limit(1))
    if taken or ticket.status not in ("new", "open", "pending_citizen"):
        return
    hand_off(chat, ticket, "no agent was free within the queue's maximum wait")


@job(queue="scheduled")
def chat_left(chat_id: int, marker: str) -> None:
    """Triggered a grace period after a resident's chat disconnected: if they did not come
    back, the session is left and agent messages they never read go by email or SMS."""
    chat = db.session.get(ChatSession, chat_id)
    if chat is None or chat.status != "away" or chat.last_seen_at.isoformat() != marker:
        return
    chat.status = "left"
    db.session.commit()
    if chat.ticket_id is None:
        return
    unread = db.session.scalars(
        sa.select(Interaction).where(
            Interaction.ticket_id == chat.ticket_id, Interaction.channel == "chat",
            Interaction.author_kind == "agent", Interaction.delivery_status == "delivered",
            Interaction.id > (chat.last_read_interaction_id or 0))
        .order_by(Interaction.id)).all()
    if not unread:
        return
    from app.services import reach

    ticket = db.session.get(Ticket, chat.ticket_id)
    decision = reach.choose_channel(ticket.citizen_id, exclude={"chat"}, text_only=True)
    if decision is None:
        return  # kept in the chat; the resident sees it when they resume
    text = "\n\n".join(i.text for i in unread)
    outbound.queue_message(ticket, decision.channel, text, to=decision.address,
                           subject=f"[{ticket.reference}] Reply to your chat"
                           if decision.channel == "email" else None,
                           author_kind="agent", author_agent_id=unread[-1].author_agent_id,
                           meta={"chat_unread": [i.id for i in unread],
                                 "fallback_reason": "the resident left the chat before reading"})


# --- Socket.IO --------------------------------------------------------------------------


def _guarded(handler):
    """Answer a refused event with an error ack and a ``chat.error`` event. An event that
    fails for any other reason (the database away, a fault of ours) is answered the same
    way, as one to try again, and logged: the widget is never left waiting for an ack."""

    @functools.wraps(handler)
    def wrapper(self, *args):
        try:
            return handler(self, *args)
        except ServiceError as exc:
            db.session.rollback()
            return _fail(exc)
        except sa.exc.DataError:  # a value the database refuses (a NUL character)
            db.session.rollback()
            return _fail(Invalid("a value in the message cannot be stored (it holds "
                                 "characters that are not allowed)", code="invalid_value"))
        except Exception:  # noqa: BLE001 - answered, logged, and the session reset
            log.exception("chat event %s failed", handler.__name__)
            db.session.remove()
            return _fail(ServiceError("something went wrong here; please try again",
                                      code="try_again", status=503))

    return wrapper


def _fail(exc: ServiceError) -> dict[str, Any]:
    error = {"code": exc.code, "message": exc.message, **exc.detail}
    from flask_socketio import emit

    emit("chat.error", error)
    return {"ok": False, "error": error}


def _bind(conn: _Connection, chat: ChatSession) -> None:
    citizen = db.session.get(Citizen, chat.citizen_id)
    conn.session_id, conn.token, conn.ticket_id = chat.id, chat.token, chat.ticket_id
    conn.language = citizen.language if citizen else None
    join_room(f"chat:{chat.token}")


def _session_state(chat: ChatSession) -> dict[str, Any]:
    ticket = db.session.get(Ticket, chat.ticket_id) if chat.ticket_id else None
    return {"ok": True, "token": chat.token, "status": chat.status,
            "reference": ticket.reference if ticket else None,
            "last_read_interaction_id": chat.last_read_interaction_id,
            "messages": conversation(chat)}


class ChatNamespace(Namespace):
    """``/chat``: residents. Events are acknowledged with ``{"ok": ...}`` or
    ``{"ok": false, "error": {code, message}}``; errors are also emitted as ``chat.error``."""

    def _set_socketio(self, socketio):
        # The console's side of a chat (typing, live replies) lives with the chat, on /agent.
        super()._set_socketio(socketio)
        socketio.on_event("chat.typing", _agent_typing_event, namespace="/agent")
        socketio.on_event("chat.send", _agent_send_event, namespace="/agent")

    def trigger_event(self, event, *args):
        # Event names are dotted (``chat.message``); handlers are ``on_chat_message``.
        return super().trigger_event((event or "").replace(".", "_"), *args)

    def on_connect(self, auth=None):
        """A resident's browser opens the chat widget (anonymous; the token comes next)."""
        _connection()
        return True

    def on_disconnect(self, reason=None):
        """A resident's page closed or lost its connection: away until the grace ends."""
        with _LOCK:
            conn = _CONNECTIONS.pop(request.sid, None)
        if conn is None or conn.session_id is None:
            return
        from app.extensions import socketio

        room = f"chat:{conn.token}"
        others = [sid for sid, _ in socketio.server.manager.get_participants(NAMESPACE, room)
                  if sid != request.sid]
        if others:
            return  # another tab of the same chat is still open
        chat = db.session.get(ChatSession, conn.session_id)
        if chat is None or chat.status != "active":
            return
        chat.status, chat.last_seen_at = "away", utcnow()
        db.session.commit()
        from app import jobs

        jobs.enqueue("app.chat.chat_left", chat.id, chat.last_seen_at.isoformat(),
                     delay=_config("CHAT_RECONNECT_GRACE_SECONDS", RECONNECT_GRACE_SECONDS))

    @_guarded
    def on_chat_start(self, data=None):
        """The resident submits the chat form (name, email, phone, language: all optional)."""
        conn = _connection()
        if conn.session_id is not None:
            raise Invalid("this connection already has a chat", code="session_exists")
        chat = start_chat(data if isinstance(data, dict) else {})
        _bind(conn, chat)
        return _session_state(chat)

    @_guarded
    def on_chat_resume(self, data=None):
        """The widget reconnects or the page reloads with its stored token."""
        conn = _connection()
        chat = session_by_token((data or {}).get("token") if isinstance(data, dict) else None)
        _bind(conn, chat)
        if chat.status in ("away", "left"):
            chat.status = "active"
        chat.last_seen_at = utcnow()
        state = _session_state(chat)
        db.session.commit()
        return state

    @_guarded
    def on_chat_message(self, data=None):
        """The resident sends (or resends after a reconnect) a message."""
        conn = _connection()
        wait = _allow(conn.sent, *_config("CHAT_RATE_LIMIT", (RATE_MESSAGES, RATE_SECONDS)))
        if wait:
            raise Invalid("You are sending messages too quickly. Wait a few seconds and "
                          "send again.", code="rate_limited", detail={"retry_after": wait})
        return resident_message(conn, data if isinstance(data, dict) else {})

    @_guarded
    def on_chat_person(self, data=None):
        """The resident chooses "talk to a person"."""
        return request_person(_connection())

    def on_chat_typing(self, data=None):
        """The resident is typing (or stopped): shown to agents viewing the ticket."""
        conn = _connection()
        if conn.ticket_id is None or _allow(conn.typing, 20, 10.0):
            return {"ok": False}
        typing = bool((data or {}).get("typing")) if isinstance(data, dict) else False
        realtime.emit("chat.typing", {"ticket_id": conn.ticket_id, "typing": typing,
                                      "author": "resident"}, rooms=[f"ticket:{conn.ticket_id}"])
        return {"ok": True}

    @_guarded
    def on_chat_feedback(self, data=None):
        """The resident answers "was this helpful?" under a knowledge-base answer."""
        return kb_feedback(_connection(), data if isinstance(data, dict) else {})

    @_guarded
    def on_chat_read(self, data=None):
        """The resident's widget has shown messages up to an interaction id."""
        return mark_read(_connection(), data if isinstance(data, dict) else {})

    @_guarded
    def on_chat_transcript(self, data=None):
        """The resident asks for the transcript by email."""
        conn = _connection()
        wait = _allow(conn.sent, *_config("CHAT_RATE_LIMIT", (RATE_MESSAGES, RATE_SECONDS)))
        if wait:
            raise Invalid("Too many requests; wait a few seconds.", code="rate_limited",
                          detail={"retry_after": wait})
        return send_transcript(conn, data if isinstance(data, dict) else {})


def _agent_from_socket() -> User | None:
    uid = session.get("socket_uid")
    return db.session.get(User, uid) if uid else None


def _agent_typing_event(data=None):
    """The console's composer reports an agent typing on a chat ticket."""
    agent = _agent_from_socket()
    if agent is None or not isinstance(data, dict):
        return {"ok": False}
    ticket_id = row_id(data.get("ticket_id"))
    if ticket_id is None:
        return {"ok": False}
    agent_typing(ticket_id, agent, bool(data.get("typing")))
    return {"ok": True}


def _agent_send_event(data=None):
    """The console sends an agent's chat reply over the socket."""
    agent = _agent_from_socket()
    if agent is None or not isinstance(data, dict):
        return {"ok": False, "error": {"code": "unauthorized", "message": "sign in first"}}
    ticket_id = row_id(data.get("ticket_id"))
    if ticket_id is None:
        return {"ok": False, "error": {"code": "invalid", "message": "ticket_id is a number"}}
    try:
        interaction = send_chat_message(ticket_id, str(data.get("text") or ""), agent.id)
    except ServiceError as exc:
        db.session.rollback()
        return {"ok": False, "error": {"code": exc.code, "message": exc.message}}
    return {"ok": True, "id": interaction.id, "delivery_status": interaction.delivery_status}


# --- pages ------------------------------------------------------------------------------


@bp.get("/chat-widget.js")
def widget_script():
    """Loaded by any page that embeds the web chat widget."""
    response = send_from_directory(STATIC, "chat-widget.js", mimetype="text/javascript",
                                   max_age=300)
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.get("/chat-demo")
def demo():
    """A resident opens the demo page that embeds the chat widget."""
    return render_template("chat_demo.html")


def register() -> None:
    """Wire the chat channel into the outbox and the follow-up of intake."""
    outbound.register_sender("chat", lambda app: deliver_to_chat)
    followup.SELF_SERVICE_HOOKS["chat"] = self_service


register()
