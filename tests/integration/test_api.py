"""REST API: auth, roles, tickets with pagination and timeline, citizens, merges, errors."""

from __future__ import annotations

import sqlalchemy as sa

from app.extensions import db
from app.models import AuditLog, Citizen
from app.services.intake import intake
from channels.base import InboundMessage


def sms(sid, sender, text="hi"):
    return intake(InboundMessage(channel="sms", provider_id=sid, sender=sender, text=text),
                  follow_up=False)


def test_token_flow_and_bad_credentials(client, make_user):
    make_user(email="ana@example.org", password="s3cret-pass")
    ok = client.post("/api/v1/auth/token", json={"email": "ana@example.org",
                                                  "password": "s3cret-pass"})
    assert ok.status_code == 200 and ok.json["token"]
    bad = client.post("/api/v1/auth/token", json={"email": "ana@example.org", "password": "no"})
    assert bad.status_code == 401 and bad.json["error"]["code"] == "invalid_credentials"
    missing = client.post("/api/v1/auth/token", json={"email": "ana@example.org"})
    assert missing.status_code == 400 and "password" in str(missing.json["error"])
    garbage = client.post("/api/v1/auth/token", data="{not json",
                          headers={"Content-Type": "application/json"})
    assert garbage.status_code == 400 and "error" in garbage.json
    token = ok.json["token"]
    me = client.get("/api/v1/tickets", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200


def test_missing_bad_and_revoked_tokens_are_refused(client, make_user):
    from app.auth import issue_token

    assert client.get("/api/v1/tickets").status_code == 401
    r = client.get("/api/v1/tickets", headers={"Authorization": "Bearer forged"})
    assert r.status_code == 401 and r.json["error"]["code"] == "unauthorized"
    user = make_user()
    token = issue_token(user)
    user.token_version += 1
    db.session.commit()
    assert client.get("/api/v1/tickets",
                      headers={"Authorization": f"Bearer {token}"}).status_code == 401


def test_a_token_s_user_is_read_fresh_and_works_as_loaded(app, client, make_user):
    """Each request reads its user afresh (on PostgreSQL by one autocommitted statement)
    into the request's session: the user is persistent and clean, its skills load when
    used, a change to it is saved, and a deactivation is refused on the next request."""
    from app.auth import issue_token, user_from_token
    from app.models import User

    user = make_user(email="sam@example.org", role="supervisor")
    token, uid = issue_token(user), user.id
    db.session.remove()
    with app.test_request_context():
        loaded = user_from_token(token)
        assert loaded.id == uid and loaded.email == "sam@example.org"
        assert sa.inspect(loaded).persistent and not db.session.dirty and not db.session.new
        assert loaded.has_role("supervisor") and loaded.skills == []
        loaded.presence = "available"
        db.session.commit()
        assert user_from_token(token) is loaded  # one instance per session
    db.session.remove()
    assert db.session.get(User, uid).presence == "available"
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/agents", headers=headers).status_code == 200
    db.session.get(User, uid).active = False
    db.session.commit()
    assert client.get("/api/v1/agents", headers=headers).status_code == 401
    assert user_from_token(issue_token(db.session.get(User, uid))) is None


def test_roles_are_enforced(client, auth_headers):
    assert client.get("/api/v1/agents", headers=auth_headers("agent")).status_code == 403
    assert client.get("/api/v1/agents", headers=auth_headers("supervisor")).status_code == 200
    assert client.get("/api/v1/citizens/merges",
                      headers=auth_headers("admin")).status_code == 200


def test_ticket_list_filters_and_cursor_pagination(client, auth_headers):
    for i in range(5):
        sms(f"SM{i}", f"+1555555020{i}")
    headers = auth_headers()
    page1 = client.get("/api/v1/tickets?limit=2", headers=headers).json
    assert len(page1["items"]) == 2 and page1["next_cursor"]
    page2 = client.get(f"/api/v1/tickets?limit=2&cursor={page1['next_cursor']}",
                       headers=headers).json
    page3 = client.get(f"/api/v1/tickets?limit=2&cursor={page2['next_cursor']}",
                       headers=headers).json
    ids = [t["id"] for t in page1["items"] + page2["items"] + page3["items"]]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 5
    assert page3["next_cursor"] is None
    assert client.get("/api/v1/tickets?channel=email", headers=headers).json["items"] == []
    assert client.get("/api/v1/tickets?status=bogus", headers=headers).status_code == 400
    assert client.get("/api/v1/tickets?cursor=%%%", headers=headers).status_code == 400
    assert client.get("/api/v1/tickets?limit=abc", headers=headers).status_code == 400


def test_ticket_detail_shows_cross_channel_timeline_and_audits_the_read(client, auth_headers):
    first = sms("SM1", "+15555550300", "how do I renew my passport")
    intake(InboundMessage(channel="voice", provider_id="CA1", sender="+15555550300",
                          text="(call)"), follow_up=False)
    headers = auth_headers()
    by_ref = client.get(f"/api/v1/tickets/{first.ticket_reference}", headers=headers)
    assert by_ref.status_code == 200
    body = by_ref.json
    assert [i["channel"] for i in body["timeline"]] == ["sms", "voice"]
    assert body["citizen"]["contact_points"][0]["value"] == "+15555550300"
    assert db.session.scalar(sa.select(sa.func.count()).select_from(AuditLog)
                             .where(AuditLog.action == "citizen.read")) == 1
    missing = client.get("/api/v1/tickets/CL-2026-999999", headers=headers)
    assert missing.status_code == 404 and missing.json["error"]["code"] == "not_found"


def test_ticket_update_and_validation(client, auth_headers, seeded):
    t = sms("SM1", "+15555550301")
    headers = auth_headers()
    r = client.patch(f"/api/v1/tickets/{t.ticket_id}", json={"status": "resolved",
                                                              "queue": "benefits"},
                     headers=headers)
    assert r.status_code == 200 and r.json["status"] == "resolved" and r.json["queue"] == "benefits"
    r = client.patch(f"/api/v1/tickets/{t.ticket_id}", json={"queue": "nope"}, headers=headers)
    assert r.status_code == 400 and r.json["error"]["code"] == "unknown_queue"
    r = client.patch(f"/api/v1/tickets/{t.ticket_id}", json={"priority": "high"}, headers=headers)
    assert r.status_code == 400


def test_citizen_search_profile_edit_and_merge(client, auth_headers):
    a = sms("SM1", "+15555550400")
    b = intake(InboundMessage(channel="email", provider_id="<w@x>", sender="Work@Example.org",
                              subject="Question", text="hello"), follow_up=False)
    headers = auth_headers()
    found = client.get("/api/v1/citizens?phone=555-555-0400", headers=headers).json["items"]
    assert [c["id"] for c in found] == [a.citizen_id]
    assert client.get("/api/v1/citizens", headers=headers).status_code == 400
    assert client.get("/api/v1/citizens/999", headers=headers).status_code == 404

    r = client.patch(f"/api/v1/citizens/{a.citizen_id}/profile", headers=headers,
                     json={"preferred_channels": ["sms", "email"], "accessibility": ["deaf"]})
    assert r.status_code == 200 and r.json["accessibility"] == ["deaf"]
    r = client.patch(f"/api/v1/citizens/{a.citizen_id}/profile", headers=headers,
                     json={"preferred_channels": ["pigeon"]})
    assert r.status_code == 400
    r = client.patch(f"/api/v1/citizens/{a.citizen_id}/profile", headers=headers,
                     json={"language": "es-MX"})
    assert r.status_code == 200 and r.json["language"] == "es"
    for odd in ("es\u0000", "12", "=cmd"):
        r = client.patch(f"/api/v1/citizens/{a.citizen_id}/profile", headers=headers,
                         json={"language": odd})
        assert r.status_code == 400 and r.json["error"]["code"] == "invalid_language", odd

    r = client.post("/api/v1/citizens/merge", headers=headers,
                    json={"source_id": b.citizen_id, "target_id": a.citizen_id,
                          "reason": "same person"})
    assert r.status_code == 200
    merged = r.json
    assert {p["value"] for p in merged["contact_points"]} == {"+15555550400", "work@example.org"}
    tickets = client.get(f"/api/v1/tickets?citizen_id={a.citizen_id}", headers=headers).json
    assert {t["id"] for t in tickets["items"]} == {a.ticket_id, b.ticket_id}
    assert db.session.get(Citizen, b.citizen_id).merged_into_id == a.citizen_id
    # Later messages from the merged address land on the surviving citizen.
    later = intake(InboundMessage(channel="email", provider_id="<w2@x>",
                                  sender="work@example.org", text="hi again"), follow_up=False)
    assert later.citizen_id == a.citizen_id
    again = client.post("/api/v1/citizens/merge", headers=headers,
                        json={"source_id": b.citizen_id, "target_id": a.citizen_id})
    assert again.status_code == 400 and again.json["error"]["code"] == "already_merged"
    merges = client.get("/api/v1/citizens/merges", headers=auth_headers("supervisor")).json
    assert merges["items"][0]["detail"]["source_id"] == b.citizen_id


def test_openapi_document_describes_the_api(client):
    spec = client.get("/api/v1/openapi.json").json
    assert spec["openapi"].startswith("3.")
    for path in ("/api/v1/tickets", "/api/v1/tickets/{ref}", "/api/v1/citizens/merge",
                 "/api/v1/auth/token", "/api/v1/queues"):
        assert path in spec["paths"], path


def test_unknown_route_is_json_404(client):
    r = client.get("/api/v1/nothing-here")
    assert r.status_code == 404 and r.json["error"]["code"] == "not_found"
