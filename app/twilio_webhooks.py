"""Twilio's webhooks: SMS, delivery and call status, and the voice IVR steps.

Every request is checked against ``X-Twilio-Signature`` (the URL Twilio signed is
rebuilt from ``PUBLIC_BASE_URL`` behind a proxy): a wrong or missing signature gets 403.
A payload that cannot be understood is stored (``store_failed_payload``) and gets 400.
Both answer with an empty TwiML document, so Twilio never speaks or texts an error.
Views only verify, parse and hand over to ``app.services.telephony``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from urllib.parse import urlencode

from apiflask import APIBlueprint
from flask import Response, current_app, request
from sqlalchemy import exc as sa_exc

from app.extensions import limiter
from app.services import ServiceError, telephony
from app.services.intake import store_failed_payload
from channels import twilio as tw
from channels.base import ParseError
from channels.twilio.signature import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    algorithm_from_header,
)

log = logging.getLogger(__name__)

bp = APIBlueprint("twilio", __name__, enable_openapi=False, url_prefix="/webhooks/twilio")
# One budget per source address for every Twilio path, spent only by requests that fail
# the signature check: a flood of forged requests is turned away with 429 before it costs
# more, while what Twilio signed is never throttled (a resident's message refused here
# would be lost, and a request Twilio signed cannot come from a flood that lacks the
# account's auth token). Signed requests thus skip the limiter's round trip to Redis.
limiter.shared_limit(lambda: current_app.config["RATELIMIT_TWILIO"], scope="twilio")(bp)


@limiter.request_filter
def _signed_by_twilio() -> bool:
    """Signed Twilio requests pass the limiter without a look at its rules (the filter
    runs for every request, so it asks the blueprint first)."""
    return request.blueprint == bp.name and signature_is_valid()


# Each app plugs in the SMS sender and self-service hook when it registers the blueprint.
bp.record(lambda _state: telephony.register())

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'


def twiml(body: str, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="text/xml")


_CHECKED = "civicline.twilio_signature_valid"


def signature_is_valid() -> bool:
    """Whether this request carries Twilio's signature of the URL Twilio requested
    (checked once per request: the rate limit asks first, then the view)."""
    valid = request.environ.get(_CHECKED)
    if valid is None:
        url = tw.public_url(request.url, current_app.config.get("PUBLIC_BASE_URL"))
        settings = request.headers.get(SIGNATURE_SETTINGS_HEADER)
        valid = request.environ[_CHECKED] = tw.verify(
            telephony.auth_token(), url, request.form, request.headers.get(SIGNATURE_HEADER),
            algorithm_from_header(settings) if settings else None,
        )
    return valid


def twilio_webhook(source: str) -> Callable:
    """Verify the signature (403), and store payloads that cannot be read or stored (400),
    around a view."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            if not signature_is_valid():
                log.warning("rejected %s webhook with a bad signature from %s", source,
                            request.remote_addr)
                return twiml(EMPTY_TWIML, 403)
            try:
                return view(*args, **kwargs)
            except (ParseError, ServiceError, sa_exc.DataError) as exc:
                # Unreadable, refused, or holding a value the database cannot store.
                from app.extensions import db

                db.session.rollback()
                body = urlencode(list(request.form.items(multi=True)))
                store_failed_payload(source, body, request.content_type,
                                     f"{type(exc).__name__}: {exc}")
                return twiml(EMPTY_TWIML, 400)

        return wrapper

    return decorator


def _lang() -> str:
    return telephony._lang(request.args.get("lang"))


@bp.post("/sms")
@twilio_webhook("twilio_sms")
def sms():
    """Twilio posts each SMS/MMS a resident sends to the city's number."""
    telephony.receive_sms(tw.parse_sms(request.form))
    return twiml(tw.messaging_twiml())


@bp.post("/status")
@twilio_webhook("twilio_status")
def status():
    """Twilio posts delivery status changes of our messages (and call progress)."""
    telephony.apply_status(tw.parse_status(request.form))
    return twiml(EMPTY_TWIML)


