"""The knowledge base's storage in the database and the live search index built from it.

Articles are ``KBArticle`` rows (identity and metadata: slug, language, translation
group, status, topic, department, tags, review date) whose content lives in immutable
``KBArticleVersion`` rows (title, summary, body and channel overrides). Changing the
content makes a new version and moves ``current_version``; metadata changes update the
article in place.

Search runs in memory: each app keeps one ``LiveKnowledgeBase``, built lazily from the
database, lexical only or, with ``KB_SEMANTIC=on``, hybrid (``knowledge_base.semantic``;
the model loads on the first build, once per process). Writes in this process update it
at once. Writes in other processes (another web worker, a CLI import) are noticed
through a cheap generation check, at most every ``KB_REFRESH_SECONDS`` (2 by default):
a ``kb_generation`` counter that every write bumps in its own transaction, plus the
count, latest ``updated_at`` and version sum of the articles (so edits made outside the
app are noticed too). When it moved, the articles changed since the last seen change
are re-indexed (a handful of rows); the whole index is rebuilt only when articles
disappeared or the change cannot be found that way.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask, current_app
from sqlalchemy.exc import IntegrityError

from app.config import ConfigError
from app.extensions import db
from app.models import Counter, KBArticle, KBArticleVersion
from knowledge_base import Article, EmbeddingCache, KnowledgeBase, MiniLMEmbedder, SemanticIndex

GENERATION_COUNTER = "kb_generation"
DEFAULT_REFRESH_SECONDS = 2.0
# Other processes' clocks may lag ours a little: re-read changes this much older too.
CATCH_UP_SLACK_SECONDS = 60
SEMANTIC_MODES = ("off", "on")
# Article embeddings outlive index rebuilds: each article version is embedded once per
# process (the cache checks the text too, so two databases in one process never mix).
_EMBEDDINGS = EmbeddingCache()


def semantic_enabled(mode: str | None) -> bool:
    """``KB_SEMANTIC``: "on" fuses a local embedding model with BM25F, "off" (default) is
    lexical only; anything else is a configuration error."""
    mode = (mode or "off").strip().lower()
    if mode not in SEMANTIC_MODES:
        raise ConfigError(f"KB_SEMANTIC must be one of {', '.join(SEMANTIC_MODES)}, not {mode!r}")
    return mode == "on"


def to_article(row: KBArticle, version: KBArticleVersion, *, key: str = "id") -> Article:
    """The knowledge base's ``Article`` for one version of an article row.

    ``key="id"`` names it by database id (what search, answers and URLs use);
    ``key="slug"`` by slug (what JSONL import and export use).
    """
    return Article(
        id=str(row.id) if key == "id" else row.slug,
        title=version.title,
        body=version.body,
        summary=version.summary or "",
        topic=row.topic or "",
        tags=list(row.tags or []),
        language=row.language,
        translation_group=row.translation_group,
        status=row.status,
        department=row.department or "",
        review_by=row.review_by,
        version=version.version,
        channel_overrides=dict(version.renderings or {}),
    )


def _current_rows(where: Any = None) -> sa.Select:
    stmt = sa.select(KBArticle, KBArticleVersion).join(
        KBArticleVersion,
        sa.and_(
            KBArticleVersion.article_id == KBArticle.id,
            KBArticleVersion.version == KBArticle.current_version,
        ),
    )
    return stmt if where is None else stmt.where(where)


class DBArticleStore:
    """``knowledge_base.ArticleStore`` over the database (articles named by their id)."""

    def list_published(self) -> list[Article]:
        rows = db.session.execute(_current_rows(KBArticle.status == "published")).all()
        return [to_article(a, v) for a, v in rows]

    def get(self, article_id: str, version: int | None = None) -> Article | None:
        try:
            pk = int(article_id)
        except (TypeError, ValueError):
            return None
        row = db.session.get(KBArticle, pk)
        if row is None:
            return None
        ver = db.session.scalar(
            sa.select(KBArticleVersion).where(
                KBArticleVersion.article_id == pk,
                KBArticleVersion.version == (version or row.current_version),
            )
        )
        return None if ver is None else to_article(row, ver)

    def versions(self, article_id: str) -> list[Article]:
        row = db.session.get(KBArticle, int(article_id))
        if row is None:
            return []
        rows = db.session.scalars(
            sa.select(KBArticleVersion)
            .where(KBArticleVersion.article_id == row.id)
            .order_by(KBArticleVersion.version)
        ).all()
        return [to_article(row, v) for v in rows]


def bump_generation() -> int:
    """Count one knowledge-base write, inside the caller's transaction.

    The counter row stays locked until the caller commits, so writers take turns and the
    generation read just after this is exactly the state the commit will publish.
    """
    stmt = (
        sa.update(Counter)
        .where(Counter.name == GENERATION_COUNTER)
        .values(value=Counter.value + 1)
    )
    if db.session.execute(stmt).rowcount == 0:
        try:
            with db.session.begin_nested():
                db.session.add(Counter(name=GENERATION_COUNTER, value=1))
        except IntegrityError:  # another writer created it first
            db.session.execute(stmt)
    return db.session.scalar(sa.select(Counter.value).where(Counter.name == GENERATION_COUNTER))


def begin_write() -> tuple:
    """Start a knowledge-base write: lock the generation and return the one before it.

    Call before touching any article, so nothing of this write is flushed yet.
    """
    counter = bump_generation()
    _, count, latest, versions = generation()
    return (counter - 1, count, latest, versions)


def finish_write(before: tuple, rows: Iterable[KBArticle]) -> None:
    """Commit a knowledge-base write and apply it to this process's index."""
    db.session.flush()
    after = generation()
    rows = list(rows)
    current = {
        a.id: to_article(a, v)
        for a, v in db.session.execute(
            _current_rows(KBArticle.id.in_([r.id for r in rows]))
        ).all()
    } if rows else {}
    db.session.commit()
    live().applied(current.values(), [], before, after)


