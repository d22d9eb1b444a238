"""Fixtures for the security tests: apps with one setting changed (the rate limiter on,
the simulator off), a browser-like sign-in through the CSRF-protected form, and signed
Twilio requests."""

from __future__ import annotations

import re

import pytest

from channels import twilio as tw

CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def make_app(app, config_class):
    """``make_app(NAME=value, ...)``: another app on the same (cleaned) database with some
    settings changed. The limiter is one shared extension, so the next app built (by the
    next test's ``app`` fixture) turns it back off."""
    from app import create_app

    def _make(**settings):
        return create_app(type("Changed", (config_class,), settings))

    return _make


def form_token(html: str) -> str:
    match = CSRF_INPUT.search(html)
    assert match, "the form has no CSRF token field"
    return match.group(1)


def sign_in(client, email: str, password: str = "correct-horse"):
    """Sign in as a browser does: load the form, post it back with its token."""
    token = form_token(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"email": email, "password": password,
                                       "csrf_token": token})


def post_twilio(client, path: str, params: dict[str, str], *, signed: bool = True, **kw):
    headers = {}
    if signed:
        token = client.application.config["TWILIO_AUTH_TOKEN"]
        headers["X-Twilio-Signature"] = tw.sign(token, "http://localhost" + path, params)
    return client.post(path, data=params, headers=headers, **kw)


def sms_form(body: str, sid: str, sender: str = "+15555550123") -> dict[str, str]:
    return {"MessageSid": sid, "AccountSid": "AC" + "0" * 32, "From": sender,
            "To": "+15555550100", "Body": body, "NumMedia": "0"}
