"""Fixtures for the Twilio adapter's unit tests.

This folder deliberately has no ``__init__.py``: as a package named ``twilio`` it could
shadow the Twilio SDK on ``sys.path``. The repository root is put on ``sys.path`` so
``channels`` and ``tests.fakes`` import however pytest is started.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[4]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.fakes.twilio_http import RecordingHttpClient  # noqa: E402

ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "12345678901234567890123456789012"


@pytest.fixture
def http() -> RecordingHttpClient:
    return RecordingHttpClient()


@pytest.fixture
def client(http: RecordingHttpClient):
    from channels.twilio.outbound import make_client

    return make_client(ACCOUNT_SID, AUTH_TOKEN, http_client=http)
