"""Privacy: records requests (export), erasure on request, and retention.

Decision: **anonymize, never purge.** Erasure and retention remove personal data (names,
addresses, message texts, subjects, attachments, transcripts, recordings, survey comments,
questions asked of the knowledge base) but keep the skeleton of each ticket and
interaction (channel, queue, timestamps, status, delivery outcome). Reports, service
levels and the equal-service parity views stay correct, foreign keys stay intact, and
provider ids stay, so a replayed webhook is still recognized and never resurrects an
erased message. Contact points are deleted outright.

* ``export_citizen``: everything held about a citizen (and identities merged into them),
  as JSON-ready data; audited as ``citizen.export``.
* ``erase_citizen``: the citizen's personal data removed on request; audited as
  ``citizen.erase`` (the audit row holds counts, not the erased data).
* ``apply_retention``: closed tickets older than ``RETENTION_DAYS`` (default 730) are
  anonymized; a citizen with no remaining non-anonymized ticket and no recent activity
  is anonymized too. Run hourly by the ``retention`` schedule; audited as
  ``retention.anonymize``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import current_app

from app.extensions import db
from app.models import (
    OPEN_STATUSES,
    ChannelProfile,
    ChatSession,
    Citizen,
    ContactPoint,
    Interaction,
    KBQuery,
    Outbox,
    SurveyResponse,
    Ticket,
    User,
    WalkInVisit,
    utcnow,
)
from app.services.citizens import audit, get_citizen

ERASED_TEXT = "[erased]"
ANONYMIZED_SUBJECT = "[anonymized]"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() + "Z" if value else None


def _identity_ids(citizen: Citizen) -> list[int]:
    """The citizen and every identity merged into them (the same person)."""
    ids = [citizen.id]
    frontier = [citizen.id]
    while frontier:
        merged = db.session.scalars(
            sa.select(Citizen.id).where(Citizen.merged_into_id.in_(frontier))
        ).all()
        frontier = [i for i in merged if i not in ids]
        ids.extend(frontier)
    return ids


def _interaction(row: Interaction) -> dict[str, Any]:
    return {
        "id": row.id, "channel": row.channel, "direction": row.direction,
        "author_kind": row.author_kind, "created_at": _iso(row.created_at),
        "subject": row.subject, "text": row.text, "attachments": row.attachments or [],
        "delivery_status": row.delivery_status, "transcript": row.transcript,
        "recording_url": row.recording_url, "duration_seconds": row.duration_seconds,
    }


def _ticket(row: Ticket, interactions: list[Interaction],
            surveys: list[SurveyResponse]) -> dict[str, Any]:
    return {
        "id": row.id, "reference": row.reference, "subject": row.subject, "topic": row.topic,
        "status": row.status, "channel": row.channel, "language": row.language,
        "created_at": _iso(row.created_at), "resolved_at": _iso(row.resolved_at),
        "closed_at": _iso(row.closed_at), "satisfaction": row.satisfaction,
        "referral": row.referral,
        "interactions": [_interaction(i) for i in interactions],
        "surveys": [{"channel": s.channel, "score": s.score, "comment": s.comment,
                     "created_at": _iso(s.created_at)} for s in surveys],
    }


def export_citizen(citizen_id: int, actor: User | None) -> dict[str, Any]:
    """Everything held about a citizen, for a records request; audited."""
    citizen = get_citizen(citizen_id)
    ids = _identity_ids(citizen)
    points = db.session.scalars(
        sa.select(ContactPoint).where(ContactPoint.citizen_id.in_(ids)).order_by(ContactPoint.id)
    ).all()
    profile = db.session.scalar(sa.select(ChannelProfile).where(
        ChannelProfile.citizen_id == citizen.id))
    tickets = db.session.scalars(
        sa.select(Ticket).where(Ticket.citizen_id.in_(ids)).order_by(Ticket.id)).all()
    ticket_ids = [t.id for t in tickets]
    by_ticket: dict[int, list[Interaction]] = {t: [] for t in ticket_ids}
    for row in db.session.scalars(sa.select(Interaction).where(
            Interaction.ticket_id.in_(ticket_ids)).order_by(Interaction.id)):
        by_ticket[row.ticket_id].append(row)
    surveys: dict[int, list[SurveyResponse]] = {t: [] for t in ticket_ids}
    for row in db.session.scalars(sa.select(SurveyResponse).where(
            SurveyResponse.ticket_id.in_(ticket_ids)).order_by(SurveyResponse.id)):
        surveys[row.ticket_id].append(row)
    data = {
        "exported_at": _iso(utcnow()),
        "citizen": {
            "id": citizen.id, "kind": citizen.kind, "display_name": citizen.display_name,
            "language": citizen.language, "age_band": citizen.age_band,
            "region": citizen.region, "occupation": citizen.occupation,
            "industry": citizen.industry, "org_size": citizen.org_size,
            "segment": citizen.segment, "created_at": _iso(citizen.created_at),
            "merged_identities": [i for i in ids if i != citizen.id],
        },
        "contact_points": [
            {"id": p.id, "kind": p.kind, "value": p.value, "verified": p.verified,
             "opted_out": p.opted_out, "opted_out_at": _iso(p.opted_out_at),
             "consent_note": p.consent_note, "created_at": _iso(p.created_at)}
            for p in points
        ],
        "profile": None if profile is None else {
            "preferred_channels": profile.preferred_channels, "language": profile.language,
            "accessibility": profile.accessibility, "contact_hours": profile.contact_hours,
            "channel_stats": profile.channel_stats,
        },
        "tickets": [_ticket(t, by_ticket[t.id], surveys[t.id]) for t in tickets],
    }
    audit(actor, "citizen.export", "citizen", citizen.id,
          {"tickets": len(tickets), "contact_points": len(points)})
    db.session.commit()
    return data


def _anonymize_tickets(ticket_ids: list[int]) -> int:
    """Replace the personal content of these tickets' records; returns interactions hit."""
    if not ticket_ids:
        return 0
    hit = db.session.execute(
        sa.update(Interaction).where(Interaction.ticket_id.in_(ticket_ids)).values(
            text=ERASED_TEXT, subject=None, html=None, full_text=None, attachments=[],
            meta={}, transcript=None, recording_url=None, delivery_error=None,
            contact_point_id=None)
    ).rowcount
    db.session.execute(sa.update(Ticket).where(Ticket.id.in_(ticket_ids)).values(
        subject=ANONYMIZED_SUBJECT, contact_point_id=None))
    db.session.execute(sa.update(Outbox).where(Outbox.ticket_id.in_(ticket_ids)).values(
        to_address=ERASED_TEXT, payload={}))
    db.session.execute(sa.update(SurveyResponse).where(
        SurveyResponse.ticket_id.in_(ticket_ids)).values(comment=None))
    db.session.execute(sa.update(KBQuery).where(KBQuery.ticket_id.in_(ticket_ids)).values(
        query=ERASED_TEXT))
    db.session.execute(sa.update(WalkInVisit).where(
        WalkInVisit.ticket_id.in_(ticket_ids)).values(phone=None))
    return hit


