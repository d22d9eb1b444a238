"""Fakes that work across processes: a Twilio HTTP client (the real SDK, faked at its
HTTP boundary) that appends every request to a JSON-lines file the test reads, and an
SMTP server (aiosmtpd) that captures mail and can answer scripted errors."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import deque

from tests.fakes.twilio_http import RecordingHttpClient


class FileRecordingHttpClient(RecordingHttpClient):
    """Records each request to ``FAULT_TWILIO_LOG`` before answering; waits
    ``FAULT_TWILIO_DELAY`` seconds before answering, so a test can kill the worker while
    Twilio "has" the message but the worker has not recorded it as sent."""

    def __init__(self, path: str, delay: float = 0.0) -> None:
        super().__init__()
        self.path = path
        self.delay = delay

    def request(self, method, uri, params=None, data=None, headers=None, auth=None,
                timeout=None, allow_redirects=False):
        line = json.dumps({"method": method.upper(), "url": uri, "data": dict(data or {}),
                           "pid": os.getpid(), "at": time.time()})
        with open(self.path, "a", encoding="utf-8") as log:
            log.write(line + "\n")
            log.flush()
        if self.delay:
            time.sleep(self.delay)
        return super().request(method, uri, params, data, headers, auth, timeout,
                               allow_redirects)


def file_recording_client() -> FileRecordingHttpClient:
    """``TWILIO_HTTP_CLIENT_FACTORY`` target for subprocesses started by the fault tests."""
    return FileRecordingHttpClient(os.environ["FAULT_TWILIO_LOG"],
                                   float(os.environ.get("FAULT_TWILIO_DELAY") or 0))


def read_twilio_log(path) -> list[dict]:
    try:
        with open(path, encoding="utf-8") as log:
            return [json.loads(line) for line in log if line.strip()]
    except FileNotFoundError:
        return []


class CapturingSMTP:
    """aiosmtpd on a free port. ``script(reply, times)`` answers DATA with an error reply
    (e.g. ``"421 4.3.2 try later"``) that many times before accepting again."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        from tests.faults.conftest import free_port

        self.port = free_port()
        self.messages: list[dict] = []
        self.replies: list[str] = []
        self._script: deque[str] = deque()
        self._lock = threading.Lock()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def script(self, reply: str, times: int = 1) -> None:
        with self._lock:
            self._script.extend([reply] * times)

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes

        with self._lock:
            if self._script:
                reply = self._script.popleft()
                self.replies.append(reply)
                return reply
            msg = message_from_bytes(envelope.content)
            self.messages.append({"to": list(envelope.rcpt_tos),
                                  "message_id": msg["Message-ID"], "subject": msg["Subject"]})
            self.replies.append("250")
        return "250 OK"

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()
