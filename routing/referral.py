"""Referral of a misdirected ticket to the agency that can actually help.

A one-stop contact center often receives questions that belong to another agency
(another level of government, a utility, a non-profit). The agent refers the resident
on instead of leaving them to find the right door themselves. This module only
describes and validates the referral; the app stores it and counts referrals per
agency and reason to show where residents get lost.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

REFERRAL_REASONS: frozenset[str] = frozenset(
    {"other_agency", "other_level_of_government", "private_matter", "legal_advice", "emergency"}
)
_PHONE = re.compile(r"^\+?[0-9][0-9 ().-]{5,}$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_URL = re.compile(r"^https?://[^\s]+\.[^\s]+$")


@dataclass(frozen=True, slots=True)
class Referral:
    """A ticket referred to another agency.

    ``reason`` is one of :data:`REFERRAL_REASONS`; at least one of ``phone``, ``email``
    or ``url`` tells the resident how to reach the agency; ``note`` is free text shown
    to the resident.
    """

    ticket_ref: str
    agency: str
    reason: str
    phone: str | None = None
    email: str | None = None
    url: str | None = None
    note: str = ""
    topics: tuple[str, ...] = field(default_factory=tuple)


def validate_referral(referral: Referral) -> list[str]:
    """Problems with a referral as human-readable messages; an empty list means valid."""
    problems: list[str] = []
    if not referral.ticket_ref.strip():
        problems.append("ticket reference is required")
    if not referral.agency.strip():
        problems.append("agency is required")
    if referral.reason not in REFERRAL_REASONS:
        allowed = ", ".join(sorted(REFERRAL_REASONS))
        problems.append(f"reason {referral.reason!r} is not one of: {allowed}")
    if not (referral.phone or referral.email or referral.url):
        problems.append("give the resident a phone number, email address or web address")
    if referral.phone and not _PHONE.match(referral.phone):
        problems.append(f"phone number {referral.phone!r} is not valid")
    if referral.email and not _EMAIL.match(referral.email):
        problems.append(f"email address {referral.email!r} is not valid")
    if referral.url and not _URL.match(referral.url):
        problems.append(f"web address {referral.url!r} must start with http:// or https://")
    if len(referral.note) > 1000:
        problems.append("note is longer than 1000 characters")
    return problems


def is_valid_referral(referral: Referral) -> bool:
    """True when :func:`validate_referral` finds no problems."""
    return not validate_referral(referral)
