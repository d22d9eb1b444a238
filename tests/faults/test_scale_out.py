"""Scale-out: two gunicorn web processes and two ``flask worker`` processes on one
PostgreSQL database and one Redis (the Socket.IO message queue and RQ), started with the
README's production commands. A resident chatting on process A reaches a supervisor and
an agent connected to process B; the work item is offered once; both processes'
supervisor views count it once."""

from __future__ import annotations

import os
import threading
import time
from collections import defaultdict

import requests
import socketio
import sqlalchemy as sa

from app.extensions import db
from app.models import AgentSkill, Offer, Queue, Skill, User, WorkItem
from tests.faults.conftest import wait_until

PASSWORD = "correct-horse-battery"


def _seed() -> None:
    queue = Queue(code="general", name="General", channels=["chat", "sms", "email"],
                  business_hours={}, holidays=[], sla_target_seconds=60)
    topic, english = Skill(kind="topic", code="general"), Skill(kind="language", code="en")
    agent = User(email="ana@agency.example", name="Ana", role="agent", password_hash="",
                 capacity={"chat": 3, "sms": 5, "email": 5, "voice": 1})
    supervisor = User(email="sam@agency.example", name="Sam", role="supervisor",
                      password_hash="")
    for user in (agent, supervisor):
        user.set_password(PASSWORD)
    db.session.add_all([queue, topic, english, agent, supervisor])
    db.session.flush()
    db.session.add_all([AgentSkill(agent_id=agent.id, skill_id=topic.id, proficiency=4),
                        AgentSkill(agent_id=agent.id, skill_id=english.id, proficiency=5)])
    db.session.commit()


def _token(base: str, email: str) -> str:
    response = requests.post(base + "/api/v1/auth/token", timeout=30,
                             json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()["token"]


class Recorder:
    """A Socket.IO client that keeps every event it receives on a namespace."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace
        self.client = socketio.Client(reconnection=False)
        self.events: dict[str, list] = defaultdict(list)
        self.lock = threading.Lock()
        self.client.on("*", self._record, namespace=namespace)

    def _record(self, event, data=None):
        with self.lock:
            self.events[event].append(data)

    def connect(self, base: str, auth: dict | None = None) -> Recorder:
        self.client.connect(base, namespaces=[self.namespace], auth=auth,
                            transports=["websocket"], wait_timeout=30)
        return self

    def of(self, event: str) -> list:
        with self.lock:
            return list(self.events[event])


def test_chat_on_one_process_reaches_agents_on_the_other_and_is_offered_once(
        fault_app, processes):
    _seed()
    web_a = processes.web("web-a")
    web_b = processes.web("web-b")
    workers = [processes.worker(name, queues="inbound,outbound,default,scheduled")
               for name in ("worker-1", "worker-2")]
    # The workers yield the CPU to the web processes (``flask worker --nice``, 10).
    webs = [p for p in processes.procs if p not in workers]
    assert {os.getpriority(os.PRIO_PROCESS, p.pid) for p in webs} == {os.nice(0)}
    assert {os.getpriority(os.PRIO_PROCESS, p.pid) for p in workers} == {min(os.nice(0) + 10,
                                                                              19)}

    agent_token = _token(web_b, "ana@agency.example")
    supervisor_token = _token(web_b, "sam@agency.example")
    available = requests.put(web_b + "/api/v1/agents/me/presence", timeout=30,
                             headers={"Authorization": f"Bearer {agent_token}"},
                             json={"presence": "available"})
    assert available.status_code == 200, available.text
    supervisor = Recorder("/agent").connect(web_b, {"token": supervisor_token})
    agent = Recorder("/agent").connect(web_b, {"token": agent_token})
    resident = Recorder("/chat").connect(web_a)
    try:
        started = resident.client.call("chat.start", {"name": "Maria", "language": "en"},
                                       namespace="/chat", timeout=30)
        assert started["ok"], started
        sent = resident.client.call("chat.message", {"text": "I need help with my permit",
                                                     "client_id": "m1"},
                                    namespace="/chat", timeout=30)
        assert sent["ok"] and not sent["duplicate"], sent

        def seen_by_supervisor():
            return [e for e in supervisor.of("interaction.created")
                    if e["interaction"]["text"] == "I need help with my permit"]

        (event,) = wait_until(seen_by_supervisor, 30, "the chat message on process B")
        ticket_id = event["ticket"]["id"]

        person = resident.client.call("chat.person", {}, namespace="/chat", timeout=30)
        assert person["ok"], person
        wait_until(lambda: agent.of("offer.made"), 30, "the offer at the agent on process B")
        time.sleep(3)  # a second offer, if any process made one, would arrive by now
        offers = [o for o in agent.of("offer.made")]
        assert len(offers) == 1, offers
        db.session.expire_all()
        items = db.session.scalars(sa.select(WorkItem).where(
            WorkItem.ticket_id == ticket_id)).all()
        assert len(items) == 1
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Offer).where(
            Offer.work_item_id == items[0].id)) == 1

        headers = {"Authorization": f"Bearer {supervisor_token}"}
        views = [requests.get(base + "/api/v1/supervisor/snapshot", headers=headers,
                              timeout=30).json() for base in (web_a, web_b)]
        rows = [next(r for r in view["queues"] if r["queue"] == "general") for view in views]
        assert rows[0] == rows[1], rows
        assert rows[0]["offered"] == 1 and rows[0]["waiting"] <= 1, rows[0]
    finally:
        for recorder in (resident, agent, supervisor):
            recorder.client.disconnect()
