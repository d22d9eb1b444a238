"""Outbound email against a real SMTP server (aiosmtpd on 127.0.0.1): threading headers,
the ticket reference, both parts, retries on 4xx, fallback on 5xx and on a bounce
(scenario 4), and the knowledge-base answer or acknowledgement of a new email."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller

from app.extensions import db
from app.models import ContactPoint, Interaction, Outbox, Queue, Ticket, WorkItem
from app.services import email_service, knowledge

pytestmark = pytest.mark.timeout(60)

CORPUS = Path(__file__).resolve().parents[1] / "data" / "email"
HEADERS = {"Content-Type": "message/rfc822", "Authorization": "Bearer test-email-secret"}


@dataclass
class CapturingHandler:
    """Keeps every message it accepts; ``replies`` are answered to DATA first, in order."""

    replies: list[str] = field(default_factory=list)
    rcpt_reply: str | None = None
    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.replies:
            return self.replies.pop(0)
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 Message accepted"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp(app) -> Iterator[CapturingHandler]:
    """A real SMTP server; the app's ``SMTP_URL`` points at it."""
    handler = CapturingHandler()
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    app.config["SMTP_URL"] = f"smtp://127.0.0.1:{port}"
    app.config["EMAIL_FROM"] = "City Help <help@city.gov>"
    app.config["EMAIL_DOMAIN"] = "city.gov"
    try:
        yield handler
    finally:
        controller.stop()


@pytest.fixture(autouse=True)
def attachments_dir(app, tmp_path):
    app.config["ATTACHMENTS_DIR"] = str(tmp_path / "attachments")


def post(client, raw: bytes):
    return client.post("/webhooks/email", data=raw, headers=HEADERS)


def resident_email(
    message_id: str = "<first-1@mail.example.net>", *, subject: str, body: str, extra: str = ""
) -> bytes:
    return (
        "From: Dana Brooks <dana.brooks@example.net>\r\n"
        "To: City Help <help@city.gov>\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: {message_id}\r\n"
        f"{extra}"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        f"{body}\r\n"
    ).encode()


def open_ticket(client, smtp=None, run_jobs=None, **kw) -> Ticket:
    """A resident's first email; with ``run_jobs`` its acknowledgement is sent and set
    aside, so a test sees only what it sends itself."""
    kw.setdefault("subject", "Missed trash pickup")
    kw.setdefault("body", "My trash was not picked up on Monday on Oak Street.")
    body = post(client, resident_email(**kw)).get_json()
    if run_jobs is not None:
        run_jobs()
        assert "acknowledgement" in (outbox_rows(everything=True)[-1].payload or {})
        smtp.messages.clear()
    return db.session.get(Ticket, body["ticket_id"])


def add_phone(ticket: Ticket, number: str = "+15555550142") -> None:
    db.session.add(ContactPoint(citizen_id=ticket.citizen_id, kind="phone", value=number))
    db.session.commit()


def outbox_rows(everything: bool = False) -> list[Outbox]:
    db.session.expire_all()
    rows = db.session.scalars(sa.select(Outbox).order_by(Outbox.id)).all()
    return rows if everything else [r for r in rows if "acknowledgement" not in r.payload]


def test_reply_carries_reference_threading_headers_and_both_parts(client, smtp, run_jobs):
    ticket = open_ticket(client, smtp, run_jobs, extra="References: <older-0@mail.example.net>\r\n")
    email_service.reply_by_email(
        ticket, "Hello Dana,\n\nA crew is scheduled <today> & will come by noon.\n\nCity Help Desk"
    )
    run_jobs()
    assert len(smtp.messages) == 1
    sent = smtp.messages[0]
    assert sent["Subject"] == f"[{ticket.reference}] Missed trash pickup"
    assert sent["In-Reply-To"] == "<first-1@mail.example.net>"
    assert sent["References"].split() == [
        "<older-0@mail.example.net>",
        "<first-1@mail.example.net>",
    ]
    assert sent["To"] == "dana.brooks@example.net"
    assert sent["Message-ID"].endswith("@city.gov>")
    plain = sent.get_body(("plain",)).get_content()
    html = sent.get_body(("html",)).get_content()
    assert "A crew is scheduled <today> & will" in plain
    assert "A crew is scheduled &lt;today&gt; &amp; will" in html and "<p>" in html
    row = outbox_rows()[0]
    assert row.status == "sent" and row.provider_id == sent["Message-ID"]
    assert db.session.get(Interaction, row.interaction_id).provider_id == sent["Message-ID"]


