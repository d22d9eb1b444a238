"""Articles, versions and the storage interface.

An ``Article`` is one version of one article in one language. Translations of the same
article share a ``translation_group`` (the id of the original, usually the English one);
each translation is its own article with its own id and version history. Articles are
plain dataclasses so the app can map them to and from ORM rows without this package
knowing about the ORM.

Storage belongs to the app. The knowledge base only needs the small ``ArticleStore``
protocol (list published articles, get an article by id and version);
``InMemoryArticleStore`` implements it for tests, benchmarks and the demo seed.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Protocol

from knowledge_base.errors import KBError

LANGUAGES = ("en", "es", "zh")
STATUSES = ("draft", "published", "archived")
CHANNELS = ("sms", "voice", "chat", "email", "web")


@dataclass
class Article:
    """One version of one knowledge-base article in one language.

    ``body`` is Markdown. ``channel_overrides`` maps a channel (sms, voice, chat, email,
    web) to hand-written text that replaces the rendering derived from the body.
    """

    id: str
    title: str
    body: str
    summary: str = ""
    topic: str = ""
    tags: list[str] = field(default_factory=list)
    language: str = "en"
    translation_group: str = ""
    status: str = "published"
    department: str = ""
    review_by: date | None = None
    version: int = 1
    channel_overrides: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.translation_group:
            self.translation_group = self.id

    @property
    def is_published(self) -> bool:
        return self.status == "published"

    def needs_review(self, today: date) -> bool:
        """True when the article's review date has passed (editors' worklist)."""
        return self.review_by is not None and self.review_by < today

    def new_version(self, **changes: object) -> Article:
        """A copy with ``changes`` applied and the version number incremented."""
        return dataclasses.replace(self, version=self.version + 1, **changes)  # type: ignore[arg-type]


def diff_versions(old: Article, new: Article, context: int = 3) -> str:
    """A unified diff of title and body between two versions of an article."""

    def lines(article: Article) -> list[str]:
        return [f"# {article.title}\n", "\n", *(line + "\n" for line in article.body.splitlines())]

    return "".join(
        difflib.unified_diff(
            lines(old),
            lines(new),
            fromfile=f"{old.id} v{old.version}",
            tofile=f"{new.id} v{new.version}",
            n=context,
        )
    )


class ArticleStore(Protocol):
    """What the knowledge base needs from storage; the app implements it over its DB."""

    def list_published(self) -> Iterable[Article]:
        """The current published version of every published article, all languages."""
        ...

    def get(self, article_id: str, version: int | None = None) -> Article | None:
        """One article at ``version`` (latest when None), or None if absent."""
        ...


class InMemoryArticleStore:
    """An ``ArticleStore`` in a dict, keeping every version. For tests, bench and seeds."""

    def __init__(self, articles: Iterable[Article] = ()):
        self._versions: dict[str, dict[int, Article]] = {}
        for article in articles:
            self.save(article)

    def save(self, article: Article) -> None:
        if article.status not in STATUSES:
            raise KBError("invalid_article", f"unknown status {article.status!r}")
        self._versions.setdefault(article.id, {})[article.version] = article

    def get(self, article_id: str, version: int | None = None) -> Article | None:
        versions = self._versions.get(article_id)
        if not versions:
            return None
        if version is None:
            return versions[max(versions)]
        return versions.get(version)

    def versions(self, article_id: str) -> list[Article]:
        return [v for _, v in sorted(self._versions.get(article_id, {}).items())]

    def list_published(self) -> list[Article]:
        out = []
        for versions in self._versions.values():
            latest = versions[max(versions)]
            if latest.is_published:
                out.append(latest)
        return out

    def __len__(self) -> int:
        return len(self._versions)
