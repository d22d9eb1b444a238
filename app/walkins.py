"""Walk-ins: kiosk check-in, queue numbers, desk calls and the now-serving board.

A check-in takes a number per service line and day (``B-017``: the queue's walk-in
prefix and a ``Counter`` row named ``walkin:<queue>:<day>`` incremented atomically),
opens a ticket through intake (channel ``walkin``, thread key ``walkin_visit``) and a
``WalkInVisit``. Service days follow ``WALKIN_TIMEZONE`` (default America/New_York).

Calling the next visitor (``call_next``) is done here rather than by the routing engine,
because a desk serves whoever stands in the hall: among today's waiting visitors in the
queues the agent serves (their topic skills; ``general`` for everyone; all queues for
supervisors), those whose language the agent speaks (or who gave none) come first, first
come first served. A visitor whose language no caller speaks is not left behind: after
the queue's ``overflow.relax_after`` seconds (default 600) any desk may call them. Two
desks calling at once never get the same visitor (a conditional update claims it).

Residents who left a phone number get one text when two visitors are ahead of them
(not if they were that close already at check-in), unless the number opted out.
"""

from __future__ import annotations

import logging
import re
import uuid
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from apiflask import APIBlueprint
from flask import current_app, render_template
from flask_socketio import Namespace, join_room
from sqlalchemy.exc import IntegrityError

from app import realtime
from app.extensions import db
from app.models import (
    AgentSkill,
    Counter,
    Interaction,
    Queue,
    Skill,
    Ticket,
    User,
    WalkInVisit,
    utcnow,
)
from app.services import Conflict, Invalid, NotFound, outbound
from app.services.contacts import normalize_phone
from channels.base import InboundMessage

log = logging.getLogger(__name__)

BOARD = "/board"
DEFAULT_SERVICE_SECONDS = 300
DEFAULT_RELAX_SECONDS = 600
NOTIFY_AHEAD = 2
LANGUAGE_RE = re.compile(r"^[a-z]{2,3}(-[a-z]{2})?$")
CLIENT_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
LANGUAGES = [("en", "English"), ("es", "Español"), ("zh", "中文"), ("vi", "Tiếng Việt"),
             ("ko", "한국어"), ("ru", "Русский"), ("ar", "العربية"), ("tl", "Tagalog"),
             ("fr", "Français"), ("ht", "Kreyòl ayisyen")]

bp = APIBlueprint("walkins", __name__, enable_openapi=False)


# --- numbering and estimates ------------------------------------------------------------


def service_day(now: datetime | None = None) -> date:
    """Today in the office's time zone (numbers restart each service day)."""
    tz = ZoneInfo(current_app.config.get("WALKIN_TIMEZONE", "America/New_York"))
    moment = (now or utcnow()).replace(tzinfo=ZoneInfo("UTC"))
    return moment.astimezone(tz).date()


def next_number(queue: Queue, day: date) -> str:
    """The next number of a service line for a day, e.g. ``B-017`` (atomic, committed)."""
    name = f"walkin:{queue.code}:{day.isoformat()}"
    prefix = queue.walkin_prefix
    for _ in range(5):
        value = db.session.execute(
            sa.update(Counter).where(Counter.name == name)
            .values(value=Counter.value + 1).returning(Counter.value)
        ).scalar()
        if value is None:
            db.session.add(Counter(name=name, value=1))
            try:
                db.session.commit()
            except IntegrityError:  # another kiosk created the day's counter first
                db.session.rollback()
                continue
            value = 1
        else:
            db.session.commit()
        return f"{prefix}-{value:03d}"
    raise Conflict("the queue number could not be allocated; try again", code="busy")


def _waiting(queue_id: int, day: date) -> list[WalkInVisit]:
    return list(db.session.scalars(
        sa.select(WalkInVisit).where(WalkInVisit.queue_id == queue_id,
                                     WalkInVisit.service_day == day,
                                     WalkInVisit.status == "waiting")
        .order_by(WalkInVisit.id)))


