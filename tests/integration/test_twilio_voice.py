"""The phone line: IVR steps on one call interaction, answers read and texted, the
queue with position and callback, abandonment, bridging and callbacks through the REST
API (the real SDK faked at its HTTP boundary), voicemail, call status and the softphone
token."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import jwt
import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import ContactPoint, FailedPayload, Interaction, Outbox, Queue, Ticket, WorkItem
from app.services import telephony
from tests.fakes.twilio_http import RecordingHttpClient
from tests.twilio_signing import post_signed

JOSE = "+15555550124"
CITY = "+15555550100"
BASE = "http://localhost/webhooks/twilio/voice"
_counter = iter(range(1, 1_000_000))


class Call:
    """One simulated call: every step posts Twilio's signed form with the same CallSid."""

    def __init__(self, client, sender=JOSE):
        self.client, self.sender = client, sender
        self.sid = f"CA{next(_counter):032d}"

    def post(self, path, **params):
        form = {"CallSid": self.sid, "AccountSid": "AC" + "0" * 32, "From": self.sender,
                "To": CITY, "CallStatus": "in-progress", "Direction": "inbound", **params}
        response = post_signed(self.client, path, form)
        assert response.status_code == 200, response.data
        assert response.mimetype == "text/xml"
        return ET.fromstring(response.data)

    def step(self, step, query="", **params):
        return self.post(f"/webhooks/twilio/voice/{step}{query}", **params)

    def interactions(self):
        return db.session.scalars(sa.select(Interaction).where(
            Interaction.channel == "voice", Interaction.provider_id == self.sid)).all()


def said(doc):
    return " ".join(el.text or "" for el in doc.iter("Say"))


def count(model):
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


@pytest.fixture
def open_queues(seeded):
    for queue in db.session.scalars(sa.select(Queue)):
        queue.business_hours, queue.holidays = {}, []
    db.session.commit()
    return seeded


@pytest.fixture
def twilio_http(app):
    fake = RecordingHttpClient()
    app.config["TWILIO_HTTP_CLIENT"] = fake
    yield fake
    app.config["TWILIO_HTTP_CLIENT"] = None


def queue_caller(client, sender):
    call = Call(client, sender)
    call.post("/webhooks/twilio/voice", CallStatus="ringing")
    call.step("language", Digits="1")
    doc = call.step("topic", "?lang=en", Digits="0")
    assert doc.find("Enqueue") is not None
    return call


def test_incoming_call_greets_and_is_one_interaction(client):
    call = Call(client)
    doc = call.post("/webhooks/twilio/voice", CallStatus="ringing")
    gather = doc.find("Gather")
    assert gather.get("action") == f"{BASE}/language"
    assert "For English, press 1" in said(doc) and "Para español, oprima 2" in said(doc)
    call.post("/webhooks/twilio/voice", CallStatus="ringing")  # a replayed webhook
    assert len(call.interactions()) == 1 and count(Ticket) == 1


def test_jose_calls_in_spanish_and_gets_the_answer_by_text(client, open_queues, run_jobs):
    call = Call(client)
    call.post("/webhooks/twilio/voice", CallStatus="ringing")
    doc = call.step("language", Digits="2")
    gather = doc.find("Gather")
    assert gather.get("language") == "es-US" and gather.get("action") == f"{BASE}/topic?lang=es"
    doc = call.step("topic", "?lang=es",
                    SpeechResult="necesito ayuda con mis beneficios de comida", Confidence="0.9")
    assert "Polly.Lupe" in {el.get("voice") for el in doc.iter("Say")}
    assert "SNAP" in said(doc) and "oprima 2" in said(doc)
    assert doc.find("Gather").get("action") == f"{BASE}/answer?lang=es"
    doc = call.step("answer", "?lang=es", Digits="2")
    assert "Le enviamos esta respuesta por mensaje de texto" in said(doc)
    doc = call.step("answer", "?lang=es", Digits="9")
    assert "SNAP" in said(doc)
    run_jobs()

    [voice] = call.interactions()
    assert voice.meta["language"] == "es" and voice.text.startswith("necesito ayuda")
    assert [s["step"] for s in voice.meta["ivr"]] == [
        "incoming", "language", "topic", "answer", "answer"]
    texts = db.session.scalars(sa.select(Interaction).where(
        Interaction.channel == "sms", Interaction.direction == "outbound")
        .order_by(Interaction.id)).all()
    assert texts and all(t.ticket_id == voice.ticket_id for t in texts)
    assert {(t.kb_article_id, t.kb_article_version) for t in texts} == {
        (voice.kb_article_id, voice.kb_article_version)}
    assert "Más:" in texts[0].text
    assert count(Ticket) == 1
    ticket = db.session.get(Ticket, voice.ticket_id)
    assert ticket.language == "es" and ticket.self_served
    assert db.session.scalar(sa.select(Outbox)).to_address == JOSE


