"""Supervisor metrics are counted per event and read back by the snapshot and reports."""

from __future__ import annotations

import sqlalchemy as sa

from app.auth import issue_token
from app.extensions import db
from app.models import Interaction, MetricsHourly, Queue, SurveyResponse, Ticket, User, WorkItem
from app.services.intake import intake
from channels.base import InboundMessage

MARIA = "+15555550123"


def _headers(email: str) -> dict[str, str]:
    user = db.session.scalar(sa.select(User).where(User.email == email))
    return {"Authorization": "Bearer " + issue_token(user)}


def _sms(sid: str, text: str, sender: str = MARIA):
    return intake(InboundMessage(channel="sms", provider_id=sid, sender=sender, text=text))


def _counter(name: str, **where) -> int:
    stmt = sa.select(sa.func.coalesce(sa.func.sum(getattr(MetricsHourly, name)), 0))
    for key, value in where.items():
        stmt = stmt.where(getattr(MetricsHourly, key) == value)
    return int(db.session.scalar(stmt))


def test_sms_case_is_counted_from_arrival_to_survey(seeded, client, run_jobs):
    """Scenario 1 end to end through the API: offer, accept, reply, wrap-up, survey."""
    agent = _headers("ana@civicline.example")
    supervisor = _headers("supervisor@civicline.example")
    assert client.put("/api/v1/agents/me/presence", json={"presence": "available"},
                      headers=agent).status_code == 200
    first = _sms("SMtest1", "I need help with my food benefits card")
    run_jobs()
    _sms("SMtest2", "AGENT")
    run_jobs()

    state = client.get("/api/v1/console/state", headers=agent).get_json()
    assert [o["ticket"]["id"] for o in state["offers"]] == [first.ticket_id]
    offer = state["offers"][0]
    assert 0 < offer["expires_in"] <= 120
    assert client.post(f"/api/v1/offers/{offer['id']}/accept", headers=agent).status_code == 200
    state = client.get("/api/v1/console/state", headers=agent).get_json()
    assert [t["id"] for t in state["tickets"]] == [first.ticket_id]

    reply = client.post(f"/api/v1/tickets/{first.ticket_id}/reply", headers=agent,
                        json={"text": "Your new card is in the mail."})
    assert reply.status_code == 201
    done = client.post(f"/api/v1/tickets/{first.ticket_id}/complete", headers=agent,
                       json={"disposition": "answered"})
    assert done.status_code == 200, done.get_json()
    run_jobs()

    asked = [i for i in db.session.scalars(sa.select(Interaction).where(
        Interaction.ticket_id == first.ticket_id, Interaction.author_kind == "system"))
        if (i.meta or {}).get("survey")]
    assert len(asked) == 1
    survey = asked[0]
    assert "Reply 1 (poor) to 5" in survey.text
    assert survey.meta["survey"]["scale"] == [1, 2, 3, 4, 5]

    _sms("SMtest3", "5 thanks!")
    run_jobs()
    db.session.expire_all()
    ticket = db.session.get(Ticket, first.ticket_id)
    assert ticket.satisfaction == 5 and ticket.status == "resolved"
    response = db.session.scalar(sa.select(SurveyResponse))
    assert (response.channel, response.score, response.comment) == ("sms", 5, "thanks!")
    # The score did not open a case for an agent.
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Ticket).where(
        Ticket.status.in_(("new", "open")))) == 0

    assert _counter("offered", channel="sms") == 1
    # The benefits article answered the first text: the case waited in benefits.
    assert _counter("answered", channel="sms", queue="benefits") == 1
    assert _counter("answered_in_sla") == 1
    assert _counter("resolved") == 1 and _counter("resolved_first_contact") == 1
    assert _counter("surveys") == 1 and _counter("survey_points") == 100
    assert _counter("tickets") == 1 and _counter("escalated") == 1
    assert _counter("contacts", channel="sms") == 2  # the survey answer is not a contact

    snap = client.get("/api/v1/supervisor/snapshot", headers=supervisor).get_json()
    benefits = next(q for q in snap["queues"] if q["queue"] == "benefits")
    assert benefits["answered"] == 1 and benefits["service_level_pct"] == 100.0
    assert benefits["waiting"] == 0 and benefits["abandoned"] == 0
    assert benefits["aht_seconds"] is not None and benefits["sla_target_seconds"] == 60
    assert snap["totals"]["answered"] == 1 and snap["presence"]["available"] == 1
    sat = client.get("/api/v1/reports/satisfaction", headers=supervisor).get_json()
    assert {"dimension": "channel", "value": "sms", "surveys": 1,
            "satisfaction_index": 100.0} in sat["rows"]
    fcr = client.get("/api/v1/reports/fcr", headers=supervisor).get_json()
    assert fcr["total"] == {"resolved": 1, "resolved_first_contact": 1, "fcr_pct": 100.0}


