"""Choosing how to reach a citizen, from their channel-preference profile.

The ranked preferences are filtered by reachability (an address exists and has not
opted out) and accessibility (no voice for a deaf or hard-of-hearing resident unless
relay is set). The reason is a sentence the agent console shows.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from app.extensions import db
from app.models import ChannelProfile, Citizen, ContactPoint, SegmentProfile

KIND_FOR = {"sms": "phone", "voice": "phone", "email": "email", "chat": "chat"}
DEFAULT_ORDER = ["sms", "email", "voice", "chat"]


@dataclass(frozen=True)
class ReachDecision:
    channel: str
    address: str
    reason: str


def choose_channel(citizen_id: int, *, exclude: set[str] | None = None,
                   text_only: bool = False) -> ReachDecision | None:
    exclude = exclude or set()
    citizen = db.session.get(Citizen, citizen_id)
    profile = db.session.scalar(
        sa.select(ChannelProfile).where(ChannelProfile.citizen_id == citizen_id)
    )
    order = list(profile.preferred_channels) if profile and profile.preferred_channels else []
    source = "the resident's preference"
    if not order and citizen is not None and citizen.segment:
        seg = db.session.scalar(
            sa.select(SegmentProfile).where(SegmentProfile.segment == citizen.segment)
        )
        if seg:
            order, source = list(seg.preferred_channels), f"the {citizen.segment} segment default"
    for channel in DEFAULT_ORDER:
        if channel not in order:
            order.append(channel)
    needs = set(profile.accessibility or []) if profile else set()
    points = db.session.scalars(
        sa.select(ContactPoint).where(ContactPoint.citizen_id == citizen_id)
    ).all()
    skipped: list[str] = []
    for rank, channel in enumerate(order, start=1):
        if channel in exclude:
            skipped.append(f"{channel} already tried")
            continue
        if channel == "voice" and text_only:
            continue
        if channel == "voice" and needs & {"deaf", "hard_of_hearing"} and "relay" not in needs:
            skipped.append("voice skipped: the resident is deaf or hard of hearing")
            continue
        if channel == "chat":
            continue  # chat replies reach a resident only inside a live chat session
        candidates = [p for p in points if p.kind == KIND_FOR[channel]]
        usable = [p for p in candidates if not (p.opted_out and channel in ("sms", "voice"))]
        if not candidates:
            skipped.append(f"no {channel} address")
            continue
        if not usable:
            skipped.append(f"{channel} opted out")
            continue
        reason = f"{channel}: choice {rank} in {source}"
        if skipped:
            reason += "; " + "; ".join(skipped)
        return ReachDecision(channel, usable[-1].value, reason)
    return None
