"""Phone and SMS through Twilio: the app's side of the Twilio channel adapter.

The webhook views (``app/twilio_webhooks.py``) verify and parse; this module decides.

SMS:
* ``receive_sms`` runs intake (idempotent on MessageSid) and the control keywords: STOP
  and the other opt-out words (or Twilio's ``OptOutType``) mark the contact point opted
  out; START/YES/UNSTOP opt back in; HELP/INFO/AYUDA get the help text; AGENT asks for a
  person (a work item, and an acknowledgement with the reference and expected time).
* ``sms_self_service`` is the "sms" self-service hook run by the follow-up job: a
  confident knowledge-base answer is texted back ("Reply AGENT for a person") and the
  ticket is marked self-served; otherwise the resident gets an acknowledgement and the
  ticket is routed.
* Reply length: the answer is kept within two segments (``MAX_ANSWER_SEGMENTS``). The
  AGENT line rides in the same message when the whole still fits in two segments;
  otherwise it goes as its own one-segment message right after, so the answer's link is
  never cut and no reply costs more than three segments.
* ``sms_sender_factory`` is the outbox's "sms" sender: the real Twilio SDK when
  credentials are set (or a test injects ``TWILIO_HTTP_CLIENT``), else None, which makes
  the outbox record the message in the simulator outbox.

Voice: one call is ONE voice interaction (provider id = CallSid); every IVR step
updates it (``meta["ivr"]``, the speech heard, the language), intake only handles the
first hit. Flow: language (1 English, 2 Spanish) → topic (speech or a key) → a confident
answer read aloud, then 1 an agent, 2 the same article version by SMS, 9 again → an
agent: a work item and ``<Enqueue>`` whose wait URL announces position and estimated
wait and offers a callback (the caller hangs up and keeps the place: the work item's
commitments include ``callback``). After hours or when the estimated wait exceeds the
queue's ``max_wait_seconds``: voicemail with a transcript. A caller who hangs up while
waiting (and did not ask for a callback) is counted abandoned with the wait.

``connect_call_for_ticket(ticket_id, agent_id)`` is what routing (or the console) calls
when an agent accepts a call: it bridges a caller still waiting (REST redirect to
``<Dial><Client>`` or ``<Dial><Number>``) or places the promised callback.

Signatures: webhooks are checked against ``TWILIO_AUTH_TOKEN``. Without one (the demo
and simulator mode) they are checked against a token derived from ``SECRET_KEY``
(``auth_token``), which the simulator page uses to sign the same requests Twilio would.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import math
import uuid
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import sqlalchemy as sa
from flask import current_app

from app.extensions import db
from app.jobs import job
from app.models import (
    Citizen,
    ContactPoint,
    Interaction,
    KBArticleVersion,
    Outbox,
    Queue,
    Ticket,
    User,
    WorkItem,
    utcnow,
)
from app.services import Invalid, NotFound, commit_keeping_loaded, followup, knowledge, outbound
from app.services.intake import IntakeResult, intake
from channels import twilio as tw
from channels.base import InboundMessage, PermanentDeliveryError
from channels.twilio import voice as tv
from channels.twilio.status import TERMINAL_STATUSES, StatusUpdate
from routing.hours import hours_open
from routing.model import BusinessHours

log = logging.getLogger(__name__)

VOICE_PATH = "/webhooks/twilio/voice"
MAX_ANSWER_SEGMENTS = 2
MAX_TOPIC_ATTEMPTS = 2
OPTED_OUT_CODE = "21610"
GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENDED = set("^{}\\[~]|€\f")

TEXT = {
    "en": {
        "agent_line": "Reply AGENT for a person.",
        "ack": "Thanks, we got your message. Your reference is {ref}. {when}",
        "ack_agent": "Thanks, a person will help you. Your reference is {ref}. {when}",
        "when_open": "An agent will reply within about {minutes}.",
        "when_closed": "We are closed now; an agent will reply when we open.",
        "help": "CivicLine, your government information line. Text your question, reply "
        "AGENT for a person, HELPFUL or NOT HELPFUL to rate an answer, STOP to opt out. "
        "Msg&data rates may apply.",
        "opt_in": "You will get CivicLine texts again. Reply HELP for help, STOP to opt out.",
        "sent_by_sms": "We sent this answer to you by text message.",
        "cannot_sms": "Sorry, we cannot send text messages to this number.",
        "voicemail_thanks": "Thank you. Your message was recorded and an agent will get back "
        "to you. Goodbye.",
        "minute": "1 minute",
        "minutes": "{n} minutes",
        "hours": "{n} hours",
    },
    "es": {
        "agent_line": "Responda AGENTE para hablar con una persona.",
        "ack": "Gracias, recibimos su mensaje. Su referencia es {ref}. {when}",
        "ack_agent": "Gracias, una persona le ayudará. Su referencia es {ref}. {when}",
        "when_open": "Un agente le responderá en unos {minutes}.",
        "when_closed": "Ahora estamos cerrados; un agente le responderá cuando abramos.",
        "help": "CivicLine, su línea de información del gobierno. Escriba su pregunta, "
        "responda AGENTE para hablar con una persona, ÚTIL o NO ÚTIL para valorar una "
        "respuesta, STOP para no recibir mensajes.",
        "opt_in": "Volverá a recibir mensajes de CivicLine. Responda AYUDA o STOP.",
        "sent_by_sms": "Le enviamos esta respuesta por mensaje de texto.",
        "cannot_sms": "Lo sentimos, no podemos enviar mensajes de texto a este número.",
        "voicemail_thanks": "Gracias. Grabamos su mensaje y un agente se comunicará con "
        "usted. Adiós.",
        "minute": "1 minuto",
        "minutes": "{n} minutos",
        "hours": "{n} horas",
    },
}
SPANISH_KEYWORDS = {"AYUDA", "AGENTE", "PERSONA", "COMENTARIOS", "ENCUESTA"}


def _lang(value: str | None) -> str:
    return tv.normalize_lang(value)


# --- Credentials, client and sender ---------------------------------------------------


def auth_token(app=None) -> str:
    """The token webhooks are signed with: TWILIO_AUTH_TOKEN, or in simulator mode (no
    Twilio account) a token derived from SECRET_KEY, so signatures are always checked."""
    config = (app or current_app).config
    token = config.get("TWILIO_AUTH_TOKEN")
    if token:
        return token
    key = (config.get("SECRET_KEY") or "").encode()
    return hmac.new(key, b"civicline-twilio-simulator", hashlib.sha256).hexdigest()


def twilio_client(app=None):
    """The Twilio REST client, or None in simulator mode (no credentials, or
    ``TWILIO_SIMULATOR`` set). ``TWILIO_HTTP_CLIENT`` (tests) replaces only the network."""
    app = app or current_app
    config = app.config
    http = config.get("TWILIO_HTTP_CLIENT")
    sid, token = config.get("TWILIO_ACCOUNT_SID"), config.get("TWILIO_AUTH_TOKEN")
    if http is None and (config.get("TWILIO_SIMULATOR") or not (sid and token)):
        return None
    cache = app.extensions.setdefault("civicline_twilio", {})
    key = (sid, token, id(http))
    if key not in cache:
        cache.clear()
        cache[key] = tw.make_client(sid, token, http_client=http)
    return cache[key]


def sms_sender_factory(app):
    """The outbox's "sms" sender: Twilio's Messages API, or None (simulator outbox)."""
    client = twilio_client(app)
    if client is None:
        return None
    send = tw.sms_sender(client, app.config["TWILIO_PHONE_NUMBER"])

    def send_unless_opted_out(message):
        # The outbox checks too; this guard sits right in front of the provider.
        if _opted_out(message.to):
            raise PermanentDeliveryError(
                f"{message.to} opted out of text messages", code=OPTED_OUT_CODE, opted_out=True
            )
        return send(message)

    return send_unless_opted_out


def _opted_out(number: str) -> bool:
    return bool(db.session.scalar(
        sa.select(ContactPoint.id).where(
            ContactPoint.kind == "phone", ContactPoint.value == number, ContactPoint.opted_out
        ).limit(1)
    ))


# --- SMS ------------------------------------------------------------------------------


def sms_segments(text: str) -> int:
    """How many SMS segments ``text`` costs (GSM-7: 160/153; UCS-2: 70/67 per segment)."""
    if all(ch in GSM_BASIC or ch in GSM_EXTENDED for ch in text):
        units = sum(2 if ch in GSM_EXTENDED else 1 for ch in text)
        return 1 if units <= 160 else math.ceil(units / 153)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else math.ceil(units / 67)


def fit_segments(text: str, max_segments: int = MAX_ANSWER_SEGMENTS) -> str:
    """Shorten ``text`` to ``max_segments``, keeping a trailing link whole."""
    if sms_segments(text) <= max_segments:
        return text
    head, _, last = text.rstrip().rpartition(" ")
    link = last if last.startswith(("http://", "https://")) else ""
    prose = head if link else text
    while prose and sms_segments(f"{prose}… {link}".rstrip()) > max_segments:
        prose = prose[:-8].rstrip()
    return f"{prose}… {link}".rstrip()


def answer_messages(answer_text: str, lang: str) -> list[str]:
    """The SMS messages of a self-service answer: the answer (2 segments at most) with the
    AGENT line, or the AGENT line as its own message when both do not fit in two."""
    body = fit_segments(answer_text.strip())
    agent_line = TEXT[_lang(lang)]["agent_line"]
    together = f"{body}\n{agent_line}"
    if sms_segments(together) <= MAX_ANSWER_SEGMENTS:
        return [together]
    return [body, agent_line]


def _contact_point(interaction: Interaction) -> ContactPoint | None:
    if interaction.contact_point_id is None:
        return None
    return db.session.get(ContactPoint, interaction.contact_point_id)


def receive_sms(msg: InboundMessage) -> IntakeResult:
    """Intake one SMS/MMS and act on its control keyword, if any. Replays are no-ops."""
    keyword = msg.metadata.get("keyword")
    control = keyword in ("opt_out", "opt_in", "help", "agent")
    result = intake(msg, follow_up=not control)
    if result.duplicate or not control:
        return result
    if keyword == "agent":  # the job reads what it needs; the webhook only queues it
        from app import jobs

        jobs.enqueue(sms_agent_request, result.interaction_id)
        return result
    interaction = db.session.get(Interaction, result.interaction_id)
    ticket = db.session.get(Ticket, result.ticket_id)
    word = msg.text.strip().rstrip(".!?").upper()
    lang = "es" if word in SPANISH_KEYWORDS else (ticket.language or "en")
    point = _contact_point(interaction)
    if keyword == "opt_out":
        set_consent(point, opted_out=True, note=_consent_note("opted out", msg))
    elif keyword == "opt_in":
        set_consent(point, opted_out=False, note=_consent_note("opted in", msg))
        _reply(ticket, TEXT[_lang(lang)]["opt_in"], author_kind="system", kind="opt_in")
    else:
        _reply(ticket, TEXT[_lang(lang)]["help"], author_kind="system", kind="help")
    return result


def _consent_note(action: str, msg: InboundMessage) -> str:
    how = f"Twilio OptOutType {msg.metadata['opt_out_type']}" if msg.metadata.get(
        "opt_out_type") else f"texted {msg.text.strip()[:20]!r}"
    return f"{action} by SMS ({how}, {msg.provider_id}) on {utcnow():%Y-%m-%d %H:%M} UTC"[:200]


def set_consent(point: ContactPoint | None, *, opted_out: bool, note: str) -> None:
    """Record an SMS opt-out or opt-in on the contact point."""
    if point is None:
        return
    point.opted_out = opted_out
    point.opted_out_at = utcnow() if opted_out else None
    point.consent_note = note
    db.session.commit()


def _reply(ticket: Ticket, text: str, *, author_kind: str, kind: str,
           kb: tuple[int, int] | None = None, to: str | None = None,
           point: ContactPoint | None = None, deliver_now: bool = False,
           commit: bool = True) -> Interaction | None:
    """Queue one SMS to the ticket's resident (``point``: the number they texted from, when
    known); an opted-out or missing number sends nothing, and nothing staged before it in
    this transaction either. ``deliver_now``: from a job, send it in that job
    (``outbound.after_commit``); ``commit=False``: stage it (``queue_message``)."""
    try:
        return outbound.queue_message(ticket, "sms", text, to=to, author_kind=author_kind,
                                      kb=kb, meta={"sms_kind": kind}, point=point,
                                      deliver_now=deliver_now, commit=commit)
    except Invalid as exc:
        db.session.rollback()
        log.info("no %s SMS for ticket %s: %s", kind, ticket.id, exc.message)
        return None


def _duration_words(seconds: float, lang: str) -> str:
    text = TEXT[_lang(lang)]
    minutes = max(1, math.ceil(seconds / 60))
    if minutes == 1:
        return text["minute"]
    if minutes >= 120:
        return text["hours"].format(n=math.ceil(minutes / 60))
    return text["minutes"].format(n=minutes)


def acknowledge(ticket: Ticket, lang: str | None, *, agent_requested: bool = False,
                point: ContactPoint | None = None, opened: bool = False) -> None:
    """Text the reference and the expected response time (once per ticket, unless the
    resident asked for a person), to ``point`` when the number that texted is known.
    ``opened``: the text being answered opened the ticket (nothing was acknowledged)."""
    lang = _lang(lang or ticket.language)
    if not agent_requested and not opened and _already_acknowledged(ticket.id):
        return
    queue = followup.choose_queue(ticket)
    text = TEXT[lang]
    if queue is not None and not queue_is_open(queue):
        when = text["when_closed"]
    else:
        seconds = queue.sla_target_seconds if queue else 3600
        if queue is not None:
            seconds = max(seconds, wait_for_next(queue))
        when = text["when_open"].format(minutes=_duration_words(seconds, lang))
    template = text["ack_agent" if agent_requested else "ack"]
    # Called by jobs only (the follow-up of a text, an AGENT request): sent in that job.
    _reply(ticket, template.format(ref=ticket.reference, when=when), author_kind="system",
           kind="ack", point=point, deliver_now=True)


_SYSTEM_TEXTS = sa.select(Interaction.__table__.c.metadata).where(
    Interaction.__table__.c.ticket_id == sa.bindparam("ticket_id"),
    Interaction.__table__.c.direction == "outbound",
    Interaction.__table__.c.author_kind == "system",
    Interaction.__table__.c.channel == "sms",
)


def _already_acknowledged(ticket_id: int) -> bool:
    rows = db.session.connection().execute(_SYSTEM_TEXTS, {"ticket_id": ticket_id}).scalars()
    return any((meta or {}).get("sms_kind") == "ack" for meta in rows)


def sms_self_service(interaction: Interaction, ticket: Ticket) -> bool:
    """The "sms" self-service hook: True when a confident answer was texted back."""
    if interaction.direction != "inbound" or (interaction.meta or {}).get("keyword"):
        return False
    query = (interaction.text or "").strip()
    answer = knowledge.answer_for(query, "sms", ticket.language, ticket.id) if query else None
    # Answers go back to the number that texted (read once for every message).
    point = _contact_point(interaction)
    if answer is None or not answer.self_service:
        acknowledge(ticket, answer.language if answer else ticket.language, point=point,
                    opened=interaction.opened_ticket)
        return False
    lang = answer.language or ticket.language
    followup.take_topic(ticket, answer)
    # The answer's messages and the ticket's new state are written in one commit; each
    # message is then announced and sent, in this job.
    staged = []
    for text in answer_messages(answer.text, lang):
        item = _reply(ticket, text, author_kind="bot", kind="kb_answer",
                      kb=(answer.article_id, answer.version), point=point, commit=False)
        if item is None:
            return False
        staged.append(item)
    ticket = db.session.get(Ticket, ticket.id)
    ticket.self_served = True
    ticket.status = "pending_citizen"
    rows = [outbound.staged_outbox(item) for item in staged]
    commit_keeping_loaded()
    for row, item in zip(rows, staged, strict=True):  # in order, in this job
        outbound.after_commit(row.id, item.id, deliver_now=True)
    return True


@job(queue="inbound")
def sms_agent_request(interaction_id: int) -> None:
    """Triggered by the SMS webhook when a resident texts AGENT: queue the ticket for a
    person and acknowledge with the reference and expected time."""
    row = followup.message_and_ticket(interaction_id)
    if row is None:
        return
    interaction, ticket, busy = row
    if ticket.status not in ("new", "open", "pending_citizen"):
        return
    ticket.self_served = False
    if ticket.status == "pending_citizen":
        ticket.status = "open"
    # A ticket that already waits for a person (or is with one) keeps its place.
    item_id = None if busy else followup.add_work_item(ticket, idle=True)
    commit_keeping_loaded()  # the acknowledgement reads the ticket and queue as written
    word = (interaction.text or "").strip().rstrip(".!?").upper()
    acknowledge(ticket, "es" if word in SPANISH_KEYWORDS else ticket.language,
                agent_requested=True, point=_contact_point(interaction))
    if item_id is not None:
        followup.queue_routing(item_id)


# --- Status callbacks ------------------------------------------------------------------


def apply_status(update: StatusUpdate) -> bool:
    """Apply a delivery or call status callback; False when the sid is unknown."""
    if update.kind == "call":
        return apply_call_status(update)
    interaction = db.session.scalar(
        sa.select(Interaction).where(Interaction.channel == "sms",
                                     Interaction.provider_id == update.provider_id)
    )
    if interaction is None:
        log.info("status %s for unknown message %s ignored", update.status, update.provider_id)
        return False
    if not tw.should_apply(interaction.delivery_status, update.status):
        return True
    interaction.delivery_status = update.status
    if update.error_code:
        interaction.delivery_error = f"{update.error_code}: {update.error_message or ''}"[:300]
    db.session.commit()
    outbound._announce(interaction.id)
    if update.is_failure:
        row = db.session.scalar(sa.select(Outbox).where(Outbox.provider_id == update.provider_id))
        if row is not None and row.status == "sent":
            if update.error_code == OPTED_OUT_CODE:
                point = _contact_point(interaction)
                set_consent(point, opted_out=True,
                            note=f"provider error {OPTED_OUT_CODE} on {update.provider_id}")
            outbound.fail(row, f"{update.status}: {update.error_message or 'not delivered'}",
                          code=update.error_code)
            # Keep Twilio's own word for it, so a replayed callback stays a no-op.
            interaction = db.session.get(Interaction, interaction.id)
            interaction.delivery_status = update.status
            db.session.commit()
    return True


def apply_call_status(update: StatusUpdate) -> bool:
    """Record a call's progress, duration and outcome; a caller who hangs up while
    waiting in queue (without a callback) is counted abandoned."""
    interaction = call_interaction(update.provider_id)
    if interaction is None:
        log.info("status %s for unknown call %s ignored", update.status, update.provider_id)
        return False
    meta = dict(interaction.meta or {})
    if tw.should_apply(meta.get("call_status"), update.status):
        meta["call_status"] = update.status
        if interaction.direction == "outbound":
            interaction.delivery_status = update.status
    if update.duration is not None:
        interaction.duration_seconds = update.duration
    if update.status in TERMINAL_STATUSES:
        meta.setdefault("outcome", update.status)
        meta.setdefault("ended_at", utcnow().isoformat() + "Z")
    interaction.meta = dict(meta)
    db.session.commit()
    if update.status in TERMINAL_STATUSES and interaction.direction == "inbound":
        end_waiting(interaction.ticket_id)
    return True


def end_waiting(ticket_id: int, wait_seconds: int | None = None) -> WorkItem | None:
    """The caller left the queue: abandoned (with the wait), unless a callback keeps the
    place. Safe to call twice."""
    item = db.session.scalar(
        sa.select(WorkItem).where(WorkItem.ticket_id == ticket_id, WorkItem.channel == "voice",
                                  WorkItem.status.in_(("waiting", "offered")))
        .order_by(WorkItem.id.desc()).limit(1)
    )
    if item is None or "callback" in (item.commitments or []):
        return None
    now = utcnow()
    item.status = "abandoned"
    item.outcome = "abandoned"
    item.ended_at = now
    if wait_seconds is not None and wait_seconds >= 0:
        # Twilio's QueueTime is the caller's own measure of the wait.
        item.ended_at = item.arrived_at + timedelta(seconds=wait_seconds)
    db.session.commit()
    log.info("call for ticket %s abandoned after %ss", ticket_id,
             int((item.ended_at - item.arrived_at).total_seconds()))
    return item


# --- Queues: hours and waits -----------------------------------------------------------


def queue_hours(queue: Queue) -> BusinessHours | None:
    """``Queue.business_hours`` (``{"weekly": [{"days", "open", "close", "tz"}]}``) and
    ``Queue.holidays`` as routing's BusinessHours; None means always open."""
    spec = queue.business_hours or {}
    weekly = spec.get("weekly") or []
    if not weekly and not queue.holidays:
        return None
    tz = spec.get("tz") or next((w["tz"] for w in weekly if w.get("tz")), "UTC")
    windows: dict[int, list[tuple[str, str]]] = {}
    for window in weekly:
        for day in window.get("days", range(7)):
            windows.setdefault(int(day), []).append(
                (window.get("open", "00:00"), window.get("close", "24:00")))
    if not weekly:
        windows = {day: [("00:00", "24:00")] for day in range(7)}
    return BusinessHours(tz=tz, windows={d: tuple(w) for d, w in windows.items()},
                         holidays=frozenset(queue.holidays or []))


