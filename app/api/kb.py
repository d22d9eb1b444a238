"""Knowledge base: search, answers, articles and their versions, feedback, reports and
agent suggestions, under ``/api/v1/kb``. Agents read; supervisors and admins edit."""

from __future__ import annotations

import sqlalchemy as sa

from app import kb_editing
from app.api import bp
from app.api.kb_schemas import (
    AnswerOut,
    AnswerQuery,
    ArticleIn,
    ArticleListQuery,
    ArticleOut,
    ArticlePage,
    ArticleUpdate,
    DeflectionOut,
    DiffOut,
    DiffQuery,
    FeedbackIn,
    FeedbackOut,
    GapsOut,
    ReportQuery,
    SearchOut,
    SearchQuery,
    SuggestionsOut,
    VersionList,
    VersionQuery,
)
from app.auth import current_user, token_auth
from app.extensions import db
from app.kb_store import live
from app.models import KBArticle
from app.services import Invalid
from app.services import knowledge as kb_service


def _article_out(row: KBArticle, version: int | None = None) -> dict:
    ver = kb_editing.get_version(row, version)
    return {
        "id": row.id, "slug": row.slug, "language": row.language,
        "translation_group": row.translation_group, "status": row.status,
        "topic": row.topic, "department": row.department, "tags": row.tags or [],
        "review_by": row.review_by, "current_version": row.current_version,
        "version": ver.version, "title": ver.title, "summary": ver.summary or "",
        "body": ver.body, "channel_overrides": ver.renderings or {},
        "created_at": row.created_at, "updated_at": row.updated_at,
        "url": f"{live().base_url}/kb/{row.id}",
        "feedback": kb_service.feedback_counts(row.id),
    }


@bp.get("/kb/search")
@bp.auth_required(token_auth, roles=["agent"])
@bp.input(SearchQuery, location="query", arg_name="query")
@bp.output(SearchOut)
def kb_search(query):
    """Called by agents (console search box) and integrations to search articles."""
    hits = kb_service.search(query["q"], query.get("lang"), query["limit"])
    return {"query": query["q"], "hits": hits}


@bp.get("/kb/answer")
@bp.auth_required(token_auth, roles=["agent"])
@bp.input(AnswerQuery, location="query", arg_name="query")
@bp.output(AnswerOut)
def kb_answer(query):
    """Called by integrations (and the console) for the best answer on one channel."""
    channel = query["channel"]
    found = kb_service.answer(query["q"], channel, query.get("lang"), strict=True)
    db.session.commit()  # the logged question
    threshold = kb_service.thresholds().get(kb_service.RENDER_CHANNEL.get(channel, channel))
    if found is None:
        return {"found": False, "confidence": 0.0, "threshold": threshold,
                "self_service": False, "channel": channel}
    return {"found": True, "channel": channel, "threshold": threshold,
            **{k: getattr(found, k) for k in (
                "article_id", "version", "title", "confidence", "self_service", "language",
                "text", "html", "url")}}


@bp.get("/kb/articles")
@bp.auth_required(token_auth, roles=["agent"])
@bp.input(ArticleListQuery, location="query", arg_name="query")
@bp.output(ArticlePage)
def kb_list_articles(query):
    """Called by agents and editors to browse articles, newest change first."""
    from app.models import KBArticleVersion

    conds = [getattr(KBArticle, k) == query[k] for k in ("status", "language", "topic")
             if k in query]
    total = db.session.scalar(sa.select(sa.func.count(KBArticle.id)).where(*conds))
    rows = db.session.execute(
        sa.select(KBArticle, KBArticleVersion.title)
        .join(KBArticleVersion, sa.and_(KBArticleVersion.article_id == KBArticle.id,
                                        KBArticleVersion.version == KBArticle.current_version))
        .where(*conds)
        .order_by(KBArticle.updated_at.desc(), KBArticle.id.desc())
        .limit(query["limit"]).offset(query["offset"])
    ).all()
    items = [{"id": a.id, "slug": a.slug, "language": a.language, "status": a.status,
              "topic": a.topic, "current_version": a.current_version, "title": title,
              "updated_at": a.updated_at} for a, title in rows]
    return {"items": items, "total": total}


