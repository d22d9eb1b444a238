"""Route audit: every URL rule of the app, checked against an explicit allowlist.

Public are only the doors residents, providers and probes use; everything else answers
401 (API) or a redirect to the sign-in page (pages) to a caller without credentials, and
403 to a signed-in user whose role is too low. A new route that is not on the allowlist
and does not check credentials fails ``test_every_other_route_needs_credentials``.
"""

from __future__ import annotations

import re

import pytest

from app.auth import issue_token
from app.extensions import db
from tests.security.conftest import post_twilio, sign_in, sms_form

# (rule, method) -> why anyone may call it without signing in.
PUBLIC = {
    ("/", "GET"): "landing page with links to the demo pages",
    ("/login", "GET"): "sign-in form",
    ("/login", "POST"): "sign-in (CSRF token and rate limit)",
    ("/logout", "POST"): "sign-out (CSRF token)",
    ("/healthz", "GET"): "load balancer probe",
    ("/metrics", "GET"): "Prometheus scrape (aggregate counts only)",
    ("/api/v1/openapi.json", "GET"): "the API's OpenAPI document",
    ("/api/v1/docs", "GET"): "the API's documentation page",
    ("/docs/oauth2-redirect", "GET"): "part of the documentation page",
    ("/api/v1/auth/token", "POST"): "exchanges email and password for a token (rate limit)",
    ("/api/v1/walkins", "POST"): "kiosk check-in by a visitor (rate limit)",
    ("/api/v1/walkins/board", "GET"): "now-serving board for screens without a socket",
    ("/kiosk", "GET"): "lobby check-in kiosk",
    ("/board", "GET"): "lobby now-serving display",
    ("/chat-widget.js", "GET"): "the embeddable chat widget",
    ("/chat-demo", "GET"): "a page embedding the chat widget",
    ("/kb/<int:article_id>", "GET"): "published knowledge-base article",
    ("/kb/<int:article_id>/helpful", "GET"): "was-this-helpful link of an answer",
    ("/static/<path:filename>", "GET"): "static files",
    # The survey link's token is a signed capability naming one ticket (tested below).
    ("/survey/<token>", "GET"): "satisfaction survey link from an email",
    ("/survey/<token>", "POST"): "satisfaction survey answer",
}
# Only when SIMULATOR_ENABLED (off by default in production): 404 otherwise.
SIMULATOR = {
    ("/simulator", "GET"),
    ("/simulator/phone/messages", "GET"),
    ("/simulator/twilio/sign", "POST"),
    ("/simulator/email/send", "POST"),
    ("/simulator/email/messages", "GET"),
}
TWILIO_PREFIX = "/webhooks/twilio/"
EMAIL_WEBHOOK = ("/webhooks/email", "POST")
# Routes for more than the agent role; every other authenticated route admits agents.
SUPERVISOR = {
    ("/supervisor", "GET"),
    ("/api/v1/agents", "GET"),
    ("/api/v1/agents/<int:agent_id>/presence", "PUT"),
    ("/api/v1/audit", "GET"),
    ("/api/v1/citizens/<int:citizen_id>/export", "GET"),
    ("/api/v1/citizens/merges", "GET"),
    ("/api/v1/kb/articles", "POST"),
    ("/api/v1/kb/articles/<int:article_id>", "PATCH"),
    ("/api/v1/kb/articles/<int:article_id>", "DELETE"),
    ("/api/v1/kb/reports/deflection", "GET"),
    ("/api/v1/kb/reports/gaps", "GET"),
    ("/api/v1/reports", "GET"),
    ("/api/v1/reports/<name>", "GET"),
    ("/api/v1/reports/referrals", "GET"),
    ("/api/v1/supervisor/agents/<int:agent_id>/presence", "PUT"),
    ("/api/v1/supervisor/snapshot", "GET"),
    ("/api/v1/supervisor/tickets/<ref>/assign", "POST"),
}
ADMIN = {
    ("/api/v1/citizens/<int:citizen_id>/erase", "POST"),
    ("/api/v1/failed-payloads", "GET"),
}
SAMPLE_VALUES = {"int": "1", "path": "x.js", "default": "CL-2026-000001"}