def average_service_seconds(queue_id: int, day: date) -> float:
    """Mean time from call to done of today's finished visits (a default before any)."""
    rows = db.session.execute(
        sa.select(WalkInVisit.called_at, Ticket.resolved_at)
        .join(Ticket, Ticket.id == WalkInVisit.ticket_id)
        .where(WalkInVisit.queue_id == queue_id, WalkInVisit.service_day == day,
               WalkInVisit.status == "done", WalkInVisit.called_at.is_not(None),
               Ticket.resolved_at.is_not(None))
        .order_by(WalkInVisit.id.desc()).limit(50)).all()
    spans = [(done - called).total_seconds() for called, done in rows if done >= called]
    if not spans:
        return float(current_app.config.get("WALKIN_SERVICE_SECONDS", DEFAULT_SERVICE_SECONDS))
    return sum(spans) / len(spans)


def visit_out(visit: WalkInVisit, queue: Queue, *, ahead: int | None = None,
              average: float | None = None) -> dict[str, Any]:
    """A visit as the API returns it (never the phone number)."""
    if visit.status == "waiting":
        if ahead is None:
            ahead = sum(1 for v in _waiting(visit.queue_id, visit.service_day) if v.id < visit.id)
        if average is None:
            average = average_service_seconds(visit.queue_id, visit.service_day)
        wait = int(round(ahead * average))
    else:
        ahead, wait = 0, 0
    ticket = db.session.get(Ticket, visit.ticket_id)
    return {
        "id": visit.id, "number": visit.number, "queue": queue.code, "service": queue.name,
        "status": visit.status, "language": visit.language, "desk": visit.desk,
        "people_ahead": ahead, "estimated_wait_seconds": wait,
        "estimated_wait_minutes": (wait + 59) // 60,
        "ticket_reference": ticket.reference if ticket else None,
        "text_when_near": bool(visit.phone), "recalls": visit.recalls,
        "service_day": visit.service_day.isoformat(),
        "called_at": visit.called_at.isoformat() + "Z" if visit.called_at else None,
        "created_at": visit.created_at.isoformat() + "Z" if visit.created_at else None,
    }


# --- check-in ---------------------------------------------------------------------------


def walkin_queues() -> list[Queue]:
    """Service lines that take walk-ins."""
    return [q for q in db.session.scalars(
        sa.select(Queue).where(Queue.active.is_(True), Queue.walkin_prefix.is_not(None))
        .order_by(Queue.name)) if "walkin" in (q.channels or ["walkin"])]


def _open_now(queue: Queue) -> bool:
    from routing.hours import hours_open
    from routing.model import BusinessHours

    weekly = (queue.business_hours or {}).get("weekly") or []
    if not weekly:
        return True
    windows: dict[int, list[tuple[str, str]]] = {}
    tz = weekly[0].get("tz", "UTC")
    for window in weekly:
        for day in window.get("days", []):
            windows.setdefault(int(day), []).append((window["open"], window["close"]))
    hours = BusinessHours(tz=tz, windows={d: tuple(w) for d, w in windows.items()},
                          holidays=frozenset(queue.holidays or []))
    return hours_open(hours, utcnow())


def _existing_checkin(provider_id: str) -> WalkInVisit | None:
    ticket_id = db.session.scalar(sa.select(Interaction.ticket_id).where(
        Interaction.channel == "walkin", Interaction.provider_id == provider_id))
    if ticket_id is None:
        return None
    return db.session.scalar(sa.select(WalkInVisit).where(WalkInVisit.ticket_id == ticket_id))


