"""Walk-ins: kiosk check-in, numbering per service per day, desk calls, the board, texts."""

from __future__ import annotations

import threading
from datetime import date, timedelta

import pytest
import socketio as sio
import sqlalchemy as sa

from app.extensions import db
from app.models import (
    AgentSkill,
    ContactPoint,
    Counter,
    Outbox,
    Queue,
    Skill,
    Ticket,
    WalkInVisit,
)


@pytest.fixture
def lines(app):
    """Two walk-in service lines open all day, and one line closed to walk-ins."""
    housing = Queue(code="housing", name="Housing help", walkin_prefix="H",
                    channels=["walkin", "sms"], overflow={"relax_after": 600})
    benefits = Queue(code="benefits", name="Food and cash benefits", walkin_prefix="B",
                     channels=["walkin"])
    streets = Queue(code="streets", name="Potholes", walkin_prefix=None, channels=["sms"])
    db.session.add_all([housing, benefits, streets])
    db.session.commit()
    return {"housing": housing, "benefits": benefits, "streets": streets}


@pytest.fixture
def desk_agent(make_user, auth_headers):
    """``desk_agent(email, desk, languages, topics)`` -> (user, headers)."""

    def _skill(kind, code):
        skill = db.session.scalar(sa.select(Skill).where(Skill.kind == kind, Skill.code == code))
        if skill is None:
            skill = Skill(kind=kind, code=code, name=code)
            db.session.add(skill)
            db.session.flush()
        return skill

    def _make(email, desk, languages, topics):
        user = make_user(email=email, desk=desk)
        for kind, codes in (("language", languages), ("topic", topics)):
            for code in codes:
                db.session.add(AgentSkill(agent_id=user.id, skill_id=_skill(kind, code).id))
        db.session.commit()
        return user, auth_headers(user=user)

    return _make


def _check_in(client, **body):
    return client.post("/api/v1/walkins", json=body)


def test_numbers_per_service_line_restart_daily(app, client, lines):
    first = _check_in(client, queue="housing", language="zh")
    assert first.status_code == 201
    body = first.get_json()
    assert body["number"] == "H-001" and body["people_ahead"] == 0
    assert body["estimated_wait_seconds"] == 0 and body["ticket_reference"].startswith("CL-")
    assert _check_in(client, queue="housing").get_json()["number"] == "H-002"
    assert _check_in(client, queue="benefits").get_json()["number"] == "B-001"
    third = _check_in(client, queue="housing").get_json()
    assert third["number"] == "H-003" and third["people_ahead"] == 2
    assert third["estimated_wait_seconds"] == 600  # two ahead x 5 minutes before any is done
    from app.walkins import service_day

    today = service_day()
    names = set(db.session.scalars(sa.select(Counter.name)))
    assert names == {f"walkin:housing:{today}", f"walkin:benefits:{today}"}
    # A new day starts at 001 again.
    from app.walkins import next_number

    assert next_number(lines["housing"], today + timedelta(days=1)) == "H-001"
    assert next_number(lines["housing"], today) == "H-004"
    visit = db.session.scalar(sa.select(WalkInVisit).where(WalkInVisit.number == "H-001"))
    ticket = db.session.get(Ticket, visit.ticket_id)
    assert ticket.channel == "walkin" and visit.language == "zh" and visit.service_day == today
    assert isinstance(visit.service_day, date)


def test_repeated_check_in_is_not_duplicated(app, client, lines):
    a = _check_in(client, queue="housing", client_id="tap-1", phone="555-555-0142")
    b = _check_in(client, queue="housing", client_id="tap-1", phone="555-555-0142")
    assert a.status_code == 201 and b.status_code == 200
    assert a.get_json()["number"] == b.get_json()["number"] == "H-001"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(WalkInVisit)) == 1
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Ticket)) == 1


