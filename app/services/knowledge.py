"""The app's side of the knowledge base: every channel's self-service answer comes from
``answer_for``, so the same question gets the same article and version everywhere."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KBAnswer:
    article_id: int
    version: int
    title: str
    confidence: float
    self_service: bool
    text: str
    html: str | None = None
    language: str | None = None
    url: str | None = None


def answer_for(query: str, channel: str, lang: str | None = None,
               ticket_id: int | None = None) -> KBAnswer | None:
    """The best article for ``query`` rendered for ``channel`` (sms, voice, chat, email,
    web), or None when the knowledge base has nothing. ``self_service`` says whether the
    confidence clears the channel's threshold."""
    return None
