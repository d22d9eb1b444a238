"""One article, many renderings: SMS, voice, chat, email and web.

Every channel's text is derived from the same Markdown body (unless an editor wrote a
``channel_overrides`` entry for that channel), so every channel says the same thing.

- **sms**: plain text, at most ``SMS_MAX_SEGMENTS`` (2) segments, always ending with the
  short link to the full article. Segments are counted exactly as carriers do: GSM-7
  (basic table 1 unit, extension table ``^{}\\[~]|€`` and form feed 2 units; 160 units
  in one segment, 153 per segment when concatenated, an escape pair never split) when
  every character is in GSM-7, otherwise UCS-2 (UTF-16 code units, so an emoji is 2;
  70 in one segment, 67 when concatenated, a surrogate pair never split). Typographic
  quotes, dashes and ellipses are first replaced by ASCII ("smart encoding") so English
  stays GSM-7; accented Spanish letters outside GSM-7 (á, í, ó, ú) are kept, since
  dropping accents changes meaning, and the message falls back to UCS-2. The text is cut
  at a sentence boundary, else a word boundary with "...".
- **voice**: plain text for Twilio ``<Say>`` (no SSML): no URLs (replaced by "the City
  website"), no markup, phone numbers read as digit groups ("1, 8 4 4, 8 7 2, ..."),
  ``$130`` as "130 dollars", numeric dates as "March 15, 2026", list items and
  semicolons become short sentences. Capped at ``VOICE_MAX_CHARS`` at a sentence end.
- **chat**: short Markdown: the first paragraph(s) up to ``CHAT_MAX_CHARS`` and a link.
- **email** / **web**: HTML from Markdown, sanitized by ``nh3`` with a tag and attribute
  allowlist (links get ``rel="noopener noreferrer"``; only http, https, mailto and tel
  URLs survive), plus a plain-text alternative. Email adds the title and a link.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser

import markdown as md
import nh3

from knowledge_base.errors import KBError
from knowledge_base.models import CHANNELS, Article

SMS_MAX_SEGMENTS = 2
VOICE_MAX_CHARS = 900
CHAT_MAX_CHARS = 500

GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = "\f^{}\\[~]|€"
_GSM7_COST = {ch: 1 for ch in GSM7_BASIC} | {ch: 2 for ch in GSM7_EXTENSION}

_SMART = str.maketrans(
    {
        "\u2018": "'",
        "\u2019": "'",
        "\u201c": '"',
        "\u201d": '"',
        "\u2013": "-",
        "\u2014": "-",
        "\u2026": "...",
        "\u00a0": " ",
        "\u2022": "-",
        "\u00b7": "-",
    }
)

ALLOWED_TAGS = {
    "p",
    "br",
    "strong",
    "em",
    "b",
    "i",
    "ul",
    "ol",
    "li",
    "a",
    "h2",
    "h3",
    "h4",
    "blockquote",
    "code",
    "hr",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}}
ALLOWED_URL_SCHEMES = {"http", "https", "mailto", "tel"}

_LABELS = {
    "en": {
        "more": "More:",
        "read": "Read the full article",
        "site": "the City website",
        "dollars": "dollars",
        "cents": "cents",
        "and": "and",
        "percent": "percent",
        "to": "to",
        "more_site": "More details are on the City website.",
        "online": "View this article online",
    },
    "es": {
        "more": "Más:",
        "read": "Lea el artículo completo",
        "site": "el sitio web de la Ciudad",
        "dollars": "dólares",
        "cents": "centavos",
        "and": "y",
        "percent": "por ciento",
        "to": "a",
        "more_site": "Hay más detalles en el sitio web de la Ciudad.",
        "online": "Ver este artículo en línea",
    },
    "zh": {
        "more": "详情:",
        "read": "阅读全文",
        "site": "市政府网站",
        "dollars": "美元",
        "cents": "美分",
        "and": "",
        "percent": "%",
        "to": "至",
        "more_site": "详情请见市政府网站。",
        "online": "在线阅读本文",
    },
}
_MONTHS = {
    "en": [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ],
    "es": [
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "octubre",
        "noviembre",
        "diciembre",
    ],
}


@dataclass(frozen=True)
class Rendering:
    """An article rendered for one channel. ``html`` for email/web; ``segments`` and
    ``encoding`` (``GSM-7`` or ``UCS-2``) for SMS."""

    channel: str
    text: str
    html: str | None = None
    segments: int | None = None
    encoding: str | None = None
    article_id: str = ""
    version: int = 0


def labels(lang: str) -> dict[str, str]:
    return _LABELS.get(lang, _LABELS["en"])


def article_url(article: Article, base_url: str) -> str:
    return f"{base_url.rstrip('/')}/kb/{article.id}"


# -- SMS segment counting -----------------------------------------------------------


def sms_encoding(text: str) -> str:
    return "GSM-7" if all(ch in _GSM7_COST for ch in text) else "UCS-2"


def sms_units(text: str) -> int:
    """Length in the units of the text's encoding (septets or UTF-16 code units)."""
    if sms_encoding(text) == "GSM-7":
        return sum(_GSM7_COST[ch] for ch in text)
    return len(text.encode("utf-16-le")) // 2


