"""For the fault tests: requests the providers make, built the way they make them, and
a watch on every command a Redis server runs."""

from __future__ import annotations

import itertools
import threading
import uuid

import redis
import requests

from channels import twilio as tw
from tests.faults.conftest import EMAIL_SECRET, TWILIO_SID, TWILIO_TOKEN

PUBLIC_BASE_URL = "http://civicline.test"
_numbers = itertools.count(1000)


def sms_form(body: str, sender: str | None = None, sid: str | None = None) -> dict[str, str]:
    return {"MessageSid": sid or "SM" + uuid.uuid4().hex, "AccountSid": TWILIO_SID,
            "From": sender or f"+1555556{next(_numbers):04d}", "To": "+15555550100",
            "Body": body, "NumMedia": "0"}


def post_sms(base_url: str, form: dict[str, str], timeout: float = 30) -> requests.Response:
    """POST a Twilio-signed SMS webhook (signed for the public URL, as Twilio signs)."""
    signature = tw.sign(TWILIO_TOKEN, PUBLIC_BASE_URL + "/webhooks/twilio/sms", form)
    return requests.post(base_url + "/webhooks/twilio/sms", data=form, timeout=timeout,
                         headers={"X-Twilio-Signature": signature})


def raw_email(body: str, sender: str, message_id: str | None = None) -> tuple[bytes, str]:
    message_id = message_id or f"<{uuid.uuid4().hex}@residents.example>"
    raw = (f"From: {sender}\r\nTo: help@civicline.example\r\nSubject: Question\r\n"
           f"Message-ID: {message_id}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
           f"{body}\r\n").encode()
    return raw, message_id


def post_email(base_url: str, raw: bytes, timeout: float = 30) -> requests.Response:
    return requests.post(base_url + "/webhooks/email", data=raw, timeout=timeout,
                         headers={"Content-Type": "message/rfc822",
                                  "Authorization": f"Bearer {EMAIL_SECRET}"})


class Monitor:
    """Redis ``MONITOR``: every command the server runs, in order, with its client."""

    def __init__(self, url: str) -> None:
        self.commands: list[tuple[str, str]] = []
        self._conn = redis.Redis.from_url(url)
        self._stop = False
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    def _run(self) -> None:
        with self._conn.monitor() as monitor:
            self._ready.set()
            for command in monitor.listen():
                if self._stop:
                    return
                self.commands.append((command["client_address"] + ":" +
                                      command["client_port"], command["command"]))

    def stop(self) -> None:
        self._stop = True
        self._conn.ping()  # one more command wakes the listener so it sees the flag

    def names(self) -> list[str]:
        return [command.split(" ", 1)[0].upper() for _client, command in self.commands]
