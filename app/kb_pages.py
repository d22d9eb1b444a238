"""The public knowledge-base pages: an article (SMS and chat answers link here) and the
"was this helpful?" links of email answers. Server-rendered; the article HTML is the
sanitized web rendering, so nothing an editor types can run in a resident's browser."""

from __future__ import annotations

from flask import render_template, request

from app.extensions import db
from app.kb_store import live
from app.models import KBArticle, db_id
from app.pages import bp
from app.services import ServiceError
from app.services import knowledge as kb_service
from knowledge_base import render

FEEDBACK_CHANNELS = ("sms", "voice", "chat", "email", "web", "walkin")
_ANSWERS = {"yes": True, "no": False}


def _message(title: str, message: str, status: int, lang: str = "en"):
    return render_template("kb_message.html", title=title, message=message, lang=lang), status


@bp.get("/kb/<int:article_id>")
def kb_article(article_id: int):
    """A resident opens an article from an SMS, chat or email answer, or the web."""
    row = db.session.get(KBArticle, article_id)
    if row is None or row.status != "published":
        return _message("Article not found",
                        "This article does not exist or is no longer published.", 404)
    article = live().knowledge_base().index.article(str(article_id))
    if article is None:  # published a moment ago in another process: read it directly
        from app.kb_store import DBArticleStore

        article = DBArticleStore().get(str(article_id))
    rendering = render(article, "web", live().base_url)
    return render_template("kb_article.html", article=article, row=row,
                           body_html=rendering.html)


@bp.get("/kb/<int:article_id>/helpful")
def kb_helpful(article_id: int):
    """A resident follows a "was this helpful?" link of an answer (email or web page)."""
    answer = request.args.get("answer", "").lower()
    channel = request.args.get("channel", "web").lower()
    try:
        version = int(request.args.get("v", ""))
    except ValueError:
        version = 0
    if answer not in _ANSWERS or channel not in FEEDBACK_CHANNELS or version < 1:
        return _message("Link not recognized",
                        "This feedback link is incomplete. Nothing was recorded.", 400)
    interaction = request.args.get("i", "")
    try:
        kb_service.record_feedback(article_id, version, channel, _ANSWERS[answer],
                                   db_id(interaction))
    except ServiceError as exc:
        db.session.rollback()
        return _message("Link not recognized", f"{exc.message}. Nothing was recorded.",
                        exc.status)
    return render_template("kb_message.html", title="Thank you",
                           message="Thank you for your feedback. It helps us improve our "
                                   "answers.", lang="en", article_id=article_id), 200
