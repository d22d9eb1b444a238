"""Webhook signature checks against signatures computed by the Twilio SDK."""

from __future__ import annotations

import pytest
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import ImmutableMultiDict

from channels.twilio.signature import algorithm_from_header, public_url, sign, verify

TOKEN = "12345678901234567890123456789012"
URL = "https://civicline.example.gov/webhooks/twilio/sms?step=intake"
FORM = {
    "MessageSid": "SM" + "1" * 32,
    "From": "+15551234567",
    "To": "+15557654321",
    "Body": "¿Dónde renuevo mi pasaporte? 🛂",
}


def sdk_signature(url: str, params, token: str = TOKEN, algorithm: str | None = None) -> str:
    return RequestValidator(token).compute_signature(url, params, algorithm)


def test_good_signature_verifies():
    assert verify(TOKEN, URL, FORM, sdk_signature(URL, FORM))


def test_sign_matches_the_sdk():
    assert sign(TOKEN, URL, FORM) == sdk_signature(URL, FORM)


@pytest.mark.parametrize(
    "token, url, form, signature",
    [
        ("wrong-token-wrong-token-wrong-tok", URL, FORM, None),
        (TOKEN, URL.replace("intake", "other"), FORM, None),
        (TOKEN, URL, {**FORM, "Body": "tampered"}, None),
        (TOKEN, URL, {**FORM, "Extra": "1"}, None),
        (TOKEN, URL, FORM, ""),
        (TOKEN, URL, FORM, "not-a-signature"),
        ("", URL, FORM, None),
    ],
)
def test_wrong_signature_fails(token, url, form, signature):
    good = sdk_signature(URL, FORM)
    assert not verify(token, url, form, good if signature is None else signature)


def test_missing_signature_fails():
    assert not verify(TOKEN, URL, FORM, None)


def test_multi_value_form_as_flask_gives_it():
    form = ImmutableMultiDict(
        [*FORM.items(), ("MediaUrl0", "https://a"), ("Tag", "x"), ("Tag", "y")]
    )
    assert verify(TOKEN, URL, form, sdk_signature(URL, form))


def test_port_variants_verify():
    signature = sdk_signature("https://civicline.example.gov:443/webhooks/twilio/sms", FORM)
    assert verify(TOKEN, "https://civicline.example.gov/webhooks/twilio/sms", FORM, signature)


def test_sha256_shared_key_signature():
    algorithm = algorithm_from_header("key=webhooks_sharedkey_1,algorithm=HMAC_SHA256")
    assert algorithm == "HMAC_SHA256"
    signature = sdk_signature(URL, FORM, algorithm=algorithm)
    assert verify(TOKEN, URL, FORM, signature, algorithm)
    assert not verify(TOKEN, URL, FORM, signature)
    assert algorithm_from_header(None) == "HMAC_SHA1"


def test_behind_a_proxy():
    seen = "http://10.0.0.5:5000/webhooks/twilio/sms?step=intake"
    signature = sdk_signature(URL, FORM)
    assert not verify(TOKEN, seen, FORM, signature)
    rebuilt = public_url(seen, "https://civicline.example.gov")
    assert rebuilt == URL
    assert verify(TOKEN, rebuilt, FORM, signature)


@pytest.mark.parametrize(
    "seen, base, expected",
    [
        ("http://app:5000/webhooks/twilio/voice", None, "http://app:5000/webhooks/twilio/voice"),
        ("http://app:5000/webhooks/twilio/voice", "", "http://app:5000/webhooks/twilio/voice"),
        (
            "http://app:5000/webhooks/twilio/voice?lang=es&step=topic",
            "https://311.example.gov/",
            "https://311.example.gov/webhooks/twilio/voice?lang=es&step=topic",
        ),
        (
            "http://app:5000/webhooks/twilio/voice",
            "https://example.gov:8443",
            "https://example.gov:8443/webhooks/twilio/voice",
        ),
        (
            "http://app:5000/webhooks/twilio/voice",
            "https://example.gov/contact",
            "https://example.gov/contact/webhooks/twilio/voice",
        ),
        (
            "http://app:5000/contact/webhooks/twilio/voice",
            "https://example.gov/contact/",
            "https://example.gov/contact/webhooks/twilio/voice",
        ),
    ],
)
def test_public_url(seen, base, expected):
    assert public_url(seen, base) == expected


def test_public_url_rejects_relative_base():
    with pytest.raises(ValueError, match="PUBLIC_BASE_URL"):
        public_url("http://app/x", "example.gov")


def test_a_body_hash_in_the_url_is_checked_against_the_body():
    """A JSON webhook signs its URL, whose ``bodySHA256`` must match the body: a body
    swapped under a valid URL signature fails."""
    import hashlib

    body = '{"event": "delivered"}'
    url = "https://civicline.example.gov/webhooks/twilio/status?bodySHA256=" + (
        hashlib.sha256(body.encode()).hexdigest())
    signature = sign(TOKEN, url, {})
    assert verify(TOKEN, url, body, signature)
    assert not verify(TOKEN, url, '{"event": "forged"}', signature)
