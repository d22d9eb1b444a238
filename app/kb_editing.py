"""Editing the knowledge base: create, change, archive, import and export articles.

Editors (supervisors and administrators) call these through the API; ``flask kb import``
and ``flask kb export`` and the demo seed call them too. Every write goes through
``kb_store.begin_write``/``finish_write`` so the search index follows at once here and
within seconds in other processes.

Content (title, summary, body, channel overrides) is versioned: changing it adds an
immutable ``KBArticleVersion`` and moves ``current_version``; saving the same content
again adds nothing. Metadata (status, topic, department, tags, review date) is changed
in place on the article.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from app.extensions import db
from app.kb_store import begin_write, finish_write, to_article
from app.models import KBArticle, KBArticleVersion, User
from app.seed import SEED_HOOKS
from app.services import Conflict, Invalid, NotFound
from app.services.citizens import audit
from knowledge_base import Article, diff_versions, export_jsonl, load_demo_articles, parse_jsonl
from knowledge_base.jsonl import LineError

CONTENT_FIELDS = ("title", "summary", "body", "channel_overrides")
META_FIELDS = ("status", "topic", "department", "tags", "review_by")
MAX_TITLE = 300


def get_article(article_id: int) -> KBArticle:
    row = db.session.get(KBArticle, article_id)
    if row is None:
        raise NotFound(f"article {article_id} not found")
    return row


def get_version(row: KBArticle, version: int | None = None) -> KBArticleVersion:
    number = version or row.current_version
    ver = db.session.scalar(
        sa.select(KBArticleVersion).where(
            KBArticleVersion.article_id == row.id, KBArticleVersion.version == number
        )
    )
    if ver is None:
        raise NotFound(f"article {row.id} has no version {number}", code="version_not_found")
    return ver


def list_versions(row: KBArticle) -> list[KBArticleVersion]:
    return list(
        db.session.scalars(
            sa.select(KBArticleVersion)
            .where(KBArticleVersion.article_id == row.id)
            .order_by(KBArticleVersion.version)
        )
    )


def _content(ver: KBArticleVersion) -> dict[str, Any]:
    return {
        "title": ver.title,
        "summary": ver.summary or "",
        "body": ver.body,
        "channel_overrides": dict(ver.renderings or {}),
    }


def _add_version(row: KBArticle, content: dict[str, Any], number: int,
                 author: User | None) -> KBArticleVersion:
    ver = KBArticleVersion(
        article_id=row.id,
        version=number,
        title=content["title"],
        summary=content.get("summary") or "",
        body=content["body"],
        renderings=dict(content.get("channel_overrides") or {}),
        author_id=author.id if author else None,
    )
    db.session.add(ver)
    row.current_version = number
    return ver


def _group_for(translation_of: int | None) -> str | None:
    if translation_of is None:
        return None
    original = db.session.get(KBArticle, translation_of)
    if original is None:
        raise Invalid(f"translation_of: article {translation_of} not found",
                      code="invalid_article")
    return original.translation_group


def _check_one_per_language(group: str, language: str, except_id: int | None = None) -> None:
    stmt = sa.select(KBArticle.id).where(
        KBArticle.translation_group == group,
        KBArticle.language == language,
        KBArticle.status != "archived",
    )
    if except_id is not None:
        stmt = stmt.where(KBArticle.id != except_id)
    other = db.session.scalar(stmt)
    if other is not None:
        raise Conflict(f"article {other} is already the {language} version of this article",
                       code="translation_exists")


def create_article(data: dict[str, Any], author: User | None) -> KBArticle:
    """A new article at version 1 (``data`` validated by the API schema)."""
    slug = data["slug"]
    if db.session.scalar(sa.select(KBArticle.id).where(KBArticle.slug == slug)) is not None:
        raise Conflict(f"an article with slug {slug!r} exists", code="slug_taken")
    language = data.get("language", "en")
    group = _group_for(data.get("translation_of")) or slug
    _check_one_per_language(group, language)
    before = begin_write()
    row = KBArticle(
        slug=slug,
        translation_group=group,
        language=language,
        status=data.get("status", "published"),
        topic=data.get("topic") or None,
        department=data.get("department") or None,
        tags=list(data.get("tags") or []),
        review_by=data.get("review_by"),
        current_version=1,
    )
    db.session.add(row)
    db.session.flush()
    _add_version(row, data, 1, author)
    audit(author, "kb.article.create", "kb_article", row.id, {"version": 1})
    finish_write(before, [row])
    return row


def update_article(row: KBArticle, data: dict[str, Any], author: User | None) -> KBArticle:
    """Apply an editor's changes: new content makes a new version, metadata changes in place."""
    current = _content(get_version(row))
    content = {k: data[k] for k in CONTENT_FIELDS if k in data}
    new_content = {**current, **content}
    meta = {k: data[k] for k in META_FIELDS if k in data and getattr(row, k) != data[k]}
    content_changed = new_content != current
    if not content_changed and not meta:
        return row
    if meta.get("status") in ("published", "draft") and row.status == "archived":
        _check_one_per_language(row.translation_group, row.language, except_id=row.id)
    before = begin_write()
    for key, value in meta.items():
        setattr(row, key, value)
    if content_changed:
        _add_version(row, new_content, row.current_version + 1, author)
    audit(author, "kb.article.update", "kb_article", row.id,
          {"version": row.current_version, "fields": sorted([*content, *meta])})
    finish_write(before, [row])
    return row


