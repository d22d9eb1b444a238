"""Outbound SMS and calls through the real Twilio SDK, down to a recording HTTP client."""

from __future__ import annotations

import threading

import pytest
import requests

from channels.base import (
    Attachment,
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
)
from channels.twilio.outbound import (
    make_client,
    place_call,
    redirect_call,
    send_sms,
    sms_sender,
)

FROM = "+18445550100"
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2  # the client fixture's account


def outbound(text: str = "Your case CL-2026-000123 is resolved.", **extra) -> OutboundMessage:
    return OutboundMessage(
        channel="sms",
        to="+15551234567",
        text=text,
        idempotency_key="outbox-1",
        status_callback="https://civicline.example.gov/webhooks/twilio/status",
        **extra,
    )


def test_send_sms_goes_through_the_sdk(client, http):
    result = send_sms(client, outbound("Respuesta en español: sí ✅"), FROM)
    assert isinstance(result, DeliveryResult)
    assert result.provider_id.startswith("SM") and len(result.provider_id) == 34
    assert result.status == "queued"
    assert result.detail["num_segments"] == "1"
    [request] = http.requests
    assert request.method == "POST"
    assert request.url == (
        f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    )
    assert request.data == {
        "To": "+15551234567",
        "From": FROM,
        "Body": "Respuesta en español: sí ✅",
        "StatusCallback": "https://civicline.example.gov/webhooks/twilio/status",
    }
    assert request.auth_user == ACCOUNT_SID
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"


def test_status_callback_optional_and_media(client, http):
    out = OutboundMessage(
        channel="sms",
        to="+15551234567",
        text="Map attached",
        idempotency_key="k",
        attachments=[Attachment(None, "image/png", url="https://x/map.png")],
    )
    send_sms(client, out, FROM)
    data = http.last_request.data
    assert "StatusCallback" not in data
    assert data["MediaUrl"] == ["https://x/map.png"]


def test_empty_message_refused_without_calling_twilio(client, http):
    with pytest.raises(PermanentDeliveryError):
        send_sms(client, outbound(""), FROM)
    assert http.requests == []


def test_wrong_channel_is_a_bug(client):
    with pytest.raises(ValueError):
        send_sms(
            client, OutboundMessage(channel="email", to="a@b", text="x", idempotency_key="k"), FROM
        )


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_transient(client, http, status):
    http.server_error(status=status)
    with pytest.raises(TransientDeliveryError) as info:
        send_sms(client, outbound(), FROM)
    assert info.value.code == "20500"


def test_rate_limit_is_transient_with_retry_after(client, http):
    http.rate_limited(retry_after=30)
    with pytest.raises(TransientDeliveryError) as info:
        send_sms(client, outbound(), FROM)
    assert info.value.code == "20429"
    assert info.value.retry_after == 30.0


def test_retries_then_succeeds(client, http):
    http.rate_limited(times=2).server_error()
    for _ in range(3):
        with pytest.raises(TransientDeliveryError):
            send_sms(client, outbound(), FROM)
    assert send_sms(client, outbound(), FROM).provider_id.startswith("SM")
    assert len(http.requests) == 4


def test_opted_out(client, http):
    http.opted_out()
    with pytest.raises(PermanentDeliveryError) as info:
        send_sms(client, outbound(), FROM)
    assert info.value.code == "21610"
    assert info.value.opted_out is True
    assert "opted out" in str(info.value)


@pytest.mark.parametrize("code", [21211, 21614, 21612, 21408, 21606, 30003, 30006, 30008, 21999])
def test_permanent_codes(client, http, code):
    http.fail(400, code, "nope")
    with pytest.raises(PermanentDeliveryError) as info:
        send_sms(client, outbound(), FROM)
    assert info.value.code == str(code)
    assert info.value.opted_out is False


@pytest.mark.parametrize("status", [401, 403, 404])
def test_other_4xx_permanent(client, http, status):
    http.fail(status, None, "denied")
    with pytest.raises(PermanentDeliveryError) as info:
        send_sms(client, outbound(), FROM)
    assert info.value.code == str(status)


def test_queue_overflow_code_is_transient_even_as_400(client, http):
    http.fail(400, 30001, "Queue overflow")
    with pytest.raises(TransientDeliveryError):
        send_sms(client, outbound(), FROM)


def test_rfc9457_error_document(client, http):
    http.respond(
        400,
        {
            "type": "https://www.twilio.com/docs/errors/21211",
            "title": "Invalid 'To' Phone Number",
            "status": 400,
            "code": 21211,
            "detail": "+1555 is not valid",
        },
    )
    with pytest.raises(PermanentDeliveryError) as info:
        send_sms(client, outbound(), FROM)
    assert info.value.code == "21211"
    assert "+1555 is not valid" in str(info.value)


@pytest.mark.parametrize(
    "error",
    [
        requests.exceptions.ConnectionError("refused"),
        requests.exceptions.ReadTimeout("slow"),
        requests.exceptions.ConnectTimeout("slow"),
    ],
)
def test_network_errors_are_transient(client, http, error):
    http.network_error(error=error)
    with pytest.raises(TransientDeliveryError) as info:
        send_sms(client, outbound(), FROM)
    assert info.value.code == "network"
    assert info.value.__cause__ is error


def test_place_call(client, http):
    result = place_call(
        client, "+15551234567", FROM, "https://x/callback?ticket=12", "https://x/status"
    )
    assert result.provider_id.startswith("CA")
    assert result.status == "queued"
    data = http.last_request.data
    assert http.last_request.url.endswith(f"/Accounts/{ACCOUNT_SID}/Calls.json")
    assert data["To"] == "+15551234567" and data["From"] == FROM
    assert data["Url"] == "https://x/callback?ticket=12"
    assert data["StatusCallback"] == "https://x/status"
    assert data["StatusCallbackEvent"] == ["initiated", "ringing", "answered", "completed"]


def test_place_call_busy_network(client, http):
    http.network_error()
    with pytest.raises(TransientDeliveryError):
        place_call(client, "+15551234567", FROM, "https://x/cb", None)


def test_redirect_call(client, http):
    sid = "CA" + "f" * 32
    result = redirect_call(client, sid, "https://x/bridge?agent=7")
    assert (result.provider_id, result.status) == (sid, "in-progress")
    assert http.last_request.url.endswith(f"/Calls/{sid}.json")
    assert http.last_request.data == {"Url": "https://x/bridge?agent=7", "Method": "POST"}


def test_redirect_ended_call_is_permanent(client, http):
    http.fail(400, 21220, "Call is not in-progress. Cannot redirect.")
    with pytest.raises(PermanentDeliveryError) as info:
        redirect_call(client, "CA" + "f" * 32, "https://x/bridge")
    assert info.value.code == "21220"


def test_make_client_requires_credentials():
    with pytest.raises(ValueError):
        make_client("", "token")


def test_fake_is_thread_safe(client, http):
    http.server_error(times=20)
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(10):
            try:
                send_sms(client, outbound(), FROM)
                outcome = "ok"
            except TransientDeliveryError:
                outcome = "retry"
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(http.requests) == 80
    assert outcomes.count("retry") == 20 and outcomes.count("ok") == 60


def test_sms_sender_is_a_one_argument_sender(client, http):
    send = sms_sender(client, FROM)
    result = send(outbound())
    assert result.provider_id.startswith("SM")
    assert http.last_request.data["From"] == FROM
