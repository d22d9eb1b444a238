"""Schemas of the knowledge-base API (``/api/v1/kb``)."""

from __future__ import annotations

from apiflask import Schema
from apiflask.fields import Boolean, Date, Dict, Float, Integer, List, Nested, String
from apiflask.validators import Length, OneOf, Range, Regexp
from marshmallow import ValidationError, validates

from app.api.schemas import DB_ID, DB_INT_MAX, UTCDateTime
from knowledge_base import CHANNELS, LANGUAGES, MAX_QUERY_CHARS

SLUG_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
FEEDBACK_CHANNELS = [*CHANNELS, "walkin"]


class SearchQuery(Schema):
    q = String(required=True, validate=Length(1, MAX_QUERY_CHARS))
    lang = String(validate=Length(1, 20))
    limit = Integer(load_default=10, validate=Range(1, 50))


class Hit(Schema):
    article_id = Integer()
    version = Integer()
    title = String()
    score = Float()
    snippet = String()
    language = String()
    url = String()


class SearchOut(Schema):
    query = String()
    hits = List(Nested(Hit))


class AnswerQuery(Schema):
    q = String(required=True, validate=Length(1, MAX_QUERY_CHARS))
    channel = String(load_default="web", validate=OneOf([*CHANNELS, "walkin"]))
    lang = String(validate=Length(1, 20))


class AnswerOut(Schema):
    found = Boolean()
    article_id = Integer(allow_none=True)
    version = Integer(allow_none=True)
    title = String(allow_none=True)
    confidence = Float()
    threshold = Float()
    self_service = Boolean()
    channel = String()
    language = String(allow_none=True)
    text = String(allow_none=True)
    html = String(allow_none=True)
    url = String(allow_none=True)


def _check_overrides(value: dict) -> None:
    for key, text in value.items():
        if key not in CHANNELS or not isinstance(text, str) or len(text) > 10_000:
            raise ValidationError(f"keys must be among {list(CHANNELS)}, values text")


class ArticleIn(Schema):
    slug = String(required=True, validate=Regexp(SLUG_RE))
    title = String(required=True, validate=Length(1, 300))
    body = String(required=True, validate=Length(1, 100_000))
    summary = String(load_default="", validate=Length(0, 2_000))
    language = String(load_default="en", validate=OneOf(LANGUAGES))
    status = String(load_default="published", validate=OneOf(["draft", "published"]))
    topic = String(validate=Length(0, 50))
    department = String(validate=Length(0, 120))
    tags = List(String(validate=Length(1, 50)), validate=Length(0, 30))
    review_by = Date(allow_none=True)
    channel_overrides = Dict(keys=String(), values=String())
    translation_of = Integer(validate=DB_ID)

    @validates("channel_overrides")
    def _overrides(self, value, **_):
        _check_overrides(value)


class ArticleUpdate(Schema):
    title = String(validate=Length(1, 300))
    body = String(validate=Length(1, 100_000))
    summary = String(validate=Length(0, 2_000))
    status = String(validate=OneOf(["draft", "published", "archived"]))
    topic = String(validate=Length(0, 50), allow_none=True)
    department = String(validate=Length(0, 120), allow_none=True)
    tags = List(String(validate=Length(1, 50)), validate=Length(0, 30))
    review_by = Date(allow_none=True)
    channel_overrides = Dict(keys=String(), values=String())

    @validates("channel_overrides")
    def _overrides(self, value, **_):
        _check_overrides(value)


class ArticleListQuery(Schema):
    status = String(validate=OneOf(["draft", "published", "archived"]))
    language = String(validate=OneOf(LANGUAGES))
    topic = String(validate=Length(1, 50))
    limit = Integer(load_default=100, validate=Range(1, 500))
    offset = Integer(load_default=0, validate=Range(0, DB_INT_MAX))


class VersionQuery(Schema):
    version = Integer(validate=DB_ID)


class ArticleOut(Schema):
    id = Integer()
    slug = String()
    language = String()
    translation_group = String()
    status = String()
    topic = String(allow_none=True)
    department = String(allow_none=True)
    tags = List(String())
    review_by = Date(allow_none=True)
    current_version = Integer()
    version = Integer()
    title = String()
    summary = String()
    body = String()
    channel_overrides = Dict()
    created_at = UTCDateTime()
    updated_at = UTCDateTime()
    url = String()
    feedback = Dict()


class ArticleSummary(Schema):
    id = Integer()
    slug = String()
    language = String()
    status = String()
    topic = String(allow_none=True)
    current_version = Integer()
    title = String()
    updated_at = UTCDateTime()


class ArticlePage(Schema):
    items = List(Nested(ArticleSummary))
    total = Integer()


class VersionOut(Schema):
    version = Integer()
    title = String()
    summary = String()
    author_id = Integer(allow_none=True)
    created_at = UTCDateTime()


class VersionList(Schema):
    article_id = Integer()
    current_version = Integer()
    versions = List(Nested(VersionOut))


class DiffQuery(Schema):
    from_ = Integer(data_key="from", validate=DB_ID)
    to = Integer(validate=DB_ID)


class DiffOut(Schema):
    article_id = Integer()
    from_ = Integer(data_key="from")
    to = Integer()
    diff = String()


class FeedbackIn(Schema):
    article_id = Integer(required=True, validate=DB_ID)
    version = Integer(required=True, validate=DB_ID)
    channel = String(required=True, validate=OneOf(FEEDBACK_CHANNELS))
    helpful = Boolean(required=True)
    interaction_id = Integer(validate=DB_ID, allow_none=True)


class FeedbackOut(Schema):
    id = Integer()
    article_id = Integer()
    version = Integer()
    channel = String()
    helpful = Boolean()
    interaction_id = Integer(allow_none=True)
    created_at = UTCDateTime()


class ReportQuery(Schema):
    days = Integer(load_default=30, validate=Range(1, 366))
    lang = String(validate=OneOf(LANGUAGES))
    min_count = Integer(load_default=1, validate=Range(1, 1000))
    limit = Integer(load_default=20, validate=Range(1, 200))


class Gap(Schema):
    label = String()
    count = Integer()
    terms = List(String())
    examples = List(String())


class GapsOut(Schema):
    since = UTCDateTime()
    days = Integer()
    questions = Integer()
    gaps = List(Nested(Gap))


class ChannelDeflection(Schema):
    questions = Integer()
    self_served = Integer()
    rate = Float()


class DeflectionOut(Schema):
    since = UTCDateTime()
    days = Integer()
    questions = Integer()
    self_served = Integer()
    rate = Float()
    by_channel = Dict(keys=String(), values=Nested(ChannelDeflection))


class Suggestion(Schema):
    article_id = Integer()
    version = Integer()
    title = String()
    score = Float()
    snippet = String()
    text = String()
    html = String(allow_none=True)
    language = String()
    url = String()


class SuggestionsOut(Schema):
    ticket_id = Integer()
    channel = String()
    suggestions = List(Nested(Suggestion))
