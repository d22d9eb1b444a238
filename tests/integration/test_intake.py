"""Intake: dedupe, citizen resolution, threading, failed payloads, follow-up jobs."""

from __future__ import annotations

import threading

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import (
    Citizen,
    ContactPoint,
    FailedPayload,
    Interaction,
    Ticket,
    WorkItem,
    utcnow,
)
from app.services.intake import intake, store_failed_payload
from channels.base import InboundMessage, ParseError


def sms(sid, sender="+1 (555) 555-0199", text="hello", **kw):
    return InboundMessage(channel="sms", provider_id=sid, sender=sender, text=text, **kw)


def count(model):
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def test_first_sms_creates_citizen_contact_point_and_ticket(app):
    result = intake(sms("SM1", text="how do I renew my passport"))
    ticket = db.session.get(Ticket, result.ticket_id)
    assert result.created_ticket and not result.duplicate
    assert ticket.reference.startswith("CL-") and ticket.reference.endswith(f"{ticket.id:06d}")
    assert ticket.status == "new" and ticket.channel == "sms"
    assert ticket.subject == "how do I renew my passport"
    point = db.session.scalar(sa.select(ContactPoint))
    assert (point.kind, point.value) == ("phone", "+15555550199")
    assert point.citizen.profile.preferred_channels[0] == "sms"


def test_replayed_webhook_is_a_no_op(app):
    first = intake(sms("SM1"))
    again = intake(sms("SM1", text="different text"))
    assert again.duplicate and again.interaction_id == first.interaction_id
    assert count(Interaction) == 1


def test_same_phone_threads_into_open_ticket_across_sms_and_voice(app):
    first = intake(sms("SM1", text="food benefits?"))
    call = InboundMessage(channel="voice", provider_id="CA1", sender="+15555550199",
                          text="necesito ayuda", thread_keys={"call_sid": "CA1"})
    second = intake(call)
    assert second.ticket_id == first.ticket_id and not second.created_ticket
    # Formatting differences in the number do not matter: E.164 is the key.
    third = intake(sms("SM2", sender="555-555-0199"))
    assert third.ticket_id == first.ticket_id
    assert count(Citizen) == 1


def test_resolved_ticket_reopens_but_closed_ticket_starts_a_new_one(app):
    first = intake(sms("SM1"))
    ticket = db.session.get(Ticket, first.ticket_id)
    ticket.status = "resolved"
    db.session.commit()
    # SMS threads only into *open* tickets: a resolved one gets a new ticket by phone.
    second = intake(sms("SM2"))
    assert second.ticket_id != first.ticket_id
    # An email reply with the reference in its subject reopens a resolved ticket.
    ticket2 = db.session.get(Ticket, second.ticket_id)
    ticket2.status = "resolved"
    db.session.commit()
    mail = InboundMessage(channel="email", provider_id="<a@x>", sender="r@example.org",
                          subject=f"Re: [{ticket2.reference}] help", text="still nothing")
    third = intake(mail)
    assert third.ticket_id == ticket2.id
    assert db.session.get(Ticket, ticket2.id).status == "open"
    ticket2.status = "closed"
    db.session.commit()
    mail2 = InboundMessage(channel="email", provider_id="<b@x>", sender="r@example.org",
                           subject=f"Re: [{ticket2.reference}] help", text="again")
    assert intake(mail2).ticket_id != ticket2.id


def test_email_threads_by_headers_then_reference_then_new(app):
    first = intake(InboundMessage(channel="email", provider_id="<m1@example.org>",
                                  sender="Resident@Example.org", subject="Missed trash pickup",
                                  text="Nobody came"))
    reply = intake(InboundMessage(channel="email", provider_id="<m2@example.org>",
                                  sender="resident@example.org", subject="Re: Missed",
                                  text="still nothing",
                                  thread_keys={"in_reply_to": "<m1@example.org>",
                                               "references": ["<m1@example.org>"]}))
    assert reply.ticket_id == first.ticket_id
    unrelated = intake(InboundMessage(channel="email", provider_id="<m3@example.org>",
                                      sender="resident@example.org", subject="New question",
                                      text="parking?"))
    assert unrelated.ticket_id != first.ticket_id
    point = db.session.scalar(sa.select(ContactPoint).where(ContactPoint.kind == "email"))
    assert point.value == "resident@example.org"


