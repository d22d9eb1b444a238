"""Agents' softphone access tokens decode to a Voice grant."""

from __future__ import annotations

import time

import jwt
import pytest

from channels.twilio.tokens import voice_access_token

ACCOUNT = "AC" + "1" * 32
KEY = "SK" + "2" * 32
SECRET = "s3cr3t-s3cr3t-s3cr3t-s3cr3t-s3cr3t"
APP = "AP" + "3" * 32


def test_voice_token_decodes_with_grant():
    token = voice_access_token(ACCOUNT, KEY, SECRET, APP, "agent-7", ttl=600)
    assert isinstance(token, str)
    claims = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert claims["iss"] == KEY
    assert claims["sub"] == ACCOUNT
    assert claims["grants"]["identity"] == "agent-7"
    assert claims["grants"]["voice"] == {
        "incoming": {"allow": True},
        "outgoing": {"application_sid": APP},
    }
    assert claims["exp"] - time.time() == pytest.approx(600, abs=5)
    assert jwt.get_unverified_header(token)["cty"] == "twilio-fpa;v=1"


def test_wrong_secret_does_not_verify():
    token = voice_access_token(ACCOUNT, KEY, SECRET, APP, "agent-7")
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, "another-secret-another-secret-another", algorithms=["HS256"])


@pytest.mark.parametrize("identity, ttl", [("", 3600), ("agent", 0), ("agent", 90000)])
def test_bad_arguments(identity, ttl):
    with pytest.raises(ValueError):
        voice_access_token(ACCOUNT, KEY, SECRET, APP, identity, ttl=ttl)