def queue_is_open(queue: Queue) -> bool:
    return hours_open(queue_hours(queue), utcnow())


def _waiting_in(queue_id) -> list:
    """Conditions of the items waiting in a queue (``queue_id``: a value or a bindparam)."""
    return [WorkItem.queue_id == queue_id, WorkItem.status.in_(("waiting", "offered"))]


def _average_wait(queue_id, since, dialect: str | None = None) -> sa.Select:
    """The queue's wait per assignment since ``since``, averaged by the database: a busy
    queue assigns hundreds of items an hour, and the wait announcement is asked for by
    every caller on hold, about once a minute."""
    return (sa.select(sa.func.avg(_seconds_between(WorkItem.assigned_at, WorkItem.arrived_at,
                                                   dialect)))
            .where(WorkItem.queue_id == queue_id, WorkItem.assigned_at.is_not(None),
                   WorkItem.assigned_at >= since))


def _wait_for(queue: Queue, per_item, position: int) -> float:
    per_item = float(per_item) if per_item is not None else float(queue.sla_target_seconds)
    return max(0.0, per_item) * max(position, 1)


def waiting_ahead(queue: Queue, item: WorkItem | None = None) -> int:
    """Work items waiting in the queue ahead of ``item`` (all of them without one)."""
    stmt = sa.select(sa.func.count()).select_from(WorkItem).where(*_waiting_in(queue.id))
    if item is not None:
        stmt = stmt.where(sa.or_(
            WorkItem.priority < item.priority,
            sa.and_(WorkItem.priority == item.priority, WorkItem.arrived_at < item.arrived_at),
            sa.and_(WorkItem.priority == item.priority, WorkItem.arrived_at == item.arrived_at,
                    WorkItem.id < item.id),
        ))
    return db.session.scalar(stmt) or 0