@bp.post("/voice")
@twilio_webhook("twilio_voice")
def voice():
    """Twilio posts here when a resident calls the city's number."""
    return twiml(telephony.voice_incoming(request.form))


@bp.post("/voice/language")
@twilio_webhook("twilio_voice")
def voice_language():
    """Twilio posts the caller's language choice (Gather at the greeting)."""
    return twiml(telephony.voice_language(request.form))


@bp.post("/voice/topic")
@twilio_webhook("twilio_voice")
def voice_topic():
    """Twilio posts what the caller said or pressed when asked about the topic."""
    return twiml(telephony.voice_topic(request.form, _lang()))


@bp.post("/voice/answer")
@twilio_webhook("twilio_voice")
def voice_answer():
    """Twilio posts the key pressed after a knowledge-base answer was read."""
    return twiml(telephony.voice_answer(request.form, _lang()))


@bp.post("/voice/wait")
@twilio_webhook("twilio_voice")
def voice_wait():
    """Twilio requests this wait URL in a loop while the caller waits in queue."""
    return twiml(telephony.voice_wait(request.form, _lang()))


@bp.post("/voice/callback")
@twilio_webhook("twilio_voice")
def voice_callback():
    """Twilio posts a key pressed while waiting (1 or star: call me back)."""
    return twiml(telephony.voice_callback(request.form, _lang()))


@bp.post("/voice/dequeued")
@twilio_webhook("twilio_voice")
def voice_dequeued():
    """Twilio posts the Enqueue action when the caller leaves the queue."""
    return twiml(telephony.voice_dequeued(request.form, _lang()))


@bp.post("/voice/voicemail")
@twilio_webhook("twilio_voice")
def voice_voicemail():
    """Twilio posts the Record action with the caller's voicemail recording."""
    return twiml(telephony.voice_voicemail(request.form, _lang()))


@bp.post("/voice/transcription")
@twilio_webhook("twilio_voice")
def voice_transcription():
    """Twilio posts the transcript of a voicemail, some time after the call."""
    telephony.voice_transcription(request.form)
    return twiml(EMPTY_TWIML)


@bp.post("/voice/call-status")
@twilio_webhook("twilio_status")
def voice_call_status():
    """Twilio posts call progress (ringing, completed with duration, no-answer...)."""
    telephony.apply_status(tw.parse_status(request.form))
    return twiml(EMPTY_TWIML)


@bp.post("/voice/connect")
@twilio_webhook("twilio_voice")
def voice_connect():
    """Twilio fetches this after a queued call is redirected to the accepting agent."""
    agent_id = request.args.get("agent", type=int)
    if agent_id is None:
        raise ParseError("connect step without an agent")
    return twiml(telephony.voice_connect(request.form, agent_id, _lang()))


@bp.post("/voice/survey")
@twilio_webhook("twilio_voice")
def voice_survey():
    """Twilio fetches this when the agent leg of a call ends (the Dial's action)."""
    ticket_id = request.args.get("ticket", type=int)
    if ticket_id is None:
        raise ParseError("survey step without a ticket")
    return twiml(telephony.voice_survey(request.form, ticket_id, _lang()))


@bp.post("/voice/survey-score")
@twilio_webhook("twilio_voice")
def voice_survey_score():
    """Twilio posts the key the caller pressed after the survey question."""
    ticket_id = request.args.get("ticket", type=int)
    if ticket_id is None:
        raise ParseError("survey step without a ticket")
    return twiml(telephony.voice_survey_score(request.form, ticket_id, _lang()))


@bp.post("/voice/callback-answer")
@twilio_webhook("twilio_voice")
def voice_callback_answer():
    """Twilio fetches this when a resident answers the callback we placed."""
    agent_id = request.args.get("agent", type=int)
    if agent_id is None:
        raise ParseError("callback step without an agent")
    return twiml(telephony.voice_callback_answer(request.form, agent_id))