def sms_segments(text: str) -> tuple[str, int]:
    """(encoding, number of segments) as a carrier would send ``text``."""
    encoding = sms_encoding(text)
    if encoding == "GSM-7":
        costs = [_GSM7_COST[ch] for ch in text]
        single, multi = 160, 153
    else:
        costs = [2 if ord(ch) > 0xFFFF else 1 for ch in text]
        single, multi = 70, 67
    if sum(costs) <= single:
        return encoding, 1 if text else 0
    segments, used = 1, 0
    for cost in costs:  # a character (escape pair, surrogate pair) never straddles two
        if used + cost > multi:
            segments, used = segments + 1, 0
        used += cost
    return encoding, segments


def _fits(text: str, max_segments: int) -> bool:
    return sms_segments(text)[1] <= max_segments


# -- Markdown to plain text -----------------------------------------------------------


class _TextExtractor(HTMLParser):
    """Block-aware HTML to text: one line per paragraph, heading or list item."""

    BLOCKS = {"p", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "tr", "br", "div"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[str, str]] = []
        self._current: list[str] = []
        self._kind = "p"
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.BLOCKS:
            self._flush()
            self._kind = tag
        if tag == "a":
            href = dict(attrs).get("href")
            if href:
                self.links.append(href)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.BLOCKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        self._current.append(data)

    def _flush(self) -> None:
        text = " ".join("".join(self._current).split())
        if text:
            self.blocks.append((self._kind, text))
        self._current = []

    def close(self) -> None:
        super().close()
        self._flush()


def markdown_to_html(text: str) -> str:
    return md.markdown(text, extensions=["sane_lists"])


def markdown_blocks(text: str) -> list[tuple[str, str]]:
    """(kind, plain text) per block of a Markdown text; kind is an HTML block tag."""
    parser = _TextExtractor()
    parser.feed(markdown_to_html(text))
    parser.close()
    return parser.blocks


_TRAILING_RE = re.compile(r"(?:[\s,;]+(?:and|or|y|o|e|u))?[\s,;，；、]*$", re.I)


def _sentence(text: str, lang: str = "en") -> str:
    """A block as a sentence: trailing list glue (", and" / "；") replaced by a full stop."""
    text = _TRAILING_RE.sub("", text.strip())
    if not text:
        return ""
    if lang == "zh":
        return text if text[-1] in "。！？：:" else text + "。"
    text = text[0].upper() + text[1:]
    return text if text[-1] in ".!?:" else text + "."


_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z¿¡\d\"(])|(?<=[。！？；])")


def plain_sentences(body: str, lang: str = "en") -> list[str]:
    """The body as a list of plain-text sentences (blocks and list items end sentences)."""
    out: list[str] = []
    for _, block in markdown_blocks(body):
        out.extend(s.strip() for s in _SENT_SPLIT.split(_sentence(block, lang)) if s.strip())
    return out


def _join(sentences: list[str], lang: str) -> str:
    return ("" if lang == "zh" else " ").join(sentences)


def plain_text(body: str, lang: str = "en") -> str:
    """The body as plain prose: one sentence-terminated block after another."""
    return _join(plain_sentences(body, lang), lang)


def sanitize_html(html: str) -> str:
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=ALLOWED_URL_SCHEMES,
        link_rel="noopener noreferrer",
    )