def estimated_wait(queue: Queue, position: int) -> float:
    """Seconds until ``position`` is served: position × the queue's recent wait per
    assignment (last hour), or its SLA target when nothing was assigned lately."""
    average = db.session.scalar(_average_wait(queue.id, utcnow() - timedelta(hours=1)))
    return _wait_for(queue, average, position)


def _seconds_between(later, earlier, dialect: str | None = None):
    """SQL for the seconds from ``earlier`` to ``later`` (two timestamp columns)."""
    if (dialect or db.session.get_bind().dialect.name) == "postgresql":
        return sa.func.extract("epoch", later - earlier)
    return (sa.func.julianday(later) - sa.func.julianday(earlier)) * 86400.0


@functools.cache
def _next_wait_statement(dialect: str) -> sa.Select:
    """``waiting_ahead`` (without an item) and ``estimated_wait``'s average, as one
    statement built once per database kind."""
    queue_id = sa.bindparam("queue_id")
    waiting = sa.select(sa.func.count()).select_from(WorkItem).where(*_waiting_in(queue_id))
    since = sa.bindparam("since", type_=WorkItem.__table__.c.assigned_at.type)
    return sa.select(waiting.scalar_subquery(),
                     _average_wait(queue_id, since, dialect).scalar_subquery())


def wait_for_next(queue: Queue) -> float:
    """Seconds until one more arrival would be served:
    ``estimated_wait(queue, waiting_ahead(queue) + 1)``, read in one query."""
    connection = db.session.connection()
    waiting, average = connection.execute(
        _next_wait_statement(connection.dialect.name),
        {"queue_id": queue.id, "since": utcnow() - timedelta(hours=1)}).one()
    return _wait_for(queue, average, (waiting or 0) + 1)