def test_agent_reply_through_the_api_is_completed_and_the_answer_threads(
    client, smtp, run_jobs, auth_headers
):
    ticket = open_ticket(client, smtp, run_jobs)
    resp = client.post(
        f"/api/v1/tickets/{ticket.reference}/reply",
        json={"text": "We are on it.", "channel": "email"},
        headers=auth_headers("agent"),
    )
    assert resp.status_code == 201, resp.get_json()
    run_jobs()
    sent = smtp.messages[-1]
    assert ticket.reference in sent["Subject"]
    assert sent["In-Reply-To"] == "<first-1@mail.example.net>"
    assert sent.get_body(("html",)) is not None

    answer = resident_email(
        "<second-2@mail.example.net>",
        subject=f"Re: {sent['Subject']}",
        body="still nothing\r\n\r\nOn Tue, City Help <help@city.gov> wrote:\r\n> We are on it.",
        extra=f"In-Reply-To: {sent['Message-ID']}\r\nReferences: {sent['Message-ID']}\r\n",
    )
    body = post(client, answer).get_json()
    assert body["ticket_id"] == ticket.id and not body["created_ticket"]
    row = db.session.get(Interaction, body["interaction_id"])
    assert row.text == "still nothing" and "> We are on it." in row.full_text


def test_smtp_451_is_retried_then_delivered(client, smtp, run_jobs):
    ticket = open_ticket(client, smtp, run_jobs)
    smtp.replies = ["451 4.3.0 Try again later"]
    email_service.reply_by_email(ticket, "Your pickup is rescheduled.")
    run_jobs()
    [row] = outbox_rows()
    assert row.status == "sent" and row.attempts == 2
    assert len(smtp.messages) == 1


def test_smtp_550_is_not_retried_and_falls_back_to_sms(client, smtp, run_jobs):
    ticket = open_ticket(client, smtp, run_jobs)
    add_phone(ticket)
    smtp.rcpt_reply = "550 5.1.1 No such user"
    email_service.reply_by_email(ticket, "Your pickup is rescheduled.")
    run_jobs()
    rows = outbox_rows()
    assert rows[0].channel == "email" and rows[0].status == "failed" and rows[0].attempts == 1
    assert "550" in rows[0].last_error
    assert rows[1].channel == "sms" and rows[1].fallback_of_id == rows[0].id
    assert rows[1].to_address == "+15555550142"
    fallback = db.session.get(Interaction, rows[1].interaction_id)
    assert fallback.meta["fallback_reason"].startswith("email delivery failed")
    assert smtp.messages == []