def _routes(app) -> list[tuple[str, str]]:
    return sorted((rule.rule, method) for rule in app.url_map.iter_rules()
                  for method in rule.methods - {"HEAD", "OPTIONS"})


def _url(rule: str) -> str:
    def value(match: re.Match) -> str:
        converter = match.group(1) or "default"
        return SAMPLE_VALUES.get(converter, SAMPLE_VALUES["default"])

    return re.sub(r"<(?:(\w+)(?:\([^)]*\))?:)?\w+>", value, rule)


def _call(client, method: str, rule: str, headers=None):
    kwargs = {"json": {}} if method in ("POST", "PUT", "PATCH") else {}
    return client.open(_url(rule), method=method, headers=headers or {}, **kwargs)


def _protected(app) -> list[tuple[str, str]]:
    return [(rule, method) for rule, method in _routes(app)
            if (rule, method) not in PUBLIC and (rule, method) not in SIMULATOR
            and not rule.startswith(TWILIO_PREFIX) and (rule, method) != EMAIL_WEBHOOK]


def test_allowlists_name_only_existing_routes(app):
    routes = set(_routes(app))
    for listed in (set(PUBLIC), SIMULATOR, SUPERVISOR, ADMIN, {EMAIL_WEBHOOK}):
        assert listed <= routes, f"no such routes: {sorted(listed - routes)}"
    assert any(rule.startswith(TWILIO_PREFIX) for rule, _ in routes)


def test_every_other_route_needs_credentials(app, client):
    offenders = []
    for rule, method in _protected(app):
        response = _call(client, method, rule)
        if rule.startswith("/api/"):
            body = response.get_json(silent=True) or {}
            ok = response.status_code == 401 and body.get("error", {}).get("code")
        else:
            ok = response.status_code == 302 and response.location.startswith("/login")
        if not ok:
            offenders.append(f"{method} {rule} -> {response.status_code}")
    assert not offenders, "routes answering without credentials:\n" + "\n".join(offenders)
    assert len(_protected(app)) > 50


def test_revoked_and_inactive_users_tokens_are_refused(app, client, make_user):
    agent = make_user(email="leaver@example.org")
    token = issue_token(agent)
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/queues", headers=headers).status_code == 200
    agent.token_version += 1
    db.session.commit()
    assert client.get("/api/v1/queues", headers=headers).status_code == 401
    agent.active = False
    db.session.commit()
    fresh = {"Authorization": f"Bearer {issue_token(agent)}"}
    assert client.get("/api/v1/queues", headers=fresh).status_code == 401
    assert client.get("/api/v1/queues",
                      headers={"Authorization": "Bearer not-a-token"}).status_code == 401


def test_declared_roles_match_the_lists(app):
    """The lists above are the audit's expectation; the views' own declarations must agree
    (a route quietly lowered to agents, or raised without the list knowing, fails)."""
    declared = {}
    for rule in app.url_map.iter_rules():
        roles = getattr(app.view_functions[rule.endpoint], "_spec", {}).get("roles") or []
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if "admin" in roles:
                declared[(rule.rule, method)] = "admin"
            elif "supervisor" in roles:
                declared[(rule.rule, method)] = "supervisor"
    expected = {route: "supervisor" for route in SUPERVISOR if route[0].startswith("/api/")}
    expected.update({route: "admin" for route in ADMIN})
    assert declared == expected


@pytest.mark.parametrize("role, denied", [("agent", SUPERVISOR | ADMIN),
                                          ("supervisor", ADMIN)])