# --- Voice -----------------------------------------------------------------------------


def step_url(step: str | None = None, **params: Any) -> str:
    """The public URL of an IVR step (what Twilio requests next)."""
    base = current_app.config["PUBLIC_BASE_URL"].rstrip("/")
    path = VOICE_PATH + (f"/{step}" if step else "")
    query = urlencode({k: v for k, v in params.items() if v is not None})
    return f"{base}{path}" + (f"?{query}" if query else "")


def agent_identity(agent_id: int) -> str:
    """The softphone identity of an agent (``<Client>`` and the access token)."""
    return f"agent-{agent_id}"


def call_interaction(call_sid: str) -> Interaction | None:
    return db.session.scalar(
        sa.select(Interaction).where(Interaction.channel == "voice",
                                     Interaction.provider_id == call_sid)
    )


def _caller(form) -> str:
    sender = (form.get("From") or form.get("Caller") or "").strip()
    return sender


def start_call(form, step: str, lang: str | None = None) -> tuple[Interaction, Ticket]:
    """The call's one interaction: intake on the first hit (any step), then the same row.
    A withheld number becomes an anonymous resident (no callback, no SMS)."""
    call_sid = (form.get("CallSid") or "").strip()
    interaction = call_interaction(call_sid) if call_sid else None
    if interaction is None:
        msg = tv.parse_voice(form, language=lang, step=step)
        if msg.metadata.get("anonymous"):
            msg.sender = f"anon:{msg.provider_id}"
            msg.thread_keys = {"call_sid": msg.provider_id}
        if msg.language:
            msg.language = _lang(msg.language)
        result = intake(msg, follow_up=False)
        interaction = db.session.get(Interaction, result.interaction_id)
        meta = dict(interaction.meta or {})
        meta.setdefault("ivr", [{"step": step, "at": utcnow().isoformat() + "Z"}])
        meta["caller"] = _caller(form)
        interaction.meta = dict(meta)
        db.session.commit()
    return interaction, db.session.get(Ticket, interaction.ticket_id)


