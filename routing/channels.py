"""Choosing the channel to reply on, from a resident's channel-preference profile.

:func:`choose_reply_channel` is pure: it takes the profile, the resident's contact points
and the time, and returns a :class:`ChannelDecision` with the channel, the address, the
fallbacks to try if delivery fails (:func:`next_channel`) and a sentence for the agent
console explaining the choice, e.g. ``"sms: first preference; voice skipped: resident is
deaf"``.

The order of candidates is:

1. the profile's ``preferred_channels`` (or, with none, the default for the resident's
   segment, see :data:`SEGMENT_DEFAULTS`), adjusted by what history shows the resident
   answers (:func:`learned_ranking`);
2. any other channel with a contact point, in the default order.

A candidate is skipped when it has no contact point, every contact point for it is
opted out, the channel is outside the resident's contact hours, or it does not suit the
resident's accessibility needs: no voice for a deaf or hard-of-hearing resident unless a
relay service is set up; blind and low-vision residents get voice and email before SMS
and chat. When every channel is skipped, the decision has no channel and the reason says
why, so the app can hold the reply (e.g. until contact hours start) instead of guessing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from routing.hours import parse_hhmm

REPLY_CHANNELS: tuple[str, ...] = ("sms", "email", "voice", "chat")
DEFAULT_ORDER: tuple[str, ...] = ("email", "sms", "voice", "chat")
LIVE_CHANNELS = frozenset({"voice", "chat"})  # only useful while the resident is reachable now
SEGMENT_DEFAULTS: dict[str, tuple[str, ...]] = {
    "senior": ("voice", "email", "sms"),
    "adult": ("sms", "email", "voice"),
    "youth": ("sms", "chat", "email"),
    "business": ("email", "voice", "sms"),
    "default": DEFAULT_ORDER,
}
PURPOSES = frozenset({"reply", "notification", "callback", "survey"})
HEARING = frozenset({"deaf", "hard_of_hearing"})
SIGHT = frozenset({"blind", "low_vision"})
MIN_ATTEMPTS_TO_LEARN = 3


@dataclass(frozen=True, slots=True)
class ContactPoint:
    """One address of a resident on one channel."""

    channel: str
    address: str
    opted_out: bool = False
    verified: bool = False


@dataclass(frozen=True, slots=True)
class ContactWindow:
    """Hours a resident may be contacted: weekdays (0 = Monday), local start and end."""

    weekdays: frozenset[int]
    start: str
    end: str
    tz: str = "UTC"


@dataclass(slots=True)
class ChannelProfile:
    """A resident's channel-preference profile.

    ``contact_hours`` holds :class:`ContactWindow` items or plain
    ``(weekdays, "HH:MM", "HH:MM", tz)`` tuples; empty means any time. ``channel_stats``
    maps a channel to ``{"sent": n, "answered": n}`` counts from history.
    """

    preferred_channels: list[str] = field(default_factory=list)
    language: str = "en"
    accessibility: list[str] = field(default_factory=list)
    contact_hours: list[ContactWindow | tuple] = field(default_factory=list)
    channel_stats: dict[str, dict[str, int]] = field(default_factory=dict)
    segment: str | None = None


@dataclass(frozen=True, slots=True)
class ChannelDecision:
    """Where to send a reply. ``channel`` and ``address`` are None when nothing fits."""

    channel: str | None
    address: str | None
    reason: str
    fallbacks: tuple[tuple[str, str], ...] = ()
    language: str = "en"


def learned_ranking(
    preferred: Sequence[str],
    channel_stats: Mapping[str, Mapping[str, int]],
    min_attempts: int = MIN_ATTEMPTS_TO_LEARN,
) -> list[str]:
    """Reorder preferred channels by what the resident actually answers.

    A channel with at least ``min_attempts`` messages sent scores its answer rate; one
    with fewer keeps a neutral 0.5 so a single missed call does not bury it. Channels are
    sorted by score, highest first; ties keep the resident's own order. Channels that
    appear only in the stats (answered at least once) are appended after the preferred
    ones, also by score. So a resident who never answers calls but answers texts gets SMS
    ahead of voice.
    """
    def score(channel: str) -> float:
        stats = channel_stats.get(channel, {})
        sent = int(stats.get("sent", 0))
        if sent < min_attempts:
            return 0.5
        return min(1.0, int(stats.get("answered", 0)) / sent)

    ordered = list(dict.fromkeys(preferred))
    ranked = sorted(ordered, key=lambda c: (-score(c), ordered.index(c)))
    extra = sorted(
        (c for c, s in channel_stats.items() if c not in ordered and s.get("answered", 0) > 0),
        key=lambda c: (-score(c), c),
    )
    return ranked + extra


def _windows(profile: ChannelProfile) -> list[ContactWindow]:
    windows = []
    for window in profile.contact_hours:
        if isinstance(window, ContactWindow):
            windows.append(window)
        else:
            days, start, end, *rest = window
            windows.append(ContactWindow(frozenset(days), start, end, rest[0] if rest else "UTC"))
    return windows


def within_contact_hours(profile: ChannelProfile, now: datetime | float) -> bool:
    """True when ``now`` falls in one of the resident's contact windows (or none are set)."""
    windows = _windows(profile)
    if not windows:
        return True
    if isinstance(now, datetime):
        moment = now if now.tzinfo else now.replace(tzinfo=UTC)
    else:
        moment = datetime.fromtimestamp(now, UTC)
    for window in windows:
        local = moment.astimezone(ZoneInfo(window.tz))
        if local.weekday() not in window.weekdays:
            continue
        clock = local.time().replace(tzinfo=None)
        start = parse_hhmm(window.start)
        end = parse_hhmm(window.end)
        if (start is None or start <= clock) and (end is None or clock < end):
            return True
    return False