def test_email_reply_from_a_new_address_or_quoting_older_mail_still_threads(app):
    first = intake(InboundMessage(channel="email", provider_id="<n1@example.org>",
                                  sender="pat@example.org", subject="Permit", text="Hello"))
    # Pat's colleague answers from an address never seen before: same ticket, new citizen
    # record for the new address.
    colleague = intake(InboundMessage(
        channel="email", provider_id="<n2@example.net>", sender="lee@example.net",
        subject="Re: Permit", text="Adding Lee", thread_keys={"in_reply_to": "<n1@example.org>"}))
    assert colleague.ticket_id == first.ticket_id and not colleague.created_ticket
    assert colleague.citizen_id != first.citizen_id
    assert db.session.scalar(sa.select(ContactPoint.citizen_id).where(
        ContactPoint.value == "lee@example.net")) == colleague.citizen_id
    # A reply whose In-Reply-To is unknown threads by the newest known References entry.
    later = intake(InboundMessage(
        channel="email", provider_id="<n3@example.org>", sender="pat@example.org",
        subject="Re: Permit", text="Any news?",
        thread_keys={"in_reply_to": "<unknown@elsewhere>",
                     "references": ["<n1@example.org>", "<unknown@elsewhere>"]}))
    assert later.ticket_id == first.ticket_id
    # A new chat session from a new visitor is a new ticket.
    chat = intake(InboundMessage(channel="chat", provider_id="c-new", sender="visitor-9",
                                 text="hi", thread_keys={"chat_session": "S-new"}))
    assert chat.created_ticket and chat.ticket_id != first.ticket_id


def test_chat_and_walkin_thread_by_session_and_visit(app):
    a = intake(InboundMessage(channel="chat", provider_id="c1", sender="visitor-1",
                              text="hi", thread_keys={"chat_session": "S1"}))
    b = intake(InboundMessage(channel="chat", provider_id="c2", sender="visitor-1",
                              text="there", thread_keys={"chat_session": "S1"}))
    assert a.ticket_id == b.ticket_id
    w1 = intake(InboundMessage(channel="walkin", provider_id="v1", sender="anon:v1",
                               text="housing help", thread_keys={"walkin_visit": "v1"}))
    w2 = intake(InboundMessage(channel="walkin", provider_id="v1-served", sender="anon:v1",
                               text="served at desk 3", thread_keys={"walkin_visit": "v1"}))
    assert w1.ticket_id == w2.ticket_id and w1.ticket_id != a.ticket_id


def test_bad_sender_is_rejected_before_anything_is_written(app):
    from app.services import Invalid

    with pytest.raises(Invalid):
        intake(sms("SM9", sender="not a number"))
    assert count(Interaction) == 0 and count(Citizen) == 0
    with pytest.raises(ParseError):
        InboundMessage(channel="fax", provider_id="1", sender="x")


def test_unparseable_payload_is_stored_for_inspection(app):
    row_id = store_failed_payload("twilio_sms", b"\x00garbage", "text/plain", "no MessageSid")
    row = db.session.get(FailedPayload, row_id)
    assert row.body == b"\x00garbage" and "MessageSid" in row.error


def test_follow_up_job_puts_ticket_in_its_queue(seeded, run_jobs):
    result = intake(sms("SM1", text="benefits", topic="benefits"))
    assert count(WorkItem) == 0  # nothing happens before the job runs
    assert run_jobs() >= 1
    item = db.session.scalar(sa.select(WorkItem))
    assert item.ticket_id == result.ticket_id and item.status == "waiting"
    # Running the job again (a retry) makes no second work item.
    from app.services.followup import process_inbound

    process_inbound(result.interaction_id)
    assert count(WorkItem) == 1


def test_result_says_whether_a_person_has_the_conversation(seeded, run_jobs):
    first = intake(sms("SM1", text="benefits", topic="benefits"))
    assert not first.with_person  # a new ticket: nobody has it yet
    run_jobs()  # the follow-up puts it in its queue: it now waits for a person
    second = intake(sms("SM2", text="are you there?"))
    assert second.ticket_id == first.ticket_id and second.with_person
    item = db.session.scalar(sa.select(WorkItem))
    item.status = "completed"
    db.session.commit()
    third = intake(sms("SM3", text="one more thing"))
    assert third.ticket_id == first.ticket_id and not third.with_person


def test_unknown_topic_goes_to_general_queue(seeded, run_jobs):
    intake(sms("SM1", text="something else"))
    run_jobs()
    item = db.session.scalar(sa.select(WorkItem))
    assert item is not None
    from app.models import Queue

    assert db.session.get(Queue, item.queue_id).code == "general"


def test_concurrent_copies_of_one_webhook_make_one_interaction(app):
    """Threads on separate connections race the unique constraint (real on PostgreSQL)."""
    flask_app = app
    errors = []
    barrier = threading.Barrier(8)

    def worker():
        with flask_app.app_context():
            try:
                barrier.wait()
                intake(sms("SMrace", sender="+15555550111"), follow_up=False)
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    db.session.expire_all()
    assert not [e for e in errors if "locked" not in str(e)]
    assert count(Interaction) == 1
    assert count(Citizen) == 1


