"""The public article page (linked from SMS and chat answers) and email feedback links."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.kb_editing import create_article, import_articles
from app.models import KBFeedback
from knowledge_base import load_demo_articles

HOSTILE = (
    "Bring your form to City Hall.\n\n"
    "<script>alert('x')</script>\n\n"
    '<img src="x" onerror="alert(1)">\n\n'
    "[click me](javascript:alert(2)) and [the form](https://example.gov/form.pdf)\n\n"
    '<a href="https://example.gov" onclick="steal()">portal</a>'
)


@pytest.fixture
def article(app):
    return create_article({"slug": "hostile", "title": "Forms <b>&</b> fees",
                           "body": HOSTILE, "summary": "How to file."}, None)


def test_article_page_is_sanitized_and_accessible(client, article):
    r = client.get(f"/kb/{article.id}")
    assert r.status_code == 200 and r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    assert "<h1 id=\"kb-title\">Forms &lt;b&gt;&amp;&lt;/b&gt; fees</h1>" in html
    assert "Bring your form to City Hall." in html
    assert 'href="https://example.gov/form.pdf"' in html
    for bad in ("<script", "onerror", "javascript:", "onclick", "alert("):
        assert bad not in html
    assert '<article lang="en"' in html and "<main" in html
    assert "Version 1" in html
    assert f"/kb/{article.id}/helpful?v=1&amp;answer=yes&amp;channel=web" in html


def test_spanish_page_declares_its_language(client, app):
    import_articles(load_demo_articles())
    from app.models import KBArticle

    es = db.session.scalar(sa.select(KBArticle).where(KBArticle.slug == "snap-apply-es"))
    html = client.get(f"/kb/{es.id}").get_data(as_text=True)
    assert '<article lang="es"' in html


def test_missing_and_archived_articles_are_404_pages(client, article):
    from app.kb_editing import archive_article

    assert client.get("/kb/999999").status_code == 404
    archive_article(article, None)
    r = client.get(f"/kb/{article.id}")
    assert r.status_code == 404 and "no longer published" in r.get_data(as_text=True)


def test_email_helpful_links_record_feedback(client, article):
    yes = client.get(f"/kb/{article.id}/helpful?v=1&answer=yes&channel=email")
    assert yes.status_code == 200 and "Thank you" in yes.get_data(as_text=True)
    no = client.get(f"/kb/{article.id}/helpful?v=1&answer=no&channel=email")
    assert no.status_code == 200
    rows = db.session.scalars(sa.select(KBFeedback).order_by(KBFeedback.id)).all()
    assert [(f.article_id, f.version, f.channel, f.helpful) for f in rows] == [
        (article.id, 1, "email", True), (article.id, 1, "email", False)]


@pytest.mark.parametrize("query", [
    "v=1&answer=maybe&channel=email",
    "v=x&answer=yes&channel=email",
    "answer=yes&channel=email",
    "v=1&answer=yes&channel=fax",
    "v=7&answer=yes&channel=email",
])
def test_bad_feedback_links_record_nothing(client, article, query):
    r = client.get(f"/kb/{article.id}/helpful?{query}")
    assert r.status_code == 400
    assert "Nothing was recorded" in r.get_data(as_text=True)
    assert db.session.scalar(sa.select(sa.func.count(KBFeedback.id))) == 0
