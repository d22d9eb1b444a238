"""Outbound SMS and calls through Twilio's REST API, with errors sorted for the outbox.

The outbox job calls ``send_sms`` (or ``place_call``/``redirect_call``) and reacts to
the result:

* ``DeliveryResult``: Twilio accepted the request; store ``provider_id`` and wait for
  status callbacks.
* ``TransientDeliveryError``: retry later (HTTP 429, 5xx, network errors, Twilio's
  own queue overflow and rate-limit codes). ``retry_after`` is set when Twilio said how
  long to wait.
* ``PermanentDeliveryError``: do not retry this address; fall back to the citizen's next
  channel. ``opted_out`` is true for error 21610 (the resident texted STOP), which the
  app must record on the contact point.

A read timeout is reported as transient although Twilio may have accepted the message;
Twilio's Messages API has no idempotency key, so a retry can then duplicate a message.
The app can narrow this by matching later status callbacks to the outbox row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http import HttpClient
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from channels.base import (
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    TransientDeliveryError,
)

# Seconds before giving up on one HTTP request; the outbox retries, so don't wait long.
HTTP_TIMEOUT = 15.0

OPTED_OUT_CODE = 21610
# Permanent by name, for clear messages; any other 4xx is permanent too.
PERMANENT_CODES: dict[int, str] = {
    21211: "invalid 'To' phone number",
    21408: "permission to send to this region is not enabled",
    21606: "the 'From' number cannot send to this destination",
    21610: "the recipient has opted out (replied STOP)",
    21612: "the 'To' number cannot be reached from this 'From' number",
    21614: "the 'To' number is not a mobile number",
    21617: "the message body is too long",
    30003: "unreachable destination handset",
    30004: "message blocked",
    30005: "unknown destination handset",
    30006: "landline or unreachable carrier",
    30007: "message filtered by the carrier",
    30008: "unknown delivery error",
    21217: "invalid phone number for a call",
    21215: "calling this number is not permitted",
    21220: "the call is not in progress",
}
# Retried even though Twilio may answer them with a 4xx.
TRANSIENT_CODES: dict[int, str] = {
    20429: "too many requests",
    14107: "message rate limit exceeded",
    30001: "Twilio's outbound queue overflowed",
    20500: "Twilio internal error",
    20503: "Twilio service unavailable",
}
NETWORK_ERRORS: tuple[type[Exception], ...] = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
)
DEFAULT_CALL_EVENTS = ("initiated", "ringing", "answered", "completed")

T = TypeVar("T")


def make_client(account_sid: str, auth_token: str, http_client: HttpClient | None = None) -> Client:
    """A Twilio REST client. Tests pass a recording ``http_client``; production gets the
    SDK's own HTTP client with a timeout so a hung connection can't stall a worker."""
    if not account_sid or not auth_token:
        raise ValueError("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN are required")
    return Client(
        account_sid, auth_token, http_client=http_client or TwilioHttpClient(timeout=HTTP_TIMEOUT)
    )


def send_sms(client: Client, out: OutboundMessage, from_number: str) -> DeliveryResult:
    """Send one SMS (MMS when ``out.attachments`` have URLs) and return Twilio's sid.

    Raises ``TransientDeliveryError`` or ``PermanentDeliveryError`` (see the module
    docstring). An empty message is refused before calling Twilio.
    """
    if out.channel != "sms":
        raise ValueError(f"send_sms got a {out.channel!r} message")
    media_urls = [att.url for att in out.attachments if att.url]
    if not out.text and not media_urls:
        raise PermanentDeliveryError("empty message: no text and no media", code="21602")
    kwargs: dict[str, Any] = {"to": out.to, "from_": from_number, "body": out.text}
    if out.status_callback:
        kwargs["status_callback"] = out.status_callback
    if media_urls:
        kwargs["media_url"] = media_urls
    message = _call_twilio(client, lambda: client.messages.create(**kwargs))
    return DeliveryResult(
        provider_id=message.sid,
        status=message.status or "queued",
        detail=_drop_none(
            {
                "num_segments": message.num_segments,
                "to": message.to,
                "from": message.from_,
                "error_code": message.error_code,
            }
        ),
    )


def sms_sender(client: Client, from_number: str) -> Callable[[OutboundMessage], DeliveryResult]:
    """``send_sms`` bound to a client and sender number: the one-argument sender the
    app's outbox registers for the "sms" channel."""

    def send(out: OutboundMessage) -> DeliveryResult:
        return send_sms(client, out, from_number)

    return send


