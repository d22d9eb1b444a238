"""Rate limits: a flood gets 429 with the JSON error format (an empty TwiML document for
Twilio), per source address, on sign-in, tokens, kiosk check-in and the webhooks.

The limiter is off in the test configuration; these tests build an app with it on. With
``REDIS_URL`` set the counters live in Redis, as in production. (Chat messages are
limited per connection in ``app.chat``; see ``tests/integration/test_chat_socket.py``.)
"""

from __future__ import annotations

import os

import pytest

from app.config import Config
from tests.security.conftest import form_token, post_twilio, sms_form

ELSEWHERE = {"REMOTE_ADDR": "203.0.113.9"}


@pytest.fixture
def limited(make_app):
    app = make_app(RATELIMIT_ENABLED=True, RATELIMIT_TWILIO="5 per minute",
                   RATELIMIT_EMAIL_WEBHOOK="3 per minute")
    return app.test_client()


def _assert_json_429(response):
    assert response.status_code == 429
    assert response.get_json()["error"]["code"] == "rate_limited"
    assert int(response.headers["Retry-After"]) >= 1


def test_limits_are_stored_in_redis_when_redis_is_configured(make_app):
    app = make_app(RATELIMIT_ENABLED=True)
    assert app.config["RATELIMIT_STORAGE_URI"] == (os.environ.get("REDIS_URL") or "memory://")
    # The webhook limits are real limit strings, sized for a provider's pool of senders.
    from limits import parse

    twilio, email = parse(Config.RATELIMIT_TWILIO), parse(Config.RATELIMIT_EMAIL_WEBHOOK)
    assert twilio.amount / twilio.get_expiry() * 60 >= 600
    assert email.amount / email.get_expiry() * 60 >= 120


def test_sign_in_flood_gets_429(limited, make_user):
    make_user(email="ana@example.org")
    token = form_token(limited.get("/login").get_data(as_text=True))
    attempt = {"email": "ana@example.org", "password": "guess", "csrf_token": token}
    for _ in range(20):
        assert limited.post("/login", data=attempt).status_code == 401
    _assert_json_429(limited.post("/login", data=attempt))
    assert limited.get("/login").status_code == 200  # the form itself stays reachable


def test_token_flood_gets_429_per_source_address(limited, make_user):
    make_user(email="ana@example.org")
    guess = {"email": "ana@example.org", "password": "guess"}
    for _ in range(20):
        assert limited.post("/api/v1/auth/token", json=guess).status_code == 401
    _assert_json_429(limited.post("/api/v1/auth/token", json=guess))
    other = limited.post("/api/v1/auth/token", json={**guess, "password": "correct-horse"},
                         environ_base=ELSEWHERE)
    assert other.status_code == 200


def test_kiosk_check_in_flood_gets_429(limited, seeded):
    for _ in range(30):
        assert limited.post("/api/v1/walkins", json={"queue": "nope"}).status_code == 404
    _assert_json_429(limited.post("/api/v1/walkins", json={"queue": "nope"}))


def test_twilio_flood_of_forged_requests_gets_an_empty_twiml_429_across_all_its_paths(
        limited):
    form = sms_form("hi", "SM" + "3" * 32)
    for path in ("/webhooks/twilio/sms", "/webhooks/twilio/status", "/webhooks/twilio/voice",
                 "/webhooks/twilio/sms", "/webhooks/twilio/voice/wait"):
        assert post_twilio(limited, path, form, signed=False).status_code == 403
    response = post_twilio(limited, "/webhooks/twilio/sms", form, signed=False)
    assert response.status_code == 429
    assert response.mimetype == "text/xml"
    assert response.get_data(as_text=True).endswith("<Response />")
    assert "Retry-After" in response.headers
    # Another source has its own budget.
    assert post_twilio(limited, "/webhooks/twilio/sms", form, signed=False,
                       environ_base=ELSEWHERE).status_code == 403


def test_what_twilio_signed_is_never_throttled(limited):
    """Only forged requests spend the budget: a resident's message that Twilio signed is
    taken even from a source over its limit, and a busy line's own traffic never is."""
    for n in range(8):
        form = sms_form(f"message {n}", f"SM{n:032d}")
        assert post_twilio(limited, "/webhooks/twilio/sms", form).status_code == 200
    forged = sms_form("hi", "SM" + "4" * 32)
    for _ in range(5):
        assert post_twilio(limited, "/webhooks/twilio/sms", forged, signed=False).status_code == 403
    assert post_twilio(limited, "/webhooks/twilio/sms", forged, signed=False).status_code == 429
    signed = sms_form("still here", "SM" + "5" * 32)
    assert post_twilio(limited, "/webhooks/twilio/sms", signed).status_code == 200


def test_email_webhook_flood_gets_429(limited):
    headers = {"Content-Type": "message/rfc822", "Authorization": "Bearer wrong"}
    for _ in range(3):
        assert limited.post("/webhooks/email", data=b"x", headers=headers).status_code == 401
    _assert_json_429(limited.post("/webhooks/email", data=b"x", headers=headers))
    # The relay's own messages, with the right secret, are still taken from that source.
    message = (b"From: Resident <resident@example.org>\r\nTo: help@city.example\r\n"
               b"Subject: Pothole\r\nMessage-ID: <limit-1@example.org>\r\n\r\nStill here.\r\n")
    right = {"Content-Type": "message/rfc822", "Authorization": "Bearer test-email-secret"}
    assert limited.post("/webhooks/email", data=message, headers=right).status_code in (200, 202)