@bp.post("/kb/articles")
@bp.auth_required(token_auth, roles=["supervisor"])
@bp.input(ArticleIn, arg_name="body")
@bp.output(ArticleOut, status_code=201)
def kb_create_article(body):
    """Called by an editor (supervisor or admin) writing a new article."""
    return _article_out(kb_editing.create_article(body, current_user()))


@bp.get("/kb/articles/<int:article_id>")
@bp.auth_required(token_auth, roles=["agent"])
@bp.input(VersionQuery, location="query", arg_name="query")
@bp.output(ArticleOut)
def kb_get_article(article_id, query):
    """Called by agents and editors to read an article (``?version=`` for an old one)."""
    return _article_out(kb_editing.get_article(article_id), query.get("version"))


@bp.patch("/kb/articles/<int:article_id>")
@bp.auth_required(token_auth, roles=["supervisor"])
@bp.input(ArticleUpdate, arg_name="body")
@bp.output(ArticleOut)
def kb_update_article(article_id, body):
    """Called by an editor changing an article; new content makes a new version."""
    if not body:
        raise Invalid("nothing to change", code="empty_update")
    row = kb_editing.update_article(kb_editing.get_article(article_id), body, current_user())
    return _article_out(row)


@bp.delete("/kb/articles/<int:article_id>")
@bp.auth_required(token_auth, roles=["supervisor"])
@bp.output(ArticleOut)
def kb_archive_article(article_id):
    """Called by an editor retiring an article: archived, out of search, versions kept."""
    return _article_out(kb_editing.archive_article(kb_editing.get_article(article_id),
                                                   current_user()))


@bp.get("/kb/articles/<int:article_id>/versions")
@bp.auth_required(token_auth, roles=["agent"])
@bp.output(VersionList)
def kb_article_versions(article_id):
    """Called by editors reviewing an article's history."""
    row = kb_editing.get_article(article_id)
    return {"article_id": row.id, "current_version": row.current_version,
            "versions": kb_editing.list_versions(row)}


@bp.get("/kb/articles/<int:article_id>/diff")
@bp.auth_required(token_auth, roles=["agent"])
@bp.input(DiffQuery, location="query", arg_name="query")
@bp.output(DiffOut)
def kb_article_diff(article_id, query):
    """Called by editors comparing two versions (default: the last two)."""
    row = kb_editing.get_article(article_id)
    new = query.get("to", row.current_version)
    old = query.get("from_", max(new - 1, 1))
    return {"article_id": row.id, "from_": old, "to": new,
            "diff": kb_editing.diff(row, old, new)}


@bp.post("/kb/feedback")
@bp.auth_required(token_auth, roles=["agent"])
@bp.input(FeedbackIn, arg_name="body")
@bp.output(FeedbackOut, status_code=201)
def kb_feedback(body):
    """Called by channel integrations and agents recording whether an answer helped."""
    return kb_service.record_feedback(body["article_id"], body["version"], body["channel"],
                                      body["helpful"], body.get("interaction_id"))


@bp.get("/kb/reports/gaps")
@bp.auth_required(token_auth, roles=["supervisor"])
@bp.input(ReportQuery, location="query", arg_name="query")
@bp.output(GapsOut)
def kb_gaps(query):
    """Called by supervisors and editors: unanswered questions grouped into topics."""
    return kb_service.gaps(query["days"], query.get("lang"), query["min_count"],
                           query["limit"])


@bp.get("/kb/reports/deflection")
@bp.auth_required(token_auth, roles=["supervisor"])
@bp.input(ReportQuery, location="query", arg_name="query")
@bp.output(DeflectionOut)
def kb_deflection(query):
    """Called by supervisors: the self-service rate, overall and by channel."""
    return kb_service.deflection_report(query["days"])


@bp.get("/kb/tickets/<int:ticket_id>/suggestions")
@bp.auth_required(token_auth, roles=["agent"])
@bp.output(SuggestionsOut)
def kb_ticket_suggestions(ticket_id):
    """Called by the agent console when a ticket opens: articles that may answer it."""
    from app.models import Ticket

    suggestions = kb_service.suggestions_for_ticket(ticket_id)
    return {"ticket_id": ticket_id, "channel": db.session.get(Ticket, ticket_id).channel,
            "suggestions": suggestions}