def record_step(interaction: Interaction, step: str, form, **extra: Any) -> dict[str, Any]:
    """Append an IVR step to the call's interaction (what was pressed or said)."""
    meta = dict(interaction.meta or {})
    entry: dict[str, Any] = {"step": step, "at": utcnow().isoformat() + "Z"}
    for param, name in (("Digits", "digits"), ("SpeechResult", "speech"),
                        ("Confidence", "confidence")):
        if form.get(param):
            entry[name] = form[param]
    entry.update({k: v for k, v in extra.items() if v is not None})
    meta["ivr"] = list(meta.get("ivr") or [])[-40:] + [entry]
    status = (form.get("CallStatus") or "").strip().lower()
    if status and tw.should_apply(meta.get("call_status"), status):
        meta["call_status"] = status
    interaction.meta = dict(meta)
    return meta


def voice_incoming(form) -> str:
    """A new call: greet and ask for the language."""
    interaction, _ticket = start_call(form, "incoming")
    db.session.commit()
    return tv.welcome(step_url("language"))


def voice_language(form) -> str:
    """The caller chose a language (no key: English): ask what the call is about."""
    lang = tv.language_for_digit(form.get("Digits")) or "en"
    interaction, ticket = start_call(form, "language", lang)
    meta = record_step(interaction, "language", form, language=lang)
    meta["language"] = lang
    interaction.meta = dict(meta)
    ticket.language = lang
    citizen = db.session.get(Citizen, ticket.citizen_id)
    if citizen is not None and not citizen.language:
        citizen.language = lang
    db.session.commit()
    return tv.ask_topic(lang, step_url("topic", lang=lang))


def voice_topic(form, lang: str) -> str:
    """The caller said (or pressed) what the call is about: read a confident answer, or
    go to an agent."""
    lang = _lang(lang)
    interaction, ticket = start_call(form, "topic", lang)
    meta = record_step(interaction, "topic", form)
    speech = (form.get("SpeechResult") or "").strip()
    topic = tv.topic_for_digit(form.get("Digits")) if not speech else None
    if not speech and topic is None:
        attempts = int(meta.get("topic_attempts", 0)) + 1
        meta["topic_attempts"] = attempts
        interaction.meta = dict(meta)
        db.session.commit()
        if attempts < MAX_TOPIC_ATTEMPTS:
            return tv.ask_topic(lang, step_url("topic", lang=lang))
        return to_agent(interaction, ticket, lang)
    if topic == "agent":
        interaction.meta = dict(meta)
        return to_agent(interaction, ticket, lang)
    query = speech or next(t.labels[lang] for t in tv.DEFAULT_TOPICS if t.key == topic)
    if topic:
        ticket.topic = topic
    meta["query"] = query
    if speech:
        interaction.text = speech
        if ticket.subject in ("", "voice contact"):
            ticket.subject = speech[:300]
    answer = knowledge.answer_for(query, "voice", lang, ticket.id)
    if answer is None or not answer.self_service:
        interaction.meta = dict(meta)
        return to_agent(interaction, ticket, lang)
    followup.take_topic(ticket, answer)
    meta["kb"] = {"article_id": answer.article_id, "version": answer.version,
                  "confidence": answer.confidence, "voice_text": answer.text}
    interaction.meta = dict(meta)
    interaction.kb_article_id, interaction.kb_article_version = answer.article_id, answer.version
    ticket.self_served = True
    db.session.commit()
    return tv.read_answer(lang, answer.text, step_url("answer", lang=lang))


