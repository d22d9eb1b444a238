"""Erlang C against the published worked example; business hours."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from routing.erlang import (
    agents_needed,
    average_speed_of_answer,
    occupancy,
    probability_of_waiting,
    service_level,
    traffic_erlangs,
)
from routing.hours import is_open
from routing.model import BusinessHours, Queue


def test_erlang_c_worked_example():
    # 100 contacts per 30 minutes, 3-minute handle time, 20-second target, 14 agents.
    traffic = traffic_erlangs(100, 1800, 180)
    assert traffic == pytest.approx(10.0)
    assert probability_of_waiting(14, traffic) == pytest.approx(0.174, abs=0.001)
    assert service_level(14, traffic, 180, 20) == pytest.approx(0.888, abs=0.002)
    assert average_speed_of_answer(14, traffic, 180) == pytest.approx(7.8, abs=0.1)
    assert occupancy(14, traffic) == pytest.approx(0.714, abs=0.001)
    assert agents_needed(traffic, 180, 20, 0.80) == 14
    assert agents_needed(traffic, 180, 20, 0.90) == 15


def test_erlang_c_edges():
    assert probability_of_waiting(10, 10.0) == 1.0
    assert service_level(5, 10.0, 180, 20) == 0.0
    assert probability_of_waiting(300, 250.0) < 0.1  # large centers stay stable


WEEKDAYS = {d: (("08:00", "12:00"), ("13:00", "17:00")) for d in range(5)}
QUEUE = Queue(
    "dmv", "dmv", "licenses",
    hours=BusinessHours("America/Chicago", WEEKDAYS, frozenset({"2026-07-03"})),
)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2026, 3, 2, 15, 0, tzinfo=UTC), True),  # Mon 09:00 Chicago
        (datetime(2026, 3, 2, 18, 30, tzinfo=UTC), False),  # lunch
        (datetime(2026, 3, 2, 23, 0, tzinfo=UTC), False),  # 17:00 closes
        (datetime(2026, 3, 7, 15, 0, tzinfo=UTC), False),  # Saturday
        (datetime(2026, 7, 3, 15, 0, tzinfo=UTC), False),  # holiday
    ],
)
def test_is_open(moment, expected):
    assert is_open(QUEUE, moment) is expected
    assert is_open(QUEUE, moment.timestamp()) is expected


def test_queue_without_hours_is_always_open():
    assert is_open(Queue("q", "d", "t"), 0.0)
