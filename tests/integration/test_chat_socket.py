"""Web chat over a real Socket.IO server (``live_server``) with the python-socketio client."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
import socketio as sio
import sqlalchemy as sa

from app.extensions import db
from app.models import ChatSession, Citizen, Interaction, Outbox, Queue, Ticket, WorkItem


class Resident:
    """A resident's widget: a Socket.IO client on /chat that records every event."""

    def __init__(self, url: str):
        self.url = url
        self.client = sio.Client(reconnection=False)
        self.events: list[tuple[str, dict]] = []
        self.cond = threading.Condition()
        for name in ("chat.message", "chat.typing", "chat.error"):
            self.client.on(name, self._recorder(name), namespace="/chat")
        self.client.connect(url, namespaces=["/chat"], transports=["websocket"], wait_timeout=10)

    def _recorder(self, name):
        def _record(data):
            with self.cond:
                self.events.append((name, data))
                self.cond.notify_all()
        return _record

    def call(self, event: str, data: dict | None = None) -> dict:
        return self.client.call(event, data or {}, namespace="/chat", timeout=10)

    def say(self, text: str, client_id: str | None = None, **extra) -> dict:
        return self.call("chat.message", {"text": text, "client_id": client_id or uuid.uuid4().hex,
                                          **extra})

    def wait_for(self, name: str, predicate=lambda d: True, timeout: float = 10) -> dict:
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for event, data in self.events:
                    if event == name and predicate(data):
                        return data
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {name} event; got {self.events}")
                self.cond.wait(left)

    def close(self):
        if self.client.connected:
            self.client.disconnect()


@pytest.fixture
def resident(live_server):
    opened: list[Resident] = []

    def _open() -> Resident:
        r = Resident(live_server)
        opened.append(r)
        return r

    yield _open
    for r in opened:
        r.close()


@pytest.fixture
def general_queue(app):
    queue = Queue(code="general", name="General information", channels=["chat"],
                  max_wait_seconds=120, walkin_prefix="G")
    db.session.add(queue)
    db.session.commit()
    return queue


def _agent_client(live_server, token, ticket_id, received):
    agent = sio.Client(reconnection=False)
    for name in ("interaction.created", "chat.typing", "chat.read"):
        agent.on(name, (lambda n: lambda data: received.append((n, data)))(name),
                 namespace="/agent")
    agent.connect(live_server, namespaces=["/agent"], auth={"token": token},
                  transports=["websocket"], wait_timeout=10)
    assert agent.call("watch_ticket", {"ticket_id": ticket_id}, namespace="/agent")["ok"]
    return agent


def _wait(predicate, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.expire_all()
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _fake_kb(monkeypatch, confident=True):
    from app.services import knowledge

    def answer_for(query, channel, lang=None, ticket_id=None):
        assert channel == "chat"
        return knowledge.KBAnswer(article_id=7, version=3, title="Property tax due dates",
                                  confidence=0.9 if confident else 0.2,
                                  self_service=confident,
                                  text="Property taxes are due on January 31 and July 31.",
                                  topic="taxes")

    monkeypatch.setattr(knowledge, "answer_for", answer_for)


def test_knowledge_base_answers_first_then_talk_to_a_person(app, resident, general_queue,
                                                            run_jobs, monkeypatch):
    _fake_kb(monkeypatch)
    taxes = Queue(code="taxes", name="Property taxes", channels=["chat"], max_wait_seconds=120)
    db.session.add(taxes)
    db.session.commit()
    r = resident()
    state = r.call("chat.start", {"name": "Ada", "email": "ada@example.org", "language": "en"})
    assert state["ok"] and len(state["token"]) > 20 and state["messages"] == []
    sent = r.say("when is my property tax due?")
    assert sent["ok"] and not sent["duplicate"]
    assert sent["message"]["author"] == "resident"
    run_jobs()
    answer = r.wait_for("chat.message", lambda d: d["author"] == "bot")
    assert "January 31" in answer["text"]
    assert answer["kb"] == {"article_id": 7, "version": 3} and answer["offer_person"]
    ticket = db.session.get(Ticket, db.session.scalar(
        sa.select(Interaction.ticket_id).where(Interaction.id == sent["message"]["id"])))
    assert db.session.scalar(sa.select(WorkItem).where(WorkItem.ticket_id == ticket.id)) is None

    person = r.call("chat.person")
    assert person == {"ok": True, "status": "waiting", "reference": ticket.reference}
    items = db.session.scalars(sa.select(WorkItem).where(WorkItem.ticket_id == ticket.id)).all()
    assert len(items) == 1 and items[0].channel == "chat"
    assert items[0].queue_id == taxes.id  # the answer was about taxes
    r.wait_for("chat.message", lambda d: d["author"] == "system" and "person" in d["text"])
    # Asking again, and further messages, never make a second work item.
    assert r.call("chat.person")["ok"]
    r.say("are you there?")
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(WorkItem)
                             .where(WorkItem.ticket_id == ticket.id)) == 1