def voice_answer(form, lang: str) -> str:
    """The caller pressed a key after the answer: 1 an agent, 2 by text, 9 again."""
    lang = _lang(lang)
    interaction, ticket = start_call(form, "answer", lang)
    meta = record_step(interaction, "answer", form)
    kb = meta.get("kb") or {}
    digits = (form.get("Digits") or "").strip()
    if digits == tv.ANSWER_AGENT or not kb:
        return to_agent(interaction, ticket, lang)
    if digits == tv.ANSWER_BY_SMS:
        sent = text_answer(interaction, ticket, lang, kb)
        db.session.commit()
        said = TEXT[lang]["sent_by_sms" if sent else "cannot_sms"]
        return tv.read_answer(lang, said, step_url("answer", lang=lang))
    db.session.commit()
    return tv.read_answer(lang, kb.get("voice_text", ""), step_url("answer", lang=lang))


def _sms_rendering(query: str, lang: str, ticket_id: int, article_id: int,
                   version: int) -> str | None:
    """The SMS rendering of exactly the article version the caller heard."""
    answer = knowledge.answer_for(query, "sms", lang, ticket_id)
    if answer is not None and (answer.article_id, answer.version) == (article_id, version):
        return answer.text
    row = db.session.scalar(sa.select(KBArticleVersion).where(
        KBArticleVersion.article_id == article_id, KBArticleVersion.version == version))
    renderings = (row.renderings or {}) if row else {}
    sms = renderings.get("sms")
    if isinstance(sms, dict):
        sms = sms.get(lang) or next(iter(sms.values()), None)
    return sms or (row.summary if row else None) or None


def text_answer(interaction: Interaction, ticket: Ticket, lang: str, kb: dict) -> bool:
    """Text the caller the SMS rendering of the answer they heard, on the same ticket."""
    point = _contact_point(interaction)
    if point is None or point.kind != "phone" or point.opted_out:
        return False
    text = _sms_rendering((interaction.meta or {}).get("query", ""), lang, ticket.id,
                          kb["article_id"], kb["version"])
    if not text:
        return False
    for message in answer_messages(text, lang):
        if _reply(ticket, message, author_kind="bot", kind="kb_answer", to=point.value,
                  kb=(kb["article_id"], kb["version"])) is None:
            return False
    return True


def to_agent(interaction: Interaction, ticket: Ticket, lang: str) -> str:
    """Queue the caller for an agent, or take a voicemail after hours or on overflow."""
    ticket.self_served = False
    queue = followup.choose_queue(ticket)
    meta = dict(interaction.meta or {})
    if queue is not None and not queue_is_open(queue):
        return _voicemail(interaction, ticket, meta, lang, "after_hours")
    if queue is not None and wait_for_next(queue) > (
            queue.max_wait_seconds or 10**9):
        return _voicemail(interaction, ticket, meta, lang, "overflow")
    if ticket.status == "pending_citizen":
        ticket.status = "open"
    item = followup.ensure_work_item(ticket)
    if item is None:
        return _voicemail(interaction, ticket, meta, lang, "no_queue")
    item.channel = "voice"
    item.language = lang
    meta["queue"] = queue.code
    meta["ivr"] = list(meta.get("ivr") or []) + [
        {"step": "enqueue", "queue": queue.code, "at": utcnow().isoformat() + "Z"}]
    interaction.meta = dict(meta)
    db.session.commit()
    for route in followup.ROUTE_HOOKS:
        route(item.id)
    return tv.enqueue(queue.code, step_url("wait", lang=lang), step_url("dequeued", lang=lang))


def _voicemail(interaction: Interaction, ticket: Ticket, meta: dict, lang: str,
               reason: str) -> str:
    meta["voicemail_reason"] = reason
    meta["ivr"] = list(meta.get("ivr") or []) + [
        {"step": "voicemail_offered", "reason": reason, "at": utcnow().isoformat() + "Z"}]
    interaction.meta = dict(meta)
    db.session.commit()
    return tv.voicemail(lang, step_url("voicemail", lang=lang),
                        step_url("transcription", lang=lang))


def _call_work_item(ticket_id: int) -> WorkItem | None:
    return db.session.scalar(
        sa.select(WorkItem).where(WorkItem.ticket_id == ticket_id, WorkItem.channel == "voice")
        .order_by(WorkItem.id.desc()).limit(1))


def voice_wait(form, lang: str) -> str:
    """Twilio's wait URL, requested in a loop while the caller waits: position, estimated
    wait and the callback offer. In simulator mode it also carries the bridge to an
    agent (Twilio itself is redirected by the REST API)."""
    lang = _lang(lang)
    wait = tv.parse_wait(form)
    interaction = call_interaction(wait.call_sid)
    if interaction is None:
        return tv.hangup(lang, None)
    pending = (interaction.meta or {}).get("bridge_pending")
    if pending:
        return tv.redirect(step_url("connect", agent=pending, lang=lang))
    item = _call_work_item(interaction.ticket_id)
    queue = db.session.get(Queue, item.queue_id) if item is not None else None
    position = est = None
    if item is not None and queue is not None and item.status in ("waiting", "offered"):
        position = waiting_ahead(queue, item) + 1
        est = estimated_wait(queue, position)
    elif wait.position is not None:
        position = wait.position
        est = (wait.avg_queue_time or 60) * position
    db.session.rollback()
    return tv.wait_message(lang, position, est, step_url("callback", lang=lang))


