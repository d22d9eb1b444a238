"""HTML handling for inbound mail: sanitizing and converting to plain text.

Inbound HTML is untrusted. ``sanitize_html`` keeps a small allowlist of formatting
tags and drops scripts, styles, event handlers, ``javascript:`` and other non-web
URLs, and images that are not plain ``http(s)`` links (``cid:`` and ``data:``
images are dropped; the files themselves are kept as attachments).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import nh3

ALLOWED_TAGS = frozenset({
    "a", "abbr", "b", "blockquote", "br", "caption", "cite", "code", "dd", "del", "div",
    "dl", "dt", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "li",
    "ol", "p", "pre", "q", "s", "small", "span", "strike", "strong", "sub", "sup",
    "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul",
})
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"colspan", "rowspan"},
    "th": {"colspan", "rowspan", "scope"},
    "ol": {"start"},
    "blockquote": {"cite"},
}
# Removed together with everything inside them, never shown as text.
DROPPED_WITH_CONTENT = frozenset({
    "script", "style", "title", "head", "noscript", "template", "iframe", "object",
    "embed", "svg", "math", "frameset", "applet", "xml",
})
_IMG_WITHOUT_SRC = re.compile(r"<img(?![^>]*\ssrc=)[^>]*>", re.IGNORECASE)
_LINK_SCHEMES = ("http://", "https://", "mailto:", "tel:")
_IMAGE_SCHEMES = ("http://", "https://")


def _filter_attribute(tag: str, attribute: str, value: str) -> str | None:
    url = value.strip()
    lowered = url.lower()
    if tag == "a" and attribute == "href":
        return url if lowered.startswith(_LINK_SCHEMES) else None
    if tag == "img" and attribute == "src":
        return url if lowered.startswith(_IMAGE_SCHEMES) else None
    if attribute == "cite":
        return url if lowered.startswith(_IMAGE_SCHEMES) else None
    return value


def sanitize_html(html: str) -> str:
    """Return ``html`` reduced to safe formatting markup."""
    cleaned = nh3.clean(
        html,
        tags=set(ALLOWED_TAGS),
        clean_content_tags=set(DROPPED_WITH_CONTENT),
        attributes={tag: set(attrs) for tag, attrs in ALLOWED_ATTRIBUTES.items()},
        attribute_filter=_filter_attribute,
        url_schemes={"http", "https", "mailto", "tel"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )
    # An image whose source was removed is an empty box; drop it.
    cleaned = _IMG_WITHOUT_SRC.sub("", cleaned)
    return cleaned.strip()


_BLOCK_TAGS = frozenset({
    "address", "article", "aside", "blockquote", "caption", "center", "dd", "div", "dl",
    "dt", "fieldset", "figcaption", "figure", "footer", "form", "h1", "h2", "h3", "h4",
    "h5", "h6", "header", "hr", "li", "main", "nav", "ol", "p", "pre", "section", "table",
    "tbody", "tfoot", "thead", "tr", "ul",
})
_QUOTE_OPEN = "\x00quote+\x00"
_QUOTE_CLOSE = "\x00quote-\x00"


class _TextExtractor(HTMLParser):
    """Collects readable text: block elements become line breaks, list items get
    bullets, links keep their address, blockquotes are quoted with ``>``."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self._skip_depth = 0
        self._pre_depth = 0
        self._lists: list[list[int]] = []
        self._links: list[tuple[str, int]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in DROPPED_WITH_CONTENT:
            self._skip_depth += 1
            return
        if self._skip_depth:
            return
        if tag == "br":
            self.parts.append("\n")
        elif tag == "blockquote":
            self.parts.append("\n" + _QUOTE_OPEN)
        elif tag in ("ul", "ol"):
            self._lists.append([0 if tag == "ol" else -1])
            self.parts.append("\n")
        elif tag == "li":
            marker = "- "
            if self._lists and self._lists[-1][0] >= 0:
                self._lists[-1][0] += 1
                marker = f"{self._lists[-1][0]}. "
            self.parts.append("\n" + marker)
        elif tag == "hr":
            self.parts.append("\n\n")
        elif tag in ("td", "th"):
            self.parts.append(" ")
        elif tag in _BLOCK_TAGS:
            self.parts.append("\n\n" if tag in ("p", "h1", "h2", "h3", "table") else "\n")
        if tag == "pre":
            self._pre_depth += 1
        if tag == "a":
            href = dict(attrs).get("href") or ""
            self._links.append((href.strip(), len(self.parts)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in DROPPED_WITH_CONTENT:
            return
        self.handle_starttag(tag, attrs)
        if tag == "a":
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in DROPPED_WITH_CONTENT:
            self._skip_depth = max(0, self._skip_depth - 1)
            return
        if self._skip_depth:
            return
        if tag == "blockquote":
            self.parts.append(_QUOTE_CLOSE + "\n")
        elif tag in ("ul", "ol"):
            if self._lists:
                self._lists.pop()
            self.parts.append("\n")
        elif tag == "pre":
            self._pre_depth = max(0, self._pre_depth - 1)
            self.parts.append("\n")
        elif tag == "a" and self._links:
            href, start = self._links.pop()
            label = "".join(self.parts[start:]).strip()
            target = href[7:] if href.lower().startswith("mailto:") else href
            if href.lower().startswith(_LINK_SCHEMES) and target and target not in label:
                self.parts.append(f" <{target}>")
        elif tag in _BLOCK_TAGS and tag != "li":
            self.parts.append("\n\n" if tag in ("p", "h1", "h2", "h3", "table") else "\n")

    def handle_data(self, data: str) -> None:
        if self._skip_depth:
            return
        if self._pre_depth:
            self.parts.append(data)
        else:
            self.parts.append(re.sub(r"\s+", " ", data))

    def text(self) -> str:
        depth = 0
        lines: list[str] = []
        for raw_line in "".join(self.parts).split("\n"):
            line = raw_line
            # Markers before the content apply to this line, the others after it.
            while line.startswith((_QUOTE_OPEN, _QUOTE_CLOSE)):
                depth += 1 if line.startswith(_QUOTE_OPEN) else -1
                line = line[len(_QUOTE_OPEN):]
            after = line.count(_QUOTE_OPEN) - line.count(_QUOTE_CLOSE)
            line = line.replace(_QUOTE_OPEN, "").replace(_QUOTE_CLOSE, "")
            line = line.replace("\xa0", " ").strip()
            lines.append("> " * max(depth, 0) + line if line else "")
            depth = max(0, depth + after)
        text = "\n".join(lines)
        text = re.sub(r"\n{3,}", "\n\n", text)
        return text.strip()


def html_to_text(html: str) -> str:
    """Readable plain text for an HTML body (used when a message has no text part)."""
    extractor = _TextExtractor()
    try:
        extractor.feed(html)
        extractor.close()
    except Exception:  # noqa: BLE001 - html.parser is lenient; this is a last resort
        return re.sub(r"<[^>]+>", " ", html).strip()
    return extractor.text()