def _record_enqueued(monkeypatch) -> list[str]:
    """The names of the jobs queued from now on (they are still queued as usual)."""
    from app import jobs

    names: list[str] = []
    enqueue = jobs.enqueue

    def recording(func, *args, **kwargs):
        names.append(func if isinstance(func, str) else func.job_name)
        return enqueue(func, *args, **kwargs)

    monkeypatch.setattr(jobs, "enqueue", recording)
    return names


def _record_kb_questions(monkeypatch) -> list[str]:
    from app.services import knowledge

    asked: list[str] = []

    def answer_for(query, channel, lang=None, ticket_id=None):
        asked.append(query)
        return None

    monkeypatch.setattr(knowledge, "answer_for", answer_for)
    return asked


def _waiting_chat(r: Resident) -> Ticket:
    """A chat whose resident asked a question and then for a person."""
    r.call("chat.start", {"name": "Cy"})
    sent = r.say("my permit application is stuck")
    assert r.call("chat.person")["status"] == "waiting"
    return db.session.get(Ticket, db.session.scalar(
        sa.select(Interaction.ticket_id).where(Interaction.id == sent["message"]["id"])))


def test_lines_of_a_chat_waiting_for_a_person_need_no_follow_up(app, resident, general_queue,
                                                               monkeypatch):
    from app.services import followup

    r = resident()
    ticket = _waiting_chat(r)
    queued = _record_enqueued(monkeypatch)
    asked = _record_kb_questions(monkeypatch)
    lines = [r.say(f"more detail {i}") for i in range(3)]
    assert all(line["ok"] and not line["duplicate"] for line in lines)
    # No knowledge-base answer, no second work item, no routing: not even a job for it.
    assert "app.tasks.process_inbound" not in queued
    for line in lines:
        followup.process_inbound(line["message"]["id"])  # were it run anyway
    db.session.expire_all()
    assert asked == []
    assert db.session.scalar(sa.select(sa.func.count()).select_from(WorkItem)
                             .where(WorkItem.ticket_id == ticket.id)) == 1
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Interaction).where(
        Interaction.ticket_id == ticket.id, Interaction.author_kind == "bot")) == 0


