"""``KB_SEMANTIC``: the app's knowledge base with semantic matching on, and off (default).

With it on, the live index built from the database fuses BM25F with the embedding model
(loaded offline from its package, once per process), so every channel answers a
paraphrase that shares no word with the article; edits are embedded as they are made.
"""

from __future__ import annotations

import os

import pytest
import sqlalchemy as sa

from app.config import ConfigError
from app.extensions import db
from app.kb_editing import create_article, get_article, update_article
from app.kb_store import live
from app.models import KBQuery
from app.services.knowledge import answer_for, search
from knowledge_base import load_demo_articles

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

PARAPHRASE = "huge crater in the asphalt wrecked my tire"


@pytest.fixture
def semantic_app(app):
    app.config["KB_SEMANTIC"] = "on"
    return app


def test_lexical_only_is_the_default(app, demo_kb):
    assert app.config["KB_SEMANTIC"] == "off"
    kb = live().knowledge_base()
    assert kb.semantic is None
    answer = answer_for(PARAPHRASE, "chat")
    assert answer is None or answer.article_id != demo_kb["pothole-report"]


def test_paraphrase_is_answered_on_every_channel(semantic_app, demo_kb):
    kb = live().knowledge_base()
    served = [a for a in load_demo_articles() if a.language in ("en", "es")]
    assert kb.semantic is not None and len(kb.semantic) == len(served) > 30
    answers = [answer_for(PARAPHRASE, ch) for ch in ("sms", "voice", "chat", "email")]
    assert {(a.article_id, a.version) for a in answers} == {(demo_kb["pothole-report"], 1)}
    assert all(0.0 <= a.confidence <= 1.0 for a in answers)
    db.session.commit()
    logged = db.session.scalars(sa.select(KBQuery)).all()
    assert len(logged) == 4 and {q.article_id for q in logged} == {demo_kb["pothole-report"]}
    hits = search(PARAPHRASE, "en", 3)
    assert hits[0]["article_id"] == demo_kb["pothole-report"]


def test_edits_are_embedded_as_they_are_made(semantic_app, demo_kb):
    live().knowledge_base()
    row = create_article({"slug": "dog-license", "title": "Get a dog license",
                          "body": "Every dog in the city needs a license. The fee is $15 a "
                                  "year, paid online or at the animal shelter.",
                          "tags": ["dog", "license"]}, None)
    assert search("register my new puppy", "en", 1)[0]["article_id"] == row.id
    update_article(get_article(row.id), {"body": "Cats must wear a collar tag.",
                                         "title": "Cat collar tags"}, None)
    kb = live().knowledge_base()
    result = kb.search_detailed("register my new puppy", "en", 5)
    assert result.fused
    assert str(row.id) not in [h.article_id for h in result.hits[:1]]


def test_a_bad_setting_fails_loudly(app):
    app.config["KB_SEMANTIC"] = "maybe"
    with pytest.raises(ConfigError):
        live()
