"""Answer selection, agent suggestions, and the ``KnowledgeBase`` facade the app calls.

One question, one article: ``answer`` picks the article (and its version) from the search
alone; the channel only chooses the rendering and how sure we must be before answering
without a person. So the same query gives the same article and version on SMS, voice,
chat, email and web.

Confidence is a logistic function of three features of the search result:

- ``rel``: top score divided by the score an article matching every query word perfectly
  would get (how much of the query's information the top article explains);
- ``margin``: ``(top - second) / top`` (how clearly it beats the runner-up);
- ``coverage``: share of the resident's content words found in the top article.

``confidence = 1 / (1 + exp(-(W_REL*rel + W_MARGIN*margin + W_COVERAGE*coverage + BIAS)))``

The weights were fitted by logistic regression (top-1 correct or not) on half of the
labeled resident questions in ``bench/data/kb_questions.jsonl`` and checked on the other
half (``python -m bench.kb --calibration`` prints the reliability table). A question with
no hits has confidence 0.

With semantic matching (``KnowledgeBase(..., semantic=SemanticIndex(...))``, see
``knowledge_base.semantic``) a fused result has its own weights (``HYBRID_WEIGHTS``),
fitted and checked the same way on the hybrid ranking (English and Spanish questions,
plus the questions no article answers in ``bench/data/kb_unanswerable.jsonl`` as
negatives, so meaning alone does not make an off-topic question look answered), over
four features: ``rel`` and
``coverage`` of the top hit as above (0 for an article found by meaning alone), ``margin``
(the top fused score minus the second: fused scores are already on a 0-1 scale, so a
difference between two weak matches stays small without the damping the lexical margin
needs), and ``cos``, the top hit's cosine similarity to the question. So the
confidence stays a calibrated probability in [0, 1] in both modes, and the per-channel
thresholds below mean the same thing whichever ranking produced the answer.

Per-channel thresholds decide self-service. SMS and voice are stricter than chat and web
because a wrong SMS or spoken answer cannot be skimmed past, while a chat or web answer is
shown with its title and the resident can ask again.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from knowledge_base.errors import KBError
from knowledge_base.models import CHANNELS, Article, ArticleStore
from knowledge_base.render import Rendering, render
from knowledge_base.search import (
    MAX_QUERY_CHARS,
    Fuser,
    Hit,
    SearchIndex,
    SearchResult,
    normalize_language,
)
from knowledge_base.semantic import SemanticIndex

W_REL = 0.8
W_MARGIN = 6.1
W_COVERAGE = 1.4
BIAS = -2.1
# Fused results: (rel, margin, coverage, cos, bias); see the module doc.
HYBRID_WEIGHTS = (2.1, 4.8, 1.7, 1.5, -2.7)

THRESHOLDS = {"sms": 0.6, "voice": 0.65, "chat": 0.45, "email": 0.5, "web": 0.4}


@dataclass(frozen=True)
class Answer:
    """The knowledge base's answer to one question on one channel.

    ``article`` is None when nothing matched. ``self_service`` is True when confidence
    reaches the channel's threshold: send ``rendering`` to the resident; otherwise route
    to a person (``rendering`` can still be shown to the agent as a suggestion).
    """

    article: Article | None
    version: int | None
    confidence: float
    rendering: Rendering | None
    self_service: bool
    language: str = "en"
    hits: list[Hit] = field(default_factory=list)


def confidence(result: SearchResult) -> float:
    """Calibrated probability that the top hit answers the question (module doc)."""
    if result.fused:
        return hybrid_confidence(result)
    if not result.hits or result.max_score <= 0:
        return 0.0
    top = result.hits[0].score
    second = result.hits[1].score if len(result.hits) > 1 else 0.0
    rel = min(top / result.max_score, 1.5)
    margin = (top - second) / top if top > 0 else 0.0
    # A lone weak hit wins by a wide margin over nothing: the margin only counts in
    # proportion to how strong the hit is (squared), so "what is the meaning of life"
    # matching one stray word of one article is not a confident answer.
    margin *= min(1.0, rel) ** 2
    coverage = result.coverage[0] if result.coverage else 0.0
    z = W_REL * rel + W_MARGIN * margin + W_COVERAGE * coverage + BIAS
    return round(1.0 / (1.0 + math.exp(-z)), 4)


def hybrid_features(result: SearchResult) -> tuple[float, float, float, float]:
    """(rel, margin, coverage, cos) of a fused search result (module doc)."""
    if not result.hits or result.max_score <= 0:
        return 0.0, 0.0, 0.0, 0.0
    top = result.hits[0].score
    second = result.hits[1].score if len(result.hits) > 1 else 0.0
    return (
        min(result.lexical[0] / result.max_score, 1.5),
        top - second,
        result.coverage[0] if result.coverage else 0.0,
        result.semantic[0],
    )


def hybrid_confidence(result: SearchResult) -> float:
    if not result.hits or result.max_score <= 0:
        return 0.0
    *weights, bias = HYBRID_WEIGHTS
    z = sum(w * x for w, x in zip(weights, hybrid_features(result), strict=True)) + bias
    return round(1.0 / (1.0 + math.exp(-z)), 4)


def confidence_features(result: SearchResult) -> tuple[float, float, float]:
    """(rel, margin, coverage) of a search result; for calibration."""
    if not result.hits or result.max_score <= 0:
        return 0.0, 0.0, 0.0
    top = result.hits[0].score
    second = result.hits[1].score if len(result.hits) > 1 else 0.0
    return (
        min(top / result.max_score, 1.5),
        (top - second) / top if top > 0 else 0.0,
        result.coverage[0] if result.coverage else 0.0,
    )


class KnowledgeBase:
    """Search, answers and suggestions over one ``SearchIndex``.

    Build it once from the store's published articles (``from_store``) or a list
    (``from_articles``); when an editor publishes, archives or changes an article, call
    ``upsert(article)`` (or ``remove(article_id)``) with the new current version.

    ``semantic`` (a ``SemanticIndex``, optional) turns on hybrid ranking for the languages
    it serves; without it, search is lexical only and needs no model.
    """

    def __init__(
        self,
        index: SearchIndex,
        base_url: str = "",
        thresholds: dict[str, float] | None = None,
        semantic: SemanticIndex | None = None,
    ):
        self.index = index
        self.base_url = base_url
        self.thresholds = {**THRESHOLDS, **(thresholds or {})}
        self.semantic = semantic
        # Renderings of current articles, per (id, language, version, channel): an answer
        # renders the same article the same way every time (Markdown, sentence splitting
        # and SMS segment fitting cost more than the search), so each is rendered once.
        # ``upsert`` and ``remove`` drop them with the articles they came from.
        self._renderings: dict[tuple[str, str, int, str], Rendering] = {}
        if semantic is not None:
            semantic.build(index.articles())

    @classmethod
    def from_articles(
        cls, articles: Iterable[Article], base_url: str = "",
        semantic: SemanticIndex | None = None,
    ) -> KnowledgeBase:
        return cls(SearchIndex.build(articles), base_url, semantic=semantic)

    @classmethod
    def from_store(
        cls, store: ArticleStore, base_url: str = "", semantic: SemanticIndex | None = None
    ) -> KnowledgeBase:
        return cls(SearchIndex.build(store.list_published()), base_url, semantic=semantic)

    @property
    def fuse(self) -> Fuser | None:
        return None if self.semantic is None else self.semantic.fuse

    def upsert(self, article: Article) -> None:
        self._renderings.clear()
        self.index.upsert(article)
        if self.semantic is not None:
            self.semantic.upsert(article)

    def remove(self, article_id: str) -> None:
        self._renderings.clear()
        self.index.remove(article_id)
        if self.semantic is not None:
            self.semantic.remove(article_id)

    def rendering(self, article: Article, channel: str) -> Rendering:
        """``article`` (a current article of this knowledge base) rendered for
        ``channel``, rendered once."""
        key = (article.id, article.language, article.version, channel)
        cached = self._renderings.get(key)
        if cached is None:
            if len(self._renderings) >= 4096:
                self._renderings.clear()
            cached = self._renderings[key] = render(article, channel, self.base_url)
        return cached

    def search(self, query: str, lang: str | None = None, limit: int = 10) -> list[Hit]:
        return self.index.search(query, lang, limit, self.fuse)

    def search_detailed(
        self, query: str, lang: str | None = None, limit: int = 10
    ) -> SearchResult:
        return self.index.search_detailed(query, lang, limit, self.fuse)

    def answer(self, query: str, channel: str, lang: str | None = None) -> Answer:
        """The article that answers ``query``, rendered for ``channel``, with confidence."""
        if channel not in CHANNELS:
            raise KBError("unknown_channel", f"unknown channel {channel!r}")
        wanted = normalize_language(lang)
        result = self.search_detailed(query, wanted, limit=5)
        language = wanted or result.language
        if not result.hits:
            return Answer(None, None, 0.0, None, False, language, [])
        article = self.index.article(result.hits[0].article_id)
        if article is None:  # removed between search and lookup
            return Answer(None, None, 0.0, None, False, language, result.hits)
        article = self.index.translation(article, language) or article
        score = confidence(result)
        rendering = self.rendering(article, channel)
        return Answer(
            article=article,
            version=article.version,
            confidence=score,
            rendering=rendering,
            self_service=score >= self.thresholds[channel],
            language=language,
            hits=result.hits,
        )

    def suggest(self, texts: list[str], lang: str | None = None, limit: int = 3) -> list[Hit]:
        """Top articles for a ticket's messages, for the agent console.

        Each message is searched on its own (cut to the query length cap rather than
        rejected); scores are divided by that message's best score and summed, with later
        messages weighted more since they usually say what the resident still needs.
        """
        totals: dict[str, float] = defaultdict(float)
        best_hit: dict[str, Hit] = {}
        usable = [t[:MAX_QUERY_CHARS] for t in texts if t and t.strip()]
        for position, text in enumerate(usable):
            try:
                hits = self.search(text, lang, limit=max(limit * 3, 10))
            except KBError:
                continue  # a message with no words (an emoji, a signature) suggests nothing
            if not hits:
                continue
            weight = 1.0 + position / max(len(usable), 1)
            top = hits[0].score or 1.0
            for hit in hits:
                totals[hit.article_id] += weight * hit.score / top
                best_hit.setdefault(hit.article_id, hit)
        ranked = sorted(totals, key=lambda a: (-totals[a], a))[:limit]
        return [
            Hit(
                a,
                best_hit[a].version,
                round(totals[a], 6),
                best_hit[a].snippet,
                best_hit[a].language,
                best_hit[a].title,
            )
            for a in ranked
        ]
