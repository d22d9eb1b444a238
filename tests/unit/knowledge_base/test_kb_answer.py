"""Answers: confidence bounds, channel thresholds, one article on every channel, suggestions."""

import pytest

from knowledge_base import CHANNELS, KBError

QUESTIONS = [
    "how do I renew my passport",
    "lost my social security card",
    "necesito ayuda con la renta",
    "垃圾没有收走",
    "blorp zyx",
    "hi",
]


@pytest.mark.parametrize("query", QUESTIONS)
def test_confidence_in_bounds(kb, query):
    for channel in CHANNELS:
        answer = kb.answer(query, channel)
        assert 0.0 <= answer.confidence <= 1.0


@pytest.mark.parametrize("query", QUESTIONS[:4])
def test_same_article_and_version_on_every_channel(kb, query):
    answers = [kb.answer(query, channel) for channel in CHANNELS]
    assert len({(a.article.id, a.version) for a in answers}) == 1
    assert {a.rendering.channel for a in answers} == set(CHANNELS)


def test_clear_question_is_self_service_everywhere(kb):
    for channel in CHANNELS:
        answer = kb.answer("how do I renew my passport by mail", channel)
        assert answer.article.id == "passport-renewal"
        assert answer.self_service


def test_nonsense_goes_to_a_person(kb):
    answer = kb.answer("blorp zyx", "sms")
    assert answer.article is None and answer.confidence == 0.0 and not answer.self_service


def test_stricter_thresholds_on_sms_and_voice(kb):
    assert kb.thresholds["sms"] > kb.thresholds["chat"]
    assert kb.thresholds["voice"] > kb.thresholds["chat"]


def test_answer_in_requested_language(kb):
    answer = kb.answer("passport renewal", "sms", lang="es")
    assert answer.article.language == "es"
    assert answer.article.translation_group == "passport-renewal"


def test_unknown_channel(kb):
    with pytest.raises(KBError) as err:
        kb.answer("passport", "pigeon")
    assert err.value.code == "unknown_channel"


def test_suggest_for_ticket_messages(kb):
    hits = kb.suggest(["Hello", "my garbage was not picked up", "and I also have an old sofa"])
    assert len(hits) == 3
    assert {h.article_id for h in hits[:2]} == {"trash-missed-pickup", "bulk-pickup"}
    assert kb.suggest(["", "🙂"]) == []


def test_an_edited_article_is_answered_with_its_new_text(kb):
    from dataclasses import replace

    first = kb.answer("how do I renew my passport by mail", "sms")
    again = kb.answer("renew passport by mail", "sms")
    assert again.rendering == first.rendering
    edited = replace(first.article, version=first.version + 1,
                     channel_overrides={"sms": "Renew by mail with form DS-82 and a photo."})
    kb.upsert(edited)
    after = kb.answer("how do I renew my passport by mail", "sms")
    assert after.version == first.version + 1
    assert after.rendering.text.startswith("Renew by mail with form DS-82 and a photo.")
    assert after.rendering.text != first.rendering.text
