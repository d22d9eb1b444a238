"""``InboundMessage``: the one shape every channel's message takes before intake."""

from __future__ import annotations

import pytest

from channels.base import InboundMessage, ParseError, language_code


@pytest.mark.parametrize("tag, code", [
    ("es", "es"), ("ES-mx", "es"), ("zh-Hans-CN", "zh"), ("en_US", "en"), (" fil ", "fil"),
    ("", None), (None, None), ("english", None), ("e", None), ("=1+1", None),
    ("es,en", None), ("ıt", None), ("x" * 40, None),
])
def test_language_tags_come_down_to_their_primary_subtag(tag, code):
    assert language_code(tag) == code


def test_a_message_keeps_only_a_real_language_and_needs_its_ids():
    msg = InboundMessage(channel="email", provider_id="<a@x>", sender="a@x.org",
                         language="pt-BR")
    assert msg.language == "pt"
    odd = InboundMessage(channel="email", provider_id="<b@x>", sender="a@x.org",
                         language="not a language")
    assert odd.language is None
    with pytest.raises(ParseError):
        InboundMessage(channel="fax", provider_id="1", sender="a")
    with pytest.raises(ParseError):
        InboundMessage(channel="sms", provider_id="", sender="+15555550100")