def place_call(
    client: Client,
    to: str,
    from_: str,
    url: str,
    status_callback: str | None = None,
    status_callback_events: Iterable[str] = DEFAULT_CALL_EVENTS,
    timeout: int | None = None,
) -> DeliveryResult:
    """Start an outbound call (a promised callback); Twilio fetches TwiML from ``url``
    when the resident answers. Same error mapping as ``send_sms``."""
    kwargs: dict[str, Any] = {"to": to, "from_": from_, "url": url, "method": "POST"}
    if status_callback:
        kwargs["status_callback"] = status_callback
        kwargs["status_callback_method"] = "POST"
        kwargs["status_callback_event"] = list(status_callback_events)
    if timeout is not None:
        kwargs["timeout"] = timeout
    call = _call_twilio(client, lambda: client.calls.create(**kwargs))
    return DeliveryResult(
        provider_id=call.sid,
        status=call.status or "queued",
        detail=_drop_none({"to": call.to, "from": getattr(call, "_from", None)}),
    )


def redirect_call(client: Client, call_sid: str, url: str) -> DeliveryResult:
    """Send a live call to new TwiML at ``url``, e.g. to bridge a queued caller to an
    agent or take them out of the queue. A call that already ended is a
    ``PermanentDeliveryError`` (21220 or 404)."""
    call = _call_twilio(client, lambda: client.calls(call_sid).update(url=url, method="POST"))
    return DeliveryResult(provider_id=call.sid or call_sid, status=call.status or "in-progress")


def _call_twilio(client: Client, request: Callable[[], T]) -> T:
    try:
        return request()
    except (TwilioRestException, TwilioServiceException) as exc:
        raise _classify(exc, _retry_after(client)) from exc
    except NETWORK_ERRORS as exc:
        raise TransientDeliveryError(
            f"network error talking to Twilio: {exc}", code="network"
        ) from exc
    except TwilioException as exc:
        raise PermanentDeliveryError(f"Twilio client error: {exc}", code="client") from exc


def _classify(
    exc: TwilioRestException | TwilioServiceException, retry_after: float | None
) -> Exception:
    status = int(exc.status or 0)
    code = _int_or_none(exc.code)
    if isinstance(exc, TwilioServiceException):
        detail = exc.detail or exc.title
    else:
        detail = exc.msg
    label = PERMANENT_CODES.get(code or 0) or TRANSIENT_CODES.get(code or 0)
    code_text = str(code) if code is not None else str(status)
    message = f"Twilio answered HTTP {status}, error {code_text}"
    if label:
        message += f" ({label})"
    if detail:
        message += f": {detail}"
    if status == 429 or status >= 500 or (code is not None and code in TRANSIENT_CODES):
        return TransientDeliveryError(message, code=code_text, retry_after=retry_after)
    return PermanentDeliveryError(message, code=code_text, opted_out=code == OPTED_OUT_CODE)


def _retry_after(client: Client) -> float | None:
    """Seconds from the last response's Retry-After header, when the HTTP client kept it.

    The SDK's errors don't carry headers, but its HTTP clients keep the last response."""
    response = getattr(client.http_client, "_test_only_last_response", None)
    headers = getattr(response, "headers", None) or {}
    try:
        value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _int_or_none(value: object) -> int | None:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}
