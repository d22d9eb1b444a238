"""The email channel: MIME in, SMTP out.

``parse`` turns one raw RFC 5322 message (from the webhook or the SMTP server) into
an ``InboundMessage``: decoded headers and bodies, sanitized HTML, the new text of a
reply without its quoted history, threading hints, attachments, and flags for
auto-replies and bounces. ``build_message`` and ``send`` render an
``OutboundMessage`` and deliver it by SMTP, raising ``TransientDeliveryError`` or
``PermanentDeliveryError`` as the server's answer says.
"""

from channels.email.errors import AttachmentTooLarge
from channels.email.inbound import DEFAULT_MAX_ATTACHMENT_BYTES, TICKET_REF, parse
from channels.email.outbound import (
    AUTOMATIC_FLAG,
    SmtpSettings,
    build_message,
    parse_smtp_url,
    send,
)

__all__ = [
    "AUTOMATIC_FLAG",
    "DEFAULT_MAX_ATTACHMENT_BYTES",
    "TICKET_REF",
    "AttachmentTooLarge",
    "SmtpSettings",
    "build_message",
    "parse",
    "parse_smtp_url",
    "send",
]
