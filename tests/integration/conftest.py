"""Fixtures shared by the integration tests."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.kb_editing import import_articles
from app.models import KBArticle
from knowledge_base import load_demo_articles


@pytest.fixture
def demo_kb(app):
    import_articles(load_demo_articles())
    return {row.slug: row.id for row in db.session.scalars(sa.select(KBArticle))}
