"""Channel adapters: parse provider payloads into InboundMessage, send OutboundMessage.

Nothing here imports Flask request globals or the ORM; the app wires adapters to views
and jobs.
"""

from channels.base import (
    CHANNELS,
    Attachment,
    DeliveryResult,
    InboundMessage,
    OutboundMessage,
    ParseError,
    PermanentDeliveryError,
    TransientDeliveryError,
)

__all__ = [
    "CHANNELS",
    "Attachment",
    "DeliveryResult",
    "InboundMessage",
    "OutboundMessage",
    "ParseError",
    "PermanentDeliveryError",
    "TransientDeliveryError",
]
