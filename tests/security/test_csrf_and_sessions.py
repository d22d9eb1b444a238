"""CSRF tokens on form posts, session cookie flags, password storage, and resident HTML
never reaching the console unsanitized."""

from __future__ import annotations

import re
from pathlib import Path

import sqlalchemy as sa

from app.config import Config, ProductionConfig
from app.extensions import db
from app.models import Interaction, User
from tests.security.conftest import form_token, post_twilio, sign_in, sms_form

EMAIL_CORPUS = Path(__file__).resolve().parents[1] / "data" / "email"


def _signed_in(client) -> bool:
    with client.session_transaction() as session:
        return "uid" in session


def test_login_form_carries_a_token_and_a_post_without_it_is_refused(app, client, make_user):
    make_user(email="ana@example.org")
    page = client.get("/login").get_data(as_text=True)
    token = form_token(page)
    for data in ({}, {"csrf_token": "forged"}):
        response = client.post("/login", data={"email": "ana@example.org",
                                               "password": "correct-horse", **data})
        assert response.status_code == 400
        assert "expired" in response.get_data(as_text=True)
        assert not _signed_in(client)
    response = client.post("/login", data={"email": "ana@example.org",
                                           "password": "correct-horse", "csrf_token": token})
    assert response.status_code == 302 and _signed_in(client)


def test_a_token_from_another_session_is_refused(app, make_user):
    make_user(email="ana@example.org")
    attacker, victim = app.test_client(), app.test_client()
    stolen = form_token(attacker.get("/login").get_data(as_text=True))
    victim.get("/login")
    response = victim.post("/login", data={"email": "ana@example.org",
                                           "password": "correct-horse", "csrf_token": stolen})
    assert response.status_code == 400 and not _signed_in(victim)


def test_signing_in_rotates_the_token(app, client, make_user):
    make_user(email="ana@example.org")
    before = form_token(client.get("/login").get_data(as_text=True))
    sign_in(client, "ana@example.org")
    after = form_token(client.get("/console").get_data(as_text=True))
    assert before != after


def test_logout_needs_the_token_from_the_console_page(app, client, make_user):
    make_user(email="ana@example.org")
    sign_in(client, "ana@example.org")
    token = form_token(client.get("/console").get_data(as_text=True))
    refused = client.post("/logout")
    assert refused.status_code == 403
    assert refused.get_json()["error"]["code"] == "csrf_failed"
    assert _signed_in(client)
    response = client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 302 and response.location == "/login"
    assert not _signed_in(client)


def test_session_riding_form_posts_need_the_token_and_the_api_takes_bearer_tokens_only(
        app, client, make_user):
    from app.auth import issue_token

    agent = make_user(email="ana@example.org")
    sign_in(client, "ana@example.org")
    token = form_token(client.get("/console").get_data(as_text=True))
    # A cross-site form posting with the session cookie is refused before anything else.
    forged = client.post("/api/v1/offers/999/accept", data={"x": "1"})
    assert forged.status_code == 403 and forged.get_json()["error"]["code"] == "csrf_failed"
    # The API never accepts the session cookie as credentials, token or not.
    for kwargs in ({"headers": {"X-CSRF-Token": token}}, {"json": {}}):
        assert client.post("/api/v1/offers/999/accept", **kwargs).status_code == 401
    bearer = {"Authorization": f"Bearer {issue_token(agent)}"}
    assert app.test_client().post("/api/v1/offers/999/accept",
                                  headers=bearer).status_code == 404


def test_webhooks_and_public_json_doors_need_no_csrf_token(app, client, seeded):
    assert post_twilio(client, "/webhooks/twilio/sms",
                       sms_form("Hello", "SM" + "2" * 32)).status_code == 200
    raw = (EMAIL_CORPUS / "gmail_plain.eml").read_bytes()
    response = client.post("/webhooks/email", data=raw, headers={
        "Content-Type": "message/rfc822", "Authorization": "Bearer test-email-secret"})
    assert response.status_code == 202
    assert client.post("/api/v1/walkins", json={"queue": "general"}).status_code in (201, 404,
                                                                                     409)


