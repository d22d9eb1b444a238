"""The app's side of the knowledge base: every channel's self-service answer comes from
``answer_for``, so the same question gets the same article and version everywhere.

The article is chosen from the question alone (the channel only picks the rendering and
the confidence a self-service answer needs), and every question is logged as a
``KBQuery`` row in the caller's transaction, for the deflection and gap reports.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from app.extensions import db
from app.kb_store import live
from app.models import (
    Interaction,
    KBArticle,
    KBArticleVersion,
    KBFeedback,
    KBQuery,
    Ticket,
    utcnow,
)
from app.services import Invalid, NotFound
from knowledge_base import (
    CHANNELS,
    LANGUAGES,
    MAX_QUERY_CHARS,
    THRESHOLDS,
    KBError,
    deflection_rate,
    gap_report,
)
from knowledge_base.render import article_url
from knowledge_base.search import normalize_language

# Channels without a rendering of their own read the web page's.
RENDER_CHANNEL = {"walkin": "web", "note": "web"}
MAX_GAP_QUESTIONS = 2000
_MARKUP_RE = re.compile(r"<\s*/?\s*[a-zA-Z!?]|[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_LANG_CODE_RE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*$")


@dataclass(frozen=True)
class KBAnswer:
    article_id: int
    version: int
    title: str
    confidence: float
    self_service: bool
    text: str
    html: str | None = None
    language: str | None = None
    url: str | None = None
    topic: str | None = None  # the article's topic (``followup.take_topic``)


@dataclass(frozen=True)
class KBSuggestion:
    """An article suggested to the agent working a ticket."""

    article_id: int
    version: int
    title: str
    score: float
    snippet: str
    text: str
    html: str | None
    language: str
    url: str


def kb_invalid(exc: KBError) -> Invalid:
    status = 404 if exc.code == "not_found" else 400
    return Invalid(exc.message, code=exc.code, status=status)


def check_query(query: str | None) -> str:
    """A query as the API accepts it: words, at most ``MAX_QUERY_CHARS``, no markup."""
    if query is None or not query.strip():
        raise Invalid("q is required", code="empty_query")
    if len(query) > MAX_QUERY_CHARS:
        raise Invalid(f"q is longer than {MAX_QUERY_CHARS} characters", code="query_too_long")
    if _MARKUP_RE.search(query):
        raise Invalid("q must be plain text (no markup or control characters)",
                      code="invalid_query")
    return query


def check_language(lang: str | None) -> str | None:
    """``es-MX`` -> ``es``; a language we have no articles in is an error for the API."""
    if lang is None or lang == "":
        return None
    if not _LANG_CODE_RE.match(lang):
        raise Invalid(f"not a language code: {lang!r}", code="invalid_language")
    primary = lang.replace("_", "-").split("-")[0].lower()
    if primary not in LANGUAGES:
        raise Invalid(f"unsupported language {lang!r}; expected one of {', '.join(LANGUAGES)}",
                      code="invalid_language")
    return primary


def _render_channel(channel: str) -> str:
    channel = RENDER_CHANNEL.get(channel, channel)
    if channel not in CHANNELS:
        raise Invalid(f"unknown channel {channel!r}; expected one of {', '.join(CHANNELS)}",
                      code="unknown_channel")
    return channel


def _lenient_query(query: str) -> str:
    """A resident's message as a query: long ones (emails) cut at a word boundary."""
    query = query or ""
    if len(query) > MAX_QUERY_CHARS:
        query = query[:MAX_QUERY_CHARS].rsplit(None, 1)[0]
    return query


def _lenient_language(lang: str | None) -> str | None:
    try:
        return normalize_language(lang)
    except KBError:
        return None  # a bad hint from a channel: detect the language from the text instead


def answer(query: str, channel: str, lang: str | None = None, ticket_id: int | None = None,
           *, strict: bool = False) -> KBAnswer | None:
    """``answer_for`` with a choice: ``strict`` (the API) rejects bad input with
    ``Invalid``; otherwise (channels) bad input just gets no answer."""
    render_channel = _render_channel(channel)
    if strict:
        query, lang = check_query(query), check_language(lang)
    else:
        query, lang = _lenient_query(query), _lenient_language(lang)
    holder = live()
    kb = holder.knowledge_base()
    try:
        with holder.lock:
            result = kb.answer(query, render_channel, lang)
    except KBError as exc:
        if strict:
            raise kb_invalid(exc) from exc
        return None
    article = result.article
    log_channel = channel if channel in CHANNELS or channel in RENDER_CHANNEL else render_channel
    db.session.add(KBQuery(
        query=query[:500],
        language=result.language,
        channel=log_channel[:10],
        article_id=int(article.id) if article else None,
        version=result.version,
        confidence=result.confidence,
        self_served=result.self_service,
        ticket_id=ticket_id,
    ))
    if article is None or result.rendering is None:
        return None
    return KBAnswer(
        article_id=int(article.id),
        version=article.version,
        title=article.title,
        confidence=result.confidence,
        self_service=result.self_service,
        text=result.rendering.text,
        html=result.rendering.html,
        language=article.language,
        url=article_url(article, holder.base_url),
        topic=article.topic or None,
    )


