"""Errors raised by the routing core.

Every error is a :class:`RoutingError` with a stable, machine-readable ``code`` that the
app maps to its ``{"error": {"code", "message"}}`` body. The router validates a request
completely before it changes anything, so after an error its state is exactly what it
was before the call.
"""

from __future__ import annotations


class RoutingError(Exception):
    """Base class: ``code`` is stable, the message is for people."""

    code = "routing_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UnknownAgent(RoutingError):
    code = "unknown_agent"


class UnknownQueue(RoutingError):
    code = "unknown_queue"


class UnknownItem(RoutingError):
    code = "unknown_item"


class UnknownOffer(RoutingError):
    code = "unknown_offer"


class UnknownSkill(RoutingError):
    code = "unknown_skill"


class UnknownChannel(RoutingError):
    code = "unknown_channel"


class InvalidSkill(RoutingError):
    code = "invalid_skill"


class InvalidCapacity(RoutingError):
    code = "invalid_capacity"


class InvalidPresence(RoutingError):
    code = "invalid_presence"


class InvalidQueue(RoutingError):
    code = "invalid_queue"


class InvalidItem(RoutingError):
    code = "invalid_item"


class DuplicateAgent(RoutingError):
    code = "duplicate_agent"


class DuplicateQueue(RoutingError):
    code = "duplicate_queue"


class DuplicateItem(RoutingError):
    code = "duplicate_item"


class AgentOffline(RoutingError):
    code = "agent_offline"


class AgentUnavailable(RoutingError):
    code = "agent_unavailable"


class NoCapacity(RoutingError):
    code = "no_capacity"


class OfferAlreadyAccepted(RoutingError):
    code = "offer_already_accepted"


class OfferClosed(RoutingError):
    code = "offer_closed"


class OfferTimedOut(RoutingError):
    code = "offer_timed_out"


class InvalidState(RoutingError):
    code = "invalid_state"


class InvalidTransfer(RoutingError):
    code = "invalid_transfer"
