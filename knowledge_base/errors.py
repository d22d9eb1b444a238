"""Errors raised by the knowledge base.

Every error carries a stable machine ``code`` so the app can map it to a 4xx JSON body
(``{"error": {"code": ..., "message": ...}}``) without parsing messages.
"""

from __future__ import annotations


class KBError(ValueError):
    """Bad input to the knowledge base (empty or oversized query, unknown channel, ...).

    Codes: ``empty_query``, ``query_too_long``, ``invalid_language``, ``unknown_channel``,
    ``not_found``, ``invalid_article``.
    """

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    def to_dict(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}
