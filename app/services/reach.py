"""Choosing how to reach a citizen, from their channel-preference profile.

The decision itself is the routing core's :func:`routing.channels.choose_reply_channel`
(preferences or the segment's defaults, learned answer rates, accessibility, opt-outs,
contact hours). This module only adapts database rows to the core's plain data: the
citizen's ``ChannelProfile``, their ``ContactPoint`` rows (a phone number serves both SMS
and voice) and, for a resident with no preferences, the ``SegmentProfile`` defaults
administrators set. The reason is a sentence the agent console shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from app.extensions import db
from app.models import ChannelProfile, Citizen, ContactPoint, SegmentProfile
from app.services import NotFound
from routing import channels as core

CHANNELS_FOR_KIND = {"phone": ("sms", "voice"), "email": ("email",), "chat": ("chat",)}
KIND_FOR = {"sms": "phone", "voice": "phone", "email": "email", "chat": "chat"}
DEFAULT_ORDER = list(core.DEFAULT_ORDER)


@dataclass(frozen=True)
class ReachDecision:
    channel: str
    address: str
    reason: str


def _windows(hours) -> list[core.ContactWindow]:
    windows = []
    for window in hours or ():
        if isinstance(window, dict) and window.get("days") is not None:
            windows.append(core.ContactWindow(
                frozenset(int(d) for d in window["days"]), window.get("start", "00:00"),
                window.get("end", "24:00"), window.get("tz", "UTC")))
    return windows


def _stats(stats) -> dict[str, dict[str, int]]:
    clean: dict[str, dict[str, int]] = {}
    for channel, numbers in (stats or {}).items():
        if isinstance(numbers, dict):
            clean[channel] = {k: int(v) for k, v in numbers.items()
                              if isinstance(v, int | float) and not isinstance(v, bool)}
    return clean


def decide(citizen_id: int, *, purpose: str = "reply",
           now: datetime | None = None) -> core.ChannelDecision:
    """The core's full decision (channel, address, fallbacks, reason) for a citizen."""
    citizen = db.session.get(Citizen, citizen_id)
    if citizen is None:
        raise NotFound(f"citizen {citizen_id} not found")
    row = db.session.scalar(
        sa.select(ChannelProfile).where(ChannelProfile.citizen_id == citizen_id))
    preferred = list(row.preferred_channels) if row and row.preferred_channels else []
    segment_default = None
    if not preferred and citizen.segment:
        segment_default = db.session.scalar(
            sa.select(SegmentProfile).where(SegmentProfile.segment == citizen.segment))
        if segment_default is not None and segment_default.preferred_channels:
            preferred = list(segment_default.preferred_channels)
    profile = core.ChannelProfile(
        preferred_channels=preferred,
        language=(row.language if row and row.language else citizen.language) or "en",
        accessibility=list(row.accessibility or []) if row else [],
        contact_hours=_windows(row.contact_hours) if row else [],
        channel_stats=_stats(row.channel_stats) if row else {},
        segment=citizen.segment,
    )
    points = db.session.scalars(
        sa.select(ContactPoint).where(ContactPoint.citizen_id == citizen_id)
        .order_by(ContactPoint.id.desc())).all()
    core_points = [
        core.ContactPoint(channel, p.value, opted_out=p.opted_out, verified=p.verified)
        for p in points for channel in CHANNELS_FOR_KIND.get(p.kind, ())
    ]
    decision = core.choose_reply_channel(profile, core_points, now or datetime.now(UTC),
                                         purpose=purpose)
    if segment_default is not None and preferred and decision.channel:
        # The core calls any given order a "preference"; say where this one came from.
        head, sep, tail = decision.reason.partition(";")
        head = head.replace("preference", f"{citizen.segment} segment default", 1)
        decision = core.ChannelDecision(decision.channel, decision.address, head + sep + tail,
                                        decision.fallbacks, decision.language)
    return decision


def choose_channel(citizen_id: int, *, exclude: set[str] | None = None,
                   text_only: bool = False) -> ReachDecision | None:
    """The first usable channel not in ``exclude`` (and not voice when ``text_only``)."""
    exclude = exclude or set()
    try:
        decision = decide(citizen_id)
    except NotFound:
        return None
    if decision.channel is None:
        return None
    candidates = [(decision.channel, decision.address or "")] + list(decision.fallbacks)
    skipped: list[str] = []
    for rank, (channel, address) in enumerate(candidates):
        if channel in exclude:
            skipped.append(f"{channel} already tried")
        elif channel == "voice" and text_only:
            skipped.append("voice skipped: a written message")
        elif rank == 0:
            return ReachDecision(channel, address, decision.reason)
        else:
            return ReachDecision(channel, address,
                                 f"{channel}: next reachable channel; " + "; ".join(skipped))
    return None