def test_bad_check_ins_get_clear_errors(app, client, lines):
    unknown = _check_in(client, queue="dragons")
    assert unknown.status_code == 404
    assert unknown.get_json()["error"]["code"] == "unknown_service"
    closed = _check_in(client, queue="streets")
    assert closed.status_code == 409 and closed.get_json()["error"]["code"] == "service_closed"
    lines["benefits"].active = False
    db.session.commit()
    assert _check_in(client, queue="benefits").status_code == 409
    lines["housing"].business_hours = {"weekly": [{"days": [], "open": "08:00",
                                                   "close": "09:00", "tz": "UTC"}]}
    db.session.commit()
    after_hours = _check_in(client, queue="housing")
    assert after_hours.status_code == 409 and "closed now" in after_hours.get_json()["error"][
        "message"]
    lines["housing"].business_hours = {}
    db.session.commit()
    phone = _check_in(client, queue="housing", phone="call me")
    assert phone.status_code == 400 and phone.get_json()["error"]["code"] == "invalid_phone"
    lang = _check_in(client, queue="housing", language="Chinese!")
    assert lang.status_code == 400 and lang.get_json()["error"]["code"] == "invalid_language"
    missing = client.post("/api/v1/walkins", json={})
    assert missing.status_code == 400 and missing.get_json()["error"]["code"] == "bad_request"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(WalkInVisit)) == 0


def test_next_visitor_by_language_and_topic_skills(app, client, lines, desk_agent):
    _check_in(client, queue="housing", language="en")          # H-001
    _check_in(client, queue="housing", language="zh")          # H-002
    _check_in(client, queue="benefits", language="es")         # B-001
    ben, ben_h = desk_agent("ben@example.org", "2", ["en"], ["housing"])
    li, li_h = desk_agent("li@example.org", "3", ["en", "zh"], ["housing"])
    ana, ana_h = desk_agent("ana@example.org", "1", ["es"], ["benefits"])
    # Li speaks Chinese: still first come, first served among those she can serve.
    first = client.post("/api/v1/walkins/next", json={}, headers=li_h).get_json()
    assert first["visit"]["number"] == "H-001" and first["message"] == "H-001 → desk 3"
    # Ben does not speak Chinese: H-002 waits for a Chinese-speaking desk.
    none = client.post("/api/v1/walkins/next", json={"desk": "2"}, headers=ben_h).get_json()
    assert none["visit"] is None
    second = client.post("/api/v1/walkins/next", json={}, headers=li_h).get_json()
    assert second["visit"]["number"] == "H-002" and second["visit"]["desk"] == "3"
    # Topic skills: Ana serves benefits only.
    third = client.post("/api/v1/walkins/next", json={}, headers=ana_h).get_json()
    assert third["visit"]["number"] == "B-001"
    visit = db.session.scalar(sa.select(WalkInVisit).where(WalkInVisit.number == "H-002"))
    assert visit.agent_id == li.id and visit.status == "called"
    assert db.session.get(Ticket, visit.ticket_id).assigned_agent_id == li.id


def test_a_visitor_nobody_speaks_to_is_called_after_the_relax_time(app, client, lines,
                                                                  desk_agent):
    _check_in(client, queue="housing", language="zh")
    _, ben_h = desk_agent("ben@example.org", "2", ["en"], ["housing"])
    assert client.post("/api/v1/walkins/next", json={}, headers=ben_h).get_json()["visit"] is None
    visit = db.session.scalar(sa.select(WalkInVisit))
    visit.created_at -= timedelta(seconds=601)
    db.session.commit()
    called = client.post("/api/v1/walkins/next", json={}, headers=ben_h).get_json()
    assert called["visit"]["number"] == "H-001"


def test_desk_is_required_and_agents_only(app, client, lines, auth_headers):
    _check_in(client, queue="housing")
    assert client.post("/api/v1/walkins/next", json={}).status_code == 401
    no_desk = client.post("/api/v1/walkins/next", json={}, headers=auth_headers())
    assert no_desk.status_code == 400 and no_desk.get_json()["error"]["code"] == "desk_required"
    assert client.get("/api/v1/walkins?queue=housing").status_code == 401


