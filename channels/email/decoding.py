"""Tolerant decoding of MIME bodies and headers.

Real mail lies about its charset: Outlook labels Windows-1252 text as ISO-8859-1,
old clients send UTF-8 bytes labelled as Latin-1, some send 8-bit bytes in headers
or name charsets no codec knows. Every function here returns text and never raises.
"""

from __future__ import annotations

import codecs
import re
from email.errors import HeaderParseError
from email.header import decode_header
from email.message import Message

# Labels that name a codec Python lacks, or whose superset decodes what senders mean.
_CHARSET_ALIASES = {
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "latin-1": "cp1252",
    "latin1": "cp1252",
    "l1": "cp1252",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "x-sjis": "shift_jis",
    "windows-874": "cp874",
    "x-mac-roman": "mac_roman",
    "macintosh": "mac_roman",
    "unicode-1-1-utf-7": "utf-7",
}

# Single-byte charsets: any byte string decodes, so UTF-8 mislabelled as one of
# these would silently turn into mojibake unless UTF-8 is tried first.
_SINGLE_BYTE = re.compile(r"^(us-?ascii|ascii|iso-?8859-\d+|cp125\d|windows-125\d|latin.*|l\d)$")

_SURROGATES = re.compile("[\udc80-\udcff]")
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


def codec_for(charset: str | None) -> str | None:
    """The Python codec name for a MIME charset label, or None if unknown."""
    if not charset:
        return None
    label = charset.strip().strip('"').lower()
    label = _CHARSET_ALIASES.get(label, label)
    try:
        return codecs.lookup(label).name
    except LookupError:
        return None


def decode_bytes(data: bytes, charset: str | None = None) -> tuple[str, bool]:
    """Decode ``data`` trying the declared charset, then UTF-8, then Windows-1252,
    then Latin-1 (which cannot fail). Returns the text and whether the declared
    charset was not the one that worked."""
    declared = codec_for(charset)
    if not data:
        return "", False
    label = (charset or "").strip().strip('"').lower()
    if declared and _SINGLE_BYTE.match(label) and not data.isascii():
        try:
            return data.decode("utf-8"), True
        except UnicodeDecodeError:
            pass
    candidates = [c for c in (declared, "utf-8", "cp1252") if c]
    for i, candidate in enumerate(candidates):
        try:
            return data.decode(candidate), not (declared and i == 0)
        except (UnicodeDecodeError, LookupError):
            continue
    return data.decode("latin-1"), True


def repair_surrogates(text: str) -> str:
    """Turn bytes the parser kept as surrogate escapes back into real characters."""
    if not _SURROGATES.search(text):
        return text
    data = text.encode("utf-8", "surrogateescape")
    return decode_bytes(data, "utf-8")[0]


def decode_header_value(value: str | None) -> str:
    """Unfold a raw header value and decode its RFC 2047 encoded words."""
    if not value:
        return ""
    text = repair_surrogates(str(value))
    text = re.sub(r"\r?\n[ \t]+", " ", text).replace("\r", "").replace("\n", " ")
    if not _ENCODED_WORD.search(text):
        return text.strip()
    try:
        chunks = decode_header(text)
    except (ValueError, LookupError, HeaderParseError):  # malformed: show as it came
        return text.strip()
    parts: list[str] = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            parts.append(chunk)
        elif charset is None:
            parts.append(chunk.decode("raw-unicode-escape", "replace"))
        else:
            parts.append(decode_bytes(chunk, charset)[0])
    return "".join(parts).strip()


def decode_part_text(part: Message) -> tuple[str, bool]:
    """The text of a leaf part, decoded tolerantly, and whether its label lied."""
    try:
        data = part.get_payload(decode=True)
    except Exception:  # noqa: BLE001 - a broken transfer encoding: use what is there
        data = str(part.get_payload()).encode("utf-8", "surrogateescape")
    if not isinstance(data, bytes):
        return "", False
    try:
        charset = part.get_content_charset()
    except (ValueError, LookupError, TypeError):
        charset = None
    return decode_bytes(data, charset)


def normalize_message_id(value: str | None) -> str | None:
    """``<id@host>`` for a Message-ID-like value (brackets added if missing), or None."""
    if not value:
        return None
    match = re.search(r"<([^<>\s]+)>", value)
    if match:
        return f"<{match.group(1)}>"
    value = value.strip().strip("<>").strip()
    if not value or any(ch.isspace() for ch in value):
        return None
    return f"<{value}>"


def message_ids(value: str | None) -> list[str]:
    """All Message-IDs in a References-like header, in order, without duplicates."""
    if not value:
        return []
    found = [f"<{m}>" for m in re.findall(r"<([^<>\s]+)>", value)]
    if not found:
        found = [i for i in (normalize_message_id(t) for t in value.split()) if i]
    return list(dict.fromkeys(found))
