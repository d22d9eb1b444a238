"""Renderings per channel: SMS segment counting, voice text, chat, sanitized HTML."""

import re

import pytest

from knowledge_base import Article, KBError, render, sms_segments
from knowledge_base.render import sms_units, speakable

BASE = "https://311.example.gov"


def test_gsm7_single_and_concatenated_segments():
    assert sms_segments("a" * 160) == ("GSM-7", 1)
    assert sms_segments("a" * 161) == ("GSM-7", 2)
    assert sms_segments("a" * 306) == ("GSM-7", 2)
    assert sms_segments("a" * 307) == ("GSM-7", 3)


def test_gsm7_extension_characters_count_double():
    assert sms_units("€") == 2
    assert sms_segments("{" * 80) == ("GSM-7", 1)
    assert sms_segments("{" * 81) == ("GSM-7", 2)
    # An escape pair is never split: 152 plain characters then '[' needs a new segment.
    assert sms_segments("a" * 152 + "[" + "a" * 10) == ("GSM-7", 2)


def test_accented_gsm7_letters_stay_gsm7_but_others_need_ucs2():
    assert sms_segments("Café é ñ ü")[0] == "GSM-7"
    assert sms_segments("Información")[0] == "UCS-2"
    assert sms_segments("á" * 70) == ("UCS-2", 1)
    assert sms_segments("á" * 71) == ("UCS-2", 2)


def test_emoji_counts_two_ucs2_units():
    assert sms_units("👍") == 2
    assert sms_segments("👍" * 35) == ("UCS-2", 1)
    assert sms_segments("👍" * 36) == ("UCS-2", 2)


def test_sms_at_most_two_segments_and_ends_with_link(demo_articles):
    for article in demo_articles:
        rendering = render(article, "sms", BASE)
        assert rendering.segments is not None and 1 <= rendering.segments <= 2, article.id
        assert rendering.text.endswith(f"{BASE}/kb/{article.id}")
        assert sms_segments(rendering.text) == (rendering.encoding, rendering.segments)
        assert "**" not in rendering.text and "](" not in rendering.text


def test_sms_encoding_follows_language(article_by_id):
    assert render(article_by_id("trash-missed-pickup"), "sms", BASE).encoding == "GSM-7"
    assert render(article_by_id("passport-renewal-es"), "sms", BASE).encoding == "UCS-2"
    assert render(article_by_id("snap-apply-zh"), "sms", BASE).encoding == "UCS-2"


def test_sms_truncates_at_sentence_or_word_boundary():
    body = " ".join(f"Sentence number {i} tells residents something useful." for i in range(30))
    article = Article(id="long", title="Long", body=body)
    text = render(article, "sms", BASE).text
    content = text.rsplit(" More:", 1)[0]
    assert content.endswith(".")
    assert re.fullmatch(
        r"(Sentence number \d+ tells residents something useful\. ?)+", content + " "
    )


def test_sms_override_replaces_body():
    article = Article(id="a1", title="T", body="Body text.", channel_overrides={"sms": "Short 🙂"})
    rendering = render(article, "sms", BASE)
    assert rendering.text.startswith("Short 🙂")
    assert rendering.encoding == "UCS-2"


def test_voice_has_no_urls_markup_and_reads_numbers(demo_articles):
    for article in demo_articles:
        text = render(article, "voice", BASE).text
        assert "http" not in text and "www." not in text, article.id
        assert not re.search(r"[*_#`\[\]]", text), article.id
        assert "$" not in text
    spoken = speakable("Call 1-844-872-4681 or 311. The fee is $130; pay by 3/15/2026.")
    assert "1, 8 4 4, 8 7 2, 4 6 8 1" in spoken
    assert "3 1 1" in spoken
    assert "130 dollars" in spoken
    assert "March 15, 2026" in spoken
    assert ";" not in spoken


def test_voice_spanish_money_and_links():
    spoken = speakable("Pague $12.50 en [el portal](https://pay.example.gov).", "es")
    assert "12 dólares y 50 centavos" in spoken
    assert "https" not in spoken


def test_chat_is_short_markdown_with_link(article_by_id):
    text = render(article_by_id("bulk-pickup"), "chat", BASE).text
    assert text.endswith(f"({BASE}/kb/bulk-pickup)")
    assert len(text) < 800


def test_email_and_web_html_is_sanitized():
    body = "Hello <script>alert(1)</script> **bold** [x](javascript:alert(1)) [ok](https://a.gov)"
    article = Article(id="x", title="<b>T</b>", body=body)
    for channel in ("email", "web"):
        html = render(article, channel, BASE).html
        assert html and "<script" not in html and "javascript:" not in html
        assert "<strong>bold</strong>" in html
        assert 'rel="noopener noreferrer"' in html
    assert f"{BASE}/kb/x" in render(article, "email", BASE).html


def test_unknown_channel_is_a_kb_error():
    with pytest.raises(KBError) as err:
        render(Article(id="x", title="T", body="B"), "fax", BASE)
    assert err.value.code == "unknown_channel"
