"""Routing through the app: offers, accept, decline, timeouts, presence, capacity, order,
transfer, wrap-up, referral, queue contents and reach, through the REST API."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import (
    AgentSkill,
    AuditLog,
    ChannelProfile,
    Citizen,
    ContactPoint,
    Interaction,
    Offer,
    Queue,
    Skill,
    Ticket,
    User,
    WorkItem,
    utcnow,
)
from app.services import followup, routing_service


def _skill(kind: str, code: str) -> Skill:
    skill = db.session.scalar(sa.select(Skill).where(Skill.kind == kind, Skill.code == code))
    if skill is None:
        skill = Skill(kind=kind, code=code, name=code)
        db.session.add(skill)
        db.session.flush()
    return skill


@pytest.fixture
def queues(app):
    rows = [
        Queue(code="benefits", name="Benefits", department="Human Services",
              required_skills=["benefits"], channels=["voice", "sms", "email", "chat"],
              sla_target_seconds=60),
        Queue(code="housing", name="Housing", department="Housing",
              required_skills=["housing"], channels=["voice", "sms", "email", "chat"],
              sla_target_seconds=60),
        Queue(code="general", name="General", department="311", required_skills=["general"],
              channels=["voice", "sms", "email", "chat"], sla_target_seconds=60),
    ]
    db.session.add_all(rows)
    db.session.commit()
    return {q.code: q for q in rows}


@pytest.fixture
def agent(make_user, queues):
    """``agent(name, topics=..., languages=..., capacity=...)`` -> a user with skills."""

    def _make(name, *, topics=None, languages=None, capacity=None, role="agent"):
        user = make_user(email=f"{name}@example.org", role=role, name=name.title(),
                         capacity=capacity or {"voice": 1, "chat": 3, "email": 5, "sms": 5})
        for code, level in (languages or {"en": 5}).items():
            db.session.add(AgentSkill(agent_id=user.id, skill_id=_skill("language", code).id,
                                      proficiency=level))
        for code, level in (topics or {"benefits": 5}).items():
            db.session.add(AgentSkill(agent_id=user.id, skill_id=_skill("topic", code).id,
                                      proficiency=level))
        db.session.commit()
        return user

    return _make


@pytest.fixture
def contact(queues):
    """``contact(queue, channel=..., priority=..., language=...)`` -> a routed work item."""
    counter = iter(range(1, 10_000))

    def _make(queue="benefits", *, channel="chat", priority=3, language="en",
              commitments=(), route=True):
        n = next(counter)
        citizen = Citizen(display_name=f"Resident {n}", language=language)
        db.session.add(citizen)
        db.session.flush()
        ticket = Ticket(citizen_id=citizen.id, subject=f"Question {n}", topic=queue,
                        channel=channel, language=language, priority=priority)
        db.session.add(ticket)
        db.session.flush()
        item = followup.ensure_work_item(ticket)
        item.commitments = list(commitments)
        db.session.commit()
        if route:
            routing_service.route(item.id)
        return db.session.get(WorkItem, item.id)

    return _make


def _offers(user_id: int, status: str = "pending") -> list[Offer]:
    db.session.expire_all()
    return db.session.scalars(sa.select(Offer).where(
        Offer.agent_id == user_id, Offer.status == status).order_by(Offer.id)).all()


def _available(client, headers, **extra):
    r = client.put("/api/v1/agents/me/presence", json={"presence": "available", **extra},
                   headers=headers)
    assert r.status_code == 200, r.json
    return r


def test_arrival_is_offered_to_the_best_agent_and_accept_assigns(
        client, agent, contact, auth_headers):
    expert = agent("ana", topics={"benefits": 5})
    novice = agent("ben", topics={"benefits": 2})
    novice_headers, expert_headers = auth_headers(user=novice), auth_headers(user=expert)
    _available(client, novice_headers)
    _available(client, expert_headers)
    item = contact("benefits")

    r = client.get("/api/v1/agents/me/offers", headers=expert_headers)
    assert r.status_code == 200
    [offer] = r.json["items"]
    assert offer["channel"] == "chat" and offer["expires_at"].endswith("Z")
    assert offer["ticket"]["id"] == item.ticket_id and offer["ticket"]["queue"] == "benefits"
    assert client.get("/api/v1/agents/me/offers", headers=novice_headers).json["items"] == []

    r = client.post(f"/api/v1/offers/{offer['offer_id']}/accept", headers=expert_headers)
    assert r.status_code == 200 and r.json["status"] == "accepted"
    db.session.expire_all()
    ticket = db.session.get(Ticket, item.ticket_id)
    assert ticket.assigned_agent_id == expert.id and ticket.status == "open"
    row = db.session.get(WorkItem, item.id)
    assert row.status == "assigned" and row.agent_id == expert.id and row.assigned_at

    again = client.post(f"/api/v1/offers/{offer['offer_id']}/accept", headers=expert_headers)
    assert again.status_code == 409
    assert again.json["error"]["code"] == "offer_already_accepted"
    stolen = client.post(f"/api/v1/offers/{offer['offer_id']}/accept", headers=novice_headers)
    assert stolen.status_code == 403
    missing = client.post("/api/v1/offers/99999/accept", headers=expert_headers)
    assert missing.status_code == 404 and missing.json["error"]["code"] == "unknown_offer"


def test_intake_follow_up_offers_the_ticket(seeded, client, run_jobs, auth_headers):
    """The demo data: an SMS about benefits reaches the Spanish-and-English benefits expert."""
    from app.services.intake import intake
    from channels.base import InboundMessage

    ana = db.session.scalar(sa.select(User).where(User.email == "ana@civicline.example"))
    li = db.session.scalar(sa.select(User).where(User.email == "li@civicline.example"))
    _available(client, auth_headers(user=li))
    _available(client, auth_headers(user=ana))
    intake(InboundMessage(channel="sms", provider_id="SMroute1", sender="+15555550901",
                          text="AGENT please", topic="benefits"))
    run_jobs()
    [offer] = _offers(ana.id)
    assert _offers(li.id) == []
    item = db.session.get(WorkItem, offer.work_item_id)
    assert item.status == "offered" and item.queued_at is not None


def test_decline_reoffers_to_someone_else(client, agent, contact, auth_headers):
    first = agent("ana", topics={"benefits": 5})
    second = agent("ben", topics={"benefits": 3})
    _available(client, auth_headers(user=first))
    _available(client, auth_headers(user=second))
    item = contact("benefits")
    [offer] = _offers(first.id)
    r = client.post(f"/api/v1/offers/{offer.id}/decline", headers=auth_headers(user=first))
    assert r.status_code == 200 and r.json["status"] == "declined"
    [next_offer] = _offers(second.id)
    assert next_offer.work_item_id == item.id
    assert _offers(first.id) == []  # the decliner is not asked again at once
    db.session.expire_all()
    assert db.session.get(User, first.id).presence == "available"


def test_timeouts_reoffer_and_repeated_misses_set_the_agent_away(
        client, agent, contact, auth_headers):
    sleepy = agent("ana", topics={"benefits": 5})
    backup = agent("ben", topics={"benefits": 1})
    sleepy_headers = auth_headers(user=sleepy)
    _available(client, sleepy_headers)
    first = contact("benefits")
    [offer] = _offers(sleepy.id)

    later = utcnow() + timedelta(seconds=31)
    routing_service.tick(now=later)
    db.session.expire_all()
    assert db.session.get(Offer, offer.id).status == "expired"
    assert db.session.get(User, sleepy.id).missed_offers == 1
    late = client.post(f"/api/v1/offers/{offer.id}/accept", headers=sleepy_headers)
    assert late.status_code == 409 and late.json["error"]["code"] == "offer_timed_out"

    # The only qualified agent is skipped for a while, so the item waits; a second
    # item is offered to the same agent, who misses that too and is set away.
    assert db.session.get(WorkItem, first.id).status == "waiting"
    second = contact("benefits", route=False)
    routing_service.tick(now=later + timedelta(seconds=1))
    [offer2] = _offers(sleepy.id)
    assert offer2.work_item_id == second.id
    routing_service.tick(now=later + timedelta(seconds=40))
    db.session.expire_all()
    user = db.session.get(User, sleepy.id)
    assert user.presence == "away" and user.missed_offers == 2
    assert _offers(sleepy.id) == []

    # A qualified agent coming online gets the waiting work at once.
    _available(client, auth_headers(user=backup))
    offered = {o.work_item_id for o in _offers(backup.id)}
    assert offered == {first.id, second.id}


def test_presence_changes_trigger_routing(client, agent, contact, auth_headers):
    ana = agent("ana")
    headers = auth_headers(user=ana)
    item = contact("benefits")
    assert db.session.get(WorkItem, item.id).status == "waiting"
    _available(client, headers)
    [offer] = _offers(ana.id)
    assert offer.work_item_id == item.id

    r = client.put("/api/v1/agents/me/presence", json={"presence": "away"}, headers=headers)
    assert r.status_code == 200 and r.json["presence"] == "away"
    db.session.expire_all()
    assert db.session.get(Offer, offer.id).status == "withdrawn"
    assert db.session.get(WorkItem, item.id).status == "waiting"

    # A supervisor brings the agent back.
    supervisor = auth_headers("supervisor")
    r = client.put(f"/api/v1/agents/{ana.id}/presence", json={"presence": "available"},
                   headers=supervisor)
    assert r.status_code == 200 and r.json["presence"] == "available"
    [offer] = _offers(ana.id)
    assert offer.work_item_id == item.id


def test_presence_validation_errors(client, agent, auth_headers):
    ana = agent("ana")
    headers = auth_headers(user=ana)
    bad = client.put("/api/v1/agents/me/presence", json={"presence": "busy"}, headers=headers)
    assert bad.status_code == 400 and bad.json["error"]["code"]
    negative = client.put("/api/v1/agents/me/presence",
                          json={"presence": "available", "capacity": {"chat": -1}},
                          headers=headers)
    assert negative.status_code == 400
    channel = client.put("/api/v1/agents/me/presence",
                         json={"presence": "available", "capacity": {"fax": 1}}, headers=headers)
    assert channel.status_code == 400
    assert client.put("/api/v1/agents/me/presence", json={}, headers=headers).status_code == 400
    other = client.put(f"/api/v1/agents/{ana.id}/presence", json={"presence": "away"},
                       headers=auth_headers("agent"))
    assert other.status_code == 403
    unknown = client.put("/api/v1/agents/4242/presence", json={"presence": "away"},
                         headers=auth_headers("supervisor"))
    assert unknown.status_code == 404 and unknown.json["error"]["code"] == "unknown_agent"
    db.session.expire_all()
    assert db.session.get(User, ana.id).presence == "offline"


def test_capacity_call_is_exclusive_and_chats_go_up_to_the_limit(
        client, agent, contact, auth_headers):
    ana = agent("ana", capacity={"voice": 1, "chat": 2})
    headers = auth_headers(user=ana)
    call = contact("benefits", channel="voice")
    chats = [contact("benefits", channel="chat") for _ in range(3)]
    _available(client, headers)
    [offer] = _offers(ana.id)
    assert offer.work_item_id == call.id  # the oldest item first; a call takes everything
    assert client.post(f"/api/v1/offers/{offer.id}/accept", headers=headers).status_code == 200
    assert _offers(ana.id) == []
    db.session.expire_all()
    assert db.session.get(User, ana.id).presence == "busy"

    ticket = db.session.get(Ticket, call.ticket_id)
    r = client.post(f"/api/v1/tickets/{ticket.reference}/complete",
                    json={"disposition": "answered"}, headers=headers)
    assert r.status_code == 200 and r.json["status"] == "resolved"
    db.session.expire_all()
    assert db.session.get(User, ana.id).presence == "wrap_up"
    assert _offers(ana.id) == []
    routing_service.tick(now=utcnow() + timedelta(seconds=31))  # voice wrap-up ends
    offered = [o.work_item_id for o in _offers(ana.id)]
    assert offered == [chats[0].id, chats[1].id]  # two chats at once, the third waits
    assert db.session.get(WorkItem, chats[2].id).status == "waiting"


def test_equal_treatment_first_come_first_served_within_priority(
        client, agent, contact, auth_headers):
    ana = agent("ana", capacity={"chat": 1})
    headers = auth_headers(user=ana)
    first = contact("benefits")
    second = contact("benefits")
    urgent = contact("benefits", priority=1)
    third = contact("benefits")
    order = []
    _available(client, headers)
    for _ in range(4):
        [offer] = _offers(ana.id)
        order.append(offer.work_item_id)
        client.post(f"/api/v1/offers/{offer.id}/accept", headers=headers)
        ticket = db.session.get(Ticket, db.session.get(WorkItem, offer.work_item_id).ticket_id)
        r = client.post(f"/api/v1/tickets/{ticket.id}/complete",
                        json={"disposition": "answered"}, headers=headers)
        assert r.status_code == 200
    assert order == [urgent.id, first.id, second.id, third.id]


def test_transfer_to_queue_and_to_agent_keeps_history(client, agent, contact, auth_headers):
    ana = agent("ana", topics={"benefits": 5})
    li = agent("li", topics={"housing": 5})
    sam = agent("sam", topics={"general": 3})
    ana_headers, li_headers = auth_headers(user=ana), auth_headers(user=li)
    _available(client, ana_headers)
    item = contact("benefits")
    [offer] = _offers(ana.id)
    client.post(f"/api/v1/offers/{offer.id}/accept", headers=ana_headers)
    ticket = db.session.get(Ticket, item.ticket_id)

    offline = client.post(f"/api/v1/tickets/{ticket.reference}/transfer",
                          json={"agent_id": sam.id}, headers=ana_headers)
    assert offline.status_code == 409 and offline.json["error"]["code"] == "agent_offline"
    unknown = client.post(f"/api/v1/tickets/{ticket.reference}/transfer",
                          json={"agent_id": 9999}, headers=ana_headers)
    assert unknown.status_code == 404
    nowhere = client.post(f"/api/v1/tickets/{ticket.reference}/transfer", json={},
                          headers=ana_headers)
    assert nowhere.status_code == 400
    bad_queue = client.post(f"/api/v1/tickets/{ticket.reference}/transfer",
                            json={"queue": "nope"}, headers=ana_headers)
    assert bad_queue.status_code == 404

    _available(client, li_headers)
    r = client.post(f"/api/v1/tickets/{ticket.reference}/transfer",
                    json={"queue": "housing", "reason": "about rent help"}, headers=ana_headers)
    assert r.status_code == 200 and r.json["queue"] == "housing"
    assert r.json["assigned_agent_id"] is None
    [offer] = _offers(li.id)
    assert offer.work_item_id == item.id
    db.session.expire_all()
    assert db.session.get(User, ana.id).presence == "available"
    note = db.session.scalar(sa.select(Interaction).where(
        Interaction.ticket_id == ticket.id, Interaction.channel == "note"))
    assert note.direction == "internal" and "housing" in note.text and "rent" in note.text
    log = db.session.scalar(sa.select(AuditLog).where(AuditLog.action == "ticket.transfer"))
    assert log.detail["from_queue"] == "benefits" and log.detail["to_queue"] == "housing"

    client.post(f"/api/v1/offers/{offer.id}/accept", headers=li_headers)
    r = client.post(f"/api/v1/tickets/{ticket.reference}/transfer",
                    json={"agent_id": ana.id}, headers=li_headers)
    assert r.status_code == 200
    [back] = _offers(ana.id)
    assert back.work_item_id == item.id
    assert len(db.session.scalars(sa.select(AuditLog).where(
        AuditLog.action == "ticket.transfer")).all()) == 2


def test_referral_resolves_the_ticket_and_is_counted(client, agent, contact, auth_headers):
    ana = agent("ana")
    headers = auth_headers(user=ana)
    _available(client, headers)
    item = contact("benefits")
    [offer] = _offers(ana.id)
    client.post(f"/api/v1/offers/{offer.id}/accept", headers=headers)
    ticket = db.session.get(Ticket, item.ticket_id)
    url = f"/api/v1/tickets/{ticket.reference}/referral"

    no_contact = client.post(url, json={"agency": "U.S. Department of State",
                                        "reason": "other_level_of_government"}, headers=headers)
    assert no_contact.status_code == 400
    assert no_contact.json["error"]["code"] == "invalid_referral"
    bad_reason = client.post(url, json={"agency": "State", "reason": "bored",
                                        "url": "https://travel.state.gov"}, headers=headers)
    assert bad_reason.status_code == 400

    r = client.post(url, json={"agency": "U.S. Department of State",
                               "reason": "other_level_of_government",
                               "url": "https://travel.state.gov", "phone": "+1 877 487 2778",
                               "note": "Passports are a federal service."}, headers=headers)
    assert r.status_code == 200, r.json
    assert r.json["status"] == "resolved" and r.json["disposition"] == "referred"
    assert r.json["referral"]["agency"] == "U.S. Department of State"
    db.session.expire_all()
    assert db.session.get(WorkItem, item.id).outcome == "referred"
    note = db.session.scalar(sa.select(Interaction).where(
        Interaction.ticket_id == ticket.id, Interaction.channel == "note"))
    assert "travel.state.gov" in note.text
    again = client.post(url, json={"agency": "State", "reason": "other_agency",
                                   "url": "https://travel.state.gov"}, headers=headers)
    assert again.status_code == 409

    other = contact("benefits", route=False)
    other_ticket = db.session.get(Ticket, other.ticket_id)
    client.post(f"/api/v1/tickets/{other_ticket.reference}/referral",
                json={"agency": "County Clerk", "reason": "other_agency",
                      "email": "clerk@county.example"}, headers=auth_headers("supervisor"))
    report = client.get("/api/v1/reports/referrals", headers=auth_headers("supervisor"))
    assert report.status_code == 200
    assert report.json["total"] == 2
    assert {"agency": "U.S. Department of State", "count": 1} in report.json["by_agency"]
    assert {"reason": "other_agency", "count": 1} in report.json["by_reason"]
    assert client.get("/api/v1/reports/referrals", headers=headers).status_code == 403


def test_complete_needs_an_assigned_ticket_and_a_disposition(
        client, agent, contact, auth_headers):
    ana = agent("ana")
    headers = auth_headers(user=ana)
    item = contact("benefits")
    ticket = db.session.get(Ticket, item.ticket_id)
    url = f"/api/v1/tickets/{ticket.reference}/complete"
    waiting = client.post(url, json={"disposition": "answered"}, headers=headers)
    assert waiting.status_code == 409 and waiting.json["error"]["code"] == "not_assigned"
    assert client.post(url, json={}, headers=headers).status_code == 400
    _available(client, headers)
    [offer] = _offers(ana.id)
    client.post(f"/api/v1/offers/{offer.id}/accept", headers=headers)
    other = client.post(url, json={"disposition": "answered"}, headers=auth_headers("agent"))
    assert other.status_code == 403
    done = client.post(url, json={"disposition": "answered", "note": "Explained SNAP renewal"},
                       headers=headers)
    assert done.status_code == 200 and done.json["disposition"] == "answered"
    db.session.expire_all()
    row = db.session.get(WorkItem, item.id)
    assert row.status == "completed" and row.outcome == "resolved" and row.ended_at


def test_queue_items_show_order_and_waits(client, agent, contact, auth_headers):
    first = contact("benefits")
    urgent = contact("benefits", priority=1)
    contact("housing")
    r = client.get("/api/v1/queues/benefits/items", headers=auth_headers("agent"))
    assert r.status_code == 200
    assert r.json["waiting"] == 2
    assert [i["work_item_id"] for i in r.json["items"]] == [urgent.id, first.id]
    assert [i["position"] for i in r.json["items"]] == [1, 2]
    # The urgent item is served first although the other one has waited longer.
    waits = [i["wait_seconds"] for i in r.json["items"]]
    assert 0 <= waits[0] <= waits[1]
    assert r.json["items"][0]["reference"].startswith("CL-")
    missing = client.get("/api/v1/queues/nope/items", headers=auth_headers("agent"))
    assert missing.status_code == 404


def test_ticket_resolved_elsewhere_frees_the_agent(client, agent, contact, auth_headers):
    ana = agent("ana", capacity={"chat": 1})
    headers = auth_headers(user=ana)
    _available(client, headers)
    item = contact("benefits")
    waiting = contact("benefits")
    [offer] = _offers(ana.id)
    client.post(f"/api/v1/offers/{offer.id}/accept", headers=headers)
    ticket = db.session.get(Ticket, item.ticket_id)
    ticket.status = "resolved"
    db.session.commit()
    routing_service.route(None)
    db.session.expire_all()
    assert db.session.get(WorkItem, item.id).outcome == "closed"
    [offer] = _offers(ana.id)
    assert offer.work_item_id == waiting.id


def test_reach_explains_the_reply_channel(client, app, auth_headers):
    citizen = Citizen(display_name="Pat Kim", language="en", segment="senior")
    db.session.add(citizen)
    db.session.flush()
    db.session.add_all([
        ContactPoint(citizen_id=citizen.id, kind="phone", value="+15555550125", verified=True),
        ContactPoint(citizen_id=citizen.id, kind="email", value="pat@example.org"),
        ChannelProfile(citizen_id=citizen.id, preferred_channels=["voice", "sms", "email"],
                       accessibility=["deaf"]),
    ])
    db.session.commit()
    r = client.get(f"/api/v1/citizens/{citizen.id}/reach", headers=auth_headers("agent"))
    assert r.status_code == 200
    assert r.json["channel"] == "sms" and r.json["address"] == "+15555550125"
    assert "voice skipped: resident is deaf" in r.json["reason"]
    assert [f["channel"] for f in r.json["fallbacks"]] == ["email"]
    assert client.get("/api/v1/citizens/999/reach",
                      headers=auth_headers("agent")).status_code == 404

    from app.services import reach

    fallback = reach.choose_channel(citizen.id, exclude={"sms"})
    assert fallback.channel == "email" and "sms already tried" in fallback.reason


def test_work_in_a_language_nobody_speaks_waits_and_goes_out_with_an_interpreter(
        client, agent, contact, auth_headers, caplog):
    """Nobody online knows the item's language: it is not refused or left aside; it waits
    in its queue (its clock running) and is offered with an interpreter to the first
    agent who can take the topic."""
    with caplog.at_level("WARNING", logger="app.services.routing_service"):
        item = contact(language="so")
        routing_service.route(None)
    assert not [r for r in caplog.records if "cannot be routed" in r.getMessage()]
    row = db.session.get(WorkItem, item.id)
    assert row.status == "waiting" and row.queued_at is not None

    ana = agent("ana", languages={"en": 5})
    _available(client, auth_headers(user=ana))
    offers = _offers(ana.id)
    assert [o.work_item_id for o in offers] == [item.id]


def test_a_routing_step_reads_no_ticket_per_item_it_takes_in(contact):
    """A burst of arrivals is taken in by one step; the items' new routing state counts
    nothing in the metrics, so the step reads none of their tickets."""
    items = [contact("benefits", route=False) for _ in range(12)]
    db.session.expire_all()
    reads = []

    def record(_conn, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith("SELECT") and " tickets" in statement:
            reads.append(statement)

    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        routing_service.route(items[0].id)
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)
    db.session.expire_all()
    assert all(db.session.get(WorkItem, i.id).queued_at is not None for i in items)
    assert len(reads) <= 2, reads
