"""Request size limits (413 in the JSON error format, TwiML for Twilio; only the email
webhook takes whole messages) and logs that never carry secrets or what residents wrote."""

from __future__ import annotations

import logging

import pytest

from tests.security.conftest import form_token, post_twilio, sms_form

EMAIL_HEADERS = {"Content-Type": "message/rfc822", "Authorization": "Bearer test-email-secret"}


def _email(body: str, message_id: str = "<big@example.org>") -> bytes:
    return (f"From: Pat <pat@example.org>\r\nTo: help@civicline.example\r\n"
            f"Message-ID: {message_id}\r\nSubject: Question\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}\r\n").encode()


@pytest.fixture
def small(make_app, tmp_path):
    app = make_app(API_MAX_CONTENT_LENGTH=4096, MAX_CONTENT_LENGTH=64 * 1024,
                   ATTACHMENTS_DIR=str(tmp_path / "attachments"))
    return app.test_client()


def test_oversized_json_gets_413_in_the_error_format(small):
    response = small.post("/api/v1/auth/token", json={"email": "a@b.c", "password": "x" * 5000})
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "payload_too_large"


def test_oversized_twilio_form_gets_413_twiml(small):
    response = post_twilio(small, "/webhooks/twilio/sms", sms_form("x" * 5000, "SM" + "4" * 32))
    assert response.status_code == 413
    assert response.mimetype == "text/xml"


def test_only_the_email_webhook_takes_bodies_up_to_max_content_length(small):
    accepted = small.post("/webhooks/email", data=_email("a" * 20_000), headers=EMAIL_HEADERS)
    assert accepted.status_code == 202
    refused = small.post("/webhooks/email", data=_email("a" * 70_000, "<bigger@example.org>"),
                         headers=EMAIL_HEADERS)
    assert refused.status_code == 413
    assert refused.get_json()["error"]["code"] == "payload_too_large"


def test_defaults_keep_one_mebibyte_for_the_api_and_more_for_email(app):
    assert app.config["API_MAX_CONTENT_LENGTH"] == 1024 * 1024
    assert app.config["MAX_CONTENT_LENGTH"] >= 10 * app.config["API_MAX_CONTENT_LENGTH"]


@pytest.fixture
def all_loggers_enabled():
    """Alembic's logging setup (run by the migrations fixture) disables the loggers that
    existed before it; a server that migrated in a separate process logs with all of them."""
    loggers = [lg for lg in logging.root.manager.loggerDict.values()
               if isinstance(lg, logging.Logger) and lg.disabled]
    for logger in loggers:
        logger.disabled = False
    yield
    for logger in loggers:
        logger.disabled = True


def test_logs_at_info_never_carry_secrets_or_message_bodies(app, client, seeded, make_user,
                                                            run_jobs, caplog, tmp_path,
                                                            all_loggers_enabled):
    app.config["ATTACHMENTS_DIR"] = str(tmp_path / "attachments")
    caplog.set_level(logging.DEBUG)
    sms_text = "My benefits case 7731-ZEBRA is stuck"
    email_text = "Please help with permit 5521-OCELOT"
    password = "hunter2-PANGOLIN-password"
    make_user(email="ana@example.org", password=password)

    assert post_twilio(client, "/webhooks/twilio/sms",
                       sms_form(sms_text, "SM" + "5" * 32)).status_code == 200
    assert post_twilio(client, "/webhooks/twilio/sms", sms_form(sms_text, "SM" + "6" * 32),
                       signed=False).status_code == 403
    assert client.post("/webhooks/email", data=_email(email_text),
                       headers=EMAIL_HEADERS).status_code == 202
    assert client.post("/webhooks/email", data=_email(email_text, "<other@example.org>"),
                       headers={**EMAIL_HEADERS, "Authorization": "Bearer guess"}
                       ).status_code == 401
    token = form_token(client.get("/login").get_data(as_text=True))
    client.post("/login", data={"email": "ana@example.org", "password": "wrong-PANGOLIN",
                                "csrf_token": token})
    assert client.post("/login", data={"email": "ana@example.org", "password": password,
                                       "csrf_token": token}).status_code == 302
    issued = client.post("/api/v1/auth/token",
                         json={"email": "ana@example.org", "password": password})
    run_jobs()

    secrets = {
        "sms body": "7731-ZEBRA", "email body": "5521-OCELOT", "password": "PANGOLIN",
        "Twilio auth token": app.config["TWILIO_AUTH_TOKEN"],
        "email webhook secret": app.config["EMAIL_WEBHOOK_SECRET"],
        "API token": issued.get_json()["token"],
        "secret key": app.config["SECRET_KEY"],
    }
    shown = [r for r in caplog.records if r.levelno >= logging.INFO]
    assert any("bad signature" in r.getMessage() for r in shown), "logs were captured"
    for record in shown:
        text = record.getMessage() + (caplog.text if record.exc_info else "")
        for name, value in secrets.items():
            assert value not in text, f"{name} logged by {record.name}: {text[:200]}"