def test_bounce_marks_the_delivery_failed_and_sends_by_sms(client, smtp, run_jobs):
    """Scenario 4: an email to an old address bounces; SMS is next in the profile."""
    ticket = open_ticket(client, smtp, run_jobs)
    add_phone(ticket)
    reply = email_service.reply_by_email(ticket, "A crew will come by on Thursday.")
    run_jobs()
    sent_id = smtp.messages[0]["Message-ID"]
    dsn = (CORPUS / "dsn_postfix.eml").read_bytes()
    dsn = dsn.replace(b"<ob-0999-1@city.gov>", sent_id.encode())
    dsn = dsn.replace(b"no.such.user@example.com", b"dana.brooks@example.net")

    resp = post(client, dsn)
    assert resp.status_code == 202
    body = resp.get_json()
    assert body["ticket_id"] == ticket.id and body["auto_reply"] is True
    assert body["bounce"]["status"] == "5.1.1"

    rows = outbox_rows()
    assert [(r.channel, r.status) for r in rows] == [("email", "failed"), ("sms", "pending")]
    assert rows[1].fallback_of_id == rows[0].id
    failed = db.session.get(Interaction, reply.id)
    assert failed.delivery_status == "failed"
    assert failed.delivery_error.startswith("bounce: bounced: dana.brooks@example.net")
    fallback = db.session.get(Interaction, rows[1].interaction_id)
    assert fallback.text == "A crew will come by on Thursday."
    assert "sms" in fallback.meta["fallback_reason"]
    point = db.session.scalar(sa.select(ContactPoint).where(ContactPoint.kind == "email"))
    assert "5.1.1" in point.last_failure
    bounce_row = db.session.get(Interaction, body["interaction_id"])
    assert bounce_row.ticket_id == ticket.id and bounce_row.author_kind == "system"

    # The same bounce again changes nothing.
    again = post(client, dsn)
    assert again.status_code == 200 and again.get_json()["duplicate"] is True
    assert len(outbox_rows()) == 2


def test_delayed_dsn_is_recorded_without_failing_the_delivery(client, smtp, run_jobs):
    ticket = open_ticket(client, smtp, run_jobs)
    add_phone(ticket)
    email_service.reply_by_email(ticket, "A crew will come by on Thursday.")
    run_jobs()
    sent_id = smtp.messages[0]["Message-ID"]
    raw = (CORPUS / "dsn_delayed.eml").read_bytes()
    original = email_service.email_channel.parse(raw).metadata["bounce"]["original_message_id"]
    body = post(
        client, raw.replace(original.strip("<>").encode(), sent_id.strip("<>").encode())
    ).get_json()
    assert body["bounce"]["action"] == "delayed" and body["ticket_id"] == ticket.id
    assert [(r.channel, r.status) for r in outbox_rows()] == [("email", "sent")]


def _kb_answer(confident: bool) -> knowledge.KBAnswer:
    return knowledge.KBAnswer(
        article_id=7,
        version=3,
        title="Trash and recycling pickup",
        confidence=0.9 if confident else 0.2,
        self_service=confident,
        text="Missed pickups are collected within 2 business days. Report one online.",
        html="<p>Missed pickups are collected within <b>2 business days</b>.</p>",
        topic="sanitation",
    )


def test_confident_answer_is_sent_by_email_and_the_ticket_is_self_served(
    client, smtp, run_jobs, monkeypatch
):
    asked = []

    def answer_for(query, channel, lang=None, ticket_id=None):
        asked.append((query, channel, ticket_id))
        return _kb_answer(confident=True)

    monkeypatch.setattr(knowledge, "answer_for", answer_for)
    db.session.add(Queue(code="sanitation", name="Trash and recycling"))
    db.session.commit()
    ticket = open_ticket(client)
    run_jobs()
    assert asked and asked[0][1] == "email" and asked[0][2] == ticket.id
    assert "Missed trash pickup" in asked[0][0]
    db.session.expire_all()
    ticket = db.session.get(Ticket, ticket.id)
    assert ticket.self_served and ticket.status == "resolved"
    assert db.session.scalar(sa.select(sa.func.count(WorkItem.id))) == 0
    [sent] = smtp.messages
    assert sent["Auto-Submitted"] == "auto-replied"
    assert sent["In-Reply-To"] == "<first-1@mail.example.net>"
    plain = sent.get_body(("plain",)).get_content()
    html = sent.get_body(("html",)).get_content()
    yes = "http://localhost/kb/7/helpful?v=3&answer=yes&channel=email"
    assert yes in plain and "answer=no" in plain
    assert "Reply to this email to reach a person" in plain and ticket.reference in plain
    assert "<b>2 business days</b>" in html and yes.replace("&", "&amp;") in html
    row = db.session.scalar(sa.select(Interaction).where(Interaction.author_kind == "bot"))
    assert (row.kb_article_id, row.kb_article_version) == (7, 3)

    # Replying to the answer reaches a person: the ticket reopens and is routed.
    reply = resident_email(
        "<second-2@mail.example.net>",
        subject=f"Re: {sent['Subject']}",
        body="That did not help, please call me.",
        extra=f"In-Reply-To: {sent['Message-ID']}\r\n",
    )
    db.session.add(Queue(code="general", name="General"))
    db.session.commit()
    body = post(client, reply).get_json()
    assert body["ticket_id"] == ticket.id
    run_jobs()
    assert len(smtp.messages) == 1
    # The answer was about sanitation: the person who follows is from sanitation.
    item = db.session.scalar(sa.select(WorkItem))
    assert db.session.get(Queue, item.queue_id).code == "sanitation"


