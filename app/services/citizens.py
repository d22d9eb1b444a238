"""Citizens: look-up, channel-preference profile edits, and merges (audited)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from app.extensions import db
from app.models import (
    AuditLog,
    ChannelProfile,
    ChatSession,
    Citizen,
    ContactPoint,
    Interaction,
    Ticket,
    User,
)
from app.services import Invalid, NotFound
from app.services.contacts import normalize
from channels.base import language_code

CHANNELS = ("voice", "sms", "email", "chat", "walkin")
ACCESSIBILITY = ("deaf", "hard_of_hearing", "blind", "low_vision", "interpreter", "relay")


def audit_values(actor: User | None, action: str, object_type: str, object_id: Any,
                 detail: dict | None = None) -> dict[str, Any]:
    """An audit entry's column values (for a write that adds it itself)."""
    return {"actor_id": actor.id if actor else None, "action": action,
            "object_type": object_type, "object_id": str(object_id), "detail": detail or {}}


def audit(actor: User | None, action: str, object_type: str, object_id: Any,
          detail: dict | None = None) -> AuditLog:
    row = AuditLog(**audit_values(actor, action, object_type, object_id, detail))
    db.session.add(row)
    return row


def get_citizen(citizen_id: int) -> Citizen:
    citizen = db.session.get(Citizen, citizen_id)
    if citizen is None:
        raise NotFound(f"citizen {citizen_id} not found")
    return citizen


def find_by_contact(phone: str | None = None, email: str | None = None) -> list[Citizen]:
    conditions = []
    if phone:
        conditions.append(sa.and_(ContactPoint.kind == "phone",
                                  ContactPoint.value == normalize("phone", phone)))
    if email:
        conditions.append(sa.and_(ContactPoint.kind == "email",
                                  ContactPoint.value == normalize("email", email)))
    if not conditions:
        raise Invalid("give phone or email to search citizens", code="missing_query")
    ids = db.session.scalars(sa.select(ContactPoint.citizen_id).where(sa.or_(*conditions))).all()
    result = []
    for cid in dict.fromkeys(ids):
        citizen = db.session.get(Citizen, cid)
        while citizen.merged_into_id:
            citizen = db.session.get(Citizen, citizen.merged_into_id)
        if citizen not in result:
            result.append(citizen)
    return result


def get_profile(citizen: Citizen) -> ChannelProfile:
    if citizen.profile is None:
        profile = ChannelProfile(citizen_id=citizen.id, preferred_channels=[],
                                 language=citizen.language)
        db.session.add(profile)
        db.session.flush()
        db.session.refresh(citizen)
    return citizen.profile


def update_profile(citizen_id: int, data: dict[str, Any], actor: User | None) -> ChannelProfile:
    """Validate and apply a channel-preference profile edit; audited."""
    citizen = get_citizen(citizen_id)
    profile = get_profile(citizen)
    changes: dict[str, Any] = {}
    if "preferred_channels" in data:
        channels = data["preferred_channels"]
        bad = [c for c in channels if c not in CHANNELS]
        if bad or len(set(channels)) != len(channels):
            raise Invalid(f"preferred_channels must be distinct channels from {CHANNELS}",
                          code="invalid_channels", detail={"invalid": bad})
        profile.preferred_channels = list(channels)
        changes["preferred_channels"] = list(channels)
    if "accessibility" in data:
        needs = data["accessibility"]
        bad = [n for n in needs if n not in ACCESSIBILITY]
        if bad:
            raise Invalid(f"accessibility needs must be among {ACCESSIBILITY}",
                          code="invalid_accessibility", detail={"invalid": bad})
        profile.accessibility = sorted(set(needs))
        changes["accessibility"] = profile.accessibility
    if "language" in data:
        # Kept as routing and the knowledge base name languages: "es-MX" is "es".
        language = language_code(data["language"])
        if language is None:
            raise Invalid("language must be a language tag such as en, es or zh",
                          code="invalid_language")
        profile.language = citizen.language = changes["language"] = language
    if "contact_hours" in data:
        for window in data["contact_hours"]:
            if not isinstance(window, dict) or not {"start", "end"} <= set(window):
                raise Invalid("each contact-hours window needs start and end (HH:MM)",
                              code="invalid_contact_hours")
        profile.contact_hours = data["contact_hours"]
        changes["contact_hours"] = data["contact_hours"]
    audit(actor, "citizen.profile_update", "citizen", citizen.id, changes)
    db.session.commit()
    return profile


def merge(source_id: int, target_id: int, actor: User | None, reason: str = "") -> Citizen:
    """Merge ``source`` into ``target``: contact points, tickets, interactions and the
    profile move over; the source is kept as a tombstone pointing at the target."""
    if source_id == target_id:
        raise Invalid("cannot merge a citizen into itself", code="same_citizen")
    source = get_citizen(source_id)
    target = get_citizen(target_id)
    if source.merged_into_id or target.merged_into_id:
        raise Invalid("one of these citizens was already merged", code="already_merged")
    moved = {
        "contact_points": db.session.execute(
            sa.update(ContactPoint).where(ContactPoint.citizen_id == source.id)
            .values(citizen_id=target.id)).rowcount,
        "tickets": db.session.execute(
            sa.update(Ticket).where(Ticket.citizen_id == source.id)
            .values(citizen_id=target.id)).rowcount,
        "interactions": db.session.execute(
            sa.update(Interaction).where(Interaction.citizen_id == source.id)
            .values(citizen_id=target.id)).rowcount,
    }
    db.session.execute(sa.update(ChatSession).where(ChatSession.citizen_id == source.id)
                       .values(citizen_id=target.id))
    src_profile = db.session.scalar(
        sa.select(ChannelProfile).where(ChannelProfile.citizen_id == source.id))
    tgt_profile = db.session.scalar(
        sa.select(ChannelProfile).where(ChannelProfile.citizen_id == target.id))
    if src_profile is not None:
        if tgt_profile is None:
            src_profile.citizen_id = target.id
        else:
            ranked = list(tgt_profile.preferred_channels or [])
            ranked += [c for c in src_profile.preferred_channels or [] if c not in ranked]
            tgt_profile.preferred_channels = ranked
            tgt_profile.accessibility = sorted(
                set(tgt_profile.accessibility or []) | set(src_profile.accessibility or []))
            tgt_profile.language = tgt_profile.language or src_profile.language
            db.session.delete(src_profile)
    for field in ("language", "age_band", "region", "occupation", "industry", "org_size",
                  "segment"):
        if getattr(target, field) is None and getattr(source, field) is not None:
            setattr(target, field, getattr(source, field))
    source.merged_into_id = target.id
    audit(actor, "citizen.merge", "citizen", target.id,
          {"source_id": source.id, "target_id": target.id, "moved": moved, "reason": reason})
    db.session.commit()
    db.session.expire_all()
    return db.session.get(Citizen, target.id)


def list_merges(limit: int = 100) -> list[AuditLog]:
    return list(db.session.scalars(
        sa.select(AuditLog).where(AuditLog.action == "citizen.merge")
        .order_by(AuditLog.id.desc()).limit(limit)))
