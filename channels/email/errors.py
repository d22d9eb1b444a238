"""Errors specific to the email channel."""

from __future__ import annotations

from channels.base import ParseError


class AttachmentTooLarge(ParseError):
    """An attachment is larger than the configured limit; the webhook answers 413."""

    def __init__(self, filename: str | None, size: int, limit: int):
        name = filename or "unnamed attachment"
        super().__init__(
            f"attachment {name!r} is {size} bytes, over the limit of {limit} bytes"
        )
        self.filename = filename
        self.size = size
        self.limit = limit
