"""Privacy: records-request export, erasure on request, retention, and their audit trail."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from app.extensions import db
from app.models import (
    AuditLog,
    ChannelProfile,
    Citizen,
    ContactPoint,
    Interaction,
    Outbox,
    Ticket,
    utcnow,
)
from app.services import outbound, privacy
from tests.twilio_signing import post_signed

MARIA = "+15555550123"
CITY = "+15555550100"


def text(client, body, sid, sender=MARIA):
    form = {"MessageSid": sid, "AccountSid": "AC" + "0" * 32, "From": sender, "To": CITY,
            "Body": body, "NumMedia": "0"}
    response = post_signed(client, "/webhooks/twilio/sms", form)
    assert response.status_code == 200, response.data


def email(client, body, sender="maria@example.org", message_id="<m1@example.org>"):
    raw = (f"From: Maria Lopez <{sender}>\r\nTo: help@civicline.example\r\n"
           f"Subject: Missed trash pickup\r\nMessage-ID: {message_id}\r\n"
           f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()
    response = client.post("/webhooks/email", data=raw, content_type="message/rfc822",
                           headers={"Authorization": "Bearer test-email-secret"})
    assert response.status_code in (200, 202), response.data


def maria():
    point = db.session.scalar(sa.select(ContactPoint).where(ContactPoint.value == MARIA))
    return db.session.get(Citizen, point.citizen_id)


def audit_actions(citizen_id):
    return db.session.scalars(sa.select(AuditLog.action).where(
        AuditLog.object_type == "citizen", AuditLog.object_id == str(citizen_id))
        .order_by(AuditLog.id)).all()


def test_export_holds_citizen_contacts_profile_tickets_and_messages(client, auth_headers):
    text(client, "My passport application number is 12345", "SM" + "1" * 32)
    citizen = maria()
    response = client.get(f"/api/v1/citizens/{citizen.id}/export",
                          headers=auth_headers("supervisor"))
    assert response.status_code == 200, response.json
    data = response.json
    assert data["citizen"]["id"] == citizen.id
    assert [p["value"] for p in data["contact_points"]] == [MARIA]
    assert data["profile"]["preferred_channels"][0] == "sms"
    (ticket,) = data["tickets"]
    assert ticket["reference"].startswith("CL-")
    assert any("12345" in i["text"] for i in ticket["interactions"])
    assert audit_actions(citizen.id)[-1] == "citizen.export"


def test_export_includes_identities_merged_into_the_citizen(client, auth_headers):
    text(client, "Hello from my phone", "SM" + "2" * 32)
    email(client, "Hello from my work email")
    phone_citizen = maria()
    email_citizen = db.session.scalar(sa.select(Citizen).join(ContactPoint).where(
        ContactPoint.value == "maria@example.org"))
    headers = auth_headers("agent")
    merged = client.post("/api/v1/citizens/merge", headers=headers, json={
        "source_id": email_citizen.id, "target_id": phone_citizen.id, "reason": "same person"})
    assert merged.status_code == 200, merged.json
    data = client.get(f"/api/v1/citizens/{phone_citizen.id}/export",
                      headers=auth_headers("supervisor")).json
    assert {p["value"] for p in data["contact_points"]} == {MARIA, "maria@example.org"}
    assert len(data["tickets"]) == 2


def test_export_and_erase_need_the_right_roles(client, auth_headers):
    text(client, "hi", "SM" + "3" * 32)
    citizen = maria()
    assert client.get(f"/api/v1/citizens/{citizen.id}/export",
                      headers=auth_headers("agent")).status_code == 403
    assert client.post(f"/api/v1/citizens/{citizen.id}/erase", json={"reason": "request"},
                       headers=auth_headers("supervisor")).status_code == 403
    assert client.post(f"/api/v1/citizens/{citizen.id}/erase", json={},
                       headers=auth_headers("admin")).status_code == 400
    assert client.get("/api/v1/citizens/999999/export",
                      headers=auth_headers("supervisor")).status_code == 404


def test_erasure_removes_personal_data_keeps_statistics_and_is_audited(
        client, auth_headers, run_jobs):
    text(client, "I live at 12 Elm Street, my SSN is 078-05-1120", "SM" + "4" * 32)
    citizen = maria()
    ticket = db.session.scalar(sa.select(Ticket).where(Ticket.citizen_id == citizen.id))
    # A reply still waiting in the outbox must not go out after the erasure.
    pending = outbound.queue_message(ticket, "sms", "We are on it", author_kind="agent")
    admin_headers = auth_headers("admin")
    response = client.post(f"/api/v1/citizens/{citizen.id}/erase", headers=admin_headers,
                           json={"reason": "resident's erasure request of 2026-03-01"})
    assert response.status_code == 200, response.json
    assert response.json["erased"]["contact_points"] == 1
    run_jobs()
    db.session.expire_all()

    erased = db.session.get(Citizen, citizen.id)
    assert erased.display_name == f"Erased citizen #{citizen.id}"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(ContactPoint).where(
        ContactPoint.citizen_id == citizen.id)) == 0
    assert db.session.scalar(sa.select(ChannelProfile).where(
        ChannelProfile.citizen_id == citizen.id)) is None
    texts = db.session.scalars(sa.select(Interaction.text).where(
        Interaction.ticket_id == ticket.id)).all()
    assert texts and set(texts) == {privacy.ERASED_TEXT}
    kept = db.session.get(Ticket, ticket.id)
    assert kept.channel == "sms" and kept.subject == privacy.ANONYMIZED_SUBJECT
    row = db.session.scalar(sa.select(Outbox).where(Outbox.interaction_id == pending.id))
    assert row.status == "cancelled" and row.to_address == privacy.ERASED_TEXT

    entry = db.session.scalar(sa.select(AuditLog).where(AuditLog.action == "citizen.erase"))
    assert entry.object_id == str(citizen.id) and entry.actor_id is not None
    assert "Elm" not in str(entry.detail) and entry.detail["tickets"] == 1

    # A replayed webhook of an erased message stays a no-op: nothing comes back.
    text(client, "I live at 12 Elm Street, my SSN is 078-05-1120", "SM" + "4" * 32)
    assert "Elm" not in " ".join(db.session.scalars(sa.select(Interaction.text)).all())


def test_reads_and_changes_of_citizen_records_are_audited(client, auth_headers):
    text(client, "hello", "SM" + "5" * 32)
    citizen = maria()
    headers = auth_headers("agent")
    assert client.get(f"/api/v1/citizens/{citizen.id}", headers=headers).status_code == 200
    changed = client.patch(f"/api/v1/citizens/{citizen.id}/profile", headers=headers,
                           json={"preferred_channels": ["email", "sms"]})
    assert changed.status_code == 200, changed.json
    client.get(f"/api/v1/citizens/{citizen.id}/export", headers=auth_headers("supervisor"))
    assert audit_actions(citizen.id) == ["citizen.read", "citizen.profile_update",
                                         "citizen.export"]


def test_retention_anonymizes_closed_tickets_past_the_period(app, client):
    app.config["RETENTION_DAYS"] = 30
    text(client, "old question about my benefits", "SM" + "6" * 32)
    text(client, "new question from someone else", "SM" + "7" * 32, sender="+15555550999")
    old_citizen = maria()
    old = db.session.scalar(sa.select(Ticket).where(Ticket.citizen_id == old_citizen.id))
    long_ago = utcnow() - timedelta(days=45)
    old.status, old.closed_at, old.last_activity_at = "closed", long_ago, long_ago
    recent = db.session.scalar(sa.select(Ticket).where(Ticket.id != old.id))
    recent.status, recent.closed_at = "closed", utcnow() - timedelta(days=2)
    db.session.commit()

    summary = privacy.apply_retention()
    assert summary["tickets"] == 1 and summary["citizens"] == 1
    db.session.expire_all()
    assert db.session.get(Ticket, old.id).subject == privacy.ANONYMIZED_SUBJECT
    assert "benefits" not in " ".join(db.session.scalars(sa.select(Interaction.text)).all())
    assert db.session.get(Ticket, recent.id).subject != privacy.ANONYMIZED_SUBJECT
    assert db.session.get(Citizen, old_citizen.id).display_name.startswith("Erased citizen")
    assert privacy.apply_retention() == {"tickets": 0, "interactions": 0, "citizens": 0,
                                         "contact_points": 0}
    assert db.session.scalar(sa.select(AuditLog.action).where(
        AuditLog.action == "retention.anonymize")) == "retention.anonymize"


def test_retention_is_a_scheduled_job():
    from app.jobs import SCHEDULES

    assert any(s.func == "app.tasks.apply_retention" for s in SCHEDULES)
