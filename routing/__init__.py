"""Pure routing core: no Flask, ORM or Redis.

``Router`` (:mod:`routing.engine`) decides which agent gets which work item; events
(:mod:`routing.events`) report its decisions; :mod:`routing.channels` chooses the channel
to reply on; :mod:`routing.erlang` sizes staffing; :mod:`routing.sim` simulates a center
with the real router; :mod:`routing.hours` answers whether a queue is open;
:mod:`routing.referral` describes referrals to other agencies.
"""

from routing.engine import Router
from routing.errors import RoutingError
from routing.model import Agent, BusinessHours, Offer, OverflowStep, Queue, WorkItem

__all__ = [
    "Agent",
    "BusinessHours",
    "Offer",
    "OverflowStep",
    "Queue",
    "Router",
    "RoutingError",
    "WorkItem",
]
