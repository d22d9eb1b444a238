"""Agent replies and internal notes.

The reply channel is the agent's explicit choice when given (among reachable channels),
else the ticket's own channel when the resident can still be reached on it (a live chat,
a phone that has not opted out, an email address), else the next channel from the
citizen's channel-preference profile; on a channel it goes to the address the resident
wrote from, else to their newest one (``outbound.contact_point_for``). The decision and
its reason are stored on the interaction (``metadata.reach_reason``) so the console can
show why.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from app.extensions import db
from app.models import ContactPoint, Interaction, Ticket, User, utcnow
from app.services import Invalid, commit_keeping_loaded, outbound, reach
from app.services.citizens import audit_values

REPLY_CHANNELS = ("sms", "email", "chat", "voice")
SMS_SEGMENT_WARNING = 2


def _last_inbound(ticket: Ticket, channel: str) -> Interaction | None:
    return db.session.scalar(
        sa.select(Interaction)
        .where(Interaction.ticket_id == ticket.id, Interaction.channel == channel,
               Interaction.direction == "inbound")
        .order_by(Interaction.id.desc()).limit(1))


def reply_options(ticket: Ticket) -> dict[str, Any]:
    """What the composer shows: the default channel, why, and every reachable channel."""
    points = db.session.scalars(
        sa.select(ContactPoint).where(ContactPoint.citizen_id == ticket.citizen_id)).all()
    options = []
    for channel in ("sms", "email", "chat"):
        kind = reach.KIND_FOR[channel]
        cps = [p for p in points if p.kind == kind]
        if not cps:
            continue
        opted_out = channel == "sms" and all(p.opted_out for p in cps)
        options.append({"channel": channel, "address": cps[-1].value,
                        "available": not opted_out,
                        "note": "opted out of text messages" if opted_out else ""})
    default = default_channel(ticket)
    return {"default": default[0] if default else None,
            "reason": default[2] if default else "no reachable channel", "options": options}


def default_channel(ticket: Ticket) -> tuple[str, str | None, str] | None:
    chosen = _default(ticket)
    return chosen[:3] if chosen else None


def _default(ticket: Ticket) -> tuple[str, str | None, str, ContactPoint | None] | None:
    """The default channel, address and reason, with the contact point when it was read
    (the reply then needs no second look-up)."""
    if ticket.channel in ("sms", "email", "chat"):
        point = outbound.contact_point_for(ticket, ticket.channel)
        if point is not None and not (ticket.channel == "sms" and point.opted_out):
            return (ticket.channel, point.value,
                    f"{ticket.channel}: the channel the resident used", point)
    decision = reach.choose_channel(ticket.citizen_id, text_only=True)
    if decision is None:
        return None
    return decision.channel, decision.address, decision.reason, None


def reply(ticket: Ticket, agent: User | None, text: str, *, channel: str | None = None,
          kb: tuple[int, int] | None = None) -> Interaction:
    """Send an agent's reply on the chosen channel (see module docstring)."""
    text = (text or "").strip()
    if not text:
        raise Invalid("a reply needs text", code="empty_reply")
    if len(text) > 10_000:
        raise Invalid("a reply is limited to 10,000 characters", code="reply_too_long")
    if ticket.status == "closed":
        raise Invalid("this ticket is closed; open a new one", code="ticket_closed")
    if channel is not None:
        if channel not in REPLY_CHANNELS or channel == "voice":
            raise Invalid(f"cannot reply by {channel!r}; choose sms, email or chat",
                          code="invalid_channel")
        address, reason, point = None, f"{channel}: chosen by the agent", None
    else:
        chosen = _default(ticket)
        if chosen is None:
            raise Invalid("the resident has no reachable channel", code="unreachable")
        channel, address, reason, point = chosen
    meta: dict[str, Any] = {"reach_reason": reason}
    subject = None
    if channel == "email":
        last = _last_inbound(ticket, "email")
        base = (last.subject if last and last.subject else ticket.subject) or "Your request"
        base = base if base.lower().startswith("re:") else f"Re: {base}"
        subject = base if ticket.reference in base else f"[{ticket.reference}] {base}"
        if last is not None and last.provider_id:
            refs = list((last.meta or {}).get("references") or [])
            meta["in_reply_to"] = last.provider_id
            meta["references"] = refs + [last.provider_id]
    interaction = outbound.queue_message(
        ticket, channel, text, to=address, subject=subject, author_kind="agent",
        author_agent_id=agent.id if agent else None, kb=kb, meta=meta, commit=False,
        point=point, opens=True,
        audit=audit_values(agent, "ticket.reply", "ticket", ticket.reference,
                           {"channel": channel}))
    row = outbound.staged_outbox(interaction)
    commit_keeping_loaded()  # announced and returned as written: nothing to read back
    outbound.after_commit(row.id, interaction.id,
                          deliver_now=channel in outbound.LIVE_CHANNELS)
    return interaction


def add_note(ticket: Ticket, agent: User | None, text: str) -> Interaction:
    """An internal note: visible to agents only, never sent."""
    text = (text or "").strip()
    if not text:
        raise Invalid("a note needs text", code="empty_note")
    note = Interaction(ticket_id=ticket.id, citizen_id=ticket.citizen_id, channel="note",
                       direction="internal", author_kind="agent",
                       author_agent_id=agent.id if agent else None, text=text[:10_000],
                       created_at=utcnow())
    db.session.add(note)
    ticket.last_activity_at = utcnow()
    db.session.commit()
    from app import realtime

    realtime.emit("interaction.created", {"ticket": realtime.ticket_summary(ticket),
                                          "interaction": realtime.interaction_summary(note)},
                  rooms=[f"ticket:{ticket.id}"])
    return note