def voice_callback(form, lang: str) -> str:
    """The waiting caller pressed a key: 1 or star keeps the place and hangs up."""
    lang = _lang(lang)
    interaction, ticket = start_call(form, "callback", lang)
    meta = record_step(interaction, "callback", form)
    if not tv.wants_callback(form.get("Digits")):
        db.session.commit()
        return tv.redirect(step_url("wait", lang=lang))
    if interaction.contact_point_id is None:
        # A withheld number cannot be called back: the caller stays on hold.
        meta["callback_refused"] = "withheld number"
        interaction.meta = dict(meta)
        db.session.commit()
        return tv.redirect(step_url("wait", lang=lang))
    item = _call_work_item(ticket.id)
    if item is not None and item.status in ("waiting", "offered"):
        item.commitments = sorted(set(item.commitments or []) | {"callback"})
        item.outcome = "callback"
    meta["callback_number"] = _caller(form)
    meta["callback_requested_at"] = utcnow().isoformat() + "Z"
    interaction.meta = dict(meta)
    db.session.commit()
    return tv.callback_confirmed(lang)


def voice_dequeued(form, lang: str) -> str:
    """Twilio left the queue (bridged, hung up, redirected): a hang-up while waiting is
    an abandonment unless the caller asked for a callback."""
    lang = _lang(lang)
    call_sid = (form.get("CallSid") or "").strip()
    interaction = call_interaction(call_sid)
    result = (form.get("QueueResult") or "").strip().lower()
    if interaction is not None:
        record_step(interaction, "dequeued", form, queue_result=result or None)
        db.session.commit()
        if result == "hangup":
            try:
                waited = int(form.get("QueueTime") or "")
            except ValueError:
                waited = None
            end_waiting(interaction.ticket_id, waited)
    return tv.hangup(lang, None)


def voice_voicemail(form, lang: str) -> str:
    """The caller recorded a voicemail: it joins the call's interaction and the ticket
    waits for an agent's callback."""
    lang = _lang(lang)
    event = tv.parse_recording(form)
    interaction, ticket = start_call(form, "voicemail", lang)
    meta = record_step(interaction, "voicemail", form)
    meta["voicemail"] = {"recording_sid": event.recording_sid, "duration": event.duration}
    interaction.meta = dict(meta)
    interaction.recording_url = event.recording_url
    if event.duration is not None:
        interaction.duration_seconds = interaction.duration_seconds or event.duration
    ticket.self_served = False
    if ticket.status == "pending_citizen":
        ticket.status = "open"
    item = followup.ensure_work_item(ticket)
    if item is not None:
        item.channel = "voice"
        item.commitments = sorted(set(item.commitments or []) | {"voicemail"})
    db.session.commit()
    return tv.hangup(lang, TEXT[lang]["voicemail_thanks"])


def voice_transcription(form) -> bool:
    """Twilio's transcript of a voicemail joins the call's interaction."""
    event = tv.parse_recording(form)
    interaction = call_interaction(event.call_sid)
    if interaction is None:
        log.info("transcript for unknown call %s ignored", event.call_sid)
        return False
    meta = dict(interaction.meta or {})
    meta["transcription_status"] = event.transcription_status
    if event.transcription_text:
        interaction.transcript = event.transcription_text
    if event.recording_url and not interaction.recording_url:
        interaction.recording_url = event.recording_url
    interaction.meta = dict(meta)
    db.session.commit()
    return True


def voice_connect(form, agent_id: int, lang: str) -> str:
    """TwiML that bridges the caller to the agent: the softphone, or the agent's phone."""
    call_sid = (form.get("CallSid") or "").strip()
    interaction = call_interaction(call_sid)
    agent = db.session.get(User, agent_id)
    if agent is None:
        return tv.hangup(lang, None)
    if interaction is not None:
        meta = record_step(interaction, "connect", form, agent_id=agent_id)
        meta.pop("bridge_pending", None)
        meta["connected_agent_id"] = agent_id
        interaction.meta = dict(meta)
        db.session.commit()
    ticket_id = interaction.ticket_id if interaction is not None else None
    return _dial_agent(agent, ticket_id, lang)


def _dial_agent(agent: User, ticket_id: int | None = None, lang: str = "en") -> str:
    """Bridge to the agent; when the agent hangs up, Twilio comes back to the survey step
    (the Dial's action) so the caller can rate the call before the line closes."""
    config = current_app.config
    caller_id = config.get("TWILIO_PHONE_NUMBER")
    action = step_url("survey", ticket=ticket_id, lang=lang) if ticket_id else None
    if agent.phone and not softphone_configured():
        return tv.dial_number(agent.phone, caller_id=caller_id, action_url=action)
    return tv.dial_client(agent_identity(agent.id), caller_id=caller_id, action_url=action)


def voice_survey(form, ticket_id: int, lang: str) -> str:
    """The agent leg ended: ask the caller to rate the call, if they talked to someone."""
    if (form.get("DialCallStatus") or "completed") != "completed":
        return tv.hangup(lang, None)
    return tv.survey(lang, step_url("survey-score", ticket=ticket_id, lang=lang))


def voice_survey_score(form, ticket_id: int, lang: str) -> str:
    """The caller pressed a key after the survey question: record a 1-5 score."""
    from app.services import surveys

    digit = (form.get("Digits") or "").strip()
    if digit in {"1", "2", "3", "4", "5"} and db.session.get(Ticket, ticket_id) is not None:
        surveys.record_survey(ticket_id, "voice", int(digit))
        thanks = {"en": "Thank you. Goodbye.", "es": "Gracias. Adiós."}
        return tv.hangup(lang, thanks.get(lang, thanks["en"]))
    return tv.hangup(lang, None)


def softphone_configured() -> bool:
    config = current_app.config
    return all(config.get(k) for k in ("TWILIO_ACCOUNT_SID", "TWILIO_API_KEY",
                                       "TWILIO_API_SECRET", "TWILIO_TWIML_APP_SID"))


def voice_callback_answer(form, agent_id: int) -> str:
    """The resident answered the callback: connect them to the agent."""
    agent = db.session.get(User, agent_id)
    interaction = call_interaction((form.get("CallSid") or "").strip())
    if interaction is not None:
        record_step(interaction, "callback_answered", form)
        db.session.commit()
    if agent is None:
        return tv.hangup("en", None)
    return _dial_agent(agent, interaction.ticket_id if interaction is not None else None)


