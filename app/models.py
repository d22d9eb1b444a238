"""The unified model: one ticket model for every channel.

Timestamps are stored as naive UTC (``utcnow()``) so SQLite and PostgreSQL behave alike.
The schema comes only from the Alembic migrations in ``migrations/``; a test checks that
these models and the migrations agree.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from app.extensions import db

ROLES = ("agent", "supervisor", "admin")
ROLE_RANK = {"agent": 1, "supervisor": 2, "admin": 3}
PRESENCES = ("available", "busy", "wrap_up", "away", "offline")
TICKET_STATUSES = ("new", "open", "pending_citizen", "resolved", "closed")
OPEN_STATUSES = ("new", "open", "pending_citizen")


def open_status_sql(column: str = "status") -> str:
    """``column IN ('new', 'open', 'pending_citizen')`` with the statuses written out: the
    partial index of open tickets and the statements meant to use it in every plan (a
    cached generic plan cannot match an index to parameter values)."""
    return f"{column} IN ({', '.join(repr(s) for s in OPEN_STATUSES)})"

INTERACTION_CHANNELS = ("voice", "sms", "email", "chat", "walkin", "note")
DIRECTIONS = ("inbound", "outbound", "internal")
AUTHOR_KINDS = ("citizen", "agent", "bot", "system")
CITIZEN_KINDS = ("individual", "business", "agency", "nonprofit")
CONTACT_KINDS = ("phone", "email", "chat")


REFERENCE_RE = re.compile(r"CL-([0-9]{4})-([0-9]{6,})")
MAX_ID = 2**31 - 1  # ids are 32-bit integer columns on PostgreSQL


def db_id(text: str | None) -> int | None:
    """``text`` as a row id: ASCII digits naming a number an id column can hold, else
    ``None``. A larger number names no row; handed to the database it would fail the
    statement (out of range) instead of finding nothing."""
    if text and text.isascii() and text.isdigit():
        value = int(text)
        if 0 < value <= MAX_ID:
            return value
    return None


def row_id(value: Any) -> int | None:
    """A row id from JSON (a socket event's payload): an integer (not a boolean) or a
    string of digits that an id column can hold, else ``None``."""
    if type(value) is int:
        return value if 0 < value <= MAX_ID else None
    return db_id(value) if isinstance(value, str) else None


def ticket_reference(ticket_id: int, year: int) -> str:
    return f"CL-{year}-{ticket_id:06d}"


def utcnow() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class User(TimestampMixin, db.Model):
    """Anyone who logs in: an agent, a supervisor or an administrator."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(sa.String(254), unique=True)
    name: Mapped[str] = mapped_column(sa.String(120), default="")
    password_hash: Mapped[str] = mapped_column(sa.String(256))
    role: Mapped[str] = mapped_column(sa.String(20), default="agent")
    active: Mapped[bool] = mapped_column(default=True)
    token_version: Mapped[int] = mapped_column(default=1)
    # capacity per channel, e.g. {"voice": 1, "chat": 3, "email": 5, "sms": 5, "walkin": 1}
    capacity: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    presence: Mapped[str] = mapped_column(sa.String(20), default="offline")
    presence_since: Mapped[datetime] = mapped_column(default=utcnow)
    desk: Mapped[str | None] = mapped_column(sa.String(20))
    phone: Mapped[str | None] = mapped_column(sa.String(32))
    missed_offers: Mapped[int] = mapped_column(default=0)
    # Routing clocks: when the agent last got work or became free, and when wrap-up ends.
    idle_since: Mapped[datetime | None] = mapped_column()
    wrap_up_until: Mapped[datetime | None] = mapped_column()

    skills: Mapped[list[AgentSkill]] = relationship(
        back_populates="agent", cascade="all, delete-orphan", lazy="selectin"
    )

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    def has_role(self, role: str) -> bool:
        return ROLE_RANK.get(self.role, 0) >= ROLE_RANK[role]


Agent = User


class Skill(db.Model):
    """A language (``kind='language'``, code ``es``) or a topic (``kind='topic'``)."""

    __tablename__ = "skills"
    __table_args__ = (sa.UniqueConstraint("kind", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(20))
    code: Mapped[str] = mapped_column(sa.String(50))
    name: Mapped[str] = mapped_column(sa.String(120), default="")


class AgentSkill(db.Model):
    __tablename__ = "agent_skills"
    __table_args__ = (sa.UniqueConstraint("agent_id", "skill_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"))
    skill_id: Mapped[int] = mapped_column(sa.ForeignKey("skills.id", ondelete="CASCADE"))
    proficiency: Mapped[int] = mapped_column(default=3)

    agent: Mapped[User] = relationship(back_populates="skills")
    skill: Mapped[Skill] = relationship(lazy="joined")


class Queue(TimestampMixin, db.Model):
    """A department's service line: what skills it needs, its channels and its SLA."""

    __tablename__ = "queues"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(sa.String(50), unique=True)
    name: Mapped[str] = mapped_column(sa.String(120))
    department: Mapped[str] = mapped_column(sa.String(120), default="General")
    required_skills: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    channels: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    sla_target_seconds: Mapped[int] = mapped_column(default=60)
    business_hours: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    holidays: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    overflow: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    max_wait_seconds: Mapped[int] = mapped_column(default=600)
    walkin_prefix: Mapped[str | None] = mapped_column(sa.String(4))
    active: Mapped[bool] = mapped_column(default=True)


class Citizen(TimestampMixin, db.Model):
    """A resident, business, agency or nonprofit that contacts the center."""

    __tablename__ = "citizens"

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(20), default="individual")
    display_name: Mapped[str] = mapped_column(sa.String(200), default="")
    language: Mapped[str | None] = mapped_column(sa.String(10))
    age_band: Mapped[str | None] = mapped_column(sa.String(20))
    region: Mapped[str | None] = mapped_column(sa.String(80))
    occupation: Mapped[str | None] = mapped_column(sa.String(80))
    industry: Mapped[str | None] = mapped_column(sa.String(80))
    org_size: Mapped[str | None] = mapped_column(sa.String(20))
    segment: Mapped[str | None] = mapped_column(sa.String(50))
    merged_into_id: Mapped[int | None] = mapped_column(sa.ForeignKey("citizens.id"), index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    contact_points: Mapped[list[ContactPoint]] = relationship(
        back_populates="citizen", order_by="ContactPoint.id"
    )
    profile: Mapped[ChannelProfile | None] = relationship(back_populates="citizen", uselist=False)


class ContactPoint(TimestampMixin, db.Model):
    """A normalized address of a citizen: E.164 phone, lower-cased email, chat visitor id."""

    __tablename__ = "contact_points"
    __table_args__ = (sa.UniqueConstraint("kind", "value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    citizen_id: Mapped[int] = mapped_column(sa.ForeignKey("citizens.id"), index=True)
    kind: Mapped[str] = mapped_column(sa.String(10))
    value: Mapped[str] = mapped_column(sa.String(254))
    verified: Mapped[bool] = mapped_column(default=False)
    opted_out: Mapped[bool] = mapped_column(default=False)
    opted_out_at: Mapped[datetime | None] = mapped_column()
    consent_note: Mapped[str | None] = mapped_column(sa.String(200))
    last_failure: Mapped[str | None] = mapped_column(sa.String(200))

    citizen: Mapped[Citizen] = relationship(back_populates="contact_points")


class ChannelProfile(db.Model):
    """How a citizen wants (and is able) to be reached.

    ``preferred_channels``: ranked, e.g. ``["sms", "email", "voice"]``. ``accessibility``:
    any of deaf, hard_of_hearing, blind, low_vision, interpreter, relay.
    ``contact_hours``: list of ``{"days": [0..6], "start": "08:00", "end": "20:00",
    "tz": "America/New_York"}``. ``channel_stats``: learned from history,
    ``{"sms": {"sent": 4, "answered": 3, "csat_sum": 9, "csat_n": 2}}``.
    """

    __tablename__ = "channel_profiles"

    id: Mapped[int] = mapped_column(primary_key=True)
    citizen_id: Mapped[int] = mapped_column(sa.ForeignKey("citizens.id"), unique=True)
    preferred_channels: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    language: Mapped[str | None] = mapped_column(sa.String(10))
    accessibility: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    contact_hours: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    channel_stats: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    citizen: Mapped[Citizen] = relationship(back_populates="profile")


class SegmentProfile(db.Model):
    """The default channel preferences for a segment, used for residents with no history."""

    __tablename__ = "segment_profiles"

    id: Mapped[int] = mapped_column(primary_key=True)
    segment: Mapped[str] = mapped_column(sa.String(50), unique=True)
    preferred_channels: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    description: Mapped[str] = mapped_column(sa.String(200), default="")


class Ticket(TimestampMixin, db.Model):
    """One case, whatever channels it spans."""

    __tablename__ = "tickets"
    # A sender's open ticket (``intake._point_select``) is read from this index of open
    # tickets alone. With only one index per column, the planner could AND the contact
    # point's entries with every open ticket's (``ix_tickets_status``), a look-up that grew
    # with the backlog. ``last_activity_at`` stays out of every index: touching a ticket on
    # each message is then a HOT update that writes no index entries.
    __table_args__ = (
        sa.Index("ix_tickets_open_by_contact_point", "contact_point_id",
                 postgresql_where=sa.text(open_status_sql()),
                 sqlite_where=sa.text(open_status_sql())),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    citizen_id: Mapped[int] = mapped_column(sa.ForeignKey("citizens.id"), index=True)
    contact_point_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("contact_points.id"), index=True
    )
    subject: Mapped[str] = mapped_column(sa.String(300), default="")
    topic: Mapped[str | None] = mapped_column(sa.String(50))
    queue_id: Mapped[int | None] = mapped_column(sa.ForeignKey("queues.id"), index=True)
    status: Mapped[str] = mapped_column(sa.String(20), default="new", index=True)
    priority: Mapped[int] = mapped_column(default=3)
    channel: Mapped[str] = mapped_column(sa.String(10), index=True)
    language: Mapped[str | None] = mapped_column(sa.String(10))
    assigned_agent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"), index=True)
    sla_due_at: Mapped[datetime | None] = mapped_column()
    first_response_at: Mapped[datetime | None] = mapped_column()
    resolved_at: Mapped[datetime | None] = mapped_column()
    closed_at: Mapped[datetime | None] = mapped_column()
    last_activity_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    satisfaction: Mapped[int | None] = mapped_column()
    disposition: Mapped[str | None] = mapped_column(sa.String(50))
    self_served: Mapped[bool] = mapped_column(default=False)
    referral: Mapped[dict[str, Any] | None] = mapped_column(sa.JSON)

    citizen: Mapped[Citizen] = relationship()
    # The address the resident opened the ticket from (replies go back to it).
    contact_point: Mapped[ContactPoint | None] = relationship()
    queue: Mapped[Queue | None] = relationship()
    assigned_agent: Mapped[User | None] = relationship()

    @property
    def reference(self) -> str:
        """The human reference, ``CL-<year>-<number>``: derived from the id, never stored,
        so creating a ticket costs no extra write."""
        return ticket_reference(self.id, (self.created_at or utcnow()).year)

    @staticmethod
    def id_from_reference(reference: str) -> int | None:
        match = REFERENCE_RE.fullmatch(reference.strip().upper())
        return db_id(match.group(2)) if match else None


class ThreadKey(db.Model):
    """Keys that thread later messages into a ticket: an email Message-ID, a chat session,
    a call SID, a walk-in visit. Unique per kind."""

    __tablename__ = "thread_keys"
    __table_args__ = (sa.UniqueConstraint("kind", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(sa.String(20))
    key: Mapped[str] = mapped_column(sa.String(300))
    ticket_id: Mapped[int] = mapped_column(sa.ForeignKey("tickets.id"), index=True)


class Interaction(TimestampMixin, db.Model):
    """One message, call, visit or note within a ticket."""

    __tablename__ = "interactions"
    __table_args__ = (
        sa.UniqueConstraint("channel", "provider_id"),
        # A ticket's timeline, and its last message on a channel (migration 0007).
        sa.Index("ix_interactions_ticket_channel", "ticket_id", "channel", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(sa.ForeignKey("tickets.id"))
    citizen_id: Mapped[int | None] = mapped_column(sa.ForeignKey("citizens.id"), index=True)
    contact_point_id: Mapped[int | None] = mapped_column(sa.ForeignKey("contact_points.id"))
    channel: Mapped[str] = mapped_column(sa.String(10))
    direction: Mapped[str] = mapped_column(sa.String(10))
    author_kind: Mapped[str] = mapped_column(sa.String(10))
    author_agent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    provider_id: Mapped[str | None] = mapped_column(sa.String(300))
    subject: Mapped[str | None] = mapped_column(sa.String(300))
    text: Mapped[str] = mapped_column(sa.Text, default="")
    html: Mapped[str | None] = mapped_column(sa.Text)
    full_text: Mapped[str | None] = mapped_column(sa.Text)
    attachments: Mapped[list[dict[str, Any]]] = mapped_column(sa.JSON, default=list)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", sa.JSON, default=dict)
    delivery_status: Mapped[str | None] = mapped_column(sa.String(20))
    delivery_error: Mapped[str | None] = mapped_column(sa.String(300))
    duration_seconds: Mapped[int | None] = mapped_column()
    recording_url: Mapped[str | None] = mapped_column(sa.String(500))
    transcript: Mapped[str | None] = mapped_column(sa.Text)
    kb_article_id: Mapped[int | None] = mapped_column()
    kb_article_version: Mapped[int | None] = mapped_column()

    author_agent: Mapped[User | None] = relationship()

    # Not stored: set by the follow-up job of an inbound message that opened its ticket
    # (intake says so as it queues the job), so nothing was said on the ticket before it
    # and the job need not ask the database.
    opened_ticket = False


class Outbox(TimestampMixin, db.Model):
    """Every outbound delivery: written with its interaction, sent by a job, retried,
    and on final failure handed to the next channel of the citizen's profile."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(sa.String(64), unique=True)
    interaction_id: Mapped[int | None] = mapped_column(
        sa.ForeignKey("interactions.id"), index=True
    )
    # Set when both are new: one flush writes the interaction, then this row with its id.
    interaction: Mapped[Interaction | None] = relationship()
    ticket_id: Mapped[int | None] = mapped_column(sa.ForeignKey("tickets.id"), index=True)
    channel: Mapped[str] = mapped_column(sa.String(10))
    to_address: Mapped[str] = mapped_column(sa.String(254))
    payload: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    status: Mapped[str] = mapped_column(sa.String(20), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(sa.String(500))
    provider_id: Mapped[str | None] = mapped_column(sa.String(300), index=True)
    sent_at: Mapped[datetime | None] = mapped_column()
    fallback_of_id: Mapped[int | None] = mapped_column(sa.ForeignKey("outbox.id"))
    simulated: Mapped[bool] = mapped_column(default=False)


class AuditLog(db.Model):
    """Who did what to which record, when."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(sa.String(50), index=True)
    object_type: Mapped[str] = mapped_column(sa.String(30))
    object_id: Mapped[str] = mapped_column(sa.String(50))
    detail: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)


class FailedPayload(db.Model):
    """A provider payload intake could not parse: kept for inspection, never dropped."""

    __tablename__ = "failed_payloads"

    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    source: Mapped[str] = mapped_column(sa.String(30))
    content_type: Mapped[str | None] = mapped_column(sa.String(200))
    body: Mapped[bytes] = mapped_column(sa.LargeBinary)
    error: Mapped[str] = mapped_column(sa.String(500))


class WorkItem(TimestampMixin, db.Model):
    """A ticket waiting for (or being served by) an agent in a queue: routing's unit."""

    __tablename__ = "work_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(sa.ForeignKey("tickets.id"), index=True)
    queue_id: Mapped[int] = mapped_column(sa.ForeignKey("queues.id"), index=True)
    channel: Mapped[str] = mapped_column(sa.String(10))
    language: Mapped[str | None] = mapped_column(sa.String(10))
    topic: Mapped[str | None] = mapped_column(sa.String(50))
    priority: Mapped[int] = mapped_column(default=3)
    commitments: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    status: Mapped[str] = mapped_column(sa.String(20), default="waiting", index=True)
    arrived_at: Mapped[datetime] = mapped_column(default=utcnow)
    assigned_at: Mapped[datetime | None] = mapped_column()
    ended_at: Mapped[datetime | None] = mapped_column()
    agent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"), index=True)
    outcome: Mapped[str | None] = mapped_column(sa.String(20))
    # Routing clocks: null queued_at means routing has not seen the item yet.
    queued_at: Mapped[datetime | None] = mapped_column()
    sla_due_at: Mapped[datetime | None] = mapped_column()
    sla_breached: Mapped[bool] = mapped_column(default=False)
    overflow_stage: Mapped[int] = mapped_column(default=0)


class Offer(TimestampMixin, db.Model):
    """A work item offered to one agent, with an accept deadline."""

    __tablename__ = "offers"

    id: Mapped[int] = mapped_column(primary_key=True)
    work_item_id: Mapped[int] = mapped_column(sa.ForeignKey("work_items.id"), index=True)
    agent_id: Mapped[int] = mapped_column(sa.ForeignKey("users.id"), index=True)
    status: Mapped[str] = mapped_column(sa.String(20), default="pending", index=True)
    expires_at: Mapped[datetime] = mapped_column()
    responded_at: Mapped[datetime | None] = mapped_column()


class WalkInVisit(TimestampMixin, db.Model):
    """A visitor checked in at the kiosk: a queue number such as ``B-017``."""

    __tablename__ = "walkin_visits"
    __table_args__ = (sa.UniqueConstraint("queue_id", "service_day", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(sa.ForeignKey("tickets.id"), index=True)
    queue_id: Mapped[int] = mapped_column(sa.ForeignKey("queues.id"))
    service_day: Mapped[date] = mapped_column()
    number: Mapped[str] = mapped_column(sa.String(10))
    language: Mapped[str | None] = mapped_column(sa.String(10))
    phone: Mapped[str | None] = mapped_column(sa.String(32))
    status: Mapped[str] = mapped_column(sa.String(20), default="waiting", index=True)
    desk: Mapped[str | None] = mapped_column(sa.String(20))
    agent_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))
    called_at: Mapped[datetime | None] = mapped_column()
    recalls: Mapped[int] = mapped_column(default=0)
    notified_at: Mapped[datetime | None] = mapped_column()


class ChatSession(TimestampMixin, db.Model):
    """A resident's web chat: the resumable token outlives page reloads."""

    __tablename__ = "chat_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(sa.String(64), unique=True)
    citizen_id: Mapped[int] = mapped_column(sa.ForeignKey("citizens.id"))
    ticket_id: Mapped[int | None] = mapped_column(sa.ForeignKey("tickets.id"))
    status: Mapped[str] = mapped_column(sa.String(20), default="active")
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_read_interaction_id: Mapped[int | None] = mapped_column()


class KBArticle(TimestampMixin, db.Model):
    """A knowledge-base article; its content lives in immutable versions."""

    __tablename__ = "kb_articles"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(sa.String(120), unique=True)
    translation_group: Mapped[str] = mapped_column(sa.String(120), index=True)
    language: Mapped[str] = mapped_column(sa.String(10), default="en")
    status: Mapped[str] = mapped_column(sa.String(20), default="published")
    topic: Mapped[str | None] = mapped_column(sa.String(50))
    department: Mapped[str | None] = mapped_column(sa.String(120))
    tags: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    review_by: Mapped[date | None] = mapped_column()
    current_version: Mapped[int] = mapped_column(default=1)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class KBArticleVersion(TimestampMixin, db.Model):
    __tablename__ = "kb_article_versions"
    __table_args__ = (sa.UniqueConstraint("article_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(sa.ForeignKey("kb_articles.id"), index=True)
    version: Mapped[int] = mapped_column()
    title: Mapped[str] = mapped_column(sa.String(300))
    summary: Mapped[str] = mapped_column(sa.Text, default="")
    body: Mapped[str] = mapped_column(sa.Text)
    renderings: Mapped[dict[str, Any]] = mapped_column(sa.JSON, default=dict)
    author_id: Mapped[int | None] = mapped_column(sa.ForeignKey("users.id"))


class KBFeedback(TimestampMixin, db.Model):
    __tablename__ = "kb_feedback"

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(sa.ForeignKey("kb_articles.id"), index=True)
    version: Mapped[int] = mapped_column()
    channel: Mapped[str] = mapped_column(sa.String(10))
    helpful: Mapped[bool] = mapped_column()
    interaction_id: Mapped[int | None] = mapped_column(sa.ForeignKey("interactions.id"))


class KBQuery(TimestampMixin, db.Model):
    """A question asked of the knowledge base, for deflection and gap reports."""

    __tablename__ = "kb_queries"

    id: Mapped[int] = mapped_column(primary_key=True)
    query: Mapped[str] = mapped_column(sa.String(500))
    language: Mapped[str | None] = mapped_column(sa.String(10))
    channel: Mapped[str] = mapped_column(sa.String(10))
    article_id: Mapped[int | None] = mapped_column()
    version: Mapped[int | None] = mapped_column()
    confidence: Mapped[float] = mapped_column(default=0.0)
    self_served: Mapped[bool] = mapped_column(default=False)
    ticket_id: Mapped[int | None] = mapped_column(sa.ForeignKey("tickets.id"))


class SurveyResponse(TimestampMixin, db.Model):
    __tablename__ = "survey_responses"

    id: Mapped[int] = mapped_column(primary_key=True)
    ticket_id: Mapped[int] = mapped_column(sa.ForeignKey("tickets.id"), index=True)
    channel: Mapped[str] = mapped_column(sa.String(10))
    score: Mapped[int] = mapped_column()
    comment: Mapped[str | None] = mapped_column(sa.Text)


class Counter(db.Model):
    """Named sequences: yearly ticket numbers and daily walk-in numbers per service line."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(sa.String(80), primary_key=True)
    value: Mapped[int] = mapped_column(default=0)


class MetricsHourly(db.Model):
    """Contact-center counters per hour, queue, channel, language and segment.

    Kept up to date one event at a time (``app.services.metrics_service``) so live
    metrics and reports read a few small rows instead of recomputing from history.
    Unknown dimensions are stored as ``""`` so the unique key works on every database.
    Each key has up to ``metrics_service.SHARDS`` rows (``shard``): a transaction adds to
    one of them at random, so concurrent contacts rarely wait on the same row lock;
    readers always sum over shards.
    """

    __tablename__ = "metrics_hourly"
    __table_args__ = (sa.UniqueConstraint("hour", "queue", "channel", "language", "segment",
                                          "shard", name="uq_metrics_hourly_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    hour: Mapped[datetime] = mapped_column(index=True)
    queue: Mapped[str] = mapped_column(sa.String(50), default="")
    channel: Mapped[str] = mapped_column(sa.String(10), default="")
    language: Mapped[str] = mapped_column(sa.String(10), default="")
    segment: Mapped[str] = mapped_column(sa.String(50), default="")
    shard: Mapped[int] = mapped_column(sa.SmallInteger, default=0, server_default="0")
    contacts: Mapped[int] = mapped_column(default=0, server_default="0")
    outbound: Mapped[int] = mapped_column(default=0, server_default="0")
    tickets: Mapped[int] = mapped_column(default=0, server_default="0")
    escalated: Mapped[int] = mapped_column(default=0, server_default="0")
    offered: Mapped[int] = mapped_column(default=0, server_default="0")
    answered: Mapped[int] = mapped_column(default=0, server_default="0")
    answered_in_sla: Mapped[int] = mapped_column(default=0, server_default="0")
    wait_sum: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    abandoned: Mapped[int] = mapped_column(default=0, server_default="0")
    abandoned_in_sla: Mapped[int] = mapped_column(default=0, server_default="0")
    callbacks: Mapped[int] = mapped_column(default=0, server_default="0")
    handled: Mapped[int] = mapped_column(default=0, server_default="0")
    handle_sum: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    resolved: Mapped[int] = mapped_column(default=0, server_default="0")
    resolved_first_contact: Mapped[int] = mapped_column(default=0, server_default="0")
    resolution_sum: Mapped[int] = mapped_column(sa.BigInteger, default=0, server_default="0")
    surveys: Mapped[int] = mapped_column(default=0, server_default="0")
    survey_points: Mapped[int] = mapped_column(default=0, server_default="0")
    kb_queries: Mapped[int] = mapped_column(default=0, server_default="0")
    kb_self_served: Mapped[int] = mapped_column(default=0, server_default="0")


class PendingJob(db.Model):
    """A job whose enqueue failed after its data was committed (Redis unreachable).

    The ``requeue_pending_jobs`` schedule re-enqueues these once Redis answers, so a Redis
    outage delays follow-up work but never loses it."""

    __tablename__ = "pending_jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    func: Mapped[str] = mapped_column(sa.String(200))
    args: Mapped[list[Any]] = mapped_column(sa.JSON, default=list)
    job_id: Mapped[str | None] = mapped_column(sa.String(100), unique=True)
    queue: Mapped[str] = mapped_column(sa.String(20))
    delay_seconds: Mapped[float | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(sa.String(300))
