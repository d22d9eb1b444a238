"""Questions the knowledge base cannot answer must not be self-served on any channel."""

import pytest

from knowledge_base import KnowledgeBase, load_demo_articles

KB = KnowledgeBase.from_articles(load_demo_articles(), "https://city.example")


@pytest.mark.parametrize("question", [
    "are backyard chickens allowed",
    "what is the meaning of life",
    "pizza delivery near me",
])
@pytest.mark.parametrize("channel", ["sms", "voice", "chat", "email"])
def test_off_topic_questions_go_to_a_person(question, channel):
    answer = KB.answer(question, channel)
    assert not answer.self_service
    assert answer.confidence < 0.45


@pytest.mark.parametrize("question", [
    "how do I renew my passport", "my trash was not picked up", "when is my property tax due",
])
def test_clear_questions_are_still_answered_by_sms(question):
    assert KB.answer(question, "sms").self_service