def test_without_a_confident_answer_the_resident_gets_an_acknowledgement(
    client, smtp, run_jobs, monkeypatch
):
    monkeypatch.setattr(knowledge, "answer_for", lambda *a, **k: _kb_answer(confident=False))
    db.session.add(Queue(code="general", name="General"))
    db.session.commit()
    from app import jobs

    queued = []
    enqueue = jobs.enqueue
    monkeypatch.setattr(jobs, "enqueue", lambda func, *a, **k: queued.append(
        getattr(func, "__name__", func)) or enqueue(func, *a, **k))
    ticket = open_ticket(client)
    run_jobs()
    # The follow-up job sent the acknowledgement itself: no delivery job was queued.
    assert queued and not [name for name in queued if "deliver_outbox" in str(name)]
    [sent] = smtp.messages
    plain = sent.get_body(("plain",)).get_content()
    assert ticket.reference in sent["Subject"] and ticket.reference in plain
    assert "2 business days" in plain
    assert sent["Auto-Submitted"] == "auto-replied"
    db.session.expire_all()
    assert not db.session.get(Ticket, ticket.id).self_served
    assert db.session.scalar(sa.select(sa.func.count(WorkItem.id))) == 1


def test_the_acknowledgement_answers_the_email_that_opened_the_ticket_once(
    client, smtp, run_jobs, monkeypatch
):
    """The resident writes again before the first email's follow-up has run: the one
    acknowledgement threads under the first email (the one it acknowledges), and the
    second, an ongoing conversation, gets none."""
    monkeypatch.setattr(knowledge, "answer_for", lambda *a, **k: _kb_answer(confident=False))
    db.session.add(Queue(code="general", name="General"))
    db.session.commit()
    ticket = open_ticket(client)
    second = post(client, resident_email(
        "<second-2@mail.example.net>", subject=f"Re: Missed trash pickup [{ticket.reference}]",
        body="Also the recycling.", extra="In-Reply-To: <first-1@mail.example.net>\r\n"))
    assert second.get_json()["ticket_id"] == ticket.id
    run_jobs()
    [sent] = smtp.messages
    assert sent["In-Reply-To"] == "<first-1@mail.example.net>"
    assert "2 business days" in sent.get_body(("plain",)).get_content()
    assert db.session.scalar(sa.select(sa.func.count(WorkItem.id))) == 1


def test_auto_reply_to_our_email_is_never_answered(client, smtp, run_jobs):
    ticket = open_ticket(client)
    run_jobs()  # the acknowledgement
    ack = smtp.messages[-1]
    ooo = resident_email(
        "<ooo-1@mail.example.net>",
        subject="Automatic reply: out of office",
        body="I am away until Monday.",
        extra=f"In-Reply-To: {ack['Message-ID']}\r\nAuto-Submitted: auto-replied\r\n",
    )
    body = post(client, ooo).get_json()
    assert body["ticket_id"] == ticket.id and body["auto_reply"] is True
    run_jobs()
    assert len(smtp.messages) == 1
    assert len(outbox_rows(everything=True)) == 1