def test_a_caller_who_heard_the_answer_and_wants_a_person_waits_in_its_queue(
        client, open_queues):
    """The spoken question found the passports article: pressing 1 for a person puts the
    call in the passports queue, where agents know passports."""
    call = Call(client)
    call.post("/webhooks/twilio/voice", CallStatus="ringing")
    call.step("language", Digits="1")
    doc = call.step("topic", "?lang=en", SpeechResult="how do I renew my passport",
                    Confidence="0.9")
    assert "passport" in said(doc)
    doc = call.step("answer", "?lang=en", Digits="1")
    assert doc.find("Enqueue") is not None
    item = db.session.scalar(sa.select(WorkItem))
    assert db.session.get(Queue, item.queue_id).code == "passports"


def test_no_sms_to_an_opted_out_caller(client, open_queues, run_jobs):
    call = Call(client)
    call.post("/webhooks/twilio/voice")
    point = db.session.scalar(sa.select(ContactPoint).where(ContactPoint.value == JOSE))
    point.opted_out = True
    db.session.commit()
    call.step("language", Digits="1")
    call.step("topic", "?lang=en", SpeechResult="how do I renew my passport")
    doc = call.step("answer", "?lang=en", Digits="2")
    assert "cannot send text messages" in said(doc)
    run_jobs()
    assert count(Outbox) == 0


def test_silence_asks_again_then_goes_to_an_agent(client, open_queues):
    call = Call(client)
    call.post("/webhooks/twilio/voice")
    assert call.step("language").find("Gather").get("action") == f"{BASE}/topic?lang=en"
    assert call.step("topic", "?lang=en").find("Gather") is not None
    doc = call.step("topic", "?lang=en")
    assert doc.find("Enqueue").get("waitUrl") == f"{BASE}/wait?lang=en"


def test_queue_announces_position_and_wait(client, open_queues):
    first = queue_caller(client, "+15555550131")
    second = queue_caller(client, "+15555550132")
    items = db.session.scalars(sa.select(WorkItem).order_by(WorkItem.id)).all()
    assert [i.channel for i in items] == ["voice", "voice"]
    assert all(i.status == "waiting" for i in items)
    doc = first.step("wait", "?lang=en", QueuePosition="1", QueueTime="5")
    assert "You are next in line" in said(doc)
    assert "less than a minute" in said(doc) or "about one minute" in said(doc)
    assert doc.find("Gather").get("action") == f"{BASE}/callback?lang=en"
    assert "number 2 in line" in said(second.step("wait", "?lang=en"))


