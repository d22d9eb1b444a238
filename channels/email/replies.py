"""Separating what a resident just wrote from quoted history and signatures.

The heavy lifting is done by ``mail-parser-reply``, which knows the reply headers
of the common mail clients in many languages ("On ... wrote:", "El ... escribió:",
Outlook's "From: ... Sent: ..." block and "-----Original Message-----"). A few
patterns it misses are cut here first, and its signature removal is only accepted
when the removed block looks like a signature, so a resident's sentence that
happens to start with "Thanks," is never lost.
"""

from __future__ import annotations

import re

from mailparser_reply import EmailReplyParser
from mailparser_reply.parser import EmailMessage

REPLY_LANGUAGES = ["en", "es", "de", "fr", "it", "pt", "nl"]

# Quote headers cut before handing the text to the library (it expects two spaces
# before "escribió", and knows no Spanish "Original Message" line).
_EXTRA_QUOTE_HEADERS = re.compile(
    r"^(?:>\s*)*(?:"
    r"El\s[^\n]{0,200}?\d[^\n]{0,200}?(?:\n[^\n]{0,200}?)?escribi[óo]\s*:"
    r"|-{3,}\s*Mensaje original\s*-{3,}"
    r"|-{3,}\s*Urspr(?:ü|ue)ngliche Nachricht\s*-{3,}"
    r"|-{3,}\s*Original Message\s*-{3,}"
    r"|On\s[^\n]{0,200}?\d[^\n]{0,200}?(?:\n[^\n]{0,200}?)?wrote\s*:"
    r")\s*$",
    re.IGNORECASE | re.MULTILINE,
)
# A forward keeps the forwarded text: it usually is what the resident wants us to read.
FORWARD_MARKERS = re.compile(
    r"^\s*(?:-{2,}\s*Forwarded message\s*-{2,}|Begin forwarded message:"
    r"|-{2,}\s*Mensaje reenviado\s*-{2,}|-{2,}\s*Weitergeleitete Nachricht\s*-{2,}"
    r"|-{2,}\s*Message transféré\s*-{2,})\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_SIGNATURE_DELIMITER = re.compile(r"^\s*(?:--|__)\s*$")
_MAX_SIGNATURE_LEAD = 30
_MAX_SIGNATURE_LINES = 12

_parser = EmailReplyParser(languages=REPLY_LANGUAGES)


def is_forward(text: str) -> bool:
    """Whether ``text`` carries a forwarded message."""
    return bool(FORWARD_MARKERS.search(text))


def _cut_extra_headers(text: str) -> str:
    match = _EXTRA_QUOTE_HEADERS.search(text)
    if match and match.start() > 0:
        return text[: match.start()]
    return text


def _strip_trailing_quotes(text: str) -> str:
    lines = text.rstrip().split("\n")
    while lines and (lines[-1].lstrip().startswith(">") or not lines[-1].strip()):
        lines.pop()
    return "\n".join(lines) if lines else text


def _looks_like_signature(block: str) -> bool:
    lines = [line for line in block.strip().split("\n") if line.strip()]
    if not lines or len(lines) > _MAX_SIGNATURE_LINES:
        return False
    lead = lines[0].strip()
    return bool(_SIGNATURE_DELIMITER.match(lead)) or len(lead) <= _MAX_SIGNATURE_LEAD


def latest_reply(text: str) -> str:
    """The newest part of a plain-text body: no quoted history, no signature.

    Forwards are returned whole. If stripping would leave nothing (a message that is
    only a quote or only a signature), the unstripped text is returned.
    """
    if not text.strip():
        return ""
    if is_forward(text):
        return text.strip()
    try:
        head = _strip_trailing_quotes(_cut_extra_headers(text))
        message = EmailMessage(
            text=head, languages=list(_parser.languages), keep_hyphen_lists=True
        ).read()
    except Exception:  # noqa: BLE001 - a library bug must not lose a message
        return text.strip()
    if not message.replies:
        return text.strip()
    reply = message.replies[0]
    body = reply.full_body
    if reply.signatures and _looks_like_signature(reply.signatures):
        body = body.replace(reply.signatures, "")
    for disclaimer in reply.disclaimers:
        body = body.replace(disclaimer, "")
    body = body.strip()
    if not body:
        body = reply.full_body.strip() or head.strip()
    return body