def test_lines_of_a_chat_with_an_agent_reach_the_agent_once_and_nothing_else(
        app, live_server, resident, general_queue, make_user, monkeypatch):
    from app.auth import issue_token
    from app.services import followup

    r = resident()
    ticket = _waiting_chat(r)
    agent_user = make_user(email="di@example.org", name="Di")
    item = db.session.scalar(sa.select(WorkItem).where(WorkItem.ticket_id == ticket.id))
    item.status, item.agent_id = "assigned", agent_user.id
    ticket.assigned_agent_id = agent_user.id
    db.session.commit()
    received: list = []
    # The agent watches the ticket and also serves the chat's queue: two of its rooms.
    agent = _agent_client(live_server, issue_token(agent_user), ticket.id, received)
    try:
        queued = _record_enqueued(monkeypatch)
        asked = _record_kb_questions(monkeypatch)
        lines = [r.say(f"line {i}", client_id=f"line-{i}") for i in range(3)]
        resent = r.say("line 1", client_id="line-1")  # a resend after a reconnect
        assert resent["duplicate"] and resent["message"]["id"] == lines[1]["message"]["id"]

        def live_lines():
            return [d["interaction"]["text"] for n, d in received
                    if n == "interaction.created" and d["interaction"]["text"].startswith("line")]

        assert _wait(lambda: len(live_lines()) >= 3)
        time.sleep(0.3)  # a second copy would arrive here
        assert live_lines() == ["line 0", "line 1", "line 2"]
        assert "app.tasks.process_inbound" not in queued
        for line in lines:
            followup.process_inbound(line["message"]["id"])
        db.session.expire_all()
        assert asked == []
        assert db.session.scalar(sa.select(sa.func.count()).select_from(WorkItem)
                                 .where(WorkItem.ticket_id == ticket.id)) == 1
    finally:
        agent.disconnect()


def test_first_line_still_gets_the_follow_up_and_the_ack_matches_the_stored_message(
        app, resident, monkeypatch):
    r = resident()
    token = r.call("chat.start", {"name": "Ed"})["token"]
    queued = _record_enqueued(monkeypatch)
    sent = r.say("where do I renew a parking permit?", client_id="first-1")
    assert queued == ["app.tasks.process_inbound"]  # the knowledge base answers first
    state = resident().call("chat.resume", {"token": token})
    assert state["messages"] == [sent["message"]]


def test_agent_message_arrives_live_with_typing_and_read_receipt(app, live_server, resident,
                                                                 make_user, general_queue,
                                                                 client, auth_headers):
    from app.auth import issue_token
    from app.chat import send_chat_message

    r = resident()
    r.call("chat.start", {"name": "Bo"})
    sent = r.say("my trash was not picked up")
    ticket_id = db.session.scalar(
        sa.select(Interaction.ticket_id).where(Interaction.id == sent["message"]["id"]))
    agent_user = make_user(email="ana@example.org", name="Ana")
    received: list = []
    agent = _agent_client(live_server, issue_token(agent_user), ticket_id, received)
    try:
        # Resident -> agent: typing indicator in the ticket room.
        assert r.call("chat.typing", {"typing": True})["ok"]
        assert _wait(lambda: any(n == "chat.typing" and d["typing"] for n, d in received))
        # Agent -> resident: typing over the console's socket, then a reply.
        assert agent.call("chat.typing", {"ticket_id": ticket_id, "typing": True},
                          namespace="/agent")["ok"]
        typing = r.wait_for("chat.typing")
        assert typing == {"typing": True, "author": "agent", "name": "Ana"}
        reply = send_chat_message(ticket_id, "We will send a truck tomorrow.", agent_user.id)
        assert reply.delivery_status == "delivered"
        live = r.wait_for("chat.message", lambda d: d["author"] == "agent")
        assert live["text"] == "We will send a truck tomorrow." and live["name"] == "Ana"
        assert live["id"] == reply.id
        # Agents can also reply over their socket.
        ack = agent.call("chat.send", {"ticket_id": ticket_id, "text": "Anything else?"},
                         namespace="/agent")
        assert ack["ok"] and ack["delivery_status"] == "delivered"
        r.wait_for("chat.message", lambda d: d["text"] == "Anything else?")
        # And through the console's reply box (the REST API): shown at once as well, no
        # job in between (none runs in this test).
        reference = db.session.get(Ticket, ticket_id).reference
        answer = client.post(f"/api/v1/tickets/{reference}/reply",
                             headers=auth_headers(user=agent_user),
                             json={"text": "The truck comes at 9.", "channel": "chat"})
        assert answer.status_code == 201 and answer.json["delivery_status"] == "delivered"
        shown = r.wait_for("chat.message", lambda d: d["text"] == "The truck comes at 9.")
        assert shown["author"] == "agent" and shown["id"] == answer.json["id"]
        # Read receipt: stored on the session and shown to agents.
        assert r.call("chat.read", {"interaction_id": ack["id"]})["ok"]
        assert _wait(lambda: any(n == "chat.read" and d["interaction_id"] == ack["id"]
                                 for n, d in received))
        chat = db.session.scalar(sa.select(ChatSession))
        assert chat.last_read_interaction_id == ack["id"]
        # Receipts only move forward, and only for this chat's messages.
        assert r.call("chat.read", {"interaction_id": reply.id})["ok"]
        db.session.expire_all()
        assert db.session.get(ChatSession, chat.id).last_read_interaction_id == ack["id"]
        assert r.call("chat.read", {"interaction_id": 999999})["error"]["code"] == "invalid_read"
        # The console's events answer a ticket id no ticket can have, or none, with "no".
        for bad in (10**20, "x", None, True, 0):
            for event, extra in (("chat.send", {"text": "hi"}), ("chat.typing", {}),
                                 ("watch_ticket", {}), ("unwatch_ticket", {})):
                ack = agent.call(event, {"ticket_id": bad, **extra}, namespace="/agent")
                assert ack["ok"] is False, (event, bad)
        assert agent.call("watch_ticket", ["not", "a", "dict"], namespace="/agent")["ok"] is False
    finally:
        agent.disconnect()