def check_in(data: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """A visitor checks in at the kiosk; returns (visit, created). A repeated ``client_id``
    (a double tap, a retried request) returns the first check-in."""
    code = (data.get("queue") or "").strip()
    queue = db.session.scalar(sa.select(Queue).where(Queue.code == code)) if code else None
    if queue is None:
        raise NotFound(f"there is no service {code!r}", code="unknown_service")
    if not queue.active or not queue.walkin_prefix or "walkin" not in (queue.channels or
                                                                       ["walkin"]):
        raise Conflict(f"{queue.name} does not take walk-in visitors", code="service_closed")
    if not _open_now(queue):
        raise Conflict(f"{queue.name} is closed now", code="service_closed")
    language = (data.get("language") or "").strip().lower() or None
    if language and not LANGUAGE_RE.match(language):
        raise Invalid(f"not a language code: {language!r}", code="invalid_language")
    phone = normalize_phone(data["phone"]) if (data.get("phone") or "").strip() else None
    client_id = (data.get("client_id") or "").strip() or None
    if client_id and not CLIENT_ID_RE.match(client_id):
        raise Invalid("client_id: 1-64 letters, digits, - or _", code="invalid_client_id")
    provider_id = f"kiosk-{client_id}" if client_id else None
    if provider_id:
        existing = _existing_checkin(provider_id)
        if existing is not None:
            return visit_out(existing, queue), False
    day = service_day()
    number = next_number(queue, day)
    from app.services.intake import intake

    result = intake(InboundMessage(
        channel="walkin", provider_id=provider_id or f"visit-{queue.code}-{day}-{number}",
        sender=phone or f"anon:{uuid.uuid4().hex}",
        text=f"Checked in at the kiosk for {queue.name} ({number})", language=language,
        topic=queue.code, thread_keys={"walkin_visit": f"{queue.code}:{day}:{number}"},
        metadata={"walkin_number": number, "queue": queue.code},
    ), follow_up=False)
    if result.duplicate:
        existing = _existing_checkin(provider_id) if provider_id else None
        if existing is None:
            raise Conflict("this check-in is being processed; try again", code="in_progress")
        return visit_out(existing, queue), False
    visit = WalkInVisit(ticket_id=result.ticket_id, queue_id=queue.id, service_day=day,
                        number=number, language=language, phone=phone, status="waiting")
    db.session.add(visit)
    db.session.flush()
    out = visit_out(visit, queue)
    if out["people_ahead"] <= NOTIFY_AHEAD:
        visit.notified_at = utcnow()  # already near the front: no text needed
    db.session.commit()
    _board_waiting(queue, day)
    return out, True


# --- desks ------------------------------------------------------------------------------


def _agent_skills(agent: User) -> tuple[set[str], set[str]]:
    rows = db.session.execute(
        sa.select(Skill.kind, Skill.code).join(AgentSkill, AgentSkill.skill_id == Skill.id)
        .where(AgentSkill.agent_id == agent.id)).all()
    return ({c for k, c in rows if k == "language"}, {c for k, c in rows if k == "topic"})


def _candidates(agent: User, day: date) -> list[WalkInVisit]:
    """Today's waiting visitors this agent may call, best first (see the module doc)."""
    from app.sockets import agent_queue_codes

    languages, _ = _agent_skills(agent)
    codes = agent_queue_codes(agent)
    if not codes:
        return []
    rows = db.session.execute(
        sa.select(WalkInVisit, Queue).join(Queue, Queue.id == WalkInVisit.queue_id)
        .where(WalkInVisit.service_day == day, WalkInVisit.status == "waiting",
               Queue.code.in_(codes))
        .order_by(WalkInVisit.id)).all()
    now = utcnow()
    chosen = []
    for visit, queue in rows:
        relax = (queue.overflow or {}).get("relax_after", DEFAULT_RELAX_SECONDS)
        waited = (now - visit.created_at).total_seconds()
        if not languages or not visit.language or visit.language in languages or (
                waited >= relax):
            chosen.append(visit)
    return chosen


def call_next(agent: User, desk: str | None) -> dict[str, Any] | None:
    """A desk agent calls the next visitor; None when nobody they can serve is waiting."""
    desk = (desk or agent.desk or "").strip()
    if not desk:
        raise Invalid("say which desk is calling", code="desk_required")
    day = service_day()
    for visit in _candidates(agent, day):
        claimed = db.session.execute(
            sa.update(WalkInVisit).where(WalkInVisit.id == visit.id,
                                         WalkInVisit.status == "waiting")
            .values(status="called", desk=desk[:20], agent_id=agent.id, called_at=utcnow())
        ).rowcount
        if not claimed:
            db.session.rollback()
            continue
        ticket = db.session.get(Ticket, visit.ticket_id)
        ticket.assigned_agent_id = agent.id
        if ticket.status == "new":
            ticket.status = "open"
        db.session.commit()
        db.session.refresh(visit)
        queue = db.session.get(Queue, visit.queue_id)
        _board_called(visit, queue, recall=False)
        _board_waiting(queue, day)
        notify_near(queue, day)
        return visit_out(visit, queue)
    return None


def _visit(visit_id: int) -> tuple[WalkInVisit, Queue]:
    visit = db.session.get(WalkInVisit, visit_id)
    if visit is None:
        raise NotFound(f"visit {visit_id} not found")
    return visit, db.session.get(Queue, visit.queue_id)


def recall(visit_id: int, agent: User) -> dict[str, Any]:
    """Call a visitor who did not come to the desk once more (only once)."""
    visit, queue = _visit(visit_id)
    if visit.status != "called":
        raise Conflict(f"{visit.number} is {visit.status}, not called", code="not_called")
    if visit.recalls >= 1:
        raise Conflict(f"{visit.number} was already recalled; mark it missed",
                       code="already_recalled")
    visit.recalls += 1
    visit.called_at = utcnow()
    db.session.commit()
    _board_called(visit, queue, recall=True)
    return visit_out(visit, queue)


def finish(visit_id: int, agent: User, outcome: str) -> dict[str, Any]:
    """End a called visit: ``done`` (served) or ``missed`` (no-show after one recall)."""
    visit, queue = _visit(visit_id)
    if visit.status != "called":
        raise Conflict(f"{visit.number} is {visit.status}, not called", code="not_called")
    if outcome == "missed" and visit.recalls < 1:
        raise Conflict(f"recall {visit.number} once before marking it missed",
                       code="recall_first")
    visit.status = outcome
    ticket = db.session.get(Ticket, visit.ticket_id)
    now = utcnow()
    ticket.status, ticket.resolved_at = "resolved", now
    ticket.disposition = "served" if outcome == "done" else "no_show"
    ticket.last_activity_at = now
    db.session.commit()
    realtime.emit("board.cleared", {"number": visit.number, "queue": queue.code,
                                    "status": outcome}, rooms=["board"], namespace=BOARD)
    return visit_out(visit, queue)


def list_visits(code: str | None, status: str | None) -> list[dict[str, Any]]:
    """Today's visits (of one queue), each waiting one with its estimated wait."""
    day = service_day()
    query = sa.select(WalkInVisit, Queue).join(Queue, Queue.id == WalkInVisit.queue_id).where(
        WalkInVisit.service_day == day)
    if code:
        if db.session.scalar(sa.select(Queue.id).where(Queue.code == code)) is None:
            raise NotFound(f"there is no service {code!r}", code="unknown_service")
        query = query.where(Queue.code == code)
    if status:
        query = query.where(WalkInVisit.status == status)
    rows = db.session.execute(query.order_by(WalkInVisit.id)).all()
    averages: dict[int, float] = {}
    position: dict[int, int] = {}
    out = []
    for visit, queue in rows:
        if visit.status == "waiting":
            if queue.id not in averages:
                averages[queue.id] = average_service_seconds(queue.id, day)
                for i, v in enumerate(_waiting(queue.id, day)):
                    position[v.id] = i
            out.append(visit_out(visit, queue, ahead=position.get(visit.id, 0),
                                 average=averages[queue.id]))
        else:
            out.append(visit_out(visit, queue))
    return out


def notify_near(queue: Queue, day: date) -> int:
    """Text each waiting visitor (once) who now has two or fewer people ahead."""
    sent = 0
    for ahead, visit in enumerate(_waiting(queue.id, day)):
        if ahead > NOTIFY_AHEAD:
            break
        if not visit.phone or visit.notified_at is not None:
            continue
        claimed = db.session.execute(
            sa.update(WalkInVisit).where(WalkInVisit.id == visit.id,
                                         WalkInVisit.notified_at.is_(None))
            .values(notified_at=utcnow())).rowcount
        db.session.commit()
        if not claimed:
            continue
        ticket = db.session.get(Ticket, visit.ticket_id)
        people = "person is" if ahead == 1 else "people are"
        text = (f"CivicLine: {visit.number} for {queue.name}: {ahead} {people} ahead of you. "
                f"Please come back to the waiting area.")
        try:
            outbound.queue_message(ticket, "sms", text, to=visit.phone, author_kind="system",
                                   meta={"walkin_notice": "near", "visit_id": visit.id})
            sent += 1
        except Invalid as exc:  # opted out: respected, and recorded on the ticket
            db.session.rollback()
            log.info("no text for visit %s: %s", visit.id, exc.message)
    return sent


# --- the board --------------------------------------------------------------------------


def board_state() -> dict[str, Any]:
    """Now serving (latest calls first) and how many wait per service line, for today."""
    day = service_day()
    called = db.session.execute(
        sa.select(WalkInVisit, Queue).join(Queue, Queue.id == WalkInVisit.queue_id)
        .where(WalkInVisit.service_day == day, WalkInVisit.status == "called")
        .order_by(WalkInVisit.called_at.desc()).limit(12)).all()
    counts = dict(db.session.execute(
        sa.select(WalkInVisit.queue_id, sa.func.count())
        .where(WalkInVisit.service_day == day, WalkInVisit.status == "waiting")
        .group_by(WalkInVisit.queue_id)).all())
    return {
        "serving": [_called_payload(v, q, recall=v.recalls > 0) for v, q in called],
        "waiting": [{"queue": q.code, "service": q.name, "waiting": counts.get(q.id, 0)}
                    for q in walkin_queues()],
    }


def _called_payload(visit: WalkInVisit, queue: Queue, *, recall: bool) -> dict[str, Any]:
    return {"number": visit.number, "desk": visit.desk, "queue": queue.code,
            "service": queue.name, "recall": recall,
            "called_at": visit.called_at.isoformat() + "Z" if visit.called_at else None}


def _board_called(visit: WalkInVisit, queue: Queue, *, recall: bool) -> None:
    realtime.emit("board.called", _called_payload(visit, queue, recall=recall),
                  rooms=["board"], namespace=BOARD)


def _board_waiting(queue: Queue, day: date) -> None:
    realtime.emit("board.waiting", {"queue": queue.code, "service": queue.name,
                                    "waiting": len(_waiting(queue.id, day))},
                  rooms=["board"], namespace=BOARD)


class BoardNamespace(Namespace):
    """``/board``: the public, read-only now-serving display."""

    def trigger_event(self, event, *args):
        # Event names are dotted (``board.state``); handlers are ``on_board_state``.
        return super().trigger_event((event or "").replace(".", "_"), *args)

    def on_connect(self, auth=None):
        """A now-serving screen connects; anyone may watch."""
        join_room("board")
        return True

    def on_board_state(self, data=None):
        """A screen (re)loads and asks for what is being served now."""
        return board_state()


# --- pages ------------------------------------------------------------------------------


@bp.get("/kiosk")
def kiosk():
    """A visitor uses the check-in kiosk in the lobby."""
    return render_template("kiosk.html", queues=walkin_queues(), languages=LANGUAGES)


@bp.get("/board")
def board():
    """The lobby screen shows which numbers are being served at which desk."""
    return render_template("board.html", state=board_state())
