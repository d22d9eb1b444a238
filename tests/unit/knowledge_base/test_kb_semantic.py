"""Hybrid ranking with a fake, deterministic embedder: fusion, languages, cache, confidence."""

import dataclasses
import math

import numpy as np
import pytest

from knowledge_base import (
    CHANNELS,
    Article,
    Embedder,
    EmbeddingCache,
    KnowledgeBase,
    SemanticIndex,
)
from knowledge_base.semantic import COS_CEIL, COS_FLOOR, FUSION_WEIGHT, article_text

# Words that mean the same thing share an axis; any other text lands on the last axis.
CONCEPTS = {
    "dog": 0, "dogs": 0, "puppy": 0, "pet": 0, "pets": 0,
    "cat": 1, "cats": 1, "kitten": 1, "adopt": 1, "adoption": 1,
    "licenses": 2, "license": 2, "register": 2, "registration": 2,
    "perro": 0, "gato": 1,
}
DIM = 4


class FakeEmbedder:
    """Bag of concepts, normalized; counts the texts it was asked to embed."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def embed(self, texts):
        self.calls.extend(texts)
        rows = []
        for text in texts:
            v = np.zeros(DIM, dtype=np.float32)
            for word in text.lower().replace(".", " ").replace(",", " ").split():
                if word in CONCEPTS:
                    v[CONCEPTS[word]] += 1.0
            if not v.any():
                v[DIM - 1] = 1.0
            rows.append(v / np.linalg.norm(v))
        return np.vstack(rows)


DOG = Article(id="dog", title="Dog licenses", body="License your dog every year.", tags=["pets"])
CAT = Article(id="cat", title="Cat adoption", body="Adopt a cat at the shelter.")
PERRO = Article(id="perro", title="Licencias para perros", body="Registre a su perro.",
                language="es", translation_group="dog")


def hybrid(*articles, embedder=None, cache=None):
    embedder = embedder or FakeEmbedder()
    semantic = SemanticIndex(embedder, cache=cache)
    return KnowledgeBase.from_articles(articles or (DOG, CAT, PERRO), semantic=semantic)


def test_fake_embedder_satisfies_the_protocol():
    assert isinstance(FakeEmbedder(), Embedder)


def test_paraphrase_with_no_shared_word_is_found_only_by_the_hybrid():
    lexical = KnowledgeBase.from_articles([DOG, CAT, PERRO])
    assert lexical.search("puppy") == []
    hits = hybrid().search("puppy")
    assert [h.article_id for h in hits] == ["dog"]


def test_fused_score_is_the_documented_weighted_sum():
    kb = hybrid()
    result = kb.search_detailed("dog", "en")
    lexical = kb.index.search_detailed("dog", "en")
    assert result.fused and not lexical.fused
    top = result.hits[0]
    assert top.article_id == "dog" and lexical.hits[0].article_id == "dog"
    fake = FakeEmbedder()
    cos = float(fake.embed(["dog"])[0] @ fake.embed([article_text(DOG)])[0])
    assert 0.2 < cos < 1.0
    assert result.semantic[0] == pytest.approx(cos, abs=1e-6)
    expected = (1 - FUSION_WEIGHT) * lexical.hits[0].score / lexical.max_score + (
        FUSION_WEIGHT * min(max((cos - COS_FLOOR) / (COS_CEIL - COS_FLOOR), 0.0), 1.0))
    assert top.score == pytest.approx(expected, abs=1e-5)
    assert result.lexical[0] == pytest.approx(lexical.hits[0].score, abs=1e-5)


def test_meaning_adds_to_a_partial_lexical_match():
    # "kitten" is in no article; "adopt" is in the cat article: both signals agree.
    hits = hybrid().search("adopt a kitten")
    assert [h.article_id for h in hits] == ["cat"]


def test_unrelated_question_gets_no_hits():
    assert hybrid().search("weather tomorrow") == []


def test_languages_not_served_stay_lexical():
    semantic = SemanticIndex(FakeEmbedder(), languages=["en"])
    kb = KnowledgeBase.from_articles([DOG, CAT, PERRO], semantic=semantic)
    result = kb.search_detailed("perro", "es")
    assert not result.fused
    assert [h.article_id for h in result.hits] == ["perro"]
    # A Spanish paraphrase the fake embedder would match is not matched by meaning.
    assert kb.search("gato", "es") == []


def test_each_article_version_is_embedded_once():
    embedder, cache = FakeEmbedder(), EmbeddingCache()
    hybrid(DOG, CAT, embedder=embedder, cache=cache)
    assert len(embedder.calls) == 2
    kb = hybrid(DOG, CAT, embedder=embedder, cache=cache)  # a rebuild reuses the vectors
    assert len(embedder.calls) == 2
    kb.search("dog")
    assert len(embedder.calls) == 3  # the question
    kb.upsert(dataclasses.replace(DOG, version=2, body="Pets need a license."))
    assert len(embedder.calls) == 4
    kb.upsert(dataclasses.replace(DOG, version=2, body="Pets need a license."))
    assert len(embedder.calls) == 4
    # Same version, other text (tags are metadata, not versioned): embedded again.
    kb.upsert(dataclasses.replace(DOG, version=2, body="Pets need a license.", tags=["cat"]))
    assert len(embedder.calls) == 5


def test_upsert_and_remove_reach_the_semantic_index():
    kb = hybrid(DOG, CAT)
    kb.upsert(dataclasses.replace(DOG, status="archived"))
    assert kb.search("puppy") == []
    kb.upsert(DOG)
    assert kb.search("puppy")[0].article_id == "dog"
    kb.remove("dog")
    assert kb.search("puppy") == [] and len(kb.semantic) == 1


def test_drafts_are_not_embedded():
    embedder = FakeEmbedder()
    kb = hybrid(dataclasses.replace(DOG, status="draft"), CAT, embedder=embedder)
    assert len(embedder.calls) == 1 and kb.search("puppy") == []


@pytest.mark.parametrize("query", ["puppy", "dog license", "adopt a kitten", "weather"])
def test_hybrid_confidence_is_a_probability_and_thresholds_apply(query):
    kb = hybrid()
    for channel in CHANNELS:
        answer = kb.answer(query, channel)
        assert 0.0 <= answer.confidence <= 1.0 and not math.isnan(answer.confidence)
        assert answer.self_service == (answer.confidence >= kb.thresholds[channel])


def test_strong_match_is_more_confident_than_meaning_alone():
    kb = hybrid()
    assert kb.answer("dog license", "chat").confidence > kb.answer("puppy", "chat").confidence


def test_lexical_only_knowledge_base_needs_no_embedder(demo_articles):
    kb = KnowledgeBase.from_articles(demo_articles)
    assert kb.semantic is None
    result = kb.search_detailed("how do I renew my passport")
    assert not result.fused and result.hits[0].article_id == "passport-renewal"
    assert kb.search("renew passport") == kb.index.search("renew passport")
