"""IVR TwiML is valid XML with the expected verbs, and voice webhooks parse."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from channels.base import ParseError
from channels.twilio import voice

ACTION = "https://civicline.example.gov/webhooks/twilio/voice/step?lang=es&n=2"
CA = "CA" + "e" * 32


def parse(twiml: str) -> ET.Element:
    assert twiml.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    root = ET.fromstring(twiml)
    assert root.tag == "Response"
    return root


def tags(element: ET.Element) -> list[str]:
    return [child.tag for child in element]


def assert_voice(say: ET.Element, lang: str) -> None:
    expected = {"en": ("en-US", "Polly.Joanna"), "es": ("es-US", "Polly.Lupe")}[lang]
    assert (say.get("language"), say.get("voice")) == expected
    assert say.text and say.text.strip()


def test_welcome_offers_both_languages():
    root = parse(voice.welcome(ACTION))
    assert tags(root) == ["Gather", "Redirect"]
    gather = root.find("Gather")
    assert gather.attrib == {
        "action": ACTION,
        "method": "POST",
        "input": "dtmf",
        "numDigits": "1",
        "timeout": "5",
    }
    english, spanish = gather.findall("Say")
    assert_voice(english, "en")
    assert_voice(spanish, "es")
    assert "press 1" in english.text
    assert "oprima 2" in spanish.text
    assert root.find("Redirect").text == ACTION
    assert voice.language_for_digit("1") == "en"
    assert voice.language_for_digit("2") == "es"
    assert voice.language_for_digit("7") is None


@pytest.mark.parametrize("lang, code", [("en", "en-US"), ("es", "es-US"), ("es-MX", "es-US")])
def test_ask_topic(lang, code):
    root = parse(voice.ask_topic(lang, ACTION))
    gather = root.find("Gather")
    assert gather.get("input") == "speech dtmf"
    assert gather.get("language") == code
    assert gather.get("speechTimeout") == "auto"
    assert gather.get("numDigits") == "1"
    assert gather.get("actionOnEmptyResult") == "true"
    assert gather.get("action") == ACTION
    says = gather.findall("Say")
    for say in says:
        assert_voice(say, voice.normalize_lang(lang))
    menu = says[-1].text
    for topic in voice.DEFAULT_TOPICS:
        assert topic.labels[voice.normalize_lang(lang)] in menu
        assert topic.digit in menu
    assert voice.topic_for_digit("2") == "passports"
    assert voice.topic_for_digit("0") == "agent"
    assert voice.topic_for_digit("8") is None


def test_read_answer():
    text = "Passports take 6 to 8 weeks. Routine service costs $130 & up <adult>."
    root = parse(voice.read_answer("en", text, ACTION))
    assert tags(root) == ["Gather", "Say", "Hangup"]
    gather = root.find("Gather")
    assert (gather.get("numDigits"), gather.get("action")) == ("1", ACTION)
    answer, options = gather.findall("Say")
    assert answer.text == text
    assert "press 1" in options.text and "press 2" in options.text and "press 9" in options.text
    assert_voice(root.find("Say"), "en")


def test_read_answer_spanish():
    root = parse(voice.read_answer("es", "Los pasaportes tardan de 6 a 8 semanas.", ACTION))
    for say in root.iter("Say"):
        assert_voice(say, "es")
    assert "oprima 9" in root.find("Gather").findall("Say")[1].text


def test_enqueue():
    root = parse(voice.enqueue("benefits-es", "https://x/wait?lang=es", "https://x/left"))
    [enqueue] = list(root)
    assert enqueue.tag == "Enqueue"
    assert enqueue.text == "benefits-es"
    assert enqueue.get("waitUrl") == "https://x/wait?lang=es"
    assert enqueue.get("waitUrlMethod") == "POST"
    assert enqueue.get("action") == "https://x/left"


@pytest.mark.parametrize(
    "lang, position, wait, expected",
    [
        ("en", 3, 250, ["number 3 in line", "about 5 minutes"]),
        ("en", 1, 30, ["next in line", "less than a minute"]),
        ("en", 2, 60, ["number 2", "about one minute"]),
        ("es", 4, 600, ["número 4", "aproximadamente 10 minutos"]),
        ("es", 1, 10, ["próxima persona", "menos de un minuto"]),
    ],
)
def test_wait_message(lang, position, wait, expected):
    root = parse(voice.wait_message(lang, position, wait, ACTION))
    [gather] = list(root)
    assert gather.tag == "Gather"
    assert (gather.get("action"), gather.get("numDigits"), gather.get("input")) == (
        ACTION,
        "1",
        "dtmf",
    )
    assert tags(gather) == ["Say", "Say", "Play"]
    announce, offer = gather.findall("Say")
    for fragment in expected:
        assert fragment in announce.text
    assert ("star" if lang == "en" else "asterisco") in offer.text
    assert gather.find("Play").text == voice.HOLD_MUSIC_URL
    assert_voice(announce, lang)


def test_wait_message_without_music_or_numbers():
    root = parse(voice.wait_message("en", None, None, ACTION, hold_music_url=None))
    gather = root.find("Gather")
    assert tags(gather) == ["Say", "Say", "Pause"]
    assert gather.find("Pause").get("length") == "30"
    assert voice.wants_callback("*") and voice.wants_callback("1")
    assert not voice.wants_callback("5") and not voice.wants_callback(None)


@pytest.mark.parametrize("lang", ["en", "es"])
def test_callback_confirmed(lang):
    root = parse(voice.callback_confirmed(lang))
    assert tags(root) == ["Say", "Hangup"]
    assert_voice(root.find("Say"), lang)


def test_voicemail():
    root = parse(voice.voicemail("es", ACTION, "https://x/transcript"))
    assert tags(root) == ["Say", "Record", "Say", "Hangup"]
    record = root.find("Record")
    assert record.get("transcribe") == "true"
    assert record.get("transcribeCallback") == "https://x/transcript"
    assert record.get("action") == ACTION
    assert record.get("maxLength") == "120"
    assert record.get("playBeep") == "true"
    assert record.get("finishOnKey") == "#"
    assert_voice(root.find("Say"), "es")


def test_dial_client_and_number():
    root = parse(voice.dial_client("agent-42", caller_id="+15550001111", action_url=ACTION))
    dial = root.find("Dial")
    assert dial.get("callerId") == "+15550001111"
    assert dial.get("action") == ACTION
    assert dial.find("Client").text == "agent-42"

    root = parse(voice.dial_number("+15551234567"))
    dial = root.find("Dial")
    assert dial.find("Number").text == "+15551234567"
    assert dial.get("action") is None and dial.get("method") is None


def test_say_hangup_redirect():
    root = parse(voice.say("es", "Un momento, por favor."))
    assert tags(root) == ["Say"]
    assert_voice(root.find("Say"), "es")
    root = parse(voice.hangup("en", "Goodbye."))
    assert tags(root) == ["Say", "Hangup"]
    assert tags(parse(voice.hangup("en", None))) == ["Hangup"]
    root = parse(voice.redirect(ACTION))
    assert root.find("Redirect").text == ACTION


def test_parse_voice_speech():
    msg = voice.parse_voice(
        {
            "CallSid": CA,
            "From": "+15551234567",
            "To": "+18442872681",
            "CallStatus": "in-progress",
            "SpeechResult": "renovar mi pasaporte",
            "Confidence": "0.91",
            "Direction": "inbound",
        },
        language="es",
        step="topic",
    )
    assert (msg.channel, msg.provider_id, msg.sender) == ("voice", CA, "+15551234567")
    assert msg.recipient == "+18442872681"
    assert msg.text == "renovar mi pasaporte"
    assert msg.language == "es"  # the caller's language, as agents' skills name it
    assert msg.thread_keys["call_sid"] == CA
    assert msg.metadata["confidence"] == pytest.approx(0.91)
    assert msg.metadata["call_status"] == "in-progress"
    assert msg.metadata["digits"] is None
    assert msg.metadata["ivr_step"] == "topic"
    assert msg.metadata["anonymous"] is False


def test_parse_voice_digits_and_anonymous():
    msg = voice.parse_voice({"CallSid": CA, "From": "anonymous", "Digits": "2"})
    assert msg.text == "2"
    assert msg.metadata["digits"] == "2"
    assert msg.metadata["anonymous"] is True
    assert msg.language is None


@pytest.mark.parametrize("data, match", [({"From": "+1555"}, "CallSid"), ({"CallSid": CA}, "From")])
def test_parse_voice_missing(data, match):
    with pytest.raises(ParseError, match=match):
        voice.parse_voice(data)


def test_parse_recording_and_transcript():
    rec = voice.parse_recording(
        {
            "CallSid": CA,
            "RecordingSid": "RE1",
            "RecordingUrl": "https://api.twilio.com/R/RE1",
            "RecordingDuration": "42",
            "Digits": "#",
        }
    )
    assert (rec.recording_url, rec.duration, rec.recording_sid) == (
        "https://api.twilio.com/R/RE1",
        42,
        "RE1",
    )
    assert not rec.is_transcript
    transcript = voice.parse_recording(
        {
            "CallSid": CA,
            "RecordingSid": "RE1",
            "RecordingUrl": "https://api.twilio.com/R/RE1",
            "TranscriptionText": "My name is Ana, call me back.",
            "TranscriptionStatus": "completed",
        }
    )
    assert transcript.is_transcript
    assert transcript.transcription_text == "My name is Ana, call me back."
    with pytest.raises(ParseError):
        voice.parse_recording({"CallSid": CA})
    with pytest.raises(ParseError):
        voice.parse_recording({"RecordingUrl": "https://x"})


def test_parse_wait():
    wait = voice.parse_wait(
        {
            "CallSid": CA,
            "QueuePosition": "3",
            "QueueTime": "75",
            "AvgQueueTime": "120",
            "CurrentQueueSize": "5",
        }
    )
    assert (wait.position, wait.queue_time, wait.avg_queue_time, wait.queue_size) == (3, 75, 120, 5)
