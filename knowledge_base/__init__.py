"""The shared knowledge base: articles, renderings, search and answers. No Flask.

Public API (everything the app needs is importable from here):

- ``Article``, ``ArticleStore``, ``InMemoryArticleStore``, ``diff_versions``
- ``render(article, channel, base_url) -> Rendering``
- ``SearchIndex.build(articles)``, ``.search(query, lang=None, limit=10) -> list[Hit]``,
  ``.upsert(article)``, ``.remove(article_id)``
- ``KnowledgeBase``: ``.search``, ``.answer(query, channel, lang) -> Answer``,
  ``.suggest(texts, lang, limit=3)``; optional ``semantic=SemanticIndex(embedder)``
- ``Embedder`` (protocol), ``MiniLMEmbedder``, ``EmbeddingCache``, ``SemanticIndex``
- ``parse_jsonl``, ``export_jsonl``, ``load_demo_articles``
- ``deflection_rate``, ``helpfulness``, ``gap_report``
- ``KBError`` (with ``code``)

Matching is lexical by default: BM25F with stemming, typo tolerance and synonyms, which
needs no model. Semantic matching is optional (``knowledge_base.semantic``): a sentence
embedding model whose weights ship inside a pinned package (all-MiniLM-L6-v2, loaded
offline, lazily, once per process) is fused with the BM25F score for English and Spanish
questions, where it measurably helps; Chinese stays lexical. The app turns it on with
``KB_SEMANTIC=on``.
"""

from __future__ import annotations

from pathlib import Path

from knowledge_base.answer import THRESHOLDS, Answer, KnowledgeBase, confidence
from knowledge_base.errors import KBError
from knowledge_base.feedback import Gap, deflection_rate, gap_report, helpfulness
from knowledge_base.jsonl import ImportResult, LineError, export_jsonl, parse_jsonl
from knowledge_base.models import (
    CHANNELS,
    LANGUAGES,
    Article,
    ArticleStore,
    InMemoryArticleStore,
    diff_versions,
)
from knowledge_base.render import Rendering, render, sms_segments
from knowledge_base.search import MAX_QUERY_CHARS, Hit, SearchIndex
from knowledge_base.semantic import Embedder, EmbeddingCache, MiniLMEmbedder, SemanticIndex

DEMO_ARTICLES_PATH = Path(__file__).parent / "data" / "demo_articles.jsonl"


def load_demo_articles() -> list[Article]:
    """The demo articles shipped with CivicLine (raises ``KBError`` if the file is bad)."""
    result = parse_jsonl(DEMO_ARTICLES_PATH.read_text(encoding="utf-8"))
    if result.errors:
        first = result.errors[0]
        raise KBError("invalid_article", f"demo articles line {first.line}: {first.message}")
    return result.articles


__all__ = [
    "CHANNELS",
    "LANGUAGES",
    "MAX_QUERY_CHARS",
    "THRESHOLDS",
    "Answer",
    "Article",
    "ArticleStore",
    "Embedder",
    "EmbeddingCache",
    "Gap",
    "Hit",
    "ImportResult",
    "InMemoryArticleStore",
    "KBError",
    "KnowledgeBase",
    "LineError",
    "MiniLMEmbedder",
    "Rendering",
    "SearchIndex",
    "SemanticIndex",
    "confidence",
    "deflection_rate",
    "diff_versions",
    "export_jsonl",
    "gap_report",
    "helpfulness",
    "load_demo_articles",
    "parse_jsonl",
    "render",
    "sms_segments",
]