def connect_call_for_ticket(ticket_id: int, agent_id: int) -> dict[str, Any]:
    """Connect a ticket's caller to the agent who accepted it (routing or the console
    calls this on an assignment).

    A caller still waiting on the line is bridged: the live call is redirected through
    Twilio's REST API to TwiML that dials the agent (``<Dial><Client>agent-<id>`` for
    the browser softphone, ``<Dial><Number>`` for an agent's phone). A caller who asked
    for a callback, left a voicemail or is no longer on the line is called back
    (``place_call``), and the agent is dialed when they answer. In simulator mode (no
    Twilio account) nothing goes to Twilio: the bridge is carried by the queue's wait URL
    and the callback is recorded as a simulated call.

    Returns ``{"action": "bridged" | "callback", "call_sid": ..., "simulated": bool}``.
    Raises NotFound for an unknown ticket or agent, Invalid when there is no number to
    call back; ``TransientDeliveryError`` from Twilio propagates so the caller can retry.
    """
    ticket = db.session.get(Ticket, ticket_id)
    agent = db.session.get(User, agent_id)
    if ticket is None or agent is None:
        raise NotFound(f"ticket {ticket_id} or agent {agent_id} not found")
    call = db.session.scalar(
        sa.select(Interaction).where(Interaction.ticket_id == ticket_id,
                                     Interaction.channel == "voice",
                                     Interaction.direction == "inbound")
        .order_by(Interaction.id.desc()).limit(1))
    item = _call_work_item(ticket_id)
    meta = dict(call.meta or {}) if call is not None else {}
    lang = _lang(meta.get("language") or ticket.language)
    live = (call is not None and meta.get("call_status") not in TERMINAL_STATUSES
            and not meta.get("voicemail")
            and not (item is not None and "callback" in (item.commitments or [])))
    client = twilio_client()
    if live:
        url = step_url("connect", agent=agent_id, lang=lang)
        try:
            if client is not None:
                tw.redirect_call(client, call.provider_id, url)
            else:
                meta["bridge_pending"] = agent_id
            meta["bridged_agent_id"] = agent_id
            call.meta = dict(meta)
            db.session.commit()
            return {"action": "bridged", "call_sid": call.provider_id,
                    "simulated": client is None}
        except PermanentDeliveryError:
            log.info("call %s ended before the bridge; calling back", call.provider_id)
    return _place_callback(ticket, agent, call, item, meta, client)


def _place_callback(ticket: Ticket, agent: User, call: Interaction | None,
                    item: WorkItem | None, meta: dict, client) -> dict[str, Any]:
    number = meta.get("callback_number")
    if not number and ticket.contact_point_id:
        point = db.session.get(ContactPoint, ticket.contact_point_id)
        number = point.value if point is not None and point.kind == "phone" else None
    if not number or number.startswith("anon:"):
        raise Invalid("the resident left no number to call back", code="unreachable")
    if client is not None:
        result = tw.place_call(
            client, number, current_app.config["TWILIO_PHONE_NUMBER"],
            step_url("callback-answer", agent=agent.id),
            status_callback=step_url("call-status"))
        call_sid, status = result.provider_id, result.status
    else:
        call_sid, status = "CA-SIM-" + uuid.uuid4().hex, "queued"
    db.session.add(Interaction(
        ticket_id=ticket.id, citizen_id=ticket.citizen_id,
        contact_point_id=ticket.contact_point_id, channel="voice", direction="outbound",
        author_kind="agent", author_agent_id=agent.id, provider_id=call_sid,
        text="Callback", delivery_status=status,
        meta={"callback": True, "call_status": status, "to": number,
              "simulated": client is None},
    ))
    if item is not None:
        item.outcome = "callback"
    if ticket.first_response_at is None:
        ticket.first_response_at = utcnow()
    db.session.commit()
    return {"action": "callback", "call_sid": call_sid, "simulated": client is None}


HELPFUL_WORDS = {"HELPFUL": True, "UTIL": True, "ÚTIL": True,
                 "NOT HELPFUL": False, "NO UTIL": False, "NO ÚTIL": False}


def _helpful_word(channel: str, text: str | None) -> str | None:
    """HELPFUL or NOT HELPFUL (ÚTIL / NO ÚTIL) when a text is just that."""
    word = " ".join((text or "").upper().strip(" .!").split())
    return word if channel == "sms" and word in HELPFUL_WORDS else None


def sms_kb_feedback(interaction: Interaction, ticket: Ticket) -> bool:
    """A follow-up pre-hook: a text that is just HELPFUL or NOT HELPFUL (ÚTIL / NO ÚTIL)
    rates the last knowledge-base answer texted on this ticket in the past week."""
    if interaction.direction != "inbound":
        return False
    word = _helpful_word(interaction.channel, interaction.text)
    if word is None:
        return False
    answer = db.session.scalar(
        sa.select(Interaction).where(
            Interaction.ticket_id == ticket.id, Interaction.direction == "outbound",
            Interaction.kb_article_id.is_not(None),
            Interaction.created_at >= utcnow() - timedelta(days=7))
        .order_by(Interaction.id.desc()).limit(1))
    if answer is None:
        return False
    from app.services import knowledge

    knowledge.record_feedback(answer.kb_article_id, answer.kb_article_version, "sms",
                              HELPFUL_WORDS[word], interaction_id=answer.id)
    meta = dict(interaction.meta or {})
    meta["kb_feedback"] = HELPFUL_WORDS[word]
    interaction.meta = meta
    lang = _lang(ticket.language)
    thanks = {"en": "Thanks for your feedback.", "es": "Gracias por su opinión."}[lang]
    outbound.queue_message(ticket, "sms", thanks, author_kind="system")
    return True


sms_kb_feedback.wants = lambda channel, text: _helpful_word(channel, text) is not None


def register() -> None:
    """Plug the SMS sender, the SMS self-service hook and the SMS "was this helpful"
    capture into outbound and follow-up."""
    outbound.register_sender("sms", sms_sender_factory)
    followup.SELF_SERVICE_HOOKS["sms"] = sms_self_service
    if sms_kb_feedback not in followup.PRE_HOOKS:
        followup.PRE_HOOKS.append(sms_kb_feedback)


register()
