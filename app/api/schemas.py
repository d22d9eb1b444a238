"""Marshmallow schemas: they validate input and generate the OpenAPI document."""

from __future__ import annotations

from datetime import UTC

from apiflask import Schema
from apiflask.fields import Boolean, DateTime, Dict, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range

from app.models import ROLES, TICKET_STATUSES

# Ids and counts fit the database's integer columns (PostgreSQL ``integer``).
DB_INT_MAX = 2**31 - 1
DB_ID = Range(1, DB_INT_MAX)


class UTCDateTime(DateTime):
    """A timestamp the database keeps as naive UTC, written with its ``Z`` (RFC 3339
    needs an offset); one read with an offset is turned into naive UTC for comparisons."""

    def _serialize(self, value, attr, obj, **kwargs):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        text = super()._serialize(value, attr, obj, **kwargs)
        return text[:-6] + "Z" if isinstance(text, str) and text.endswith("+00:00") else text

    def _deserialize(self, value, attr, data, **kwargs):
        moment = super()._deserialize(value, attr, data, **kwargs)
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC).replace(tzinfo=None)
        return moment

CHANNELS = ["voice", "sms", "email", "chat", "walkin", "note"]


class TokenIn(Schema):
    email = String(required=True, validate=Length(1, 254))
    password = String(required=True, validate=Length(1, 200))


class TokenOut(Schema):
    token = String()
    user_id = Integer()
    role = String()


class ErrorOut(Schema):
    error = Dict()


class ContactPointOut(Schema):
    id = Integer()
    kind = String()
    value = String()
    verified = Boolean()
    opted_out = Boolean()
    opted_out_at = UTCDateTime(allow_none=True)


class ProfileOut(Schema):
    preferred_channels = List(String())
    language = String(allow_none=True)
    accessibility = List(String())
    contact_hours = List(Dict())
    channel_stats = Dict()


class ProfileIn(Schema):
    preferred_channels = List(String(validate=OneOf(["voice", "sms", "email", "chat", "walkin"])))
    language = String(validate=Length(2, 10))
    accessibility = List(String())
    contact_hours = List(Dict())


class CitizenOut(Schema):
    id = Integer()
    kind = String()
    display_name = String()
    language = String(allow_none=True)
    segment = String(allow_none=True)
    region = String(allow_none=True)
    age_band = String(allow_none=True)
    merged_into_id = Integer(allow_none=True)
    created_at = UTCDateTime()
    contact_points = List(Nested(ContactPointOut))
    profile = Nested(ProfileOut, allow_none=True)


class CitizenList(Schema):
    items = List(Nested(CitizenOut))


class CitizenQuery(Schema):
    phone = String()
    email = String()


class MergeIn(Schema):
    source_id = Integer(required=True, validate=DB_ID)
    target_id = Integer(required=True, validate=DB_ID)
    reason = String(load_default="", validate=Length(0, 500))


class AuditOut(Schema):
    id = Integer()
    at = UTCDateTime()
    actor_id = Integer(allow_none=True)
    action = String()
    object_type = String()
    object_id = String()
    detail = Dict()


class AuditList(Schema):
    items = List(Nested(AuditOut))


class InteractionOut(Schema):
    id = Integer()
    channel = String()
    direction = String()
    author_kind = String()
    author_agent_id = Integer(allow_none=True)
    provider_id = String(allow_none=True)
    subject = String(allow_none=True)
    text = String()
    html = String(allow_none=True)
    attachments = List(Dict())
    meta = Dict(data_key="metadata")
    delivery_status = String(allow_none=True)
    delivery_error = String(allow_none=True)
    duration_seconds = Integer(allow_none=True)
    recording_url = String(allow_none=True)
    transcript = String(allow_none=True)
    kb_article_id = Integer(allow_none=True)
    kb_article_version = Integer(allow_none=True)
    created_at = UTCDateTime()


class TicketOut(Schema):
    id = Integer()
    reference = String()
    citizen_id = Integer()
    subject = String()
    topic = String(allow_none=True)
    queue = String(attribute="queue.code", allow_none=True)
    status = String()
    priority = Integer()
    channel = String()
    language = String(allow_none=True)
    assigned_agent_id = Integer(allow_none=True)
    sla_due_at = UTCDateTime(allow_none=True)
    first_response_at = UTCDateTime(allow_none=True)
    resolved_at = UTCDateTime(allow_none=True)
    created_at = UTCDateTime()
    last_activity_at = UTCDateTime()
    satisfaction = Integer(allow_none=True)
    referral = Dict(allow_none=True)


class TicketDetail(TicketOut):
    citizen = Nested(CitizenOut)
    timeline = List(Nested(InteractionOut))


class TicketPage(Schema):
    items = List(Nested(TicketOut))
    next_cursor = String(allow_none=True)


class TicketQuery(Schema):
    status = String(validate=OneOf(list(TICKET_STATUSES)))
    queue = String()
    channel = String(validate=OneOf(CHANNELS))
    citizen_id = Integer()
    agent_id = Integer()
    limit = Integer(load_default=50, validate=Range(1, 200))
    cursor = String()


class TicketUpdate(Schema):
    status = String(validate=OneOf(list(TICKET_STATUSES)))
    priority = Integer(validate=Range(1, 5))
    queue = String()
    topic = String()


class QueueOut(Schema):
    id = Integer()
    code = String()
    name = String()
    department = String()
    required_skills = List(String())
    channels = List(String())
    sla_target_seconds = Integer()
    max_wait_seconds = Integer()
    walkin_prefix = String(allow_none=True)
    active = Boolean()


class QueueList(Schema):
    items = List(Nested(QueueOut))


class SkillOut(Schema):
    kind = String(attribute="skill.kind")
    code = String(attribute="skill.code")
    proficiency = Integer()


class AgentOut(Schema):
    id = Integer()
    email = String()
    name = String()
    role = String(validate=OneOf(list(ROLES)))
    presence = String()
    presence_since = UTCDateTime()
    capacity = Dict()
    desk = String(allow_none=True)
    skills = List(Nested(SkillOut))


class AgentList(Schema):
    items = List(Nested(AgentOut))


class ReplyIn(Schema):
    text = String(required=True, validate=Length(1, 10_000))
    channel = String(validate=OneOf(["sms", "email", "chat"]))
    kb_article_id = Integer()
    kb_version = Integer()


class NoteIn(Schema):
    text = String(required=True, validate=Length(1, 10_000))


class ReplyOption(Schema):
    channel = String()
    address = String()
    available = Boolean()
    note = String()


class ReplyOptionsOut(Schema):
    default = String(allow_none=True)
    reason = String()
    options = List(Nested(ReplyOption))