def test_a_role_too_low_gets_403(app, client, auth_headers, role, denied):
    headers = auth_headers(role)
    wrong = []
    for rule, method in sorted(denied):
        if not rule.startswith("/api/"):
            continue
        response = _call(client, method, rule, headers)
        if response.status_code != 403 or response.get_json()["error"]["code"] != "forbidden":
            wrong.append(f"{method} {rule} -> {response.status_code}")
    assert not wrong, f"{role} was not refused:\n" + "\n".join(wrong)


@pytest.mark.parametrize("role", ["supervisor", "admin"])
def test_the_right_role_passes_the_role_check(app, client, auth_headers, role):
    headers = auth_headers(role)
    allowed = SUPERVISOR | (ADMIN if role == "admin" else set())
    for rule, method in sorted(allowed):
        if rule.startswith("/api/"):
            status = _call(client, method, rule, headers).status_code
            assert status not in (401, 403), f"{method} {rule} -> {status}"


def test_pages_redirect_to_sign_in_and_refuse_a_lower_role(app, client, make_user):
    for path in ("/console", "/supervisor"):
        response = client.get(path)
        assert response.status_code == 302
        assert response.location == f"/login?next={path}"
    make_user(email="desk@example.org", role="agent")
    assert sign_in(client, "desk@example.org").status_code == 302
    assert client.get("/console").status_code == 200
    assert client.get("/supervisor").status_code == 403


def test_every_twilio_webhook_rejects_unsigned_and_forged_requests(app, client):
    rules = sorted(r.rule for r in app.url_map.iter_rules() if r.rule.startswith(TWILIO_PREFIX))
    assert len(rules) >= 10
    form = sms_form("hello", "SM" + "1" * 32) | {"CallSid": "CA" + "1" * 32}
    for rule in rules:
        for response in (
            post_twilio(client, rule, form, signed=False),
            client.post(rule, data=form, headers={"X-Twilio-Signature": "Zm9yZ2Vk"}),
        ):
            assert response.status_code == 403, rule
            assert response.mimetype == "text/xml", rule
    assert post_twilio(client, "/webhooks/twilio/sms", form).status_code == 200


def test_email_webhook_rejects_a_missing_or_wrong_secret(app, client):
    raw = b"From: a@example.org\r\nTo: help@civicline.example\r\nSubject: hi\r\n\r\nhello\r\n"
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}):
        response = client.post("/webhooks/email", data=raw,
                               headers={"Content-Type": "message/rfc822", **headers})
        assert response.status_code == 401
        assert response.get_json()["error"]["code"] == "unauthorized"


def test_survey_pages_need_a_valid_signed_token(app, client):
    assert client.get("/survey/1").status_code == 404
    assert client.post("/survey/1", data={"score": "5"}).status_code == 404


def test_simulator_routes_exist_only_when_enabled(make_app):
    from app.config import ProductionConfig

    disabled = make_app(SIMULATOR_ENABLED=False).test_client()
    for rule, method in sorted(SIMULATOR):
        assert _call(disabled, method, rule).status_code == 404, rule
    enabled = make_app(SIMULATOR_ENABLED=True).test_client()
    assert enabled.get("/simulator").status_code == 200
    import os

    assert ProductionConfig.SIMULATOR_ENABLED is (os.environ.get("SIMULATOR_ENABLED") == "1")


def _socket_connects(url: str, namespace: str, auth: dict | None = None) -> bool:
    import socketio as sio

    client = sio.Client(reconnection=False)
    try:
        client.connect(url, namespaces=[namespace], auth=auth, transports=["websocket"],
                       wait_timeout=10)
    except sio.exceptions.ConnectionError:
        return False
    client.disconnect()
    return True


def test_agent_and_supervisor_sockets_need_credentials(app, live_server, make_user):
    assert not _socket_connects(live_server, "/agent")
    assert not _socket_connects(live_server, "/supervisor")
    assert not _socket_connects(live_server, "/agent", {"token": "forged"})
    auth = {"token": issue_token(make_user(email="socket@example.org"))}
    assert _socket_connects(live_server, "/agent", auth)
    assert not _socket_connects(live_server, "/supervisor", auth)