def test_estimated_wait_is_the_last_hours_wait_per_assignment(client, open_queues):
    from datetime import timedelta

    from app.models import utcnow

    queue = db.session.scalar(sa.select(Queue).order_by(Queue.id))
    assert telephony.estimated_wait(queue, 2) == 2 * queue.sla_target_seconds  # none yet
    assert telephony.wait_for_next(queue) == queue.sla_target_seconds  # nobody waits
    now = utcnow()
    caller = queue_caller(client, "+15555550133")
    ticket_id = db.session.scalar(sa.select(WorkItem.ticket_id))
    caller.step("wait", "?lang=en")
    for waited, minutes_ago in ((60, 5), (120, 30), (3000, 90)):  # the last is too old
        assigned = now - timedelta(minutes=minutes_ago)
        db.session.add(WorkItem(ticket_id=ticket_id, queue_id=queue.id, channel="voice",
                                status="completed", arrived_at=assigned - timedelta(
                                    seconds=waited), assigned_at=assigned))
    db.session.commit()
    assert telephony.estimated_wait(queue, 2) == pytest.approx(180, abs=0.01)
    assert telephony.estimated_wait(queue, 0) == pytest.approx(90, abs=0.01)
    # What a text's acknowledgement quotes, in one query: with nobody waiting the next
    # arrival is first in line; with one waiting, second.
    assert telephony.waiting_ahead(queue) == 0
    assert telephony.wait_for_next(queue) == pytest.approx(90, abs=0.01)
    db.session.add(WorkItem(ticket_id=ticket_id, queue_id=queue.id, channel="sms",
                            status="waiting", arrived_at=now))
    db.session.commit()
    assert telephony.waiting_ahead(queue) == 1
    assert telephony.wait_for_next(queue) == pytest.approx(180, abs=0.01)


def test_callback_keeps_the_place_and_is_not_abandonment(client, open_queues):
    call = queue_caller(client, "+15555550133")
    doc = call.step("callback", "?lang=en", Digits="1")
    assert "call you back" in said(doc) and doc.find("Hangup") is not None
    call.step("dequeued", "?lang=en", QueueResult="hangup", QueueTime="40")
    call.step("call-status", CallStatus="completed", CallDuration="62")
    item = db.session.scalar(sa.select(WorkItem))
    assert item.status == "waiting" and "callback" in item.commitments
    assert item.outcome == "callback"
    [voice] = call.interactions()
    assert voice.meta["callback_number"] == "+15555550133"
    assert voice.duration_seconds == 62 and voice.meta["call_status"] == "completed"


def test_hanging_up_in_queue_is_abandonment_with_the_wait(client, open_queues):
    call = queue_caller(client, "+15555550134")
    call.step("dequeued", "?lang=en", QueueResult="hangup", QueueTime="75")
    call.step("call-status", CallStatus="completed", CallDuration="90")
    item = db.session.scalar(sa.select(WorkItem))
    assert item.status == "abandoned" and item.outcome == "abandoned"
    assert round((item.ended_at - item.arrived_at).total_seconds()) == 75


def test_status_callback_alone_also_counts_abandonment(client, open_queues):
    call = queue_caller(client, "+15555550135")
    form = {"CallSid": call.sid, "CallStatus": "completed", "CallDuration": "30",
            "From": call.sender, "To": CITY}
    assert post_signed(client, "/webhooks/twilio/status", form).status_code == 200
    assert db.session.scalar(sa.select(WorkItem)).status == "abandoned"


def test_accepted_call_is_bridged_to_the_agents_softphone(client, app, open_queues,
                                                          twilio_http, make_user):
    call = queue_caller(client, "+15555550136")
    agent = make_user(email="bridge@example.org")
    ticket_id = call.interactions()[0].ticket_id
    result = telephony.connect_call_for_ticket(ticket_id, agent.id)
    assert result == {"action": "bridged", "call_sid": call.sid, "simulated": False}
    [request] = twilio_http.requests_to(f"/Calls/{call.sid}.json")
    assert request.method == "POST"
    assert request.data["Url"] == f"{BASE}/connect?agent={agent.id}&lang=en"
    doc = call.step("connect", f"?agent={agent.id}&lang=en")
    assert doc.find("Dial/Client").text == f"agent-{agent.id}"
    assert doc.find("Dial").get("callerId") == CITY


def test_agent_without_softphone_is_dialed_on_their_phone(client, open_queues, make_user):
    call = queue_caller(client, "+15555550137")
    agent = make_user(email="deskphone@example.org", phone="+15555550199")
    doc = call.step("connect", f"?agent={agent.id}&lang=en")
    assert doc.find("Dial/Number").text == "+15555550199"