def _accessibility_skip(channel: str, needs: frozenset[str]) -> str | None:
    if channel == "voice" and needs & HEARING and "relay" not in needs:
        label = "deaf" if "deaf" in needs else "hard of hearing"
        return f"resident is {label}"
    return None


def _order_for_needs(channels: list[str], needs: frozenset[str]) -> list[str]:
    """Blind and low-vision residents: voice and email before text-on-screen channels."""
    if not needs & SIGHT:
        return channels
    first = [c for c in channels if c in ("voice", "email")]
    return first + [c for c in channels if c not in ("voice", "email")]


def choose_reply_channel(
    profile: ChannelProfile,
    contact_points: Iterable[ContactPoint],
    now: datetime | float,
    purpose: str = "reply",
) -> ChannelDecision:
    """Pick the channel and address to reach a resident, with fallbacks and a reason.

    ``purpose`` is ``reply`` (an answer to the resident), ``notification``, ``callback``
    (a call back was promised: voice first when it is allowed) or ``survey`` (never by
    voice, so a survey does not interrupt). Contact hours apply to every channel that
    reaches the resident at once (voice, SMS, chat); email waits in the inbox, so it is
    always allowed.
    """
    if purpose not in PURPOSES:
        raise ValueError(f"unknown purpose {purpose!r}")
    needs = frozenset(profile.accessibility)
    points: dict[str, list[ContactPoint]] = {}
    for point in contact_points:
        points.setdefault(point.channel, []).append(point)

    if profile.preferred_channels:
        base = list(profile.preferred_channels)
        source = "preference"
    else:
        base = list(SEGMENT_DEFAULTS.get(profile.segment or "default", DEFAULT_ORDER))
        source = f"default for {profile.segment or 'residents'} with no preference"
    ranked = learned_ranking(base, profile.channel_stats)
    ranked += [c for c in DEFAULT_ORDER if c in points and c not in ranked]
    ranked = _order_for_needs(ranked, needs)
    if purpose == "callback" and "voice" in ranked and not _accessibility_skip("voice", needs):
        ranked = ["voice"] + [c for c in ranked if c != "voice"]

    in_hours = within_contact_hours(profile, now)
    usable: list[tuple[str, str]] = []
    skipped: list[str] = []
    for channel in ranked:
        why = _skip_reason(channel, points, needs, in_hours, purpose)
        if why:
            if channel in base or channel in points:
                skipped.append(f"{channel} skipped: {why}")
            continue
        usable.append((channel, _best_address(points[channel])))

    if not usable:
        reason = "no reachable channel"
        if skipped:
            reason += "; " + "; ".join(skipped)
        return ChannelDecision(None, None, reason, (), profile.language)
    channel, address = usable[0]
    learned = learned_ranking(base, profile.channel_stats)
    if channel not in base:
        why_chosen = "reachable contact point"
    elif learned.index(channel) < base.index(channel):
        why_chosen = f"moved up from {source} #{base.index(channel) + 1}: resident answers it"
    elif base.index(channel) == 0:
        why_chosen = f"first {source}"
    else:
        why_chosen = f"{source} #{base.index(channel) + 1}"
    if needs & SIGHT and channel in ("voice", "email"):
        why_chosen += " (suits a blind or low-vision resident)"
    reason = f"{channel}: {why_chosen}"
    if skipped:
        reason += "; " + "; ".join(skipped)
    return ChannelDecision(channel, address, reason, tuple(usable[1:]), profile.language)


def _skip_reason(
    channel: str,
    points: Mapping[str, list[ContactPoint]],
    needs: frozenset[str],
    in_hours: bool,
    purpose: str,
) -> str | None:
    if channel not in REPLY_CHANNELS:
        return "not a reply channel"
    access = _accessibility_skip(channel, needs)
    if access:
        return access
    candidates = points.get(channel, [])
    if not candidates:
        return "no contact point"
    if all(p.opted_out for p in candidates):
        return "resident opted out"
    if purpose == "survey" and channel == "voice":
        return "surveys are not sent by voice"
    if channel == "chat" and not any(p.verified and not p.opted_out for p in candidates):
        # A chat contact point is verified while the resident's chat window is open.
        return "no open chat conversation"
    if channel != "email" and not in_hours:
        return "outside the resident's contact hours"
    return None


def _best_address(candidates: list[ContactPoint]) -> str:
    """Verified contact points first, then the order given."""
    usable = [p for p in candidates if not p.opted_out]
    usable.sort(key=lambda p: not p.verified)
    return usable[0].address


def next_channel(decision: ChannelDecision, failed_channel: str) -> ChannelDecision:
    """After a delivery on ``failed_channel`` failed, the next fallback (or none)."""
    remaining = [f for f in decision.fallbacks if f[0] != failed_channel]
    if decision.channel is not None and decision.channel != failed_channel:
        remaining = [(decision.channel, decision.address or "")] + remaining
    if not remaining:
        return ChannelDecision(
            None, None, f"no channel left after {failed_channel} failed", (), decision.language
        )
    channel, address = remaining[0]
    return ChannelDecision(
        channel,
        address,
        f"{channel}: fallback after {failed_channel} delivery failed",
        tuple(remaining[1:]),
        decision.language,
    )