def test_reload_resumes_the_whole_conversation_without_duplicates(app, resident, make_user,
                                                                  general_queue):
    from app.chat import send_chat_message

    first = resident()
    token = first.call("chat.start", {})["token"]
    a = first.say("hello", client_id="c-1")
    ticket_id = db.session.scalar(
        sa.select(Interaction.ticket_id).where(Interaction.id == a["message"]["id"]))
    first.say("second line", client_id="c-2")
    agent = make_user()
    send_chat_message(ticket_id, "Hi, how can I help?", agent.id)
    first.close()  # the page reloads
    assert _wait(lambda: db.session.scalar(sa.select(ChatSession.status)) == "away")

    second = resident()
    state = second.call("chat.resume", {"token": token})
    assert state["ok"] and state["status"] == "active"
    assert [m["text"] for m in state["messages"]] == ["hello", "second line",
                                                      "Hi, how can I help?"]
    assert [m["client_id"] for m in state["messages"][:2]] == ["c-1", "c-2"]
    # The widget resends what it had not seen acknowledged: stored once.
    again = second.say("second line", client_id="c-2")
    assert again["ok"] and again["duplicate"]
    assert again["message"]["id"] == state["messages"][1]["id"]
    count = db.session.scalar(sa.select(sa.func.count()).select_from(Interaction).where(
        Interaction.ticket_id == ticket_id, Interaction.direction == "inbound"))
    assert count == 2


def test_resident_leaves_and_the_agent_answer_goes_by_email(app, resident, make_user,
                                                           general_queue, run_jobs):
    from app.chat import send_chat_message

    r = resident()
    r.call("chat.start", {"email": "Leaver@Example.org"})
    sent = r.say("I need a copy of my permit")
    ticket_id = db.session.scalar(
        sa.select(Interaction.ticket_id).where(Interaction.id == sent["message"]["id"]))
    r.close()  # the tab closes before an agent is free
    assert _wait(lambda: db.session.scalar(sa.select(ChatSession.status)) == "away")
    run_jobs()  # the grace period ends
    db.session.expire_all()
    assert db.session.scalar(sa.select(ChatSession.status)) == "left"

    agent = make_user()
    reply = send_chat_message(ticket_id, "Your permit copy is attached.", agent.id)
    assert reply.delivery_status == "failed" and "chat_left" in reply.delivery_error
    email = db.session.scalar(sa.select(Outbox).where(Outbox.channel == "email"))
    assert email.to_address == "leaver@example.org"
    assert db.session.get(Interaction, email.interaction_id).text == "Your permit copy is attached."
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Outbox).where(
        Outbox.channel == "email")) == 1