def _truncate_to_fit(sentences: list[str], lang: str, fits: Callable[[str], bool]) -> str:
    """Longest prefix of whole sentences that fits; else cut at a word with '...'."""
    for k in range(len(sentences), 0, -1):
        candidate = _join(sentences[:k], lang).strip()
        if fits(candidate):
            return candidate
    first = sentences[0] if sentences else ""
    cut_words = first.split(" ")
    for k in range(len(cut_words) - 1, 0, -1):
        candidate = " ".join(cut_words[:k]).rstrip(",;:") + "..."
        if fits(candidate):
            return candidate
    for k in range(len(first), 0, -1):  # no spaces (Chinese): cut by characters
        candidate = first[:k] + "..."
        if fits(candidate):
            return candidate
    return ""


# -- channels -----------------------------------------------------------------------


def render_sms(article: Article, base_url: str) -> Rendering:
    lab = labels(article.language)
    lang = article.language
    source = plain_sentences(article.channel_overrides.get("sms") or article.body, lang)
    source = [" ".join(s.translate(_SMART).split()) for s in source]
    suffix = f" {lab['more']} {article_url(article, base_url)}"
    if article.language == "zh":
        suffix = f"{lab['more']}{article_url(article, base_url)}"
    body = _truncate_to_fit(source, lang, lambda t: _fits(t + suffix, SMS_MAX_SEGMENTS))
    text = (body + suffix).strip()
    encoding, segments = sms_segments(text)
    return Rendering(
        "sms",
        text,
        segments=segments,
        encoding=encoding,
        article_id=article.id,
        version=article.version,
    )


_URL_RE = re.compile(r"\b(?:https?://|www\.)[^\s<>()]+[^\s<>().,;:!?]", re.I)
_EMAIL_RE = re.compile(r"\b([\w.+-]+)@([\w-]+(?:\.[\w-]+)+)\b")
_PHONE_RE = re.compile(r"(?<![\d$])(?:(1)[-. ])?\(?(\d{3})\)?[-. ](\d{3})[-. ](\d{4})(?!\d)")
_SHORT_CODE_RE = re.compile(r"(?<![\d$.,])\b([2-9]11)\b(?!\d|[.,]\d)")
_MONEY_RE = re.compile(r"\$\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{2}))?")
_PERCENT_RE = re.compile(r"(\d+(?:\.\d+)?)\s?%")
_DATE_RE = re.compile(r"\b(\d{1,2})/(\d{1,2})/(\d{4})\b")
_ISO_DATE_RE = re.compile(r"\b(\d{4})-(\d{2})-(\d{2})\b")
_RANGE_RE = re.compile(
    r"(?<=\w)\s?[\u2013\u2014]\s?(?=\w)|(?<=\d)\s?-\s?(?=\d{1,2}\s?(?:[ap]\.?m))", re.I
)
_MARKUP_RE = re.compile(r"[*_`#>|~\[\]]+")


def _digits(*groups: str | None) -> str:
    return ", ".join(" ".join(g) for g in groups if g)


