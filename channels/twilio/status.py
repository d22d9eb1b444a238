"""Delivery and call status callbacks, and the rule that makes applying them idempotent.

Twilio posts a status callback for every change of an outbound message (MessageStatus,
formerly SmsStatus) or call (CallStatus). Callbacks can arrive twice and out of order
(a "sent" may arrive after "delivered"), so the outbox never simply overwrites: it asks
``should_apply(current, new)``.

Ordering decisions:

* Messages: accepted/scheduled < queued < sending < sent < (terminal) canceled <
  failed < undelivered < partially_delivered < delivered < read.
* Calls: queued < initiated < ringing < in-progress < (terminal) canceled < failed <
  no-answer < busy < completed.
* A status is applied only if it ranks strictly higher than the current one, so
  replays are no-ops and the stored status ends as the highest-ranked one received,
  whatever the arrival order.
* Terminal states are final against every non-terminal status: a late "sent" or
  "queued" never overwrites "delivered" or "failed".
* Among terminal states the best evidence of delivery wins. ``read`` (WhatsApp/RCS
  read receipts) confirms ``delivered``. ``failed`` or ``undelivered`` arriving after
  ``delivered`` is ignored: the carrier already confirmed the handset received the
  message, and falling back to another channel would send the same answer twice. The
  rare reverse (a carrier's "delivered" after "undelivered") is applied, because the
  resident did get the message; by then the outbox may already have fallen back, which
  costs a duplicate, not a lost answer.
* A status we do not know is never applied over a known one, but is recorded when
  nothing is known yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from channels.base import ParseError

MESSAGE_STATUS_RANK: dict[str, int] = {
    "accepted": 5,
    "scheduled": 5,
    "queued": 10,
    "sending": 20,
    "receiving": 20,
    "sent": 30,
    "canceled": 40,
    "failed": 41,
    "undelivered": 42,
    "partially_delivered": 43,
    "delivered": 45,
    "received": 45,
    "read": 50,
}

CALL_STATUS_RANK: dict[str, int] = {
    "queued": 10,
    "initiated": 15,
    "ringing": 25,
    "in-progress": 35,
    "canceled": 40,
    "failed": 41,
    "no-answer": 42,
    "busy": 43,
    "completed": 45,
}

# Message and call statuses share one scale; the names they share ("queued", "failed",
# "canceled") have the same rank in both lifecycles.
STATUS_RANK: dict[str, int] = {**MESSAGE_STATUS_RANK, **CALL_STATUS_RANK}

TERMINAL_RANK = 40
TERMINAL_STATUSES = frozenset(name for name, rank in STATUS_RANK.items() if rank >= TERMINAL_RANK)
# Statuses after which another channel should be tried (the outbox's fallback rule).
FAILED_STATUSES = frozenset({"undelivered", "failed", "canceled", "busy", "no-answer"})


@dataclass(frozen=True)
class StatusUpdate:
    """One status callback, normalized.

    ``kind``: "message" or "call". ``status``: Twilio's status, lower-cased.
    ``error_code``: Twilio's ErrorCode as a string (e.g. "30006"), if any. ``duration``:
    call length in seconds (CallDuration) for finished calls. ``metadata``: other
    parameters of interest (answered_by, sequence_number, recording_url, ...).
    """

    provider_id: str
    status: str
    kind: Literal["message", "call"]
    error_code: str | None = None
    error_message: str | None = None
    duration: int | None = None
    recipient: str | None = None
    sender: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def is_failure(self) -> bool:
        return self.status in FAILED_STATUSES


def parse_status(form: Mapping[str, str]) -> StatusUpdate:
    """Turn a message or call status callback form into a ``StatusUpdate``.

    A form with CallSid and CallStatus is a call callback; one with MessageSid (or
    SmsSid) and MessageStatus (or SmsStatus) is a message callback. Anything else is a
    ``ParseError``.
    """
    call_sid = (form.get("CallSid") or "").strip()
    call_status = (form.get("CallStatus") or "").strip().lower()
    message_sid = (form.get("MessageSid") or form.get("SmsSid") or "").strip()
    message_status = (form.get("MessageStatus") or form.get("SmsStatus") or "").strip().lower()

    if message_sid and message_status:
        return StatusUpdate(
            provider_id=message_sid,
            status=message_status,
            kind="message",
            error_code=_blank_to_none(form.get("ErrorCode")),
            error_message=_blank_to_none(form.get("ErrorMessage")),
            recipient=_blank_to_none(form.get("To")),
            sender=_blank_to_none(form.get("From")),
            metadata=_pick(
                form,
                {
                    "AccountSid": "account_sid",
                    "MessagingServiceSid": "messaging_service_sid",
                    "RawDlrDoneDate": "raw_dlr_done_date",
                },
            ),
        )
    if call_sid and call_status:
        return StatusUpdate(
            provider_id=call_sid,
            status=call_status,
            kind="call",
            error_code=_blank_to_none(form.get("ErrorCode")),
            error_message=_blank_to_none(form.get("ErrorMessage")),
            duration=_int_or_none(form.get("CallDuration") or form.get("Duration")),
            recipient=_blank_to_none(form.get("To")),
            sender=_blank_to_none(form.get("From")),
            metadata=_pick(
                form,
                {
                    "AccountSid": "account_sid",
                    "Direction": "direction",
                    "AnsweredBy": "answered_by",
                    "ParentCallSid": "parent_call_sid",
                    "SequenceNumber": "sequence_number",
                    "Timestamp": "timestamp",
                    "RecordingUrl": "recording_url",
                    "RecordingSid": "recording_sid",
                },
            ),
        )
    if message_sid or call_sid:
        raise ParseError(f"Twilio status callback for {message_sid or call_sid} without a status")
    raise ParseError("Twilio status callback without MessageSid or CallSid")


def should_apply(current: str | None, new: str) -> bool:
    """Whether a callback saying ``new`` should replace the stored ``current`` status.

    Idempotent (the same status twice is a no-op) and order-independent (applying any
    set of callbacks in any order ends in the same state). See the module docstring for
    the ordering decisions.
    """
    new = (new or "").strip().lower()
    current = (current or "").strip().lower() or None
    if not new or new == current:
        return False
    if current is None:
        return True
    new_rank = STATUS_RANK.get(new)
    if new_rank is None:
        return False
    current_rank = STATUS_RANK.get(current)
    if current_rank is None:
        return True
    return new_rank > current_rank


def _blank_to_none(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


def _int_or_none(value: str | None) -> int | None:
    try:
        return int((value or "").strip())
    except ValueError:
        return None


def _pick(form: Mapping[str, str], names: Mapping[str, str]) -> dict[str, Any]:
    return {name: form[param] for param, name in names.items() if form.get(param)}