def test_reconnect_within_grace_keeps_the_chat(app, resident, run_jobs):
    first = resident()
    token = first.call("chat.start", {"email": "stay@example.org"})["token"]
    first.say("hi")
    first.close()
    assert _wait(lambda: db.session.scalar(sa.select(ChatSession.status)) == "away")
    second = resident()
    assert second.call("chat.resume", {"token": token})["status"] == "active"
    run_jobs()  # the grace timer of the first connection fires: nothing happens
    db.session.expire_all()
    assert db.session.scalar(sa.select(ChatSession.status)) == "active"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Outbox)) == 0


def test_no_agent_within_max_wait_continues_by_sms(app, resident, general_queue, run_jobs,
                                                   monkeypatch):
    _fake_kb(monkeypatch, confident=False)
    r = resident()
    r.call("chat.start", {"phone": "(555) 555-0190"})
    r.say("I need help with my water bill")
    run_jobs()  # the knowledge base has no confident answer
    r.wait_for("chat.message", lambda d: d["author"] == "bot" and d["offer_person"])
    assert r.call("chat.person")["status"] == "waiting"
    run_jobs()  # max_wait_seconds pass with no agent
    notice = r.wait_for("chat.message", lambda d: "text message" in d["text"])
    assert "***0190" in notice["text"]
    db.session.expire_all()
    assert db.session.scalar(sa.select(ChatSession.status)) == "handed_off"
    sms = db.session.scalar(sa.select(Outbox).where(Outbox.channel == "sms"))
    assert sms.to_address == "+15555550190"


def test_transcript_by_email_on_request(app, resident):
    r = resident()
    r.call("chat.start", {})
    assert r.call("chat.transcript", {})["error"]["code"] == "no_question"
    r.say("what are the library hours?")
    ack = r.call("chat.transcript", {"email": "reader@example.org"})
    assert ack == {"ok": True, "email": "r***@example.org"}
    row = db.session.scalar(sa.select(Outbox).where(Outbox.channel == "email"))
    assert row.to_address == "reader@example.org"
    text = db.session.get(Interaction, row.interaction_id).text
    assert "You: what are the library hours?" in text
    # The transcript is for the record; it is not replayed as part of the chat.
    token = db.session.scalar(sa.select(ChatSession.token))
    again = r.call("chat.resume", {"token": token})
    assert [m["text"] for m in again["messages"]] == ["what are the library hours?"]


def test_limits_and_bad_input_give_clear_errors(app, resident):
    r = resident()
    assert r.say("too early")["error"]["code"] == "no_session"
    assert r.wait_for("chat.error")["code"] == "no_session"
    unknown = r.call("chat.resume", {"token": "no-such-token"})
    assert unknown["error"]["code"] == "unknown_session"
    r.call("chat.start", {})
    long = r.say("x" * 2001)
    assert long["error"] == {"code": "message_too_long",
                             "message": "messages are limited to 2000 characters", "limit": 2000}
    assert r.say("   ")["error"]["code"] == "empty_message"
    assert r.call("chat.message", {"text": "hi", "client_id": "bad id!"})["error"]["code"] == \
        "invalid_client_id"
    assert r.call("chat.start", {})["error"]["code"] == "session_exists"
    bad_email = resident().call("chat.start", {"email": "not-an-email"})
    assert bad_email["error"]["code"] == "invalid_email"
    # The four refused messages above count toward the rate window too: 6 more fit.
    results = [r.say(f"message {i}", client_id=f"m{i}") for i in range(8)]
    accepted = [x for x in results if x.get("ok")]
    refused = [x for x in results if not x.get("ok")]
    assert len(accepted) == 6 and len(refused) == 2
    assert refused[0]["error"]["code"] == "rate_limited" and refused[0]["error"]["retry_after"] > 0
    stored = db.session.scalar(sa.select(sa.func.count()).select_from(Interaction).where(
        Interaction.direction == "inbound"))
    assert stored == 6  # every accepted message is stored once, no refused one is


