"""A Twilio HTTP client that records requests and answers from a script.

Plugged into the real ``twilio.rest.Client`` (``Client(sid, token, http_client=fake)``),
it lets tests run the SDK's own request building, response parsing and error raising,
with only the network replaced. Unscripted requests get plausible answers: creating a
message answers 201 with a fresh ``SM...`` sid and status "queued", creating a call 201
with a ``CA...`` sid and status "queued", updating a call 200 "in-progress".
"""

from __future__ import annotations

import json
import logging
import re
import threading
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from twilio.http import HttpClient
from twilio.http.request import Request as TwilioRequest
from twilio.http.response import Response

_ACCOUNT = re.compile(r"/Accounts/(?P<account>AC[0-9a-zA-Z]+)")
_MESSAGES = re.compile(r"/Accounts/AC[0-9a-zA-Z]+/Messages\.json$")
_CALLS = re.compile(r"/Accounts/AC[0-9a-zA-Z]+/Calls\.json$")
_CALL = re.compile(r"/Accounts/AC[0-9a-zA-Z]+/Calls/(?P<sid>CA[0-9a-zA-Z]+)\.json$")


@dataclass(frozen=True)
class RecordedRequest:
    """One request the SDK made. ``auth_user`` is the account sid, never the token."""

    method: str
    url: str
    params: dict[str, Any]
    data: dict[str, Any]
    headers: dict[str, str]
    auth_user: str | None = None


@dataclass
class _Scripted:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    error: BaseException | None = None


def new_sid(prefix: str) -> str:
    """A sid shaped like Twilio's: two letters and 32 hex digits."""
    return prefix + uuid.uuid4().hex


class RecordingHttpClient(HttpClient):
    """Records every request; answers scripted responses first, then defaults.

    Thread-safe: one lock guards the script and the record, so tests may send from
    several threads.
    """

    def __init__(self) -> None:
        super().__init__(logging.getLogger("tests.fakes.twilio_http"), is_async=False)
        self._lock = threading.Lock()
        self._script: deque[_Scripted] = deque()
        self.requests: list[RecordedRequest] = []

    # --- scripting ---------------------------------------------------------------------

    def respond(
        self,
        status: int,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        times: int = 1,
    ) -> RecordingHttpClient:
        """Answer the next ``times`` requests with this status and JSON (or text) body."""
        with self._lock:
            for _ in range(times):
                self._script.append(_Scripted(status, body, dict(headers or {})))
        return self

    def fail(
        self,
        status: int,
        code: int | None = None,
        message: str = "error",
        times: int = 1,
        headers: Mapping[str, str] | None = None,
    ) -> RecordingHttpClient:
        """Answer with a Twilio error document (``{"code", "message", "status"}``)."""
        body = {
            "code": code if code is not None else status,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code or status}",
            "status": status,
        }
        return self.respond(status, body, headers, times)

    def rate_limited(self, times: int = 1, retry_after: int | None = None) -> RecordingHttpClient:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
        return self.fail(429, 20429, "Too Many Requests", times, headers)

    def server_error(self, times: int = 1, status: int = 500) -> RecordingHttpClient:
        return self.fail(status, 20500, "Internal Server Error", times)

    def opted_out(self, times: int = 1) -> RecordingHttpClient:
        return self.fail(400, 21610, "Attempt to send to unsubscribed recipient", times)

    def network_error(
        self, times: int = 1, error: BaseException | None = None
    ) -> RecordingHttpClient:
        """Raise a network error (``requests.ConnectionError`` unless given) instead of
        answering, as the SDK's own HTTP client would."""
        with self._lock:
            for _ in range(times):
                exc = error or requests.exceptions.ConnectionError("connection refused")
                self._script.append(_Scripted(error=exc))
        return self

    # --- inspection --------------------------------------------------------------------

    @property
    def last_request(self) -> RecordedRequest | None:
        with self._lock:
            return self.requests[-1] if self.requests else None

    def requests_to(self, fragment: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if fragment in r.url]

    # --- HttpClient --------------------------------------------------------------------

    def request(
        self,
        method: str,
        uri: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        recorded = RecordedRequest(
            method=method.upper(),
            url=uri,
            params=dict(params or {}),
            data=dict(data or {}),
            headers=dict(headers or {}),
            auth_user=auth[0] if auth else None,
        )
        with self._lock:
            self.requests.append(recorded)
            scripted = self._script.popleft() if self._script else None
            self._test_only_last_request = TwilioRequest(
                method=recorded.method,
                url=uri,
                auth=auth,
                params=params,
                data=data,
                headers=headers,
            )
            if scripted is not None and scripted.error is not None:
                self._test_only_last_response = None
                raise scripted.error
            if scripted is not None:
                body = scripted.body
                text = (
                    body if isinstance(body, str) else json.dumps(body if body is not None else {})
                )
                response = Response(scripted.status, text, scripted.headers)
            else:
                response = self._default_response(recorded)
            self._test_only_last_response = response
            return response

    def _default_response(self, req: RecordedRequest) -> Response:
        match = _ACCOUNT.search(req.url)
        account = match.group("account") if match else None
        if req.method == "POST" and _MESSAGES.search(req.url):
            sid = new_sid("SM")
            body = {
                "sid": sid,
                "account_sid": account,
                "to": req.data.get("To"),
                "from": req.data.get("From"),
                "body": req.data.get("Body"),
                "status": "queued",
                "direction": "outbound-api",
                "num_segments": "1",
                "num_media": str(len(_as_list(req.data.get("MediaUrl")))),
                "error_code": None,
                "error_message": None,
                "api_version": "2010-04-01",
                "uri": f"/2010-04-01/Accounts/{account}/Messages/{sid}.json",
            }
            return Response(201, json.dumps(body), {"Content-Type": "application/json"})
        if req.method == "POST" and _CALLS.search(req.url):
            sid = new_sid("CA")
            body = {
                "sid": sid,
                "account_sid": account,
                "to": req.data.get("To"),
                "from": req.data.get("From"),
                "status": "queued",
                "direction": "outbound-api",
                "api_version": "2010-04-01",
                "uri": f"/2010-04-01/Accounts/{account}/Calls/{sid}.json",
            }
            return Response(201, json.dumps(body), {"Content-Type": "application/json"})
        call = _CALL.search(req.url)
        if req.method == "POST" and call:
            body = {
                "sid": call.group("sid"),
                "account_sid": account,
                "status": "in-progress",
                "uri": f"/2010-04-01/Accounts/{account}/Calls/{call.group('sid')}.json",
            }
            return Response(200, json.dumps(body), {"Content-Type": "application/json"})
        body = {
            "code": 20404,
            "message": f"The requested resource {req.url} was not found",
            "status": 404,
        }
        return Response(404, json.dumps(body), {"Content-Type": "application/json"})


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]
