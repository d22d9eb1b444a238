"""Twilio SMS end to end: signed webhooks, consent keywords, self-service answers,
the outbound sender through the real SDK (faked at its HTTP boundary) and status
callbacks."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import (
    Citizen,
    ContactPoint,
    FailedPayload,
    Interaction,
    Outbox,
    Queue,
    Ticket,
    WorkItem,
)
from app.services import Invalid, outbound
from app.services.intake import intake
from app.services.telephony import answer_messages, sms_segments
from channels import twilio as tw
from channels.base import InboundMessage
from tests.fakes.twilio_http import RecordingHttpClient
from tests.twilio_signing import post_signed

MARIA = "+15555550123"
CITY = "+15555550100"
_counter = iter(range(1, 1_000_000))


def sms_form(body, sender=MARIA, sid=None, **extra):
    form = {"MessageSid": sid or f"SM{next(_counter):032d}", "AccountSid": "AC" + "0" * 32,
            "From": sender, "To": CITY, "Body": body, "NumMedia": "0"}
    form.update(extra)
    return form


def text(client, body, **kw):
    response = post_signed(client, "/webhooks/twilio/sms", sms_form(body, **kw))
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/xml"
    return response


def outbound_sms(ticket_id=None):
    stmt = sa.select(Interaction).where(Interaction.direction == "outbound",
                                        Interaction.channel == "sms").order_by(Interaction.id)
    if ticket_id is not None:
        stmt = stmt.where(Interaction.ticket_id == ticket_id)
    return db.session.scalars(stmt).all()


def count(model):
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def phone_point(number=MARIA):
    return db.session.scalar(sa.select(ContactPoint).where(ContactPoint.value == number))


@pytest.fixture
def open_queues(seeded):
    """Seeded queues keep office hours; tests must not depend on the clock."""
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


# --- Signatures and bad input -----------------------------------------------------------


def test_missing_or_wrong_signature_is_403_with_twiml_and_stores_nothing(client):
    form = sms_form("hello")
    missing = client.post("/webhooks/twilio/sms", data=form)
    url = "http://localhost/webhooks/twilio/sms"
    wrong = client.post("/webhooks/twilio/sms", data=form,
                        headers={"X-Twilio-Signature": tw.sign("other-token", url, form)})
    tampered_sig = tw.sign(client.application.config["TWILIO_AUTH_TOKEN"], url, form)
    tampered = client.post("/webhooks/twilio/sms", data={**form, "Body": "changed"},
                           headers={"X-Twilio-Signature": tampered_sig})
    for response in (missing, wrong, tampered):
        assert response.status_code == 403
        assert response.mimetype == "text/xml" and b"<Response" in response.data
    assert count(Interaction) == 0


def test_signature_checks_the_public_url_behind_a_proxy(app, client):
    app.config["PUBLIC_BASE_URL"] = "https://civicline.example.gov"
    form = sms_form("hello")
    good = post_signed(client, "/webhooks/twilio/sms", form, base="http://10.0.0.5:5000",
                       signed_url="https://civicline.example.gov/webhooks/twilio/sms")
    assert good.status_code == 200
    internal = post_signed(client, "/webhooks/twilio/sms", sms_form("hi"),
                           base="http://10.0.0.5:5000")
    assert internal.status_code == 403


@pytest.mark.parametrize("form, reason", [
    ({"From": MARIA, "Body": "no sid"}, "without MessageSid"),
    ({"MessageSid": "SM" + "1" * 32, "Body": "no sender"}, "without a From"),
    ({"MessageSid": "SM" + "2" * 32, "From": "not a number", "Body": "x"}, "phone"),
])
def test_unparseable_payloads_are_stored_and_get_400_twiml(client, form, reason):
    response = post_signed(client, "/webhooks/twilio/sms", form)
    assert response.status_code == 400
    assert response.mimetype == "text/xml" and b"<Response" in response.data
    stored = db.session.scalar(sa.select(FailedPayload))
    assert stored.source == "twilio_sms" and reason in stored.error
    assert b"Body=" in stored.body
    assert count(Interaction) == 0


def test_bodies_are_kept_exactly_long_emoji_and_non_latin(client, run_jobs):
    bodies = ["x" * 1600, "🙂 necesito ayuda 🏠", "我需要住房帮助", "أحتاج مساعدة", "Привет"]
    for index, body in enumerate(bodies):
        text(client, body, sender=f"+1555555{index:04d}")
    run_jobs()
    stored = db.session.scalars(sa.select(Interaction.text).where(
        Interaction.direction == "inbound").order_by(Interaction.id)).all()
    assert stored == bodies
    assert count(Citizen) == len(bodies)  # unknown numbers become new residents


def test_replayed_message_sid_is_one_interaction_and_one_answer(client, seeded, run_jobs):
    form = sms_form("how do I renew my passport")
    for _ in range(3):
        assert post_signed(client, "/webhooks/twilio/sms", form).status_code == 200
    run_jobs()
    assert count(Interaction) - len(outbound_sms()) == 1
    assert len({i.kb_article_id for i in outbound_sms()}) == 1
    assert count(Ticket) == 1


def test_mms_media_become_attachments(client):
    text(client, "photo of the pothole", NumMedia="2",
         MediaUrl0="https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM1/Media/ME1",
         MediaContentType0="image/jpeg",
         MediaUrl1="https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM1/Media/ME2",
         MediaContentType1="application/pdf")
    interaction = db.session.scalar(sa.select(Interaction))
    assert [a["content_type"] for a in interaction.attachments] == ["image/jpeg",
                                                                      "application/pdf"]
    assert interaction.attachments[0]["url"].endswith("/ME1")


# --- Self-service and AGENT ---------------------------------------------------------------


def test_helpful_reply_rates_the_answer_it_follows(client, seeded, run_jobs):
    from app.models import KBFeedback

    text(client, "how do I renew my passport")
    run_jobs()
    ticket = db.session.scalar(sa.select(Ticket))
    text(client, "Helpful!")
    run_jobs()
    db.session.expire_all()
    (vote,) = db.session.scalars(sa.select(KBFeedback)).all()
    assert (vote.article_id, vote.version, vote.channel, vote.helpful) == (1, 1, "sms", True)
    assert outbound_sms(ticket.id)[-1].text == "Thanks for your feedback."
    assert count(WorkItem) == 0  # a rating is not a request for a person
    text(client, "not helpful")
    run_jobs()
    db.session.expire_all()
    assert [v.helpful for v in db.session.scalars(
        sa.select(KBFeedback).order_by(KBFeedback.id))] == [True, False]



def test_confident_answer_is_texted_with_link_and_agent_line(client, seeded, run_jobs):
    text(client, "how do I renew my passport")
    run_jobs()
    ticket = db.session.scalar(sa.select(Ticket))
    replies = outbound_sms(ticket.id)
    assert replies and all(r.author_kind == "bot" for r in replies)
    assert {(r.kb_article_id, r.kb_article_version) for r in replies} == {(1, 1)}
    joined = "\n".join(r.text for r in replies)
    assert "http://localhost/kb/1" in joined and joined.endswith("Reply AGENT for a person.")
    assert all(sms_segments(r.text) <= 2 for r in replies)
    assert ticket.self_served and ticket.status == "pending_citizen"
    assert count(WorkItem) == 0
    rows = db.session.scalars(sa.select(Outbox)).all()
    assert all(r.simulated and r.status == "sent" and r.to_address == MARIA for r in rows)


def test_answers_go_back_to_the_number_that_texted(client, seeded, open_queues, run_jobs):
    """A resident with two phones (a newer one added later) who texts from the first gets
    the answer and the acknowledgement on that first phone."""
    text(client, "how do I renew my passport")
    run_jobs()
    citizen = db.session.scalar(sa.select(Citizen))
    db.session.add(ContactPoint(citizen_id=citizen.id, kind="phone", value="+15555550199",
                                verified=True))
    db.session.commit()
    answered = len(outbound_sms())
    text(client, "how do I renew my passport")
    text(client, "my neighbor's dog keeps barking at night, who do I call?")
    run_jobs()
    later = outbound_sms()[answered:]
    assert later, "nothing was texted back"
    rows = db.session.scalars(sa.select(Outbox).where(
        Outbox.interaction_id.in_([r.id for r in later]))).all()
    assert len(rows) == len(later) and {r.to_address for r in rows} == {MARIA}


def test_agent_keyword_queues_the_same_ticket_and_acknowledges(client, open_queues, run_jobs):
    text(client, "how do I renew my passport")
    run_jobs()
    text(client, "Agent")
    run_jobs()
    ticket = db.session.scalar(sa.select(Ticket))
    assert count(Ticket) == 1 and not ticket.self_served and ticket.status == "open"
    item = db.session.scalar(sa.select(WorkItem))
    assert item.ticket_id == ticket.id and item.status == "waiting"
    # The passports article answered: the person who follows knows passports.
    assert ticket.topic == "passports"
    assert db.session.get(Queue, item.queue_id).code == "passports"
    ack = outbound_sms(ticket.id)[-1]
    assert ack.author_kind == "system" and ticket.reference in ack.text
    assert "An agent will reply within about" in ack.text


def test_agent_again_while_waiting_keeps_the_place_and_acknowledges_again(
        client, open_queues, run_jobs):
    text(client, "AGENT")
    run_jobs()
    [item] = db.session.scalars(sa.select(WorkItem)).all()
    text(client, "AGENT")
    run_jobs()
    db.session.expire_all()
    assert db.session.scalars(sa.select(WorkItem)).all() == [item]
    assert item.status == "waiting"
    acks = [r for r in outbound_sms(item.ticket_id) if r.author_kind == "system"]
    assert len(acks) == 2 and all("An agent will reply within about" in a.text for a in acks)


def test_a_text_to_a_person_queues_a_follow_up_only_for_a_vote(
        client, open_queues, run_jobs, monkeypatch):
    """While the ticket waits for a person, the agent sees new texts live: no follow-up
    job is queued for them, except for a text a pre-hook may want (a HELPFUL vote). A
    digit is part of the conversation then, not a survey score."""
    from app import jobs

    text(client, "AGENT")
    run_jobs()
    queued = []
    enqueue = jobs.enqueue
    monkeypatch.setattr(jobs, "enqueue", lambda func, *a, **k: queued.append(
        (func, a)) or enqueue(func, *a, **k))
    text(client, "hello? anyone there")
    text(client, "5 thanks")
    assert queued == []
    text(client, "Helpful!")
    assert [func for func, _args in queued] == ["app.tasks.process_inbound"]
    run_jobs()
    assert count(WorkItem) == 1


def test_unanswered_question_is_acknowledged_once_and_routed(client, open_queues, run_jobs):
    text(client, "my neighbor's dog keeps barking at night, who do I call?")
    text(client, "hello?")
    run_jobs()
    ticket = db.session.scalar(sa.select(Ticket))
    acks = [r for r in outbound_sms(ticket.id) if r.author_kind == "system"]
    assert len(acks) == 1 and ticket.reference in acks[0].text
    assert db.session.scalar(sa.select(WorkItem)).ticket_id == ticket.id


def test_spanish_agent_keyword_gets_a_spanish_acknowledgement(client, open_queues, run_jobs):
    text(client, "AGENTE")
    run_jobs()
    ack = outbound_sms()[-1]
    assert "Su referencia es CL-" in ack.text


def test_after_hours_acknowledgement_says_when(client, seeded, run_jobs):
    for queue in db.session.scalars(sa.select(Queue)):
        queue.business_hours = {"weekly": [{"days": [], "tz": "America/New_York"}]}
    db.session.commit()
    text(client, "AGENT")
    run_jobs()
    assert "We are closed now" in outbound_sms()[-1].text


def test_answer_messages_stay_within_two_segments():
    link = "https://civicline.example/kb/1"
    short = answer_messages(f"Trash is picked up on Mondays. More: {link}", "en")
    assert len(short) == 1 and short[0].endswith("Reply AGENT for a person.")
    long = answer_messages("word " * 120 + link, "en")
    assert len(long) == 2 and long[0].endswith(link) and sms_segments(long[0]) <= 2
    assert long[1] == "Reply AGENT for a person."
    spanish = answer_messages("Información útil " * 20 + link, "es")
    assert all(sms_segments(m) <= 2 for m in spanish) and spanish[0].endswith(link)
    assert sms_segments("a" * 160) == 1 and sms_segments("a" * 161) == 2
    assert sms_segments("á" * 70) == 1 and sms_segments("á" * 71) == 2
    assert sms_segments("{" * 80) == 1 and sms_segments("{" * 81) == 2


# --- Consent ----------------------------------------------------------------------------


def test_stop_opts_out_and_nothing_is_sent_afterwards(client, seeded, run_jobs):
    text(client, "STOP")
    run_jobs()
    point = phone_point()
    assert point.opted_out and point.opted_out_at is not None
    assert "opted out" in point.consent_note and "STOP" in point.consent_note
    assert outbound_sms() == []
    ticket = db.session.scalar(sa.select(Ticket))
    with pytest.raises(Invalid) as refused:
        outbound.queue_message(ticket, "sms", "hello again")
    assert refused.value.code == "opted_out"
    text(client, "HELP")
    text(client, "how do I renew my passport")
    run_jobs()
    assert outbound_sms() == [] and count(Outbox) == 0


def test_a_text_queued_before_stop_is_never_sent_and_a_sent_one_never_twice(client, run_jobs):
    text(client, "hello")
    run_jobs()
    ticket = db.session.scalar(sa.select(Ticket))
    sent = outbound.queue_message(ticket, "sms", "Your permit is ready.")
    run_jobs()
    db.session.expire_all()
    row = db.session.scalar(sa.select(Outbox).where(Outbox.interaction_id == sent.id))
    assert (row.status, row.attempts) == ("sent", 1)
    outbound.deliver(row.id)  # a second delivery job for the same row changes nothing
    db.session.expire_all()
    assert (row.status, row.attempts) == ("sent", 1)
    assert db.session.get(Interaction, sent.id).delivery_status == "delivered"
    late = outbound.queue_message(ticket, "sms", "One more thing.")
    point = phone_point()
    point.opted_out = True  # STOP arrives before the delivery job runs
    db.session.commit()
    run_jobs()
    outbound.deliver(db.session.scalar(
        sa.select(Outbox.id).where(Outbox.interaction_id == late.id)))
    db.session.expire_all()
    refused = db.session.scalar(sa.select(Outbox).where(Outbox.interaction_id == late.id))
    assert refused.status == "failed" and refused.attempts == 0
    assert refused.provider_id is None and "opted out" in refused.last_error
    interaction = db.session.get(Interaction, late.id)
    assert interaction.delivery_status == "failed" and "opted_out" in interaction.delivery_error


def test_twilio_opt_out_type_counts_even_for_other_words(client):
    text(client, "Arrêtez svp", OptOutType="STOP")
    assert phone_point().opted_out
    assert "OptOutType STOP" in phone_point().consent_note


def test_start_opts_back_in_and_help_gets_the_help_text(client, run_jobs):
    text(client, "stop")
    text(client, "START")
    run_jobs()
    point = phone_point()
    assert not point.opted_out and point.opted_out_at is None
    assert "opted in" in point.consent_note
    text(client, "help")
    run_jobs()
    texts = [r.text for r in outbound_sms()]
    assert texts[0].startswith("You will get CivicLine texts again")
    assert ("reply AGENT for a person, HELPFUL or NOT HELPFUL to rate an answer, "
            "STOP to opt out") in texts[1]


# --- Sending through Twilio's REST API --------------------------------------------------


def test_replies_go_through_the_messages_api(client, seeded, twilio_http, run_jobs):
    text(client, "how do I renew my passport")
    run_jobs()
    requests = twilio_http.requests_to("/Messages.json")
    replies = outbound_sms()
    assert len(requests) == len(replies) >= 1
    first = requests[0]
    assert first.method == "POST" and first.auth_user == "AC" + "0" * 32
    assert first.data["To"] == MARIA and first.data["From"] == CITY
    assert first.data["Body"] == replies[0].text
    assert first.data["StatusCallback"] == "http://localhost/webhooks/twilio/status"
    row = db.session.scalar(sa.select(Outbox).order_by(Outbox.id))
    assert row.status == "sent" and not row.simulated and row.provider_id.startswith("SM")
    assert replies[0].provider_id == row.provider_id


def test_the_follow_up_job_sends_its_own_answer_and_a_failure_goes_to_a_delivery_job(
        client, seeded, twilio_http, run_jobs):
    """A self-service answer is sent by the follow-up job that wrote it (no job of its
    own, no wait in the outbound queue); when that attempt fails, the delivery job retries
    it, and it is sent once."""
    text(client, "how do I renew my passport")
    assert run_jobs() == 1  # the follow-up only
    replies = outbound_sms()
    assert replies and all(r.provider_id for r in replies)  # accepted by Twilio
    assert len(twilio_http.requests_to("/Messages.json")) == len(replies)
    twilio_http.server_error(times=1)
    text(client, "how do I renew my passport", sender="+15555550177")
    assert run_jobs() == 2  # the follow-up, then the delivery job after the failure
    later = outbound_sms()[len(replies):]
    rows = db.session.scalars(sa.select(Outbox).where(
        Outbox.interaction_id.in_([r.id for r in later]))).all()
    assert rows and all(r.status == "sent" for r in rows)
    assert sorted(r.attempts for r in rows) == [1] * (len(rows) - 1) + [2]


@pytest.mark.parametrize("script", ["server_error", "rate_limited", "network_error"])
def test_transient_errors_are_retried(client, app, twilio_http, run_jobs, script):
    getattr(twilio_http, script)(times=2)
    text(client, "AGENT")
    run_jobs()
    assert len(twilio_http.requests_to("/Messages.json")) == 3
    row = db.session.scalar(sa.select(Outbox))
    assert row.status == "sent" and row.attempts == 3


@pytest.mark.parametrize("code", [21211, 21610, 21614])
def test_permanent_errors_are_not_retried_and_fall_back(client, twilio_http, run_jobs, code):
    text(client, "AGENT")
    point = phone_point()
    db.session.add(ContactPoint(citizen_id=point.citizen_id, kind="email",
                                value="maria@example.org"))
    db.session.commit()
    twilio_http.fail(400, code, "refused")
    run_jobs()
    assert len(twilio_http.requests_to("/Messages.json")) == 1
    failed = outbound_sms()[0]
    assert failed.delivery_status == "failed" and str(code) in failed.delivery_error
    fallback = db.session.scalar(sa.select(Outbox).where(Outbox.channel == "email"))
    assert fallback is not None and fallback.to_address == "maria@example.org"
    assert phone_point().opted_out is (code == 21610)


def test_exhausted_retries_fail_and_fall_back(client, twilio_http, run_jobs):
    text(client, "AGENT")
    twilio_http.server_error(times=outbound.MAX_ATTEMPTS)
    run_jobs()
    assert len(twilio_http.requests_to("/Messages.json")) == outbound.MAX_ATTEMPTS
    row = db.session.scalar(sa.select(Outbox).where(Outbox.channel == "sms"))
    assert row.status == "failed" and "gave up" in row.last_error


def test_sender_refuses_an_opted_out_number_even_if_asked(app, client, twilio_http):
    text(client, "hello")
    point = phone_point()
    point.opted_out = True
    db.session.commit()
    from app.services.telephony import sms_sender_factory
    from channels.base import OutboundMessage, PermanentDeliveryError

    send = sms_sender_factory(app)
    with pytest.raises(PermanentDeliveryError) as refused:
        send(OutboundMessage(channel="sms", to=MARIA, text="hi", idempotency_key="k"))
    assert refused.value.opted_out and twilio_http.requests == []


def test_no_credentials_means_the_simulator_outbox(app):
    from app.services.telephony import sms_sender_factory

    assert sms_sender_factory(app) is None  # TWILIO_SIMULATOR in tests
    app.config["TWILIO_SIMULATOR"] = False
    assert sms_sender_factory(app) is not None
    app.config["TWILIO_ACCOUNT_SID"] = None
    assert sms_sender_factory(app) is None


# --- Status callbacks -------------------------------------------------------------------


def status(client, sid, value, **extra):
    form = {"MessageSid": sid, "MessageStatus": value, "AccountSid": "AC" + "0" * 32,
            "To": MARIA, "From": CITY, **extra}
    response = post_signed(client, "/webhooks/twilio/status", form)
    assert response.status_code == 200 and response.mimetype == "text/xml"


def test_status_callbacks_are_idempotent_and_order_independent(client, twilio_http, run_jobs):
    text(client, "AGENT")
    run_jobs()
    reply = outbound_sms()[0]
    for value in ("sent", "delivered", "sent", "queued", "delivered", "undelivered"):
        status(client, reply.provider_id, value)
    db.session.expire_all()
    assert db.session.get(Interaction, reply.id).delivery_status == "delivered"
    assert db.session.scalar(sa.select(Outbox)).status == "sent"  # no fallback after delivery


def test_undelivered_with_error_code_fails_over(client, twilio_http, run_jobs):
    text(client, "AGENT")
    point = phone_point()
    db.session.add(ContactPoint(citizen_id=point.citizen_id, kind="email",
                                value="maria@example.org"))
    db.session.commit()
    run_jobs()
    reply = outbound_sms()[0]
    status(client, reply.provider_id, "undelivered", ErrorCode="30006",
           ErrorMessage="Landline or unreachable carrier")
    status(client, reply.provider_id, "undelivered", ErrorCode="30006")
    db.session.expire_all()
    reply = db.session.get(Interaction, reply.id)
    assert reply.delivery_status == "undelivered" and reply.delivery_error.startswith("30006")
    assert db.session.scalar(sa.select(Outbox).where(Outbox.channel == "sms")).status == "failed"
    assert count(Outbox) == 2  # one fallback, not two
    assert db.session.scalar(sa.select(Outbox).where(Outbox.channel == "email")) is not None


def test_status_for_an_unknown_message_is_ignored(client):
    status(client, "SM" + "f" * 32, "delivered")
    assert count(Interaction) == 0


def test_malformed_status_callback_is_stored_and_400(client):
    response = post_signed(client, "/webhooks/twilio/status", {"MessageSid": "SM1"})
    assert response.status_code == 400
    assert db.session.scalar(sa.select(FailedPayload)).source == "twilio_status"


def test_a_nul_character_is_dropped_and_the_text_is_taken(client, seeded):
    text(client, "pot\x00hole on Main")
    row = db.session.scalar(sa.select(Interaction).where(Interaction.direction == "inbound"))
    assert row.text == "pothole on Main"


def test_a_text_the_database_refuses_is_kept_as_a_failed_payload(client, seeded, monkeypatch):
    from app.services import telephony

    def refused(msg, **_kw):
        raise sa.exc.DataError("INSERT ...", {}, ValueError("value too long for the column"))

    monkeypatch.setattr(telephony, "intake", refused)
    response = post_signed(client, "/webhooks/twilio/sms", sms_form("hello"))
    assert response.status_code == 400 and response.mimetype == "text/xml"
    kept = db.session.scalar(sa.select(FailedPayload))
    assert kept is not None and b"Body=hello" in kept.body and "DataError" in kept.error


def test_the_simulator_history_is_the_last_texts_both_ways_in_order(client, seeded, run_jobs):
    for i in range(60):
        sent = intake(InboundMessage(channel="sms", provider_id=f"SMh{i}", sender=MARIA,
                                     text=f"q{i}"), follow_up=False)
        outbound.queue_message(db.session.get(Ticket, sent.ticket_id), "sms", f"a{i}")
        db.session.commit()
        run_jobs()
    res = client.get("/simulator/phone/messages", query_string={
        "number": MARIA, "after": 0, "history": 1})
    items = res.get_json()["items"]
    expected = [x for i in range(10, 60) for x in (("out", f"q{i}"), ("in", f"a{i}"))]
    assert [(item["direction"], item["text"]) for item in items] == expected
    last = max(item["id"] for item in items)
    later = client.get("/simulator/phone/messages", query_string={"number": MARIA,
                                                                  "after": last})
    assert later.get_json()["items"] == []
