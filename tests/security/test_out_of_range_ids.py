"""Numbers that no database integer holds, wherever a request names an id: in a path, a
ticket reference, an email subject or a link. They find nothing (404) or are ignored;
they never reach the database as an overflow (a 500 on SQLite, a refused statement on
PostgreSQL) and never cost a resident's message."""

from __future__ import annotations

import base64

import sqlalchemy as sa

from app.extensions import db
from app.models import Interaction, Ticket
from app.services.intake import intake
from channels.base import InboundMessage

HUGE = "99999999999999999999"


def test_ticket_paths_with_huge_or_odd_numbers_are_404(client, auth_headers):
    headers = auth_headers("supervisor")
    for ref in (HUGE, str(2**31), f"CL-2026-{HUGE}", "²", "CL-2026-٠٠٠٠٠١"):
        res = client.get(f"/api/v1/tickets/{ref}", headers=headers)
        assert res.status_code == 404, (ref, res.status_code)
        assert res.get_json()["error"]["code"] == "not_found"
        res = client.post(f"/api/v1/tickets/{ref}/complete", headers=headers,
                          json={"disposition": "answered"})
        assert res.status_code == 404, (ref, res.status_code)


def test_a_cursor_naming_a_huge_id_is_refused(client, auth_headers):
    cursor = base64.urlsafe_b64encode(HUGE.encode()).decode().rstrip("=")
    res = client.get(f"/api/v1/tickets?cursor={cursor}", headers=auth_headers("agent"))
    assert res.status_code == 400
    assert res.get_json()["error"]["code"] == "invalid_cursor"


def test_an_email_naming_a_reference_no_ticket_can_have_opens_its_own(app, client):
    first = intake(InboundMessage(channel="email", provider_id="<a@example.org>",
                                  sender="ana@example.org", subject="Water bill",
                                  text="My bill doubled."), follow_up=False)
    result = intake(InboundMessage(channel="email", provider_id="<b@example.org>",
                                   sender="ana@example.org",
                                   subject=f"Re: [CL-2026-{HUGE}] Water bill",
                                   text="Any news?"), follow_up=False)
    assert not result.duplicate and result.ticket_id != first.ticket_id
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Ticket)) == 2
    assert db.session.get(Interaction, result.interaction_id).text == "Any news?"


def test_a_helpful_link_naming_a_huge_message_still_records_the_vote(app, client, seeded):
    from app.models import KBFeedback

    res = client.get(f"/kb/1/helpful?v=1&answer=yes&channel=email&i={HUGE}")
    assert res.status_code == 200
    row = db.session.scalar(sa.select(KBFeedback))
    assert row is not None and row.helpful and row.interaction_id is None


def test_simulator_polls_past_any_id_find_nothing(client):
    for path in ("/simulator/phone/messages?number=%2B15555550123",
                 "/simulator/email/messages?address=pat%40example.org"):
        res = client.get(f"{path}&after={HUGE}")
        assert res.status_code == 200 and res.get_json()["items"] == []
