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


def test_long_identifiers_fit_and_stay_distinct_and_stable():
    from channels.base import ID_MAX, fit

    a, b = "<" + "a" * 500 + "1@x>", "<" + "a" * 500 + "2@x>"
    assert len(fit(a, ID_MAX)) == ID_MAX and fit(a, ID_MAX) == fit(a, ID_MAX)
    assert fit(a, ID_MAX) != fit(b, ID_MAX)
    assert fit("<short@x>", ID_MAX) == "<short@x>"
    msg = InboundMessage(channel="email", provider_id=a, sender="a@x.org", subject="s" * 999,
                         sender_name="n" * 999, topic="t" * 99,
                         thread_keys={"in_reply_to": b, "references": [a, b, 7]})
    assert msg.provider_id == fit(a, ID_MAX)
    assert msg.thread_keys == {"in_reply_to": fit(b, ID_MAX),
                               "references": [fit(a, ID_MAX), fit(b, ID_MAX), 7]}
    assert (len(msg.subject), len(msg.sender_name), len(msg.topic)) == (300, 200, 50)


def test_the_limits_are_the_columns_lengths():
    from app.models import Citizen, Interaction, ThreadKey, Ticket
    from channels import base

    def length(column):
        return column.property.columns[0].type.length

    assert base.ID_MAX == length(Interaction.provider_id) == length(ThreadKey.key)
    assert base.SUBJECT_MAX == length(Interaction.subject) == length(Ticket.subject)
    assert base.NAME_MAX == length(Citizen.display_name)
    assert base.TOPIC_MAX == length(Ticket.topic)
