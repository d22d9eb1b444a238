"""Satisfaction surveys after resolution, on the resident's own channel.

* SMS: "How did we do? Reply 1-5"; the numeric reply is captured by a follow-up
  pre-hook (it never opens a new case for an agent).
* email: a signed link to a one-question page (``/survey/<token>``).
* chat: a message whose metadata carries buttons 1-5; the widget sends the number back
  as a chat line, captured like SMS.
* voice: the IVR asks after the call and reports the key pressed with ``record_survey``.

Scores feed the satisfaction index (0-100) through ``metrics_service`` and the
citizen's channel-preference profile (``channel_stats[channel].csat_sum/csat_n``).
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta

import sqlalchemy as sa
from flask import current_app, has_app_context
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from app.extensions import db
from app.jobs import job
from app.models import (
    OPEN_STATUSES,
    ChannelProfile,
    Interaction,
    SurveyResponse,
    Ticket,
    utcnow,
)
from app.services import Invalid, NotFound

log = logging.getLogger(__name__)

SURVEY_CHANNELS = ("sms", "email", "chat", "voice")
REPLY_WINDOW = timedelta(days=7)
SCORE_RE = re.compile(r"^\s*([1-5])\s*(?:[.!)]|/5)?\s*(.*)$", re.S)
SMS_TEXT = ("CivicLine: your request {ref} is resolved. How did we do? "
            "Reply 1 (poor) to 5 (excellent).")
CHAT_TEXT = "Your request is resolved. How did we do? Choose 1 (poor) to 5 (excellent)."
EMAIL_TEXT = ("Your request {ref} is resolved. How did we do? It takes one click: {url}\n"
              "(1 = poor, 5 = excellent)")


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="civicline-survey")


def survey_token(ticket_id: int) -> str:
    return _serializer().dumps({"t": ticket_id})


def ticket_from_token(token: str) -> int:
    try:
        data = _serializer().loads(token, max_age=int(REPLY_WINDOW.total_seconds()) * 4)
    except (BadSignature, SignatureExpired) as exc:
        raise NotFound("this survey link is not valid any more") from exc
    return int(data["t"])


def survey_url(ticket_id: int) -> str:
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    return f"{base}/survey/{survey_token(ticket_id)}"


def record_survey(ticket_id: int, channel: str, score: int, comment: str | None = None,
                  *, commit: bool = True) -> SurveyResponse:
    """Store one score (1-5) for a ticket; the latest score is the ticket's satisfaction."""
    if channel not in SURVEY_CHANNELS + ("web",):
        raise Invalid(f"unknown survey channel {channel!r}", code="invalid_channel")
    try:
        score = int(score)
    except (TypeError, ValueError) as exc:
        raise Invalid("a score is a whole number from 1 to 5", code="invalid_score") from exc
    if not 1 <= score <= 5:
        raise Invalid("a score is a whole number from 1 to 5", code="invalid_score")
    ticket = db.session.get(Ticket, ticket_id)
    if ticket is None:
        raise NotFound(f"ticket {ticket_id} not found")
    response = SurveyResponse(ticket_id=ticket.id, channel=channel, score=score,
                              comment=(comment or "").strip()[:2000] or None,
                              created_at=utcnow())
    db.session.add(response)
    ticket.satisfaction = score
    profile = db.session.scalar(
        sa.select(ChannelProfile).where(ChannelProfile.citizen_id == ticket.citizen_id))
    if profile is not None:
        stats = {k: dict(v) for k, v in (profile.channel_stats or {}).items()}
        entry = stats.setdefault(ticket.channel, {})
        entry["csat_sum"] = entry.get("csat_sum", 0) + score
        entry["csat_n"] = entry.get("csat_n", 0) + 1
        profile.channel_stats = stats
    if commit:
        db.session.commit()
    return response


def _survey_channel(ticket: Ticket) -> str | None:
    if ticket.channel in ("sms", "email", "chat", "voice"):
        return ticket.channel
    from app.services import reach

    decision = reach.choose_channel(ticket.citizen_id, text_only=True)
    return decision.channel if decision else None


def send_survey(ticket_id: int) -> Interaction | None:
    """Ask a resolved ticket's resident for a score on their own channel (once)."""
    from app.services import outbound

    ticket = db.session.get(Ticket, ticket_id)
    if ticket is None or ticket.status not in ("resolved", "closed") or _self_served_only(ticket):
        return None
    if _already_asked(ticket.id):
        return None
    channel = _survey_channel(ticket)
    if channel == "voice" or channel is None:
        return None  # the IVR asks at the end of the call
    meta = {"survey": {"scale": [1, 2, 3, 4, 5], "asked_at": utcnow().isoformat() + "Z"},
            "reach_reason": f"{channel}: satisfaction survey on the resident's channel"}
    if channel == "sms":
        text = SMS_TEXT.format(ref=ticket.reference)
    elif channel == "chat":
        text = CHAT_TEXT
    else:
        meta["survey"]["url"] = survey_url(ticket.id)
        text = EMAIL_TEXT.format(ref=ticket.reference, url=meta["survey"]["url"])
    try:
        return outbound.queue_message(
            ticket, channel, text, author_kind="system", meta=meta,
            subject=f"[{ticket.reference}] How did we do?" if channel == "email" else None)
    except Invalid as exc:  # opted out or no address: no survey, never an error
        log.info("no survey for %s: %s", ticket.reference, exc.message)
        db.session.rollback()
        return None


