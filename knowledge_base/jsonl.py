"""JSONL import and export of articles.

One JSON object per line with ``id``, ``title``, ``body``, ``language`` (required) and
``tags``, ``summary``, ``topic``, ``department``, ``translation_of``, ``status``,
``version``, ``review_by`` (ISO date) and ``channel_overrides`` (optional). Invalid lines
are reported with their 1-based line numbers while valid ones are returned, so the app
can show every problem at once and decide whether to commit the valid set. Blank lines
are skipped. ``translation_of`` names the article this one translates; the translation
joins that article's ``translation_group`` (resolved through chains inside the file).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from knowledge_base.models import CHANNELS, LANGUAGES, STATUSES, Article

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
_KNOWN = {
    "id",
    "title",
    "body",
    "language",
    "tags",
    "translation_of",
    "translation_group",
    "summary",
    "topic",
    "department",
    "status",
    "version",
    "review_by",
    "channel_overrides",
}


@dataclass(frozen=True)
class LineError:
    line: int
    message: str


@dataclass
class ImportResult:
    articles: list[Article] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _str(obj: dict, key: str, required: bool = False) -> str:
    value = obj.get(key)
    if value is None:
        if required:
            raise ValueError(f"missing {key!r}")
        return ""
    if not isinstance(value, str):
        raise ValueError(f"{key!r} must be a string")
    if required and not value.strip():
        raise ValueError(f"{key!r} is empty")
    return value


def _article(obj: object) -> tuple[Article, str]:
    if not isinstance(obj, dict):
        raise ValueError("a line must be a JSON object")
    unknown = set(obj) - _KNOWN
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(sorted(unknown))}")
    article_id = _str(obj, "id", required=True)
    if not _ID_RE.match(article_id):
        raise ValueError(f"invalid id {article_id!r}")
    language = _str(obj, "language", required=True)
    if language not in LANGUAGES:
        raise ValueError(f"unsupported language {language!r}; expected one of {LANGUAGES}")
    tags = obj.get("tags", [])
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValueError("'tags' must be a list of strings")
    status = obj.get("status", "published")
    if status not in STATUSES:
        raise ValueError(f"invalid status {status!r}")
    version = obj.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ValueError("'version' must be a positive integer")
    review_by = None
    if obj.get("review_by") is not None:
        try:
            review_by = date.fromisoformat(_str(obj, "review_by"))
        except ValueError as exc:
            raise ValueError("'review_by' must be an ISO date (YYYY-MM-DD)") from exc
    overrides = obj.get("channel_overrides") or {}
    if not isinstance(overrides, dict) or not all(
        k in CHANNELS and isinstance(v, str) for k, v in overrides.items()
    ):
        raise ValueError(f"'channel_overrides' must map {CHANNELS} to strings")
    article = Article(
        id=article_id,
        title=_str(obj, "title", required=True),
        body=_str(obj, "body", required=True),
        summary=_str(obj, "summary"),
        topic=_str(obj, "topic"),
        tags=[t.strip() for t in tags if t.strip()],
        language=language,
        translation_group=_str(obj, "translation_group"),
        status=status,
        department=_str(obj, "department"),
        review_by=review_by,
        version=version,
        channel_overrides=dict(overrides),
    )
    return article, _str(obj, "translation_of")


def parse_jsonl(source: str | Iterable[str]) -> ImportResult:
    """Articles from JSONL text (or an iterable of lines) and the errors per line."""
    lines = source.splitlines() if isinstance(source, str) else source
    result = ImportResult()
    translation_of: dict[str, str] = {}
    seen: set[str] = set()
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            result.errors.append(LineError(number, f"invalid JSON: {exc.msg}"))
            continue
        try:
            article, original = _article(obj)
        except ValueError as exc:
            result.errors.append(LineError(number, str(exc)))
            continue
        if article.id in seen:
            result.errors.append(LineError(number, f"duplicate id {article.id!r}"))
            continue
        seen.add(article.id)
        if original:
            translation_of[article.id] = original
        result.articles.append(article)

    def root(article_id: str) -> str:
        hops = 0
        while article_id in translation_of and hops < 50:
            article_id = translation_of[article_id]
            hops += 1
        return article_id

    for article in result.articles:
        if article.id in translation_of:
            article.translation_group = root(article.id)
    return result


def article_to_dict(article: Article) -> dict:
    data: dict = {
        "id": article.id,
        "title": article.title,
        "body": article.body,
        "language": article.language,
        "tags": list(article.tags),
        "summary": article.summary,
        "topic": article.topic,
        "department": article.department,
        "status": article.status,
        "version": article.version,
    }
    if article.translation_group != article.id:
        data["translation_of"] = article.translation_group
    if article.review_by:
        data["review_by"] = article.review_by.isoformat()
    if article.channel_overrides:
        data["channel_overrides"] = dict(article.channel_overrides)
    return data


def export_jsonl(articles: Iterable[Article]) -> str:
    """JSONL text that ``parse_jsonl`` reads back to equal articles."""
    return "".join(json.dumps(article_to_dict(a), ensure_ascii=False) + "\n" for a in articles)
