"""Fixtures: the demo articles and a knowledge base over them (built once per module)."""

import pytest

from knowledge_base import KnowledgeBase, load_demo_articles

BASE_URL = "https://311.example.gov"


@pytest.fixture(scope="session")
def demo_articles():
    return load_demo_articles()


@pytest.fixture(scope="session")
def kb(demo_articles):
    return KnowledgeBase.from_articles(demo_articles, BASE_URL)


@pytest.fixture
def article_by_id(demo_articles):
    index = {a.id: a for a in demo_articles}
    return index.__getitem__
