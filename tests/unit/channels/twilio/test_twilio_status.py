"""Status callbacks: parsing, and idempotent, order-independent application."""

from __future__ import annotations

import itertools
from functools import reduce

import pytest

from channels.base import ParseError
from channels.twilio.status import (
    CALL_STATUS_RANK,
    MESSAGE_STATUS_RANK,
    STATUS_RANK,
    TERMINAL_STATUSES,
    parse_status,
    should_apply,
)

SM = "SM" + "c" * 32
CA = "CA" + "d" * 32


def apply_all(statuses, start=None):
    return reduce(
        lambda current, new: new if should_apply(current, new) else current, statuses, start
    )


def test_message_callback():
    update = parse_status(
        {
            "MessageSid": SM,
            "MessageStatus": "Undelivered",
            "ErrorCode": "30006",
            "To": "+15551234567",
            "From": "+15557654321",
            "AccountSid": "AC" + "0" * 32,
        }
    )
    assert (update.provider_id, update.status, update.kind) == (SM, "undelivered", "message")
    assert update.error_code == "30006"
    assert update.recipient == "+15551234567"
    assert update.is_terminal and update.is_failure
    assert update.duration is None


def test_legacy_sms_status_callback():
    update = parse_status({"SmsSid": SM, "SmsStatus": "sent", "ErrorCode": ""})
    assert (update.provider_id, update.status, update.error_code) == (SM, "sent", None)
    assert not update.is_terminal


def test_call_callback():
    update = parse_status(
        {
            "CallSid": CA,
            "CallStatus": "completed",
            "CallDuration": "184",
            "Direction": "outbound-api",
            "AnsweredBy": "human",
            "SequenceNumber": "3",
        }
    )
    assert (update.provider_id, update.status, update.kind) == (CA, "completed", "call")
    assert update.duration == 184
    assert update.metadata == {
        "direction": "outbound-api",
        "answered_by": "human",
        "sequence_number": "3",
    }
    assert update.is_terminal and not update.is_failure


def test_call_no_answer_is_failure():
    update = parse_status({"CallSid": CA, "CallStatus": "no-answer", "CallDuration": "0"})
    assert update.is_failure and update.duration == 0


@pytest.mark.parametrize(
    "data, match",
    [
        ({}, "MessageSid or CallSid"),
        ({"MessageSid": SM}, "without a status"),
        ({"CallSid": CA}, "without a status"),
        ({"MessageStatus": "sent"}, "MessageSid or CallSid"),
    ],
)
def test_malformed_callbacks(data, match):
    with pytest.raises(ParseError, match=match):
        parse_status(data)


def test_message_order():
    order = ["queued", "sending", "sent", "delivered", "read"]
    ranks = [STATUS_RANK[s] for s in order]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)


@pytest.mark.parametrize(
    "current, new, expected",
    [
        (None, "queued", True),
        (None, "delivered", True),
        ("queued", "sent", True),
        ("sent", "delivered", True),
        ("delivered", "sent", False),
        ("delivered", "queued", False),
        ("delivered", "delivered", False),
        ("sent", "sent", False),
        ("delivered", "read", True),
        ("read", "delivered", False),
        ("delivered", "failed", False),
        ("delivered", "undelivered", False),
        ("undelivered", "delivered", True),
        ("failed", "sent", False),
        ("undelivered", "sending", False),
        ("sent", "undelivered", True),
        ("queued", "failed", True),
        ("Sent", "DELIVERED", True),
        ("sent", "", False),
        ("sent", "some-new-status", False),
        (None, "some-new-status", True),
        ("some-new-status", "sent", True),
        ("ringing", "in-progress", True),
        ("in-progress", "ringing", False),
        ("completed", "in-progress", False),
        ("initiated", "no-answer", True),
        ("busy", "ringing", False),
    ],
)
def test_should_apply(current, new, expected):
    assert should_apply(current, new) is expected


@pytest.mark.parametrize(
    "statuses",
    [
        ["queued", "sending", "sent", "delivered"],
        ["queued", "sent", "undelivered"],
        ["queued", "sent", "delivered", "read"],
        ["sent", "delivered", "undelivered"],
        ["queued", "failed"],
        ["initiated", "ringing", "in-progress", "completed"],
        ["queued", "initiated", "ringing", "busy"],
    ],
)
def test_order_independent_and_idempotent(statuses):
    outcomes = {apply_all(perm) for perm in itertools.permutations(statuses)}
    assert len(outcomes) == 1
    [final] = outcomes
    assert final == max(statuses, key=STATUS_RANK.__getitem__)
    assert apply_all(statuses + statuses) == final


def test_terminal_statuses_never_go_back():
    for terminal in TERMINAL_STATUSES:
        for new in STATUS_RANK:
            if new not in TERMINAL_STATUSES:
                assert not should_apply(terminal, new), (terminal, new)


def test_shared_names_rank_alike():
    for name in MESSAGE_STATUS_RANK.keys() & CALL_STATUS_RANK.keys():
        assert MESSAGE_STATUS_RANK[name] == CALL_STATUS_RANK[name]
