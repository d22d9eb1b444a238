"""Every message of the sample corpus parses to what ``expected.json`` says."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from channels.email import parse

CORPUS = Path(__file__).resolve().parents[4] / "tests" / "data" / "email"
EXPECTED: dict[str, dict[str, Any]] = json.loads(
    (CORPUS / "expected.json").read_text(encoding="utf-8")
)
SIMPLE_FIELDS = ("sender", "sender_name", "subject", "recipient", "provider_id", "language",
                 "text", "full_text", "is_auto_reply")


def test_corpus_is_complete() -> None:
    files = {p.name for p in CORPUS.glob("*.eml")}
    assert files == set(EXPECTED)
    assert len(files) >= 60


def _check_text(label: str, value: str | None, exp: dict[str, Any]) -> None:
    value = value or ""
    if f"{label}_startswith" in exp:
        assert value.startswith(exp[f"{label}_startswith"]), value
    for needle in exp.get(f"{label}_contains", []):
        assert needle in value, f"{needle!r} not in {value!r}"
    for needle in exp.get(f"{label}_not_contains", []):
        assert needle not in value, f"{needle!r} in {value!r}"


def _check_bounce(actual: dict[str, Any] | None, expected: dict[str, Any] | None) -> None:
    if expected is None:
        assert actual is None
        return
    assert actual is not None
    for key, value in expected.items():
        if key == "diagnostic_contains":
            assert value in (actual["diagnostic"] or "")
        else:
            assert actual[key] == value, key


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_message(name: str) -> None:
    exp = EXPECTED[name]
    msg = parse((CORPUS / name).read_bytes())

    assert msg.channel == "email"
    assert msg.provider_id.startswith("<")
    assert msg.provider_id.endswith(">")
    for field in SIMPLE_FIELDS:
        if field in exp:
            assert getattr(msg, field) == exp[field], field
    _check_text("text", msg.text, exp)
    _check_text("full_text", msg.full_text, exp)
    _check_text("html", msg.html, exp)
    if "provider_id_source" in exp:
        assert msg.metadata["provider_id_source"] == exp["provider_id_source"]
    if "auto_reply_reason" in exp:
        assert msg.metadata.get("auto_reply_reason") == exp["auto_reply_reason"]
    if "bounce" in exp:
        _check_bounce(msg.metadata.get("bounce"), exp["bounce"])
    if "attachments" in exp:
        assert len(msg.attachments) == exp["attachments"]
    if "attachment_names" in exp:
        assert [a.filename for a in msg.attachments] == exp["attachment_names"]
    if "attachment_types" in exp:
        assert [a.content_type for a in msg.attachments] == exp["attachment_types"]
    if "attachment_sizes" in exp:
        assert [a.size for a in msg.attachments] == exp["attachment_sizes"]
    for attachment in msg.attachments:
        assert attachment.content is not None
        assert attachment.size == len(attachment.content)
    for key in ("in_reply_to", "references", "subject_ref"):
        if key in exp:
            assert msg.thread_keys[key] == exp[key], key
    for key, value in exp.get("metadata", {}).items():
        assert msg.metadata.get(key) == value, key
    # Whatever came in, the result is storable as JSON and the HTML is sanitized.
    json.dumps(msg.to_dict())
    if msg.html:
        assert "<script" not in msg.html.lower()