def test_failed_payloads_are_listed_for_administrators(client, auth_headers):
    store_failed_payload("email", b"not a message", "message/rfc822", "no headers")
    r = client.get("/api/v1/failed-payloads", headers=auth_headers("admin"))
    assert r.status_code == 200
    item = r.json["items"][0]
    assert item["source"] == "email" and item["preview"] == "not a message"
    assert client.get("/api/v1/failed-payloads",
                      headers=auth_headers("supervisor")).status_code == 403


def test_chat_after_its_ticket_closed_starts_one_new_ticket(app):
    first = intake(InboundMessage(channel="chat", provider_id="c1", sender="visitor-9",
                                  text="hi", thread_keys={"chat_session": "S9"}), follow_up=False)
    ticket = db.session.get(Ticket, first.ticket_id)
    ticket.status = "closed"
    db.session.commit()
    second = intake(InboundMessage(channel="chat", provider_id="c2", sender="visitor-9",
                                   text="back again", thread_keys={"chat_session": "S9"}),
                    follow_up=False)
    third = intake(InboundMessage(channel="chat", provider_id="c3", sender="visitor-9",
                                  text="and again", thread_keys={"chat_session": "S9"}),
                   follow_up=False)
    assert second.ticket_id != first.ticket_id
    assert third.ticket_id == second.ticket_id


def test_rows_written_by_intake_read_back_like_orm_rows(app):
    """Intake writes with Core statements (one statement on PostgreSQL): every default the
    models declare is there, and an absent JSON value is SQL NULL, not JSON null."""
    result = intake(InboundMessage(
        channel="email", provider_id="<first@example.org>", sender="Ana@Example.org",
        sender_name="Ana Diaz", subject="Trash pickup", text="When is pickup?",
        metadata={"to": "help@city.example"}))
    ticket = db.session.get(Ticket, result.ticket_id)
    citizen = db.session.get(Citizen, result.citizen_id)
    interaction = db.session.get(Interaction, result.interaction_id)
    assert (ticket.priority, ticket.self_served, ticket.status) == (3, False, "new")
    assert ticket.citizen_id == citizen.id and ticket.contact_point_id is not None
    assert ticket.created_at is not None and ticket.updated_at is not None
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Ticket).where(
        Ticket.referral.is_(None))) == 1
    assert (citizen.kind, citizen.display_name) == ("individual", "Ana Diaz")
    assert citizen.profile.preferred_channels == ["email", "sms", "voice"]
    assert citizen.profile.accessibility == [] and citizen.profile.channel_stats == {}
    assert interaction.attachments == [] and interaction.meta == {"to": "help@city.example"}
    assert (interaction.citizen_id, interaction.contact_point_id) == (
        citizen.id, ticket.contact_point_id)
    # Its Message-ID threads the next reply; the reply touches the ticket, adds no citizen.
    before = ticket.last_activity_at
    reply = intake(InboundMessage(
        channel="email", provider_id="<second@example.org>", sender="ana@example.org",
        subject="Re: Trash pickup", text="Thanks", thread_keys={
            "in_reply_to": "<first@example.org>"}))
    db.session.expire_all()
    assert reply.ticket_id == ticket.id and not reply.created_ticket
    assert db.session.get(Ticket, ticket.id).last_activity_at >= before
    assert count(Citizen) == 1


def test_hot_path_statements_read_and_fail_as_through_sqlalchemy(app):
    """``hotpath.Runner`` runs Core statements on the driver directly (PostgreSQL) or
    through SQLAlchemy (SQLite): the same rows either way, and the same exceptions."""
    from app.services.hotpath import Runner

    table = ContactPoint.__table__
    citizen = Citizen(display_name="Ada")
    db.session.add(citizen)
    db.session.flush()
    db.session.add_all([ContactPoint(citizen_id=citizen.id, kind="phone", value=v)
                        for v in ("+15555550101", "+15555550102", "+15555550103")])
    db.session.commit()
    query = (sa.select(table.c.value, table.c.kind).where(
        table.c.value.in_(["+15555550101", "+15555550103"]),
        table.c.citizen_id == sa.bindparam("who")).order_by(table.c.value))
    with db.engine.connect() as conn:
        run = Runner(conn)
        assert run.first(query, {"who": citizen.id}) == ("+15555550101", "phone")
        assert run.first(query, {"who": citizen.id}).value == "+15555550101"
        assert run.scalar(query, {"who": citizen.id + 1}) is None
        with pytest.raises(sa.exc.NoResultFound):
            run.one(query, {"who": citizen.id + 1})
        with pytest.raises(sa.exc.IntegrityError):
            run.execute(sa.insert(table).values(
                {name: sa.bindparam(name) for name in ("citizen_id", "kind", "value",
                                                        "verified", "opted_out", "created_at")}),
                {"citizen_id": citizen.id, "kind": "phone", "value": "+15555550102",
                 "verified": False, "opted_out": False, "created_at": utcnow()})