def archive_article(row: KBArticle, author: User | None) -> KBArticle:
    """Take an article out of search and answers (its versions are kept)."""
    if row.status == "archived":
        return row
    before = begin_write()
    row.status = "archived"
    audit(author, "kb.article.archive", "kb_article", row.id, {"version": row.current_version})
    finish_write(before, [row])
    return row


def diff(row: KBArticle, old: int, new: int) -> str:
    a, b = get_version(row, old), get_version(row, new)
    return diff_versions(to_article(row, a, key="slug"), to_article(row, b, key="slug"))


# -- JSONL import and export -----------------------------------------------------------


@dataclass
class ImportReport:
    created: list[str] = field(default_factory=list)
    new_versions: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _line_numbers(lines: list[str]) -> dict[str, int]:
    """First line of each article id, to report errors found after parsing."""
    import json

    out: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and isinstance(obj.get("id"), str):
            out.setdefault(obj["id"], number)
    return out


def _meta_of(article: Article) -> dict[str, Any]:
    return {
        "status": article.status,
        "topic": article.topic or None,
        "department": article.department or None,
        "tags": list(article.tags),
        "review_by": article.review_by,
        "language": article.language,
    }


def import_text(text: str, author: User | None = None) -> ImportReport:
    """Import JSONL: valid lines in one transaction, every bad line reported by number."""
    lines = text.splitlines()
    parsed = parse_jsonl(lines)
    report = ImportReport(errors=list(parsed.errors))
    line_of = _line_numbers(lines)
    valid = []
    for article in parsed.articles:
        if len(article.title) > MAX_TITLE:
            report.errors.append(LineError(line_of.get(article.id, 0),
                                           f"'title' longer than {MAX_TITLE} characters"))
        else:
            valid.append(article)
    report.errors.sort(key=lambda e: e.line)
    import_articles(valid, author, report)
    return report


def import_articles(articles: Iterable[Article], author: User | None = None,
                    report: ImportReport | None = None) -> ImportReport:
    """Create or update articles by slug (``Article.id``); writes only if something changed."""
    report = report or ImportReport()
    articles = list(articles)
    existing = {
        row.slug: row
        for row in db.session.scalars(
            sa.select(KBArticle).where(KBArticle.slug.in_([a.id for a in articles]))
        )
    } if articles else {}
    plan: list[tuple[Article, KBArticle | None, bool, dict[str, Any]]] = []
    for article in articles:
        content = {k: getattr(article, k) for k in CONTENT_FIELDS}
        row = existing.get(article.id)
        if row is None:
            plan.append((article, None, True, {}))
            report.created.append(article.id)
            continue
        changed = content != _content(get_version(row))
        meta = {k: v for k, v in _meta_of(article).items() if getattr(row, k) != v}
        if changed or meta:
            plan.append((article, row, changed, meta))
            (report.new_versions if changed else report.updated).append(article.id)
        else:
            report.unchanged.append(article.id)
    if not plan:
        return report
    before = begin_write()
    groups = _resolve_groups([a for a, *_ in plan])
    touched = []
    for article, row, content_changed, meta in plan:
        content = {k: getattr(article, k) for k in CONTENT_FIELDS}
        if row is None:
            row = KBArticle(slug=article.id, translation_group=groups[article.id],
                            current_version=0, **_meta_of(article))
            db.session.add(row)
            db.session.flush()
            _add_version(row, content, 1, author)
        else:
            for key, value in meta.items():
                setattr(row, key, value)
            if content_changed:
                _add_version(row, content, row.current_version + 1, author)
        touched.append(row)
    audit(author, "kb.import", "kb_article", "*",
          {"created": len(report.created), "new_versions": len(report.new_versions),
           "updated": len(report.updated)})
    finish_write(before, touched)
    return report


def _resolve_groups(articles: list[Article]) -> dict[str, str]:
    """Translation groups: a group named after an article already in the database joins
    that article's group; otherwise the name from the file stands."""
    names = {a.translation_group for a in articles}
    known = dict(
        db.session.execute(
            sa.select(KBArticle.slug, KBArticle.translation_group).where(
                KBArticle.slug.in_(names)
            )
        ).all()
    ) if names else {}
    return {a.id: known.get(a.translation_group, a.translation_group) for a in articles}


def export_text(status: str | None = None) -> str:
    """Every article's current version as JSONL (by slug), oldest first."""
    stmt = (
        sa.select(KBArticle, KBArticleVersion)
        .join(KBArticleVersion, sa.and_(KBArticleVersion.article_id == KBArticle.id,
                                        KBArticleVersion.version == KBArticle.current_version))
        .order_by(KBArticle.id)
    )
    if status:
        stmt = stmt.where(KBArticle.status == status)
    return export_jsonl(to_article(a, v, key="slug") for a, v in db.session.execute(stmt).all())


def seed_demo_articles(echo: Callable[[str], None] = print) -> None:
    """The demo seed's knowledge base: the shipped articles, imported idempotently."""
    report = import_articles(load_demo_articles())
    if report.created or report.new_versions or report.updated:
        echo(f"  knowledge base: {len(report.created)} new, {len(report.new_versions)} "
             f"changed, {len(report.unchanged)} unchanged articles")


if seed_demo_articles not in SEED_HOOKS:
    SEED_HOOKS.append(seed_demo_articles)