def test_a_follow_up_queues_the_ticket_and_counts_its_first_item_as_escalated(seeded, run_jobs):
    """A text that needs a person gets a work item in the ticket's queue, counted as
    offered under the item's queue and channel; only the ticket's first item counts as
    escalated (one case handed to people), however often it comes back to the queue."""
    first = _sms("SMqueue1", "Xyzzy plugh frobozz")  # no article answers this
    run_jobs()
    db.session.expire_all()
    item = db.session.scalar(sa.select(WorkItem).where(WorkItem.ticket_id == first.ticket_id))
    ticket = db.session.get(Ticket, first.ticket_id)
    queue = db.session.get(Queue, item.queue_id)
    assert (item.status, item.channel, item.priority) == ("waiting", "sms", ticket.priority)
    assert ticket.queue_id == item.queue_id and item.topic in (ticket.topic, queue.code)
    assert item.commitments == [] and item.overflow_stage == 0 and not item.sla_breached
    assert _counter("offered", channel="sms", queue=queue.code) == 1
    assert _counter("escalated") == 1

    item.status, item.outcome = "abandoned", "abandoned"  # the resident gave up waiting
    db.session.commit()
    _sms("SMqueue2", "Frobozz plugh xyzzy")
    run_jobs()
    db.session.expire_all()
    items = db.session.scalars(sa.select(WorkItem).where(
        WorkItem.ticket_id == first.ticket_id).order_by(WorkItem.id)).all()
    assert [i.status for i in items][0] == "abandoned" and len(items) == 2
    assert _counter("offered", channel="sms") == 2 and _counter("escalated") == 1


def test_waiting_work_shows_live_and_abandonment_is_not_a_callback(seeded, client, run_jobs):
    supervisor = _headers("supervisor@civicline.example")
    _sms("SMw1", "AGENT", sender="+15555550999")
    run_jobs()
    snap = client.get("/api/v1/supervisor/snapshot", headers=supervisor).get_json()
    assert snap["totals"]["waiting"] == 1
    sms = next(c for c in snap["channels"] if c["channel"] == "sms")
    from app.models import WorkItem, utcnow

    items = db.session.scalars(sa.select(WorkItem)).all()
    assert len(items) == 1
    waited = (utcnow() - items[0].arrived_at).total_seconds()
    assert sms["waiting"] == 1 and 0 <= sms["longest_wait_seconds"] <= waited + 1
    items[0].status, items[0].outcome, items[0].ended_at = "abandoned", "abandoned", utcnow()
    db.session.commit()
    _sms("SMw2", "AGENT", sender="+15555550998")
    run_jobs()
    item = db.session.scalar(sa.select(WorkItem).where(WorkItem.status == "waiting"))
    item.status = "scheduled"
    db.session.commit()

    snap = client.get("/api/v1/supervisor/snapshot", headers=supervisor).get_json()
    assert snap["totals"]["abandoned"] == 1 and snap["totals"]["callbacks"] == 1
    assert snap["totals"]["abandonment_pct"] == 100.0  # 1 abandoned, 0 answered
    assert snap["totals"]["waiting"] == 0


