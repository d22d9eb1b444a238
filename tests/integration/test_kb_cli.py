"""``flask kb import`` / ``flask kb export``: bad lines reported by number, valid ones kept
in one transaction, re-imports versioned only when content changed, round trips."""

from __future__ import annotations

import json

import sqlalchemy as sa

from app.extensions import db
from app.models import KBArticle, KBArticleVersion

GOOD = {"id": "dog-license", "title": "Get a dog license", "language": "en",
        "body": "Every dog over 4 months needs a license. The fee is $15 a year.",
        "tags": ["dog", "license"], "topic": "general"}
GOOD_ES = {"id": "licencia-perro", "title": "Licencia para perros", "language": "es",
           "body": "Todo perro mayor de 4 meses necesita una licencia.",
           "translation_of": "dog-license"}


def write(tmp_path, lines, name="articles.jsonl"):
    path = tmp_path / name
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n",
                    encoding="utf-8")
    return str(path)


def count(model):
    return db.session.scalar(sa.select(sa.func.count(model.id)))


def test_import_reports_bad_lines_and_keeps_the_good_ones(runner, tmp_path):
    path = write(tmp_path, [
        GOOD,
        "{not json",
        {"id": "no-language", "title": "x", "body": "y"},
        "",
        {**GOOD, "id": "too-long", "title": "t" * 301},
        {**GOOD, "id": "french", "language": "fr"},
        GOOD_ES,
        {**GOOD, "id": "dog-license"},
    ])
    r = runner.invoke(args=["kb", "import", path])
    assert r.exit_code == 1
    assert "2 created" in r.output and "5 rejected" in r.output
    assert "line 2: invalid JSON" in r.output
    assert "line 3: missing 'language'" in r.output
    assert "line 5: 'title' longer than 300" in r.output
    assert "line 6: unsupported language 'fr'" in r.output
    assert "line 8: duplicate id 'dog-license'" in r.output
    rows = {a.slug: a for a in db.session.scalars(sa.select(KBArticle))}
    assert set(rows) == {"dog-license", "licencia-perro"}
    assert rows["licencia-perro"].translation_group == rows["dog-license"].translation_group


def test_reimport_makes_a_new_version_only_when_content_changed(runner, tmp_path):
    assert runner.invoke(args=["kb", "import", write(tmp_path, [GOOD])]).exit_code == 0
    again = runner.invoke(args=["kb", "import", write(tmp_path, [GOOD])])
    assert again.exit_code == 0 and "1 unchanged" in again.output
    assert count(KBArticleVersion) == 1
    tags = runner.invoke(args=["kb", "import", write(tmp_path, [{**GOOD, "tags": ["dog"]}])])
    assert "1 updated" in tags.output and count(KBArticleVersion) == 1
    changed = runner.invoke(args=["kb", "import", write(tmp_path, [
        {**GOOD, "body": "Every dog over 4 months needs a license. The fee is $20 a year."}])])
    assert changed.exit_code == 0 and "1 new versions" in changed.output
    row = db.session.scalar(sa.select(KBArticle).where(KBArticle.slug == "dog-license"))
    db.session.refresh(row)
    assert row.current_version == 2 and count(KBArticleVersion) == 2


def test_export_round_trips_through_import(runner, tmp_path, app):
    from app.kb_editing import seed_demo_articles

    seed_demo_articles(lambda *_: None)
    out = tmp_path / "export.jsonl"
    r = runner.invoke(args=["kb", "export", "--output", str(out)])
    assert r.exit_code == 0
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == count(KBArticle) >= 40
    first = json.loads(lines[0])
    assert first["id"] == "passport-renewal" and first["version"] == 1
    spanish = [json.loads(x) for x in lines if json.loads(x)["id"] == "passport-renewal-es"]
    assert spanish[0]["translation_of"] == "passport-renewal"
    stdout = runner.invoke(args=["kb", "export"])
    assert stdout.exit_code == 0 and stdout.output.splitlines() == lines
    back = runner.invoke(args=["kb", "import", str(out)])
    assert back.exit_code == 0 and f"{len(lines)} unchanged" in back.output


def test_import_of_a_missing_file_fails(runner):
    r = runner.invoke(args=["kb", "import", "/nonexistent/articles.jsonl"])
    assert r.exit_code != 0


def test_seed_demo_loads_the_knowledge_base_once(runner):
    assert runner.invoke(args=["seed-demo"]).exit_code == 0
    n, versions = count(KBArticle), count(KBArticleVersion)
    assert n >= 40 and versions == n
    assert runner.invoke(args=["seed-demo"]).exit_code == 0
    assert (count(KBArticle), count(KBArticleVersion)) == (n, versions)
