"""JSONL import/export, versions and diffs, feedback arithmetic and the gap report."""

import json
from datetime import date

import pytest

from knowledge_base import (
    Article,
    InMemoryArticleStore,
    deflection_rate,
    diff_versions,
    export_jsonl,
    gap_report,
    helpfulness,
    parse_jsonl,
)


def line(**fields):
    return json.dumps(fields, ensure_ascii=False)


def test_import_reports_bad_lines_and_keeps_good_ones():
    text = "\n".join(
        [
            line(id="a", title="A", body="Body", language="en", tags=["x"]),
            "{not json",
            line(id="b", title="B", body="Body", language="fr"),
            "",
            line(id="c", title="C", language="en"),
            line(id="a-es", title="A", body="Cuerpo", language="es", translation_of="a"),
            line(id="a", title="dup", body="x", language="en"),
            line(id="d", title="D", body="x", language="en", tags="notalist"),
        ]
    )
    result = parse_jsonl(text)
    assert [a.id for a in result.articles] == ["a", "a-es"]
    assert [e.line for e in result.errors] == [2, 3, 5, 7, 8]
    assert "language" in result.errors[1].message
    assert "body" in result.errors[2].message
    assert result.articles[1].translation_group == "a"
    assert not result.ok


def test_export_round_trip(demo_articles):
    again = parse_jsonl(export_jsonl(demo_articles))
    assert again.ok and again.articles == demo_articles


def test_demo_content_shape(demo_articles):
    assert len(demo_articles) >= 40
    languages = {a.language for a in demo_articles}
    assert languages == {"en", "es", "zh"}
    ids = {a.id for a in demo_articles}
    for article in demo_articles:
        assert article.summary and article.tags and article.topic and article.department
        assert article.translation_group in ids
        if article.language == "en":
            assert 60 <= len(article.body.split()) <= 200, article.id


def test_store_versions_and_diff():
    v1 = Article(id="p", title="Parking", body="Pay in 21 days.\nOr dispute.")
    v2 = v1.new_version(body="Pay in 30 days.\nOr dispute.", review_by=date(2027, 1, 1))
    store = InMemoryArticleStore([v1, v2])
    assert store.get("p").version == 2 and store.get("p", 1) is v1
    assert store.list_published() == [v2]
    diff = diff_versions(v1, v2)
    assert "-Pay in 21 days." in diff and "+Pay in 30 days." in diff
    assert "p v1" in diff and "p v2" in diff
    assert v2.needs_review(date(2027, 6, 1)) and not v1.needs_review(date(2027, 6, 1))


def test_deflection_and_helpfulness():
    assert deflection_rate(30, 120) == 0.25
    assert deflection_rate(0, 0) == 0.0
    with pytest.raises(ValueError):
        deflection_rate(5, 3)
    assert helpfulness(95, 5) > helpfulness(2, 0) > 0
    assert helpfulness(0, 0) == 0.0


def test_gap_report_groups_similar_questions():
    questions = [
        "how do I get a fishing license",
        "fishing license cost",
        "where to buy a fishing licence",
        "tree fell on the sidewalk",
        "fallen tree blocking sidewalk",
        "¿dónde compro una licencia de pesca?",
        "licencia de pesca precio",
        "snow plow schedule",
    ]
    gaps = gap_report(questions)
    assert gaps[0].count == 3 and "fish" in gaps[0].terms
    groups = [set(g.examples) for g in gaps]
    assert {"tree fell on the sidewalk", "fallen tree blocking sidewalk"} in groups
    assert {"¿dónde compro una licencia de pesca?", "licencia de pesca precio"} in groups
    assert sum(g.count for g in gaps) == len(questions)