def test_was_this_helpful_under_a_knowledge_base_answer(app, resident, seeded, run_jobs):
    from app.models import KBFeedback

    r = resident()
    assert r.call("chat.start", {"name": "Ada", "language": "en"})["ok"]
    asked = r.say("when is my property tax due?")
    run_jobs()
    answer = r.wait_for("chat.message", lambda d: d["author"] == "bot")
    assert answer["kb"] is not None
    vote = r.call("chat.feedback", {"interaction_id": answer["id"], "helpful": True})
    assert vote == {"ok": True, "recorded": True}
    again = r.call("chat.feedback", {"interaction_id": answer["id"], "helpful": False})
    assert again == {"ok": True, "recorded": False}
    db.session.expire_all()
    (row,) = db.session.scalars(sa.select(KBFeedback)).all()
    assert (row.article_id, row.version, row.channel, row.helpful) == (
        answer["kb"]["article_id"], answer["kb"]["version"], "chat", True)
    # Only answers shown in this chat can be rated.
    bad = r.call("chat.feedback", {"interaction_id": asked["message"]["id"], "helpful": True})
    assert not bad["ok"] and bad["error"]["code"] == "unknown_answer"
    assert not r.call("chat.feedback", {"interaction_id": "x"})["ok"]


def test_message_ids_no_message_can_have_get_clear_errors(app, resident):
    r = resident()
    r.call("chat.start", {})
    assert r.say("hello")["ok"]
    for value in (10**20, True, "2", 1.5, -1):
        ack = r.call("chat.feedback", {"interaction_id": value, "helpful": True})
        assert ack["error"]["code"] == "invalid_feedback", value
    for value in (10**20, -1, 0):
        assert r.call("chat.read", {"interaction_id": value})["error"]["code"] == \
            "invalid_read", value
    assert r.say("still here")["ok"]  # the connection is fine


def test_an_event_that_fails_unexpectedly_is_answered_as_try_again(app, resident, monkeypatch):
    import app.chat as chat

    def broken(conn, data):
        raise RuntimeError("a fault")

    r = resident()
    r.call("chat.start", {})
    sent = r.say("hello")
    monkeypatch.setattr(chat, "mark_read", broken)
    ack = r.call("chat.read", {"interaction_id": sent["message"]["id"]})
    assert ack["ok"] is False and ack["error"]["code"] == "try_again"
    assert r.wait_for("chat.error")["code"] == "try_again"
    assert r.say("still here")["ok"]


def test_nul_characters_in_a_chat_are_dropped(app, resident):
    r = resident()
    assert r.call("chat.start", {"name": "Ro\x00sa"})["ok"]
    assert db.session.scalar(sa.select(Citizen.display_name)) == "Rosa"
    sent = r.say("my \x00bill")
    assert sent["ok"] and sent["message"]["text"] == "my bill"


def test_a_value_the_database_refuses_is_answered_as_invalid(app, resident, monkeypatch):
    import app.chat as chat

    def refused(conn, data):
        raise sa.exc.DataError("UPDATE ...", {}, ValueError("value too long"))

    r = resident()
    r.call("chat.start", {})
    sent = r.say("hello")
    monkeypatch.setattr(chat, "mark_read", refused)
    ack = r.call("chat.read", {"interaction_id": sent["message"]["id"]})
    assert ack["error"]["code"] == "invalid_value"
