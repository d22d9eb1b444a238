"""Agent replies: channel choice with its reason, opt-outs, email threading, notes."""

from __future__ import annotations

import sqlalchemy as sa

from app.extensions import db
from app.models import AuditLog, ContactPoint, Interaction, MetricsHourly, Outbox, Ticket
from app.services.intake import intake
from channels.base import InboundMessage


def _sms(sid="SM1", sender="+15555550900", text="how do I renew my passport"):
    return intake(InboundMessage(channel="sms", provider_id=sid, sender=sender, text=text),
                  follow_up=False)


def test_reply_goes_out_on_the_residents_channel(client, auth_headers, run_jobs):
    t = _sms()
    headers = auth_headers()
    opts = client.get(f"/api/v1/tickets/{t.ticket_reference}/reply-options", headers=headers)
    assert opts.json["default"] == "sms" and "the channel the resident used" in opts.json["reason"]
    r = client.post(f"/api/v1/tickets/{t.ticket_reference}/reply", headers=headers,
                    json={"text": "Renew by mail with form DS-82."})
    assert r.status_code == 201 and r.json["channel"] == "sms"
    assert r.json["metadata"]["reach_reason"].startswith("sms")
    run_jobs()
    db.session.expire_all()
    row = db.session.scalar(sa.select(Outbox))
    assert row.status == "sent" and row.to_address == "+15555550900"
    detail = client.get(f"/api/v1/tickets/{t.ticket_reference}", headers=headers).json
    assert detail["status"] == "open" and detail["first_response_at"]
    assert [i["direction"] for i in detail["timeline"]] == ["inbound", "outbound"]


def test_a_reply_is_stored_as_it_was_answered_with_its_audit_and_count(client, auth_headers):
    """The reply's rows are one write: what the API answered is what a fresh read finds,
    and the audit entry, the outbound counter and the ticket's first response come with
    it."""
    t = _sms()
    r = client.post(f"/api/v1/tickets/{t.ticket_reference}/reply", headers=auth_headers(),
                    json={"text": "Renew by mail with form DS-82."})
    assert r.status_code == 201
    db.session.expire_all()
    stored = db.session.get(Interaction, r.json["id"])
    assert (stored.text, stored.direction, stored.channel, stored.delivery_status) == (
        "Renew by mail with form DS-82.", "outbound", "sms", "queued")
    assert stored.meta == r.json["metadata"] and stored.author_agent_id is not None
    assert stored.created_at.isoformat().startswith(r.json["created_at"][:19])
    row = db.session.scalar(sa.select(Outbox).where(Outbox.interaction_id == stored.id))
    assert (row.status, row.channel, row.to_address, row.attempts) == (
        "pending", "sms", "+15555550900", 0)
    assert row.payload["tried"] == ["sms"] and row.ticket_id == t.ticket_id
    ticket = db.session.get(Ticket, t.ticket_id)
    assert ticket.status == "open" and ticket.first_response_at == stored.created_at
    entry = db.session.scalar(sa.select(AuditLog).where(AuditLog.action == "ticket.reply"))
    assert entry.object_id == t.ticket_reference and entry.detail == {"channel": "sms"}
    outbound = db.session.scalar(sa.select(sa.func.sum(MetricsHourly.outbound))
                                 .where(MetricsHourly.channel == "sms"))
    assert outbound == 1
    # A second reply counts again and leaves the first response where it was.
    client.post(f"/api/v1/tickets/{t.ticket_reference}/reply", headers=auth_headers(),
                json={"text": "Or in person at any passport office."})
    db.session.expire_all()
    assert db.session.get(Ticket, t.ticket_id).first_response_at == stored.created_at
    assert db.session.scalar(sa.select(sa.func.sum(MetricsHourly.outbound))) == 2


def test_reply_goes_to_the_number_that_texted(client, auth_headers, run_jobs):
    """A resident with two phones (the newer one added later) who texts from the first is
    answered on the first, not on their newest number."""
    t = _sms(sender="+15555550900")
    db.session.add(ContactPoint(citizen_id=t.citizen_id, kind="phone", value="+15555550988"))
    db.session.commit()
    r = client.post(f"/api/v1/tickets/{t.ticket_reference}/reply", headers=auth_headers(),
                    json={"text": "Your permit is ready."})
    assert r.status_code == 201 and r.json["channel"] == "sms"
    run_jobs()
    db.session.expire_all()
    assert db.session.scalar(sa.select(Outbox.to_address)) == "+15555550900"


def test_opted_out_number_offers_email_instead_and_sends_nothing(client, auth_headers, run_jobs):
    t = _sms()
    point = db.session.scalar(sa.select(ContactPoint))
    point.opted_out = True
    db.session.add(ContactPoint(citizen_id=t.citizen_id, kind="email", value="m@example.org"))
    db.session.commit()
    headers = auth_headers()
    opts = client.get(f"/api/v1/tickets/{t.ticket_reference}/reply-options",
                      headers=headers).json
    sms = next(o for o in opts["options"] if o["channel"] == "sms")
    assert not sms["available"] and "opted out" in sms["note"]
    assert opts["default"] == "email"
    forced = client.post(f"/api/v1/tickets/{t.ticket_reference}/reply", headers=headers,
                         json={"text": "hi", "channel": "sms"})
    assert forced.status_code == 400 and forced.json["error"]["code"] == "opted_out"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Outbox)) == 0
    ok = client.post(f"/api/v1/tickets/{t.ticket_reference}/reply", headers=headers,
                     json={"text": "hi"})
    assert ok.status_code == 201 and ok.json["channel"] == "email"


def test_email_reply_threads_with_reference_and_headers(client, auth_headers, run_jobs):
    t = intake(InboundMessage(channel="email", provider_id="<q1@example.org>",
                              sender="r@example.org", subject="Missed trash pickup",
                              text="Nobody came", thread_keys={"references": ["<q0@x>"]}),
               follow_up=False)
    headers = auth_headers()
    r = client.post(f"/api/v1/tickets/{t.ticket_reference}/reply", headers=headers,
                    json={"text": "A truck is on its way."})
    assert r.status_code == 201
    row = db.session.scalar(sa.select(Outbox))
    assert row.payload["subject"] == f"[{t.ticket_reference}] Re: Missed trash pickup"
    assert row.payload["in_reply_to"] == "<q1@example.org>"
    assert row.payload["references"] == ["<q0@x>", "<q1@example.org>"]


def test_notes_are_internal_and_bad_replies_are_refused(client, auth_headers):
    t = _sms()
    headers = auth_headers()
    n = client.post(f"/api/v1/tickets/{t.ticket_reference}/notes", headers=headers,
                    json={"text": "Called the passport office"})
    assert n.status_code == 201 and n.json["direction"] == "internal"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Outbox)) == 0
    for body in ({"text": ""}, {}, {"text": "x", "channel": "fax"}):
        r = client.post(f"/api/v1/tickets/{t.ticket_reference}/reply", headers=headers, json=body)
        assert r.status_code == 400 and "error" in r.json
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Interaction)) == 2
