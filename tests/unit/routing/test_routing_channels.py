"""Reply channel choice, fallback, learning and segment defaults; referral validation."""

from __future__ import annotations

from datetime import UTC, datetime

from routing.channels import (
    ChannelProfile,
    ContactPoint,
    choose_reply_channel,
    learned_ranking,
    next_channel,
)
from routing.referral import Referral, is_valid_referral, validate_referral

NOON_MONDAY = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)  # 12:00 in New York
NIGHT_MONDAY = datetime(2026, 3, 3, 4, 0, tzinfo=UTC)  # 23:00 in New York
POINTS = [
    ContactPoint("voice", "+15555550100", verified=True),
    ContactPoint("sms", "+15555550100", verified=True),
    ContactPoint("email", "resident@example.org"),
]


def test_first_preference_wins():
    decision = choose_reply_channel(ChannelProfile(["sms", "email"]), POINTS, NOON_MONDAY)
    assert decision.channel == "sms" and decision.address == "+15555550100"
    assert decision.reason == "sms: first preference"
    assert decision.fallbacks[0] == ("email", "resident@example.org")


def test_deaf_resident_never_gets_voice():
    for purpose in ("reply", "callback", "notification"):
        profile = ChannelProfile(["voice", "sms"], accessibility=["deaf"])
        decision = choose_reply_channel(profile, POINTS, NOON_MONDAY, purpose=purpose)
        assert decision.channel == "sms"
        assert all(channel != "voice" for channel, _ in decision.fallbacks)
        assert "voice skipped: resident is deaf" in decision.reason


def test_relay_allows_voice_for_deaf_resident():
    profile = ChannelProfile(["voice"], accessibility=["deaf", "relay"])
    assert choose_reply_channel(profile, POINTS, NOON_MONDAY).channel == "voice"


def test_blind_resident_gets_voice_or_email_before_sms():
    profile = ChannelProfile(["sms", "email"], accessibility=["blind"])
    assert choose_reply_channel(profile, POINTS, NOON_MONDAY).channel == "email"


def test_opted_out_channel_is_skipped():
    points = [ContactPoint("sms", "+15555550100", opted_out=True), *POINTS[2:]]
    decision = choose_reply_channel(ChannelProfile(["sms", "email"]), points, NOON_MONDAY)
    assert decision.channel == "email"
    assert "sms skipped: resident opted out" in decision.reason


def test_contact_hours_hold_sms_but_not_email():
    profile = ChannelProfile(
        ["sms", "email"], contact_hours=[({0, 1, 2, 3, 4}, "09:00", "18:00", "America/New_York")]
    )
    assert choose_reply_channel(profile, POINTS, NOON_MONDAY).channel == "sms"
    late = choose_reply_channel(profile, POINTS, NIGHT_MONDAY)
    assert late.channel == "email"
    assert "outside the resident's contact hours" in late.reason


def test_no_reachable_channel_says_why():
    decision = choose_reply_channel(ChannelProfile(["sms"]), [], NOON_MONDAY)
    assert decision.channel is None and decision.reason.startswith("no reachable channel")


def test_fallback_after_delivery_failure():
    decision = choose_reply_channel(ChannelProfile(["sms", "email", "voice"]), POINTS, NOON_MONDAY)
    second = next_channel(decision, "sms")
    assert second.channel == "email" and "fallback after sms" in second.reason
    third = next_channel(second, "email")
    assert third.channel == "voice"
    assert next_channel(third, "voice").channel is None


def test_learning_moves_sms_above_unanswered_voice():
    stats = {"voice": {"sent": 6, "answered": 0}, "sms": {"sent": 5, "answered": 5}}
    assert learned_ranking(["voice", "sms"], stats) == ["sms", "voice"]
    assert learned_ranking(["voice", "sms"], {"voice": {"sent": 1, "answered": 0}}) == [
        "voice", "sms"]
    profile = ChannelProfile(["voice", "sms"], channel_stats=stats)
    decision = choose_reply_channel(profile, POINTS, NOON_MONDAY)
    assert decision.channel == "sms" and "resident answers it" in decision.reason


def test_segment_default_without_history():
    senior = choose_reply_channel(ChannelProfile(segment="senior"), POINTS, NOON_MONDAY)
    assert senior.channel == "voice" and "default for senior" in senior.reason
    business = choose_reply_channel(ChannelProfile(segment="business"), POINTS, NOON_MONDAY)
    assert business.channel == "email"


def test_survey_never_by_voice():
    decision = choose_reply_channel(ChannelProfile(["voice"]), POINTS, NOON_MONDAY, "survey")
    assert decision.channel != "voice"


def test_referral_validation():
    good = Referral("CL-2026-000123", "State Tax Board", "other_agency", phone="+1 800 555 0100")
    assert is_valid_referral(good)
    bad = Referral("", "", "because", email="not-an-email", url="ftp://x")
    problems = validate_referral(bad)
    assert len(problems) == 5
    assert any("reason" in p for p in problems)
    assert not is_valid_referral(Referral("CL-1", "Water Utility", "other_agency"))