def test_callback_is_placed_through_the_calls_api(client, open_queues, twilio_http, make_user):
    call = queue_caller(client, "+15555550138")
    call.step("callback", "?lang=en", Digits="*")
    agent = make_user(email="callback@example.org")
    result = telephony.connect_call_for_ticket(call.interactions()[0].ticket_id, agent.id)
    assert result["action"] == "callback" and result["call_sid"].startswith("CA")
    [request] = twilio_http.requests_to("/Calls.json")
    assert request.data["To"] == "+15555550138" and request.data["From"] == CITY
    assert request.data["Url"] == f"{BASE}/callback-answer?agent={agent.id}"
    assert request.data["StatusCallback"] == f"{BASE}/call-status"
    placed = db.session.scalar(sa.select(Interaction).where(
        Interaction.provider_id == result["call_sid"]))
    assert placed.direction == "outbound" and placed.meta["callback"]
    answered = Call(client, "+15555550138")
    answered.sid = result["call_sid"]
    doc = answered.step("callback-answer", f"?agent={agent.id}")
    assert doc.find("Dial/Client").text == f"agent-{agent.id}"
    answered.step("call-status", CallStatus="completed", CallDuration="300")
    db.session.expire_all()
    placed = db.session.get(Interaction, placed.id)
    assert placed.delivery_status == "completed" and placed.duration_seconds == 300


def test_a_call_that_ended_before_the_bridge_is_called_back(client, open_queues,
                                                             twilio_http, make_user):
    call = queue_caller(client, "+15555550139")
    agent = make_user(email="late@example.org")
    twilio_http.fail(400, 21220, "Call is not in-progress")
    result = telephony.connect_call_for_ticket(call.interactions()[0].ticket_id, agent.id)
    assert result["action"] == "callback"
    assert twilio_http.requests_to("/Calls.json")[0].data["To"] == "+15555550139"


def test_simulator_mode_bridges_through_the_wait_url(client, open_queues, make_user):
    call = queue_caller(client, "+15555550140")
    agent = make_user(email="sim@example.org")
    result = telephony.connect_call_for_ticket(call.interactions()[0].ticket_id, agent.id)
    assert result["simulated"] and result["action"] == "bridged"
    doc = call.step("wait", "?lang=en")
    assert doc.find("Redirect").text == f"{BASE}/connect?agent={agent.id}&lang=en"
    call.step("connect", f"?agent={agent.id}&lang=en")
    assert "bridge_pending" not in call.interactions()[0].meta


def test_after_hours_takes_a_voicemail_with_transcript(client, seeded):
    for queue in db.session.scalars(sa.select(Queue)):
        queue.business_hours = {"weekly": [{"days": [], "tz": "America/New_York"}]}
    db.session.commit()
    call = Call(client, "+15555550141")
    call.post("/webhooks/twilio/voice")
    call.step("language", Digits="1")
    doc = call.step("topic", "?lang=en", Digits="0")
    record = doc.find("Record")
    assert record.get("action") == f"{BASE}/voicemail?lang=en"
    assert record.get("transcribeCallback") == f"{BASE}/transcription?lang=en"
    doc = call.step("voicemail", "?lang=en", RecordingUrl="https://api.twilio.com/RE1",
                    RecordingSid="RE" + "1" * 32, RecordingDuration="14", Digits="#")
    assert "Your message was recorded" in said(doc) and doc.find("Hangup") is not None
    call.step("transcription", "?lang=en", RecordingUrl="https://api.twilio.com/RE1",
              RecordingSid="RE" + "1" * 32, TranscriptionText="My trash was not picked up",
              TranscriptionStatus="completed")
    [voice] = call.interactions()
    assert voice.recording_url == "https://api.twilio.com/RE1"
    assert voice.transcript == "My trash was not picked up"
    assert voice.meta["voicemail_reason"] == "after_hours"
    item = db.session.scalar(sa.select(WorkItem))
    assert item.channel == "voice" and "voicemail" in item.commitments


def test_overflow_goes_to_voicemail(client, open_queues):
    general = db.session.scalar(sa.select(Queue).where(Queue.code == "general"))
    general.max_wait_seconds = 1
    db.session.commit()
    call = Call(client)
    call.post("/webhooks/twilio/voice")
    call.step("language", Digits="1")
    assert call.step("topic", "?lang=en", Digits="0").find("Record") is not None
    assert call.interactions()[0].meta["voicemail_reason"] == "overflow"


