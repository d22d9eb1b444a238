"""Satisfaction surveys go out on the resident's channel after resolution and come back
into the satisfaction index: SMS and chat replies, the email link page, the IVR."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import (
    ChannelProfile,
    Interaction,
    MetricsHourly,
    SurveyResponse,
    Ticket,
    WorkItem,
)
from app.services import Invalid, surveys
from app.services.intake import intake
from channels.base import InboundMessage


def _surveys_sent(ticket_id: int) -> list[Interaction]:
    rows = db.session.scalars(sa.select(Interaction).where(
        Interaction.ticket_id == ticket_id, Interaction.direction == "outbound"))
    return [i for i in rows if (i.meta or {}).get("survey")]


def _resolve(client, headers, ticket_id: int) -> None:
    res = client.patch(f"/api/v1/tickets/{ticket_id}", json={"status": "resolved"},
                       headers=headers)
    assert res.status_code == 200, res.get_json()


def _points() -> int:
    return int(db.session.scalar(sa.select(sa.func.coalesce(
        sa.func.sum(MetricsHourly.survey_points), 0))))


def test_email_survey_link_records_a_score(app, client, auth_headers, run_jobs):
    result = intake(InboundMessage(channel="email", provider_id="<a1@example.org>",
                                   sender="pat@example.org", subject="Missed trash pickup",
                                   text="Nobody came on Tuesday."), follow_up=False)
    agent = auth_headers("agent")
    _resolve(client, agent, result.ticket_id)
    run_jobs()
    sent = _surveys_sent(result.ticket_id)
    assert len(sent) == 1 and sent[0].channel == "email"
    assert sent[0].subject.endswith("How did we do?")
    url = re.search(r"http://localhost(/survey/\S+)", sent[0].text).group(1)
    page = client.get(url + "?score=4")
    assert page.status_code == 200 and b'value="4" checked' in page.data
    # Send back whatever hidden fields the form carries (e.g. a CSRF token).
    hidden = dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', page.text))
    assert client.post(url, data={**hidden, "score": "9"}).status_code == 400
    thanks = client.post(url, data={**hidden, "score": "4", "comment": "Quick, thanks"})
    assert thanks.status_code == 200 and b"Thank you" in thanks.data
    response = db.session.scalar(sa.select(SurveyResponse))
    assert (response.channel, response.score, response.comment) == ("email", 4, "Quick, thanks")
    assert db.session.get(Ticket, result.ticket_id).satisfaction == 4
    profile = db.session.scalar(sa.select(ChannelProfile).where(
        ChannelProfile.citizen_id == result.citizen_id))
    assert profile.channel_stats["email"] == {"csat_sum": 4, "csat_n": 1}
    assert _points() == 75
    assert client.get("/survey/not-a-token").status_code == 404


def test_chat_survey_buttons_answer_is_captured_without_reopening(app, client, auth_headers,
                                                                  run_jobs):
    def chat(n: int, text: str):
        return intake(InboundMessage(channel="chat", provider_id=f"S1:{n}", sender="visitor-1",
                                     text=text, thread_keys={"chat_session": "S1"}),
                      follow_up=n > 1)

    first = chat(1, "Is the library open on Sunday?")
    _resolve(client, auth_headers("agent"), first.ticket_id)
    run_jobs()
    sent = _surveys_sent(first.ticket_id)
    assert len(sent) == 1 and sent[0].channel == "chat"
    assert sent[0].meta["survey"]["scale"] == [1, 2, 3, 4, 5]
    second = chat(2, "4")
    assert second.ticket_id == first.ticket_id
    run_jobs()
    db.session.expire_all()
    ticket = db.session.get(Ticket, first.ticket_id)
    assert ticket.status == "resolved" and ticket.satisfaction == 4
    assert db.session.scalar(sa.select(sa.func.count()).select_from(WorkItem)) == 0
    reply = db.session.get(Interaction, second.interaction_id)
    assert reply.meta["survey_reply"] is True
    # Resolved once: the re-open and re-resolve around the score are not counted again.
    assert int(db.session.scalar(sa.select(sa.func.sum(MetricsHourly.resolved)))) == 1
    assert _surveys_sent(first.ticket_id) == sent  # asked once only


def test_sms_digit_without_a_pending_survey_is_an_ordinary_message(app, run_jobs):
    result = intake(InboundMessage(channel="sms", provider_id="SMd1", sender="+15555550111",
                                   text="3"))
    run_jobs()
    assert db.session.scalar(sa.select(SurveyResponse)) is None
    assert db.session.get(Ticket, result.ticket_id).disposition != "survey_reply"


def test_ivr_records_a_score_and_voice_gets_no_text_survey(app):
    result = intake(InboundMessage(channel="voice", provider_id="CA1", sender="+15555550112",
                                   text="(call)"), follow_up=False)
    ticket = db.session.get(Ticket, result.ticket_id)
    ticket.status = "resolved"
    db.session.commit()
    assert surveys.send_survey(ticket.id) is None
    surveys.record_survey(ticket.id, "voice", 3)
    assert db.session.get(Ticket, ticket.id).satisfaction == 3
    assert _points() == 50
    with pytest.raises(Invalid):
        surveys.record_survey(ticket.id, "voice", 6)
    with pytest.raises(Invalid):
        surveys.record_survey(ticket.id, "fax", 3)


def test_opted_out_resident_gets_no_sms_survey(app, client, auth_headers, run_jobs):
    from app.models import ContactPoint

    result = intake(InboundMessage(channel="sms", provider_id="SMo1", sender="+15555550113",
                                   text="pothole on Main St"), follow_up=False)
    point = db.session.scalar(sa.select(ContactPoint).where(
        ContactPoint.value == "+15555550113"))
    point.opted_out = True
    db.session.commit()
    _resolve(client, auth_headers("agent"), result.ticket_id)
    run_jobs()
    assert _surveys_sent(result.ticket_id) == []


def test_sms_digit_to_a_case_waiting_for_a_person_is_part_of_that_conversation(
        app, client, auth_headers, run_jobs, seeded):
    """A survey went out, then the resident wrote again about something still wrong and
    that new case went to a queue: a "4" now answers whatever the agent will ask, not the
    survey. The new case stays open with its work item, and no score is recorded."""

    def text(n: int, body: str):
        return intake(InboundMessage(channel="sms", provider_id=f"SMr{n}",
                                     sender="+15555550114", text=body))

    first = text(1, "a tree fell on Elm St")
    run_jobs()
    _resolve(client, auth_headers("agent"), first.ticket_id)
    run_jobs()
    assert len(_surveys_sent(first.ticket_id)) == 1
    again = text(2, "the tree is still there, it blocks the road")
    run_jobs()
    item = db.session.scalar(sa.select(WorkItem).where(
        WorkItem.ticket_id == again.ticket_id, WorkItem.status == "waiting"))
    assert item is not None
    digit = text(3, "4")
    assert digit.ticket_id == again.ticket_id and digit.with_person
    run_jobs()
    db.session.expire_all()
    case = db.session.get(Ticket, again.ticket_id)
    assert case.status not in ("resolved", "closed") and case.disposition != "survey_reply"
    assert db.session.get(WorkItem, item.id).status == "waiting"
    reply = db.session.get(Interaction, digit.interaction_id)
    assert reply.ticket_id == again.ticket_id and not (reply.meta or {}).get("survey_reply")
    assert db.session.get(Ticket, first.ticket_id).satisfaction is None
    assert db.session.scalar(sa.select(SurveyResponse)) is None


def test_sms_digit_in_another_open_case_stays_in_that_case(app, client, auth_headers,
                                                           run_jobs, seeded):
    """After the survey, the resident opened a new case that nobody has picked up yet: a
    "4" in it is part of that case. Only a digit that opens a case of its own (the
    survey's reply arriving after its case closed) is folded into the surveyed one."""

    def text(n: int, body: str, follow_up: bool = True):
        return intake(InboundMessage(channel="sms", provider_id=f"SMo{n}",
                                     sender="+15555550115", text=body), follow_up=follow_up)

    first = text(1, "the streetlight on Oak Ave is out")
    run_jobs()
    _resolve(client, auth_headers("agent"), first.ticket_id)
    run_jobs()
    assert len(_surveys_sent(first.ticket_id)) == 1
    other = text(2, "how many bags of leaves can I put out?", follow_up=False)
    digit = text(3, "4")
    assert digit.ticket_id == other.ticket_id and not digit.created_ticket
    run_jobs()
    db.session.expire_all()
    case = db.session.get(Ticket, other.ticket_id)
    assert case.status not in ("resolved", "closed") and case.disposition != "survey_reply"
    reply = db.session.get(Interaction, digit.interaction_id)
    assert reply.ticket_id == other.ticket_id and not (reply.meta or {}).get("survey_reply")
    assert db.session.get(Ticket, first.ticket_id).satisfaction is None