def test_reports_answer_json_and_csv_for_supervisors_only(seeded, client, auth_headers):
    _sms("SMr1", "hello", sender="+15555550777")
    agent = auth_headers("agent")
    supervisor = auth_headers("supervisor")
    listing = client.get("/api/v1/reports", headers=supervisor).get_json()["items"]
    names = [r["name"] for r in listing]
    assert names == ["volume", "fcr", "satisfaction", "deflection", "equity"]
    for name in names:
        assert client.get(f"/api/v1/reports/{name}", headers=agent).status_code == 403
        assert client.get(f"/api/v1/reports/{name}.csv", headers=agent).status_code == 403
        data = client.get(f"/api/v1/reports/{name}?days=2", headers=supervisor)
        assert data.status_code == 200 and data.get_json()["name"] == name
        csv = client.get(f"/api/v1/reports/{name}.csv?days=2", headers=supervisor)
        assert csv.status_code == 200 and csv.mimetype == "text/csv"
        assert csv.data.decode().splitlines()[0] == ",".join(data.get_json()["columns"])
    volume = client.get("/api/v1/reports/volume", headers=supervisor).get_json()
    assert volume["by_channel"] == {"sms": 1}
    assert sum(r["sms"] for r in volume["by_hour"]) == 1
    assert client.get("/api/v1/reports/nope", headers=supervisor).status_code == 404
    bad = client.get("/api/v1/reports/volume?from=2026-13-01", headers=supervisor)
    assert bad.status_code == 400
    last_day = client.get("/api/v1/reports/volume?from=2026-01-01&to=9999-12-31",
                          headers=supervisor)
    assert last_day.status_code == 400 and last_day.json["error"]["code"] == "invalid_date"
    assert client.get("/api/v1/supervisor/snapshot", headers=agent).status_code == 403


def test_equity_report_flags_a_group_that_waits_longer(seeded, client, auth_headers):
    from datetime import timedelta

    from app.models import utcnow
    from app.services import metrics_service

    hour = metrics_service.hour_of(utcnow() - timedelta(hours=1))
    rows = {("sms", "en"): (20, 20 * 30), ("voice", "en"): (20, 20 * 40),
            ("voice", "es"): (10, 10 * 120)}
    metrics_service.apply(db.session.connection(), {
        (hour, "benefits", channel, lang, "working_adult"): {"answered": n, "wait_sum": total}
        for (channel, lang), (n, total) in rows.items()})
    db.session.commit()
    report = client.get("/api/v1/reports/equity?days=1",
                        headers=auth_headers("supervisor")).get_json()
    by = {(r["dimension"], r["value"]): r for r in report["rows"]}
    assert by[("language", "es")]["flagged"] is True
    assert by[("language", "es")]["avg_wait_seconds"] == 120.0
    assert by[("language", "en")]["flagged"] is False
    assert report["overall"]["avg_wait_seconds"] == 52.0


def test_audit_log_is_for_supervisors_and_records_citizen_reads(seeded, client, auth_headers):
    result = _sms("SMa1", "hello")
    agent_user = db.session.scalar(sa.select(User).where(User.email == "ana@civicline.example"))
    agent = {"Authorization": "Bearer " + issue_token(agent_user)}
    assert client.get(f"/api/v1/tickets/{result.ticket_id}", headers=agent).status_code == 200
    assert client.get("/api/v1/audit", headers=agent).status_code == 403
    supervisor = auth_headers("supervisor")
    items = client.get("/api/v1/audit?action=citizen.read", headers=supervisor).get_json()["items"]
    assert items[0]["actor"] == "ana@civicline.example"
    assert items[0]["object_id"] == str(result.citizen_id)


def test_supervisor_changes_presence_and_reassigns(seeded, client, run_jobs):
    supervisor = _headers("supervisor@civicline.example")
    ana = db.session.scalar(sa.select(User).where(User.email == "ana@civicline.example"))
    li = db.session.scalar(sa.select(User).where(User.email == "li@civicline.example"))
    for user in (ana, li):
        res = client.put(f"/api/v1/supervisor/agents/{user.id}/presence",
                         json={"presence": "available"}, headers=supervisor)
        assert res.status_code == 200 and res.get_json()["presence"] == "available"
    assert client.put(f"/api/v1/supervisor/agents/{ana.id}/presence", json={"presence": "x"},
                      headers=supervisor).status_code == 400
    ticket = _sms("SMs1", "AGENT", sender="+15555550888")
    run_jobs()
    offers = client.get("/api/v1/console/state", headers=_headers("ana@civicline.example"))
    offers = offers.get_json()["offers"] + client.get(
        "/api/v1/console/state", headers=_headers("li@civicline.example")).get_json()["offers"]
    assert len(offers) == 1
    holder = offers[0]
    owner = ana if holder["id"] in [o["id"] for o in client.get(
        "/api/v1/console/state", headers=_headers("ana@civicline.example")).get_json()["offers"]
    ] else li
    client.post(f"/api/v1/offers/{holder['id']}/accept",
                headers={"Authorization": "Bearer " + issue_token(owner)})
    other = li if owner is ana else ana
    res = client.post(f"/api/v1/supervisor/tickets/{ticket.ticket_id}/assign",
                      json={"agent_id": other.id}, headers=supervisor)
    assert res.status_code == 200, res.get_json()
    audit = client.get("/api/v1/audit?action=ticket.reassign", headers=supervisor).get_json()
    assert audit["items"][0]["detail"]["to"] == other.id
    snap = client.get("/api/v1/supervisor/snapshot", headers=supervisor).get_json()
    assert {a["name"] for a in snap["agents"]} >= {"Ana Reyes", "Li Wei"}


