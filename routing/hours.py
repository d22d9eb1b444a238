"""Business hours: is a queue open at a given moment?

A pure function of the queue's :class:`~routing.model.BusinessHours` and a time. The
router does not refuse items when a queue is closed (an email may arrive at night);
the app asks :func:`is_open` to decide whether to play a closed message, offer a
callback or keep a live channel waiting.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from zoneinfo import ZoneInfo

from routing.model import BusinessHours, Queue


def parse_hhmm(text: str) -> time | None:
    """Parse ``"HH:MM"``; ``"24:00"`` gives None, meaning the end of the day."""
    hours, _, minutes = text.partition(":")
    h, m = int(hours), int(minutes or 0)
    if h == 24 and m == 0:
        return None
    if not (0 <= h < 24 and 0 <= m < 60):
        raise ValueError(f"invalid time of day {text!r}")
    return time(h, m)


def _local(now: datetime | float, tz: str) -> datetime:
    if isinstance(now, datetime):
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
        return now.astimezone(ZoneInfo(tz))
    return datetime.fromtimestamp(now, ZoneInfo(tz))


def hours_open(hours: BusinessHours | None, now: datetime | float) -> bool:
    """True when ``now`` (an aware datetime, naive UTC, or epoch seconds) is in a window."""
    if hours is None:
        return True
    local = _local(now, hours.tz)
    if local.date().isoformat() in hours.holidays:
        return False
    clock = local.time().replace(tzinfo=None)
    for start, end in hours.windows.get(local.weekday(), ()):
        begin = parse_hhmm(start) or time(0, 0)
        finish = parse_hhmm(end)
        if begin <= clock and (finish is None or clock < finish):
            return True
    return False


def is_open(queue: Queue, now: datetime | float) -> bool:
    """True when the queue takes live contacts at ``now``; a queue without hours is always open."""
    return hours_open(queue.hours, now)
