"""Schemas of the routing endpoints: presence, offers, transfer, wrap-up, referral, reach."""

from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Boolean, Dict, Float, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range
from marshmallow import ValidationError, validates_schema

from app.api.schemas import DB_ID, TicketOut, UTCDateTime
from routing.model import CHANNELS
from routing.referral import REFERRAL_REASONS

SETTABLE_PRESENCES = ["available", "away", "offline"]


class PresenceIn(Schema):
    presence = String(required=True, validate=OneOf(SETTABLE_PRESENCES))
    capacity = Dict(keys=String(validate=OneOf(list(CHANNELS))),
                    values=Integer(strict=True, validate=Range(min=0, max=100)))


class PresenceOut(Schema):
    id = Integer()
    name = String()
    presence = String()
    presence_since = UTCDateTime()
    capacity = Dict()
    missed_offers = Integer()


class TicketSummary(Schema):
    id = Integer()
    reference = String()
    status = String()
    channel = String()
    queue = String(allow_none=True)
    subject = String()
    citizen_id = Integer()
    assigned_agent_id = Integer(allow_none=True)
    language = String(allow_none=True)
    priority = Integer()


class OfferOut(Schema):
    offer_id = Integer()
    work_item_id = Integer()
    agent_id = Integer()
    status = String()
    channel = String()
    made_at = String()
    expires_at = String()
    ticket = Nested(TicketSummary)


class OfferList(Schema):
    items = List(Nested(OfferOut))


class TransferIn(Schema):
    agent_id = Integer(strict=True, validate=DB_ID)
    queue = String(validate=Length(1, 50))
    reason = String(load_default="", validate=Length(0, 500))

    @validates_schema
    def _target(self, data, **kwargs):
        if "agent_id" not in data and "queue" not in data:
            raise ValidationError("name an agent_id or a queue to transfer to")


class CompleteIn(Schema):
    disposition = String(required=True, validate=Length(1, 50))
    note = String(load_default="", validate=Length(0, 10_000))


class ReferralIn(Schema):
    agency = String(required=True, validate=Length(1, 200))
    reason = String(required=True, validate=OneOf(sorted(REFERRAL_REASONS)))
    phone = String(validate=Length(1, 40))
    email = String(validate=Length(1, 254))
    url = String(validate=Length(1, 500))
    note = String(load_default="", validate=Length(0, 1000))


class RoutedTicketOut(TicketOut):
    disposition = String(allow_none=True)


class QueueItemOut(Schema):
    work_item_id = Integer()
    ticket_id = Integer()
    reference = String()
    subject = String()
    status = String()
    channel = String()
    language = String(allow_none=True)
    priority = Integer()
    commitments = List(String())
    agent_id = Integer(allow_none=True)
    position = Integer(allow_none=True)
    arrived_at = String()
    queued_at = String(allow_none=True)
    wait_seconds = Float()
    sla_due_at = String(allow_none=True)
    sla_breached = Boolean()


class QueueItemsOut(Schema):
    queue = String()
    name = String()
    open = Boolean()
    sla_target_seconds = Integer()
    waiting = Integer()
    longest_wait_seconds = Float()
    items = List(Nested(QueueItemOut))


class ReferralQuery(Schema):
    since = UTCDateTime()
    until = UTCDateTime()


class CountByAgency(Schema):
    agency = String()
    count = Integer()


class CountByReason(Schema):
    reason = String()
    count = Integer()


class ReferralReportOut(Schema):
    total = Integer()
    by_agency = List(Nested(CountByAgency))
    by_reason = List(Nested(CountByReason))


class ReachFallback(Schema):
    channel = String()
    address = String()


class ReachOut(Schema):
    citizen_id = Integer()
    channel = String(allow_none=True)
    address = String(allow_none=True)
    reason = String()
    language = String()
    fallbacks = List(Nested(ReachFallback))
