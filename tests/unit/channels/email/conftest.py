"""Shared fixtures for the email channel tests: the corpus and raw-message helpers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
if str(ROOT) not in sys.path:  # lets `pytest tests/...` import the project without install
    sys.path.insert(0, str(ROOT))

CORPUS = ROOT / "tests" / "data" / "email"


@pytest.fixture
def corpus() -> Path:
    """The folder of sample messages and their expected parse results."""
    return CORPUS


@pytest.fixture
def load_eml():
    """Read one corpus message as bytes."""

    def load(name: str) -> bytes:
        return (CORPUS / name).read_bytes()

    return load