def _anonymize_citizens(ids: list[int]) -> int:
    """Remove names, segment attributes, profiles and contact points; returns points."""
    db.session.execute(sa.update(Ticket).where(Ticket.citizen_id.in_(ids)).values(
        contact_point_id=None))
    db.session.execute(sa.update(Interaction).where(Interaction.citizen_id.in_(ids)).values(
        contact_point_id=None))
    points = db.session.execute(
        sa.delete(ContactPoint).where(ContactPoint.citizen_id.in_(ids))).rowcount
    db.session.execute(sa.delete(ChannelProfile).where(ChannelProfile.citizen_id.in_(ids)))
    db.session.execute(sa.update(ChatSession).where(ChatSession.citizen_id.in_(ids)).values(
        status="erased"))
    for citizen_id in ids:
        db.session.execute(sa.update(Citizen).where(Citizen.id == citizen_id).values(
            display_name=f"Erased citizen #{citizen_id}", age_band=None, region=None,
            occupation=None, industry=None, org_size=None, segment=None))
    return points


def erase_citizen(citizen_id: int, actor: User | None, reason: str = "") -> dict[str, Any]:
    """Erase a citizen's personal data on request (and their merged identities); audited."""
    citizen = get_citizen(citizen_id)
    ids = _identity_ids(citizen)
    ticket_ids = list(db.session.scalars(sa.select(Ticket.id).where(Ticket.citizen_id.in_(ids))))
    # Replies still waiting in the outbox must not go out to an erased address.
    db.session.execute(sa.update(Outbox).where(
        Outbox.ticket_id.in_(ticket_ids),
        Outbox.status.in_(("pending", "retrying"))).values(status="cancelled"))
    interactions = _anonymize_tickets(ticket_ids)
    points = _anonymize_citizens(ids)
    summary = {"citizens": len(ids), "tickets": len(ticket_ids),
               "interactions": interactions, "contact_points": points}
    audit(actor, "citizen.erase", "citizen", citizen.id,
          {**summary, "reason": reason[:200]})
    db.session.commit()
    return {"citizen_id": citizen.id, "erased": summary}


def apply_retention(now: datetime | None = None) -> dict[str, int]:
    """Anonymize closed tickets past ``RETENTION_DAYS`` and citizens left with nothing."""
    now = now or utcnow()
    cutoff = now - timedelta(days=int(current_app.config.get("RETENTION_DAYS", 730)))
    ticket_ids = list(db.session.scalars(sa.select(Ticket.id).where(
        Ticket.status == "closed", Ticket.closed_at < cutoff,
        Ticket.subject != ANONYMIZED_SUBJECT).limit(5000)))
    interactions = _anonymize_tickets(ticket_ids)
    # Citizens whose every ticket is anonymized and who have not been in touch since.
    kept = sa.select(Ticket.citizen_id).where(sa.or_(
        Ticket.subject != ANONYMIZED_SUBJECT, Ticket.status.in_(OPEN_STATUSES),
        Ticket.last_activity_at >= cutoff))
    citizen_ids = list(db.session.scalars(sa.select(Citizen.id).where(
        Citizen.id.in_(sa.select(Ticket.citizen_id)), Citizen.id.not_in(kept),
        ~Citizen.display_name.startswith("Erased citizen #"))))
    points = _anonymize_citizens(citizen_ids) if citizen_ids else 0
    summary = {"tickets": len(ticket_ids), "interactions": interactions,
               "citizens": len(citizen_ids), "contact_points": points}
    if ticket_ids or citizen_ids:
        audit(None, "retention.anonymize", "ticket", "*",
              {**summary, "cutoff": _iso(cutoff)})
    db.session.commit()
    return summary
