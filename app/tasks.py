"""Job functions. Each is triggered by intake, outbound services or a schedule, takes
ids, and is safe to run twice."""

from __future__ import annotations

import logging

from app.jobs import job
from channels.base import TransientDeliveryError

log = logging.getLogger(__name__)


@job(queue="inbound")
def process_inbound(interaction_id: int, opened: bool = False) -> None:
    """Triggered by intake after commit: self-service answer, then routing. ``opened``:
    the message opened its ticket."""
    from app.services import followup

    followup.process_inbound(interaction_id, opened)


@job(queue="default")
def route_work(work_item_id: int) -> None:
    """Triggered by follow-up when a work item enters its queue: a routing step, unless an
    earlier step already took the item in and no arrival counts on this one
    (``followup.queue_routing``)."""
    from app.services import followup

    counted_on = followup.take_routing_flag()
    for route in followup.ROUTE_HOOKS:
        route(None if counted_on else work_item_id)


@job(queue="scheduled")
def routing_tick() -> None:
    """Triggered every few seconds by the schedule: offer timeouts, overflow, SLA clocks."""
    from app.services import followup

    followup.routing_tick()


@job(queue="scheduled")
def sweep_outbox() -> None:
    """Triggered every minute: re-queue outbox rows whose send job was lost."""
    from app.services import outbound

    outbound.sweep()


@job(queue="outbound", retry_intervals=(2, 10, 30, 120, 600),
     retry_on=(TransientDeliveryError,))
def deliver_outbox(outbox_id: int) -> None:
    """Triggered by the outbound service: send one outbox row through its channel."""
    from app.services import outbound

    outbound.deliver(outbox_id)


@job(queue="scheduled")
def requeue_pending_jobs() -> None:
    """Triggered every few seconds: re-enqueue jobs parked while Redis was unreachable."""
    from app import jobs

    jobs.requeue_pending()


@job(queue="scheduled")
def apply_retention() -> None:
    """Triggered hourly: anonymize closed tickets older than ``RETENTION_DAYS``."""
    from app.services import privacy

    privacy.apply_retention()