def _self_served_only(ticket: Ticket) -> bool:
    """Answered by the knowledge base alone: no agent ever had it."""
    return bool(ticket.self_served) and ticket.assigned_agent_id is None


def _already_asked(ticket_id: int) -> bool:
    rows = db.session.scalars(sa.select(Interaction.meta).where(
        Interaction.ticket_id == ticket_id, Interaction.direction == "outbound",
        Interaction.author_kind == "system")).all()
    return any((meta or {}).get("survey") for meta in rows)


@job(queue="default")
def send_survey_job(ticket_id: int) -> None:
    """Triggered after a ticket is resolved: send its satisfaction survey."""
    send_survey(ticket_id)


def _pending_survey(citizen_id: int, channel: str) -> Ticket | None:
    """The citizen's most recent ticket surveyed on ``channel`` within the reply window
    that has no score yet."""
    since = utcnow() - REPLY_WINDOW
    rows = db.session.execute(
        sa.select(Interaction.ticket_id, Interaction.meta)
        .where(Interaction.citizen_id == citizen_id, Interaction.channel == channel,
               Interaction.direction == "outbound", Interaction.author_kind == "system",
               Interaction.created_at >= since)
        .order_by(Interaction.id.desc()).limit(20)).all()
    for ticket_id, meta in rows:
        if (meta or {}).get("survey"):
            ticket = db.session.get(Ticket, ticket_id)
            if ticket is not None and ticket.satisfaction is None:
                return ticket
    return None


def _score(channel: str, text: str | None) -> re.Match | None:
    """A text or chat line that reads as a survey score ("4", "5 thanks!")."""
    if channel not in ("sms", "chat") or len(text or "") > 300:
        return None
    return SCORE_RE.match(text or "")


def capture_reply(interaction: Interaction, ticket: Ticket) -> bool:
    """Follow-up pre-hook: an SMS or chat line "1".."5" answering a survey is recorded
    as the score of the surveyed ticket and handled no further.

    Not while the message's ticket waits for a person or is with one: the resident wrote
    again after the survey and is back in a conversation, where "4" answers whatever the
    agent asks. Nor in another case the resident opened since, which the digit did not
    open itself: it belongs to that case. The survey stays open for its reply window."""
    if interaction.direction != "inbound" or getattr(interaction, "with_person", False):
        return False
    match = _score(interaction.channel, interaction.text)
    if match is None:
        return False
    surveyed = _pending_survey(interaction.citizen_id or ticket.citizen_id,
                               interaction.channel)
    if surveyed is None or (ticket.id != surveyed.id
                            and not getattr(interaction, "opened_ticket", False)):
        return False
    comment = match.group(2).strip() or None
    record_survey(surveyed.id, interaction.channel, int(match.group(1)), comment, commit=False)
    interaction.meta = {**(interaction.meta or {}), "survey_reply": True}
    if ticket.id != surveyed.id:
        # Intake opened a new case for the number: fold the reply into the surveyed one.
        interaction.ticket_id = surveyed.id
        ticket._metrics_skip_resolution = True
        ticket.status = "closed"
        ticket.disposition = "survey_reply"
        ticket.closed_at = ticket.resolved_at = utcnow()
        ticket.self_served = True
    elif ticket.status not in ("resolved", "closed"):
        # The reply re-opened the surveyed case; a score does not re-open anything.
        ticket._metrics_skip_resolution = True
        ticket.status = "resolved"
        ticket.resolved_at = ticket.resolved_at or utcnow()
    return True


capture_reply.wants = lambda _channel, _text: False  # a digit to a person answers them


def _after_commit_send(session) -> None:
    ids = session.info.pop("civicline_resolved", None)
    if not ids or not has_app_context():
        return
    if not current_app.config.get("SURVEYS_AFTER_RESOLUTION", True):
        return
    from app import jobs

    for ticket_id in ids:
        jobs.enqueue(send_survey_job, ticket_id, job_id=f"survey-{ticket_id}",
                     delay=current_app.config.get("SURVEY_DELAY_SECONDS", 0) or None)


def _note_resolutions(session, _flush_context) -> None:
    from sqlalchemy import inspect

    for obj in session.dirty:
        if isinstance(obj, Ticket) and obj.status in ("resolved", "closed") \
                and not _self_served_only(obj) \
                and not getattr(obj, "_metrics_skip_resolution", False):
            history = inspect(obj).attrs["status"].history
            if history.added and history.deleted and history.deleted[0] in OPEN_STATUSES:
                session.info.setdefault("civicline_resolved", set()).add(obj.id)


def _after_rollback(session) -> None:
    session.info.pop("civicline_resolved", None)


_installed = False


def install() -> None:
    """Capture survey replies and send a survey after each resolution (once per process)."""
    global _installed
    if _installed:
        return
    from sqlalchemy import event
    from sqlalchemy.orm import Session

    from app.services import followup

    if capture_reply not in followup.PRE_HOOKS:
        followup.PRE_HOOKS.insert(0, capture_reply)
    event.listen(Session, "after_flush", _note_resolutions)
    event.listen(Session, "after_commit", _after_commit_send)
    event.listen(Session, "after_soft_rollback", lambda s, _t: _after_rollback(s))
    _installed = True