def test_waiting_work_is_summed_per_queue_and_channel_with_each_queues_target(app):
    """Waits are judged against their own queue's target: 61 s breaches a 60 s target,
    not a 600 s one; the longest wait and the counts add up per queue and per channel."""
    from datetime import timedelta

    from app.models import Citizen, Queue, WorkItem, utcnow
    from app.services import metrics_service

    fast = Queue(code="fast", name="Fast", sla_target_seconds=60)
    slow = Queue(code="slow", name="Slow", sla_target_seconds=600)
    citizen = Citizen(display_name="Resident")
    db.session.add_all([fast, slow, citizen])
    db.session.flush()
    now = utcnow()
    for queue, channel, waited in ((fast, "sms", 61), (fast, "sms", 59), (fast, "chat", 5),
                                   (slow, "sms", 61), (slow, "email", 700)):
        ticket = Ticket(citizen_id=citizen.id, channel=channel, queue_id=queue.id)
        db.session.add(ticket)
        db.session.flush()
        db.session.add(WorkItem(ticket_id=ticket.id, queue_id=queue.id, channel=channel,
                                status="waiting", arrived_at=now - timedelta(seconds=waited)))
    db.session.commit()

    snap = metrics_service.live_snapshot(now)
    queues = {q["queue"]: q for q in snap["queues"]}
    assert (queues["fast"]["waiting"], queues["fast"]["longest_wait_seconds"],
            queues["fast"]["sla_breaches"]) == (3, 61, 1)
    assert (queues["slow"]["waiting"], queues["slow"]["longest_wait_seconds"],
            queues["slow"]["sla_breaches"]) == (2, 700, 1)
    channels = {c["channel"]: c for c in snap["channels"]}
    assert (channels["sms"]["waiting"], channels["sms"]["longest_wait_seconds"]) == (3, 61)
    assert channels["sms"]["sla_breaches"] == 1  # the fast queue's 61 s, not the slow one's
    assert snap["totals"]["waiting"] == 5 and snap["totals"]["longest_wait_seconds"] == 700
    assert snap["totals"]["sla_breaches"] == 2


def test_refreshes_within_the_snapshot_age_share_one_snapshot(seeded, client, run_jobs, app):
    """A room of supervisors and wallboards refreshing at once costs one computation per
    ``SUPERVISOR_SNAPSHOT_MAX_AGE``; once it is older than that, the next refresh shows
    what changed."""
    import time

    app.config["SUPERVISOR_SNAPSHOT_MAX_AGE"] = 60
    supervisor = _headers("supervisor@civicline.example")
    first = client.get("/api/v1/supervisor/snapshot", headers=supervisor).get_json()
    assert first["totals"]["waiting"] == 0
    _sms("SMage1", "AGENT", sender="+15555550444")
    run_jobs()
    again = client.get("/api/v1/supervisor/snapshot", headers=supervisor).get_json()
    assert again == first  # the same snapshot, taken at the same moment
    app.config["SUPERVISOR_SNAPSHOT_MAX_AGE"] = 0.2
    time.sleep(0.3)
    fresh = client.get("/api/v1/supervisor/snapshot", headers=supervisor).get_json()
    assert fresh["totals"]["waiting"] == 1 and fresh["at"] > first["at"]
