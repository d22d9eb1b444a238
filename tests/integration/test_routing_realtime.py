"""Routing events reach a real Socket.IO client connected to a real server."""

from __future__ import annotations

import threading
from datetime import timedelta

import sqlalchemy as sa

from app.extensions import db
from app.models import AgentSkill, Citizen, Offer, Queue, Skill, Ticket, utcnow
from app.services import followup, routing_service


def _connect(live_server, token, events):
    import socketio as sio

    received: dict[str, list[dict]] = {name: [] for name in events}
    arrived = {name: threading.Event() for name in events}
    client = sio.Client(reconnection=False)
    for name in events:
        def handler(data, name=name):
            received[name].append(data)
            arrived[name].set()

        client.on(name, handler, namespace="/agent")
    client.connect(live_server, namespaces=["/agent"], auth={"token": token},
                   transports=["websocket"], wait_timeout=10)
    return client, received, arrived


def test_offer_events_reach_the_agent_console(app, live_server, make_user):
    from app.auth import issue_token

    queue = Queue(code="benefits", name="Benefits", department="Human Services",
                  required_skills=["benefits"], channels=["chat"], sla_target_seconds=60)
    db.session.add(queue)
    agent = make_user(email="ana@example.org", capacity={"chat": 1})
    for kind, code in (("topic", "benefits"), ("language", "en")):
        skill = Skill(kind=kind, code=code, name=code)
        db.session.add(skill)
        db.session.flush()
        db.session.add(AgentSkill(agent_id=agent.id, skill_id=skill.id, proficiency=4))
    citizen = Citizen(display_name="Maria", language="en")
    db.session.add(citizen)
    db.session.flush()
    ticket = Ticket(citizen_id=citizen.id, subject="SNAP renewal", topic="benefits",
                    channel="chat", language="en")
    db.session.add(ticket)
    db.session.commit()

    supervisor = make_user(email="sup@example.org", role="supervisor")
    watcher, seen, seen_arrived = _connect(live_server, issue_token(supervisor),
                                           ["routing.offer_made"])
    client, received, arrived = _connect(
        live_server, issue_token(agent),
        ["offer.made", "offer.expired", "ticket.assigned"])
    try:
        routing_service.set_presence(agent.id, "available", agent)
        item = followup.ensure_work_item(db.session.get(Ticket, ticket.id))
        db.session.commit()
        routing_service.route(item.id)

        assert arrived["offer.made"].wait(10), "no offer.made arrived"
        offer = received["offer.made"][0]
        assert offer["ticket"]["id"] == ticket.id
        assert offer["ticket"]["subject"] == "SNAP renewal"
        assert offer["channel"] == "chat" and offer["expires_at"].endswith("Z")
        row = db.session.scalar(sa.select(Offer))
        assert offer["offer_id"] == row.id
        assert seen_arrived["routing.offer_made"].wait(10)
        assert seen["routing.offer_made"][0]["ticket_id"] == ticket.id

        routing_service.tick(now=utcnow() + timedelta(seconds=31))
        assert arrived["offer.expired"].wait(10), "no offer.expired arrived"
        assert received["offer.expired"][0]["offer_id"] == row.id

        # The agent who missed it is asked again once the re-offer pause is over.
        arrived["offer.made"].clear()
        routing_service.tick(now=utcnow() + timedelta(seconds=200))
        assert arrived["offer.made"].wait(10), "the item was not offered again"
        again = received["offer.made"][-1]
        assert again["offer_id"] != row.id and again["ticket"]["id"] == ticket.id
        routing_service.accept(again["offer_id"], agent)
        assert arrived["ticket.assigned"].wait(10), "no ticket.assigned arrived"
        assert received["ticket.assigned"][0]["ticket"]["assigned_agent_id"] == agent.id
    finally:
        client.disconnect()
        watcher.disconnect()