def test_anonymous_caller_is_served_without_callback(client, open_queues):
    call = queue_caller(client, "anonymous")
    voice = call.interactions()[0]
    assert voice.contact_point_id is None and voice.meta["anonymous"]
    doc = call.step("callback", "?lang=en", Digits="1")
    assert doc.find("Redirect").text == f"{BASE}/wait?lang=en"
    assert "callback" not in db.session.scalar(sa.select(WorkItem)).commitments


def test_call_status_for_an_unknown_call_is_ignored(client):
    form = {"CallSid": "CA" + "e" * 32, "CallStatus": "completed", "CallDuration": "3"}
    response = post_signed(client, "/webhooks/twilio/voice/call-status", form)
    assert response.status_code == 200 and count(Interaction) == 0


@pytest.mark.parametrize("path, form", [
    ("/webhooks/twilio/voice", {"From": JOSE}),
    ("/webhooks/twilio/voice/topic?lang=en", {"CallSid": "CA1"}),
    ("/webhooks/twilio/voice/voicemail", {"CallSid": "CA1", "From": JOSE}),
    ("/webhooks/twilio/voice/connect", {"CallSid": "CA1", "From": JOSE}),
])
def test_malformed_voice_requests_get_400_twiml(client, path, form):
    response = post_signed(client, path, form)
    assert response.status_code == 400 and b"<Response" in response.data
    assert db.session.scalar(sa.select(FailedPayload)) is not None


def test_unsigned_voice_request_is_403(client):
    response = client.post("/webhooks/twilio/voice", data={"CallSid": "CA1", "From": JOSE})
    assert response.status_code == 403 and b"<Response" in response.data
    assert count(Interaction) == 0


def test_voice_token_needs_configuration(app, client, auth_headers):
    assert client.get("/api/v1/voice/token").status_code == 401
    headers = auth_headers("agent")
    response = client.get("/api/v1/voice/token", headers=headers)
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "voice_not_configured"
    app.config.update(TWILIO_API_KEY="SK" + "1" * 32, TWILIO_API_SECRET="s" * 40,
                      TWILIO_TWIML_APP_SID="AP" + "2" * 32)
    body = client.get("/api/v1/voice/token", headers=headers).get_json()
    claims = jwt.decode(body["token"], "s" * 40, algorithms=["HS256"])
    assert claims["grants"]["identity"] == body["identity"] and body["identity"].startswith(
        "agent-")
    assert claims["grants"]["voice"]["outgoing"]["application_sid"] == "AP" + "2" * 32


def test_after_the_agent_hangs_up_the_caller_rates_the_call(client, open_queues, make_user):
    from app.models import SurveyResponse

    call = queue_caller(client, "+15555550139")
    agent = make_user(email="rated@example.org")
    ticket_id = call.interactions()[0].ticket_id
    doc = call.step("connect", f"?agent={agent.id}&lang=en")
    action = doc.find("Dial").get("action")
    assert action == f"{BASE}/survey?ticket={ticket_id}&lang=en"
    # Twilio requests the Dial's action when the agent leg ends.
    doc = call.step("survey", f"?ticket={ticket_id}&lang=en", DialCallStatus="completed")
    gather = doc.find("Gather")
    assert gather.get("numDigits") == "1" and "Press 1 to 5" in said(doc)
    assert gather.get("action") == f"{BASE}/survey-score?ticket={ticket_id}&lang=en"
    doc = call.step("survey-score", f"?ticket={ticket_id}&lang=en", Digits="4")
    assert doc.find("Hangup") is not None and "Thank you" in said(doc)
    survey = db.session.scalar(sa.select(SurveyResponse))
    assert (survey.ticket_id, survey.channel, survey.score) == (ticket_id, "voice", 4)
    assert db.session.get(Ticket, ticket_id).satisfaction == 4
    # No agent answered: nobody is asked to rate a call that did not happen.
    doc = call.step("survey", f"?ticket={ticket_id}&lang=en", DialCallStatus="no-answer")
    assert doc.find("Gather") is None
    # A key that is not a score records nothing.
    call.step("survey-score", f"?ticket={ticket_id}&lang=en", Digits="9")
    assert count(SurveyResponse) == 1