def speakable(text: str, lang: str = "en") -> str:
    """Plain text rewritten so a text-to-speech engine reads it well (see module doc)."""
    lab = labels(lang)
    text = text.translate(_SMART)
    text = _URL_RE.sub(lab["site"], text)
    text = _EMAIL_RE.sub(lambda m: f"{m.group(1)} at {m.group(2).replace('.', ' dot ')}", text)
    text = _PHONE_RE.sub(lambda m: _digits(*m.groups()), text)
    text = _SHORT_CODE_RE.sub(lambda m: " ".join(m.group(1)), text)

    def money(m: re.Match[str]) -> str:
        whole, cents = m.group(1), m.group(2)
        if lang == "zh":
            return f"{whole}{lab['dollars']}" + (f"{int(cents)}{lab['cents']}" if cents else "")
        spoken = f"{whole} {lab['dollars']}"
        if cents and int(cents):
            spoken += f" {lab['and']} {int(cents)} {lab['cents']}"
        return spoken

    text = _MONEY_RE.sub(money, text)
    if lang == "zh":
        text = _PERCENT_RE.sub(lambda m: f"百分之{m.group(1)}", text)
    else:
        text = _PERCENT_RE.sub(lambda m: f"{m.group(1)} {lab['percent']}", text)
    months = _MONTHS.get(lang, _MONTHS["en"])

    def date(month: int, day: int, year: str) -> str:
        if not 1 <= month <= 12:
            return f"{month}/{day}/{year}"
        if lang == "es":
            return f"{day} de {months[month - 1]} de {year}"
        if lang == "zh":
            return f"{year}年{month}月{day}日"
        return f"{months[month - 1]} {day}, {year}"

    text = _DATE_RE.sub(lambda m: date(int(m.group(1)), int(m.group(2)), m.group(3)), text)
    text = _ISO_DATE_RE.sub(lambda m: date(int(m.group(2)), int(m.group(3)), m.group(1)), text)
    text = _RANGE_RE.sub(f" {lab['to']} " if lang != "zh" else lab["to"], text)
    text = text.replace("&", f" {lab['and']} " if lang != "zh" else "和")
    text = re.sub(r"\be\.g\.", "for example" if lang == "en" else "", text)
    text = re.sub(r"(?<=[A-Za-z])/(?=[A-Za-z])", " or " if lang == "en" else " o ", text)
    text = re.sub(r";\s*(\w)", lambda m: ". " + m.group(1).upper(), text)
    text = _MARKUP_RE.sub(" ", text)
    return " ".join(text.split())


def render_voice(article: Article, base_url: str) -> Rendering:
    lang = article.language
    source = article.channel_overrides.get("voice") or article.body
    sentences = [s for s in (speakable(x, lang) for x in plain_sentences(source, lang)) if s]
    spoken = _join(sentences, lang)
    if len(spoken) > VOICE_MAX_CHARS:
        tail = labels(lang)["more_site"]
        budget = VOICE_MAX_CHARS - len(tail) - 1
        spoken = _truncate_to_fit(sentences, lang, lambda t: len(t) <= budget) + " " + tail
    return Rendering("voice", spoken.strip(), article_id=article.id, version=article.version)


def render_chat(article: Article, base_url: str) -> Rendering:
    lab = labels(article.language)
    source = article.channel_overrides.get("chat") or article.body
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", source) if p.strip()]
    paragraphs = [p for p in paragraphs if not p.startswith("#")] or paragraphs
    chosen: list[str] = []
    for paragraph in paragraphs:
        if chosen and sum(len(p) for p in chosen) + len(paragraph) > CHAT_MAX_CHARS:
            break
        chosen.append(paragraph)
    text = "\n\n".join(chosen) + f"\n\n[{lab['read']}]({article_url(article, base_url)})"
    return Rendering("chat", text, article_id=article.id, version=article.version)


def _render_html(article: Article, base_url: str, channel: str) -> Rendering:
    lab = labels(article.language)
    source = article.channel_overrides.get(channel) or article.body
    body_html = markdown_to_html(source)
    url = article_url(article, base_url)
    if channel == "email":
        title = nh3.clean_text(article.title)
        body_html = (
            f"<h2>{title}</h2>\n{body_html}\n"
            f'<p><a href="{nh3.clean_text(url)}">{lab["online"]}</a></p>'
        )
        text = (
            f"{article.title}\n\n{plain_text(source, article.language)}\n\n{lab['online']}: {url}"
        )
    else:
        text = plain_text(source, article.language)
    return Rendering(
        channel, text, html=sanitize_html(body_html), article_id=article.id, version=article.version
    )


def render(article: Article, channel: str, base_url: str) -> Rendering:
    """``article`` rendered for ``channel`` (sms, voice, chat, email, web)."""
    if channel == "sms":
        return render_sms(article, base_url)
    if channel == "voice":
        return render_voice(article, base_url)
    if channel == "chat":
        return render_chat(article, base_url)
    if channel in ("email", "web"):
        return _render_html(article, base_url, channel)
    raise KBError("unknown_channel", f"unknown channel {channel!r}; expected one of {CHANNELS}")


def segments_needed(units: int, encoding: str) -> int:
    """Segments for a message of ``units`` units (ignoring split rules); for estimates."""
    single, multi = (160, 153) if encoding == "GSM-7" else (70, 67)
    return 1 if units <= single else math.ceil(units / multi)