def generation() -> tuple:
    """A cheap fingerprint of the knowledge base's contents (see the module docstring)."""
    counter = db.session.scalar(
        sa.select(Counter.value).where(Counter.name == GENERATION_COUNTER)
    )
    count, latest, versions = db.session.execute(
        sa.select(
            sa.func.count(KBArticle.id),
            sa.func.max(KBArticle.updated_at),
            sa.func.coalesce(sa.func.sum(KBArticle.current_version), 0),
        )
    ).one()
    return (counter or 0, int(count), latest, int(versions))


class LiveKnowledgeBase:
    """One app's in-memory index, kept in step with the database."""

    def __init__(self, base_url: str, refresh_seconds: float, semantic: bool = False):
        self.base_url = base_url
        self.refresh_seconds = refresh_seconds
        self.semantic = semantic
        self._kb: KnowledgeBase | None = None
        self._generation: tuple | None = None
        self._checked_at = 0.0
        # Searches read dicts that upserts mutate: both take this lock (a search is ~ms).
        self.lock = threading.RLock()
        self._rebuilding = threading.Lock()

    def knowledge_base(self) -> KnowledgeBase:
        """The index, rebuilt first if the database moved on since the last check."""
        now = time.monotonic()
        if self._kb is None:
            with self._rebuilding:
                if self._kb is None:
                    self._rebuild()
            return self._kb  # type: ignore[return-value]
        if now - self._checked_at >= self.refresh_seconds:
            self._checked_at = now
            seen = generation()
            if seen != self._generation and self._rebuilding.acquire(blocking=False):
                try:
                    self._catch_up(seen)
                finally:
                    self._rebuilding.release()
        return self._kb

    def _catch_up(self, seen: tuple) -> None:
        """Apply other processes' writes: re-index the articles changed since the last
        seen change (a few rows, milliseconds); rebuild only when articles disappeared or
        no changed row can be found (an edit outside the app, or clocks far apart)."""
        old = self._generation
        if old is None or old[2] is None or seen[1] < old[1]:
            self._rebuild()
            return
        since = old[2] - timedelta(seconds=CATCH_UP_SLACK_SECONDS)
        rows = db.session.execute(_current_rows(KBArticle.updated_at >= since)).all()
        if not rows:
            self._rebuild()
            return
        with self.lock:
            for row, version in rows:
                self._kb.upsert(to_article(row, version))  # type: ignore[union-attr]
            self._generation = seen

    def _rebuild(self) -> None:
        seen = generation()
        semantic = (SemanticIndex(MiniLMEmbedder(), cache=_EMBEDDINGS)
                    if self.semantic else None)
        kb = KnowledgeBase.from_store(DBArticleStore(), self.base_url, semantic=semantic)
        with self.lock:
            self._kb = kb
            self._generation = seen
            self._checked_at = time.monotonic()

    def applied(self, articles: Iterable[Article], removed: Iterable[str], before: tuple,
                after: tuple) -> None:
        """Apply this process's own committed write to the index.

        ``before``/``after`` are the generations read inside the write's transaction
        before and after it. If the index was at ``before``, it is now at ``after``;
        otherwise something else changed too, and the next check rebuilds.
        """
        if self._kb is None:
            return
        with self.lock:
            for article_id in removed:
                self._kb.remove(article_id)
            for article in articles:
                self._kb.upsert(article)
            if self._generation == before:
                self._generation = after
            else:
                self._checked_at = 0.0

    def invalidate(self) -> None:
        with self.lock:
            self._checked_at = 0.0
            self._generation = None


def live(app: Flask | None = None) -> LiveKnowledgeBase:
    """This app's live knowledge base (created on first use)."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    holder = app.extensions.get("civicline_kb")
    if holder is None:
        holder = LiveKnowledgeBase(
            app.config.get("PUBLIC_BASE_URL", "").rstrip("/"),
            float(app.config.get("KB_REFRESH_SECONDS", DEFAULT_REFRESH_SECONDS)),
            semantic_enabled(app.config.get("KB_SEMANTIC")),
        )
        app.extensions["civicline_kb"] = holder
    else:  # read each time so a test (or an operator's config reload) can change it
        holder.refresh_seconds = float(
            app.config.get("KB_REFRESH_SECONDS", DEFAULT_REFRESH_SECONDS))
    return holder