def answer_for(query: str, channel: str, lang: str | None = None,
               ticket_id: int | None = None) -> KBAnswer | None:
    """The best article for ``query`` rendered for ``channel`` (sms, voice, chat, email,
    web), or None when the knowledge base has nothing. ``self_service`` says whether the
    confidence clears the channel's threshold.

    The question is logged (``KBQuery``) in the caller's transaction, which commits it.
    Bad input from a channel (no words, an emoji) gets None; over-long messages are cut.
    """
    return answer(query, channel, lang, ticket_id)


def search(query: str, lang: str | None = None, limit: int = 10) -> list[dict]:
    """Ranked hits with scores and snippets (the API's search; strict input checks)."""
    query, lang = check_query(query), check_language(lang)
    holder = live()
    kb = holder.knowledge_base()
    try:
        with holder.lock:
            hits = kb.search(query, lang, limit)
    except KBError as exc:
        raise kb_invalid(exc) from exc
    return [
        {
            "article_id": int(h.article_id),
            "version": h.version,
            "title": h.title,
            "score": round(h.score, 4),
            "snippet": h.snippet,
            "language": h.language,
            "url": f"{holder.base_url}/kb/{h.article_id}",
        }
        for h in hits
    ]


def suggestions_for_ticket(ticket_id: int, limit: int = 3) -> list[KBSuggestion]:
    """Top articles for a ticket's inbound messages, rendered for the ticket's channel."""
    ticket = db.session.get(Ticket, ticket_id)
    if ticket is None:
        raise NotFound(f"ticket {ticket_id} not found")
    texts = list(db.session.scalars(
        sa.select(Interaction.text)
        .where(Interaction.ticket_id == ticket_id, Interaction.direction == "inbound")
        .order_by(Interaction.created_at, Interaction.id)
    ))
    channel = _render_channel(ticket.channel)
    holder = live()
    kb = holder.knowledge_base()
    out = []
    with holder.lock:
        hits = kb.suggest([t or "" for t in texts], _lenient_language(ticket.language), limit)
        for hit in hits:
            article = kb.index.article(hit.article_id)
            if article is None:
                continue
            rendering = kb.rendering(article, channel)
            out.append(KBSuggestion(
                article_id=int(article.id), version=article.version, title=article.title,
                score=hit.score, snippet=hit.snippet, text=rendering.text,
                html=rendering.html, language=article.language,
                url=article_url(article, holder.base_url),
            ))
    return out


def record_feedback(article_id: int, version: int, channel: str, helpful: bool,
                    interaction_id: int | None = None) -> KBFeedback:
    """A resident's (or agent's) "was this helpful?" vote on one article version."""
    if db.session.get(KBArticle, article_id) is None:
        raise NotFound(f"article {article_id} not found")
    exists = db.session.scalar(sa.select(KBArticleVersion.id).where(
        KBArticleVersion.article_id == article_id, KBArticleVersion.version == version))
    if exists is None:
        raise Invalid(f"article {article_id} has no version {version}", code="invalid_version")
    if interaction_id is not None and db.session.get(Interaction, interaction_id) is None:
        raise Invalid(f"interaction {interaction_id} not found", code="invalid_interaction")
    row = KBFeedback(article_id=article_id, version=version, channel=channel,
                     helpful=helpful, interaction_id=interaction_id)
    db.session.add(row)
    db.session.commit()
    return row


def feedback_counts(article_id: int) -> dict[str, int]:
    rows = db.session.execute(
        sa.select(KBFeedback.helpful, sa.func.count())
        .where(KBFeedback.article_id == article_id)
        .group_by(KBFeedback.helpful)
    ).all()
    counts = {bool(h): int(n) for h, n in rows}
    return {"helpful": counts.get(True, 0), "not_helpful": counts.get(False, 0)}


def _since(days: int) -> datetime:
    return utcnow() - timedelta(days=days)


def deflection_report(days: int = 30) -> dict:
    """Self-service rate: questions answered without a person / all questions, by channel."""
    since = _since(days)
    rows = db.session.execute(
        sa.select(KBQuery.channel, sa.func.count(),
                  sa.func.sum(sa.case((KBQuery.self_served.is_(True), 1), else_=0)))
        .where(KBQuery.created_at >= since)
        .group_by(KBQuery.channel)
    ).all()
    by_channel = {}
    total = served = 0
    for channel, n, s in sorted(rows, key=lambda r: r[0]):
        n, s = int(n), int(s or 0)
        total, served = total + n, served + s
        by_channel[channel] = {"questions": n, "self_served": s,
                               "rate": round(deflection_rate(s, n), 4)}
    return {"since": since, "days": days, "questions": total, "self_served": served,
            "rate": round(deflection_rate(served, total), 4), "by_channel": by_channel}


def gaps(days: int = 30, lang: str | None = None, min_count: int = 1, limit: int = 20) -> dict:
    """Questions the knowledge base could not answer on its own, grouped into topics."""
    since = _since(days)
    stmt = (
        sa.select(KBQuery.query)
        .where(KBQuery.created_at >= since, KBQuery.self_served.is_(False))
        .order_by(KBQuery.id.desc())
        .limit(MAX_GAP_QUESTIONS)
    )
    if lang:
        stmt = stmt.where(KBQuery.language == lang)
    questions = list(db.session.scalars(stmt))
    found = gap_report(questions, lang=lang, min_count=min_count)[:limit]
    return {
        "since": since,
        "days": days,
        "questions": len(questions),
        "gaps": [{"label": g.label, "count": g.count, "terms": g.terms,
                  "examples": g.examples} for g in found],
    }


def thresholds() -> dict[str, float]:
    return dict(THRESHOLDS)