def test_text_when_two_are_ahead_respecting_opt_outs(app, client, lines, desk_agent):
    for _ in range(3):
        _check_in(client, queue="housing")                      # H-001..H-003
    _check_in(client, queue="housing", phone="555-555-0150")    # H-004: 3 ahead
    _check_in(client, queue="housing", phone="555-555-0151")    # H-005: 4 ahead
    opted = db.session.scalar(sa.select(ContactPoint).where(ContactPoint.value == "+15555550151"))
    opted.opted_out = True
    db.session.commit()
    _, h = desk_agent("li@example.org", "3", ["en"], ["housing"])
    client.post("/api/v1/walkins/next", json={}, headers=h)      # H-001 called: H-004 has 2 ahead
    rows = db.session.scalars(sa.select(Outbox).where(Outbox.channel == "sms")).all()
    assert len(rows) == 1 and rows[0].to_address == "+15555550150"
    from app.models import Interaction

    assert "2 people are ahead" in db.session.get(Interaction, rows[0].interaction_id).text
    client.post("/api/v1/walkins/next", json={}, headers=h)      # H-004 has 1 ahead: no 2nd text
    client.post("/api/v1/walkins/next", json={}, headers=h)      # H-005 (opted out) has 2 ahead
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Outbox)) == 1
    listed = client.get("/api/v1/walkins?queue=housing&status=waiting", headers=h).get_json()
    assert [(v["number"], v["people_ahead"]) for v in listed["items"]] == [("H-004", 0),
                                                                          ("H-005", 1)]
    assert listed["items"][1]["estimated_wait_seconds"] == 300
    assert "phone" not in listed["items"][0]
    assert client.get("/api/v1/walkins?queue=nope", headers=h).status_code == 404


def test_recall_once_then_missed_and_done(app, client, lines, desk_agent):
    _check_in(client, queue="housing")
    _check_in(client, queue="housing")
    _, h = desk_agent("li@example.org", "3", ["en"], ["housing"])
    first = client.post("/api/v1/walkins/next", json={}, headers=h).get_json()["visit"]
    early = client.post(f"/api/v1/walkins/{first['id']}/missed", headers=h)
    assert early.status_code == 409 and early.get_json()["error"]["code"] == "recall_first"
    recalled = client.post(f"/api/v1/walkins/{first['id']}/recall", headers=h)
    assert recalled.status_code == 200 and recalled.get_json()["recalls"] == 1
    twice = client.post(f"/api/v1/walkins/{first['id']}/recall", headers=h)
    assert twice.status_code == 409 and twice.get_json()["error"]["code"] == "already_recalled"
    missed = client.post(f"/api/v1/walkins/{first['id']}/missed", headers=h).get_json()
    assert missed["status"] == "missed"
    ticket = db.session.scalar(sa.select(Ticket).where(Ticket.id == db.session.get(
        WalkInVisit, first["id"]).ticket_id))
    assert ticket.status == "resolved" and ticket.disposition == "no_show"
    second = client.post("/api/v1/walkins/next", json={}, headers=h).get_json()["visit"]
    done = client.post(f"/api/v1/walkins/{second['id']}/done", headers=h).get_json()
    assert done["status"] == "done"
    again = client.post(f"/api/v1/walkins/{second['id']}/done", headers=h)
    assert again.status_code == 409 and again.get_json()["error"]["code"] == "not_called"
    assert client.post("/api/v1/walkins/9999/done", headers=h).status_code == 404


def test_board_shows_now_serving_live(app, live_server, client, lines, desk_agent):
    _check_in(client, queue="housing", language="zh")
    _, h = desk_agent("li@example.org", "3", ["zh"], ["housing"])
    got = threading.Event()
    events: list[dict] = []
    board = sio.Client(reconnection=False)

    @board.on("board.called", namespace="/board")
    def _called(data):
        events.append(data)
        got.set()

    board.connect(live_server, namespaces=["/board"], transports=["websocket"], wait_timeout=10)
    try:
        assert board.call("board.state", {}, namespace="/board")["serving"] == []
        client.post("/api/v1/walkins/next", json={}, headers=h)
        assert got.wait(10), "no board event"
        assert events[0]["number"] == "H-001" and events[0]["desk"] == "3"
        assert events[0]["service"] == "Housing help" and events[0]["recall"] is False
        state = board.call("board.state", {}, namespace="/board")
        assert [(s["number"], s["desk"]) for s in state["serving"]] == [("H-001", "3")]
    finally:
        board.disconnect()
    page = client.get("/board")
    assert page.status_code == 200 and b"H-001" in page.data
    assert client.get("/api/v1/walkins/board").get_json()["serving"][0]["desk"] == "3"
