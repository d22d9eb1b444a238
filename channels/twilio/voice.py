"""The phone line: TwiML for each IVR step, and parsers for Twilio's voice webhooks.

Every builder is a pure function returning TwiML as a string. The app passes in the
callback URLs (absolute, public URLs of its IVR step endpoints), so nothing here knows
about Flask. The call flow the builders are meant for::

    welcome ─1/2─► ask_topic ─speech/digit─► read_answer ─1─► enqueue ─► agent bridged
                                                  │ 2: answer by SMS     │ waitUrl
                                                  │ 9: read again        ▼
                                                  └ no key: goodbye    wait_message
                                                                         │ 1 or *
                                                                         ▼
                                                               callback_confirmed
    no agent available or after hours: voicemail

Voices: English uses ``Polly.Joanna`` with ``language="en-US"``; Spanish uses
``Polly.Lupe`` with ``language="es-US"``. Both are Amazon Polly voices native to their
language (Lupe is a US Spanish voice, the Spanish most US callers speak), so Spanish is
never read by an English voice, and both sound alike in pace and register, so the two
language lines get the same quality of service.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from twilio.twiml.voice_response import VoiceResponse

from channels.base import InboundMessage, ParseError

Lang = Literal["en", "es"]


@dataclass(frozen=True)
class VoiceLanguage:
    """How one IVR language is spoken and recognized."""

    code: str  # Say language and Gather speech recognition language
    voice: str  # Twilio <Say> voice


LANGUAGES: dict[str, VoiceLanguage] = {
    "en": VoiceLanguage(code="en-US", voice="Polly.Joanna"),
    "es": VoiceLanguage(code="es-US", voice="Polly.Lupe"),
}

# Twilio's classic public hold music, served from Twilio's own bucket.
HOLD_MUSIC_URL = "http://com.twilio.sounds.music.s3.amazonaws.com/MARKOVICHAMP-Borghestral.mp3"

# Keys the caller presses, for the app's step handlers.
LANGUAGE_DIGITS: dict[str, Lang] = {"1": "en", "2": "es"}
ANSWER_AGENT = "1"
ANSWER_BY_SMS = "2"
ANSWER_REPEAT = "9"
CALLBACK_KEYS = frozenset({"1", "*"})

# From values Twilio uses when the caller's number is withheld or unknown.
ANONYMOUS_CALLERS = frozenset(
    {
        "anonymous",
        "restricted",
        "unknown",
        "private",
        "+266696687",
        "+7378742833",
        "+2562533",
        "+86282452253",
        "+8656696",
    }
)


@dataclass(frozen=True)
class Topic:
    """One entry of the spoken topic menu: a key, a topic id, and its label per language."""

    digit: str
    key: str
    labels: Mapping[str, str]


DEFAULT_TOPICS: tuple[Topic, ...] = (
    Topic(
        "1", "benefits", {"en": "Social Security and benefits", "es": "Seguro Social y beneficios"}
    ),
    Topic("2", "passports", {"en": "passports and travel", "es": "pasaportes y viajes"}),
    Topic("3", "taxes", {"en": "taxes", "es": "impuestos"}),
    Topic(
        "4",
        "city_services",
        {
            "en": "trash, streets and other city services",
            "es": "basura, calles y otros servicios de la ciudad",
        },
    ),
    Topic("0", "agent", {"en": "an agent", "es": "un agente"}),
)

_TEXT: dict[str, dict[str, str]] = {
    "en": {
        "welcome": "Thank you for calling CivicLine, your government information line. "
        "For English, press 1.",
        "ask_topic": "In a few words, tell me what you are calling about.",
        "menu_item": "For {label}, press {digit}.",
        "menu_agent": "To speak with {label}, press {digit}.",
        "not_heard": "Sorry, I did not get that.",
        "answer_options": "To speak with an agent, press 1. To get this answer by text "
        "message, press 2. To hear it again, press 9.",
        "goodbye": "Thank you for calling. Goodbye.",
        "position_next": "You are next in line.",
        "position": "You are number {position} in line.",
        "wait_short": "The estimated wait is less than a minute.",
        "wait_one": "The estimated wait is about one minute.",
        "wait_minutes": "The estimated wait is about {minutes} minutes.",
        "callback_offer": "To get a call back and keep your place in line, "
        "press 1 or star at any time.",
        "callback_confirmed": "Thank you. You keep your place in line, and an agent will "
        "call you back at this number. You can hang up now. Goodbye.",
        "voicemail": "Please leave a message with your name, your phone number and how we "
        "can help, after the tone. Press the pound key when you are finished.",
        "no_recording": "We did not receive a message. Please call again. Goodbye.",
    },
    "es": {
        "welcome": "Gracias por llamar a CivicLine, su línea de información del gobierno. "
        "Para español, oprima 2.",
        "ask_topic": "En pocas palabras, dígame por qué llama.",
        "menu_item": "Para {label}, oprima {digit}.",
        "menu_agent": "Para hablar con {label}, oprima {digit}.",
        "not_heard": "Disculpe, no le entendí.",
        "answer_options": "Para hablar con un agente, oprima 1. Para recibir esta respuesta "
        "por mensaje de texto, oprima 2. Para escucharla de nuevo, oprima 9.",
        "goodbye": "Gracias por llamar. Adiós.",
        "position_next": "Usted es la próxima persona en la fila.",
        "position": "Usted es la persona número {position} en la fila.",
        "wait_short": "El tiempo de espera estimado es de menos de un minuto.",
        "wait_one": "El tiempo de espera estimado es de aproximadamente un minuto.",
        "wait_minutes": "El tiempo de espera estimado es de aproximadamente {minutes} minutos.",
        "callback_offer": "Para que le devolvamos la llamada sin perder su lugar en la fila, "
        "oprima 1 o asterisco en cualquier momento.",
        "callback_confirmed": "Gracias. Usted conserva su lugar en la fila y un agente le "
        "devolverá la llamada a este número. Ya puede colgar. Adiós.",
        "voicemail": "Después del tono, deje un mensaje con su nombre, su número de teléfono "
        "y cómo podemos ayudarle. Oprima la tecla numeral cuando termine.",
        "no_recording": "No recibimos ningún mensaje. Por favor, llame de nuevo. Adiós.",
    },
}


def normalize_lang(lang: str | None) -> Lang:
    """The IVR language ("en" or "es") for "es", "es-US", "es_MX", "ES"...; else English."""
    return "es" if (lang or "").strip().lower()[:2] == "es" else "en"


def language_for_digit(digits: str | None) -> Lang | None:
    """The language chosen at the welcome menu (1 English, 2 Spanish), or None."""
    return LANGUAGE_DIGITS.get((digits or "").strip())


def topic_for_digit(digits: str | None, topics: Sequence[Topic] = DEFAULT_TOPICS) -> str | None:
    """The topic key for a key pressed at the topic menu, or None."""
    digits = (digits or "").strip()
    return next((topic.key for topic in topics if topic.digit == digits), None)


def wants_callback(digits: str | None) -> bool:
    """Whether the key pressed while waiting in queue asks for a callback."""
    return (digits or "").strip() in CALLBACK_KEYS


# --- TwiML builders --------------------------------------------------------------------


def welcome(action_url: str) -> str:
    """Greeting and language choice: press 1 for English, 2 for Spanish.

    Each language's sentence is spoken in its own voice. With no key pressed the call is
    redirected to ``action_url`` without ``Digits``; the app should carry on in English.
    """
    response = VoiceResponse()
    gather = response.gather(
        input="dtmf", num_digits=1, action=action_url, method="POST", timeout=5
    )
    for lang in ("en", "es"):
        _say(gather, lang, _TEXT[lang]["welcome"])
    response.redirect(action_url, method="POST")
    return str(response)


def ask_topic(lang: str, action_url: str, topics: Sequence[Topic] = DEFAULT_TOPICS) -> str:
    """Ask what the call is about, by speech or by a menu key.

    Speech is recognized in the caller's language with ``speechTimeout="auto"``; the
    topic labels are passed as recognition hints. Twilio posts ``SpeechResult`` and
    ``Confidence``, or ``Digits`` (see ``topic_for_digit``), to ``action_url``; with
    nothing said or pressed it posts with neither (``actionOnEmptyResult``).
    """
    lang = normalize_lang(lang)
    text = _TEXT[lang]
    response = VoiceResponse()
    gather = response.gather(
        input="speech dtmf",
        action=action_url,
        method="POST",
        language=LANGUAGES[lang].code,
        speech_timeout="auto",
        num_digits=1,
        timeout=6,
        action_on_empty_result=True,
        hints=", ".join(topic.labels[lang] for topic in topics if topic.key != "agent"),
    )
    _say(gather, lang, text["ask_topic"])
    _say(gather, lang, " ".join(_menu_sentence(lang, topic) for topic in topics))
    response.redirect(action_url, method="POST")
    return str(response)


def read_answer(lang: str, voice_text: str, action_url: str) -> str:
    """Read a knowledge-base answer, then offer: 1 an agent, 2 by text, 9 hear it again.

    The caller may press a key while the answer is being read. With no key pressed the
    call ends politely.
    """
    lang = normalize_lang(lang)
    response = VoiceResponse()
    gather = response.gather(
        input="dtmf", num_digits=1, action=action_url, method="POST", timeout=6
    )
    _say(gather, lang, voice_text)
    _say(gather, lang, _TEXT[lang]["answer_options"])
    _say(response, lang, _TEXT[lang]["goodbye"])
    response.hangup()
    return str(response)


def enqueue(queue_name: str, wait_url: str, action_url: str) -> str:
    """Put the caller in a Twilio queue until an agent's call is bridged to it.

    Twilio requests ``wait_url`` (answer it with ``wait_message``) in a loop while the
    caller waits, and ``action_url`` when the caller leaves the queue (bridged, hung up,
    or sent out by ``<Leave>``).
    """
    response = VoiceResponse()
    response.enqueue(
        queue_name, action=action_url, method="POST", wait_url=wait_url, wait_url_method="POST"
    )
    return str(response)


def wait_message(
    lang: str,
    position: int | None,
    est_wait_seconds: float | None,
    callback_action_url: str,
    hold_music_url: str | None = HOLD_MUSIC_URL,
) -> str:
    """What a caller waiting in queue hears: position, estimated wait, callback offer, music.

    Everything plays inside a ``<Gather>``, so the caller can press 1 or star at any time
    to ask for a callback (Twilio posts ``Digits`` to ``callback_action_url``; see
    ``wants_callback``). When the music ends, Twilio requests the wait URL again, so the
    position and estimate are refreshed on every loop. Without ``hold_music_url`` the
    caller hears 30 seconds of silence instead.
    """
    lang = normalize_lang(lang)
    response = VoiceResponse()
    gather = response.gather(
        input="dtmf", num_digits=1, action=callback_action_url, method="POST", timeout=1
    )
    _say(gather, lang, _wait_sentence(lang, position, est_wait_seconds))
    _say(gather, lang, _TEXT[lang]["callback_offer"])
    if hold_music_url:
        gather.play(hold_music_url)
    else:
        gather.pause(length=30)
    return str(response)


def callback_confirmed(lang: str) -> str:
    """Confirm a callback request and end the call (valid inside a queue's wait URL too)."""
    return hangup(lang, _TEXT[normalize_lang(lang)]["callback_confirmed"])


def voicemail(
    lang: str,
    action_url: str,
    transcribe_callback_url: str,
    max_length: int = 120,
) -> str:
    """Take a voice message with a transcript.

    Twilio posts the recording (``RecordingUrl``, ``RecordingDuration``) to
    ``action_url`` and, later, the transcript (``TranscriptionText``) to
    ``transcribe_callback_url``; ``parse_recording`` reads both. Twilio transcribes
    recordings of up to two minutes, and in English only: Spanish voicemails keep the
    recording, and their transcript should come from elsewhere or from an agent.
    """
    lang = normalize_lang(lang)
    response = VoiceResponse()
    _say(response, lang, _TEXT[lang]["voicemail"])
    response.record(
        action=action_url,
        method="POST",
        timeout=5,
        finish_on_key="#",
        max_length=max_length,
        play_beep=True,
        transcribe=True,
        transcribe_callback=transcribe_callback_url,
    )
    _say(response, lang, _TEXT[lang]["no_recording"])
    response.hangup()
    return str(response)


def _dial(caller_id: str | None, action_url: str | None, timeout: int):
    """A ``<Dial>`` that, when ``action_url`` is given, comes back there when it ends."""
    response = VoiceResponse()
    dial = response.dial(caller_id=caller_id, action=action_url,
                         method="POST" if action_url else None, timeout=timeout)
    return response, dial


def dial_client(
    identity: str, caller_id: str | None = None, action_url: str | None = None, timeout: int = 20
) -> str:
    """Ring an agent's browser softphone (a Twilio Client registered as ``identity``)."""
    response, dial = _dial(caller_id, action_url, timeout)
    dial.client(identity)
    return str(response)


def dial_number(
    number: str, caller_id: str | None = None, action_url: str | None = None, timeout: int = 30
) -> str:
    """Connect the call to a phone number (a resident for a callback, or a transfer)."""
    response, dial = _dial(caller_id, action_url, timeout)
    dial.number(number)
    return str(response)


def say(lang: str, text: str) -> str:
    """Say one thing in the caller's language (the call continues with the next webhook)."""
    response = VoiceResponse()
    _say(response, normalize_lang(lang), text)
    return str(response)


def hangup(lang: str, text: str | None) -> str:
    """Say a last thing, if anything, then end the call."""
    response = VoiceResponse()
    if text:
        _say(response, normalize_lang(lang), text)
    response.hangup()
    return str(response)


def redirect(url: str) -> str:
    """Send the call to another IVR step."""
    response = VoiceResponse()
    response.redirect(url, method="POST")
    return str(response)


def _say(parent: Any, lang: str, text: str) -> None:
    language = LANGUAGES[lang]
    parent.say(text, voice=language.voice, language=language.code)


def _menu_sentence(lang: str, topic: Topic) -> str:
    template = _TEXT[lang]["menu_agent" if topic.key == "agent" else "menu_item"]
    return template.format(label=topic.labels[lang], digit=topic.digit)


def _wait_sentence(lang: str, position: int | None, est_wait_seconds: float | None) -> str:
    text = _TEXT[lang]
    parts = []
    if position is not None and position >= 1:
        parts.append(
            text["position_next"] if position == 1 else text["position"].format(position=position)
        )
    if est_wait_seconds is not None and est_wait_seconds >= 0:
        minutes = math.ceil(est_wait_seconds / 60)
        if est_wait_seconds < 60:
            parts.append(text["wait_short"])
        elif minutes == 1:
            parts.append(text["wait_one"])
        else:
            parts.append(text["wait_minutes"].format(minutes=minutes))
    return " ".join(parts)


# --- Webhook parsers -------------------------------------------------------------------


def parse_voice(
    form: Mapping[str, str], language: str | None = None, step: str | None = None
) -> InboundMessage:
    """Turn a voice webhook (incoming call or an IVR step) into an ``InboundMessage``.

    ``provider_id`` is the CallSid, shared by every step of one call: the call is one
    interaction, and each step updates it. ``text`` is what the caller said
    (SpeechResult) or else the keys pressed (Digits). ``language`` (the IVR language the
    app carries in its step URLs) and ``step`` (which IVR step this is) are the app's.
    Metadata: call_status, direction, speech_result, confidence (float), digits,
    caller_name, forwarded_from, anonymous (the number is withheld, so no callback).
    """
    call_sid = (form.get("CallSid") or "").strip()
    if not call_sid:
        raise ParseError("Twilio voice webhook without CallSid")
    sender = (form.get("From") or form.get("Caller") or "").strip()
    if not sender:
        raise ParseError(f"Twilio voice webhook {call_sid} without a From number")
    speech = form.get("SpeechResult") or None
    digits = form.get("Digits") or None
    metadata: dict[str, Any] = {
        "call_status": _blank_to_none(form.get("CallStatus")),
        "direction": _blank_to_none(form.get("Direction")),
        "speech_result": speech,
        "confidence": _float_or_none(form.get("Confidence")),
        "digits": digits,
        "anonymous": sender.lower() in ANONYMOUS_CALLERS,
    }
    for param, name in (
        ("CallerName", "caller_name"),
        ("ForwardedFrom", "forwarded_from"),
        ("AccountSid", "account_sid"),
        ("ParentCallSid", "parent_call_sid"),
    ):
        if form.get(param):
            metadata[name] = form[param]
    if step:
        metadata["ivr_step"] = step
    return InboundMessage(
        channel="voice",
        provider_id=call_sid,
        sender=sender,
        recipient=_blank_to_none(form.get("To") or form.get("Called")),
        text=(speech or digits or "").strip(),
        language=LANGUAGES[normalize_lang(language)].code if language else None,
        thread_keys={"call_sid": call_sid, "phone": sender},
        metadata=metadata,
    )


@dataclass(frozen=True)
class RecordingEvent:
    """A voicemail recording (Record action) or its transcript (transcribe callback).

    Both callbacks carry the same ``recording_sid``; the transcript arrives later.
    ``recording_url`` serves WAV as is and MP3 with ``.mp3`` appended.
    """

    call_sid: str
    recording_sid: str | None
    recording_url: str | None
    duration: int | None
    transcription_text: str | None
    transcription_status: str | None
    sender: str | None
    recipient: str | None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def is_transcript(self) -> bool:
        return self.transcription_status is not None or self.transcription_text is not None


def parse_recording(form: Mapping[str, str]) -> RecordingEvent:
    """Read a Record action or transcribe callback (RecordingUrl, RecordingDuration,
    TranscriptionText)."""
    call_sid = (form.get("CallSid") or "").strip()
    if not call_sid:
        raise ParseError("Twilio recording callback without CallSid")
    recording_url = _blank_to_none(form.get("RecordingUrl"))
    transcription_text = form.get("TranscriptionText")
    if recording_url is None and transcription_text is None:
        raise ParseError(f"Twilio recording callback {call_sid} without RecordingUrl")
    metadata = {
        name: form[param]
        for param, name in (
            ("TranscriptionSid", "transcription_sid"),
            ("TranscriptionUrl", "transcription_url"),
            ("Digits", "digits"),
            ("AccountSid", "account_sid"),
        )
        if form.get(param)
    }
    return RecordingEvent(
        call_sid=call_sid,
        recording_sid=_blank_to_none(form.get("RecordingSid")),
        recording_url=recording_url,
        duration=_int_or_none(form.get("RecordingDuration")),
        transcription_text=transcription_text,
        transcription_status=_blank_to_none(form.get("TranscriptionStatus")),
        sender=_blank_to_none(form.get("From")),
        recipient=_blank_to_none(form.get("To")),
        metadata=metadata,
    )


@dataclass(frozen=True)
class QueueWait:
    """What Twilio tells a queue's wait URL about the waiting caller."""

    call_sid: str
    position: int | None
    queue_time: int | None
    avg_queue_time: int | None
    queue_size: int | None


def parse_wait(form: Mapping[str, str]) -> QueueWait:
    """Read a wait-URL request (QueuePosition, QueueTime, AvgQueueTime, CurrentQueueSize)."""
    call_sid = (form.get("CallSid") or "").strip()
    if not call_sid:
        raise ParseError("Twilio queue wait request without CallSid")
    return QueueWait(
        call_sid=call_sid,
        position=_int_or_none(form.get("QueuePosition")),
        queue_time=_int_or_none(form.get("QueueTime")),
        avg_queue_time=_int_or_none(form.get("AvgQueueTime")),
        queue_size=_int_or_none(form.get("CurrentQueueSize")),
    )


def _blank_to_none(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(float((value or "").strip()))
    except (ValueError, OverflowError):
        return None


def _float_or_none(value: str | None) -> float | None:
    try:
        return float((value or "").strip())
    except ValueError:
        return None


SURVEY_PROMPTS = {
    "en": "Thank you for calling. How did we do? Press 1 to 5, where 5 is very satisfied.",
    "es": "Gracias por llamar. ¿Cómo lo hicimos? Marque del 1 al 5; 5 es muy satisfecho.",
}


def survey(lang: str, action_url: str) -> str:
    """After the agent hangs up: a one-key satisfaction question (1-5)."""
    lang = normalize_lang(lang)
    response = VoiceResponse()
    gather = response.gather(input="dtmf", num_digits=1, action=action_url, method="POST",
                             timeout=6)
    _say(gather, lang, SURVEY_PROMPTS[lang])
    response.hangup()
    return str(response)