def test_survey_form_carries_the_token_and_a_signed_in_browser_must_send_it(
        app, client, make_user):
    from app.services.intake import intake
    from app.services.surveys import survey_token
    from channels.base import InboundMessage

    result = intake(InboundMessage(channel="email", provider_id="<s1@example.org>",
                                   sender="pat@example.org", subject="Trash", text="Missed."),
                    follow_up=False)
    url = f"/survey/{survey_token(result.ticket_id)}"
    make_user(email="ana@example.org")
    sign_in(client, "ana@example.org")
    token = form_token(client.get(url).get_data(as_text=True))
    assert client.post(url, data={"score": "4"}).status_code == 403
    assert client.post(url, data={"score": "4", "csrf_token": token}).status_code == 200


def test_production_session_cookie_is_secure_httponly_and_samesite(make_app, make_user):
    assert ProductionConfig.SESSION_COOKIE_SECURE is True
    assert Config.SESSION_COOKIE_HTTPONLY is True and Config.SESSION_COOKIE_SAMESITE == "Lax"
    app = make_app(SESSION_COOKIE_SECURE=ProductionConfig.SESSION_COOKIE_SECURE)
    cookie = app.test_client().get("/login").headers["Set-Cookie"]
    assert "; Secure" in cookie and "; HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_passwords_are_stored_as_salted_hashes(app, make_user):
    make_user(email="one@example.org", password="same-password")
    make_user(email="two@example.org", password="same-password")
    hashes = db.session.scalars(sa.select(User.password_hash)).all()
    assert all(h.startswith(("scrypt:", "pbkdf2:")) for h in hashes)
    assert hashes[0] != hashes[1] and all("same-password" not in h for h in hashes)


def test_hostile_email_html_reaches_the_console_sanitized(app, client, auth_headers):
    raw = (EMAIL_CORPUS / "xss_script_onerror.eml").read_bytes()
    response = client.post("/webhooks/email", data=raw, headers={
        "Content-Type": "message/rfc822", "Authorization": "Bearer test-email-secret"})
    assert response.status_code == 202
    interaction = db.session.scalar(sa.select(Interaction).where(Interaction.channel == "email"))
    served = client.get(f"/api/v1/console/interactions/{interaction.id}",
                        headers=auth_headers("agent")).get_json()
    html = (served["html"] or "").lower()
    assert html, "the sample has an HTML part"
    for dangerous in ("<script", "onerror", "javascript:", "<iframe", "onload", "<svg"):
        assert dangerous not in html


def test_console_script_never_writes_resident_text_as_html():
    """The console shows messages with textContent and email HTML only in a sandboxed
    iframe (the server sanitized it too)."""
    script = (Path(__file__).resolve().parents[2] / "app" / "static" / "console.js").read_text()
    assert not re.search(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write",
                         script)
    assert 'sandbox: ""' in script


def test_webhooks_open_no_session_while_pages_keep_theirs(app, client, make_user):
    from flask import session
    from flask.sessions import NullSession, SecureCookieSession

    with app.test_request_context("/webhooks/twilio/sms", method="POST"):
        assert isinstance(session._get_current_object(), NullSession)
    with app.test_request_context("/login"):
        assert isinstance(session._get_current_object(), SecureCookieSession)
    # A signed-in agent's browser posting to a webhook neither reads nor rewrites the
    # session: no cookie comes back and the agent stays signed in.
    make_user(email="ana@example.org")
    page = client.get("/login").get_data(as_text=True)
    client.post("/login", data={"email": "ana@example.org", "password": "correct-horse",
                                "csrf_token": form_token(page)})
    assert _signed_in(client)
    response = post_twilio(client, "/webhooks/twilio/sms", sms_form("hello", "SMsession1"))
    assert response.status_code == 200 and "Set-Cookie" not in response.headers
    assert _signed_in(client)
