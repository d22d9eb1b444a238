"""Prometheus counters, served at ``/metrics`` in the text exposition format."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

INBOUND = Counter(
    "civicline_inbound_messages_total", "Inbound messages accepted by intake",
    ["channel", "duplicate"], registry=REGISTRY,
)
OUTBOUND = Counter(
    "civicline_outbound_messages_total", "Outbound deliveries by final state",
    ["channel", "status"], registry=REGISTRY,
)
FAILED_PAYLOADS = Counter(
    "civicline_failed_payloads_total", "Provider payloads that could not be parsed",
    ["source"], registry=REGISTRY,
)
OPEN_TICKETS = Gauge(
    "civicline_open_tickets", "Tickets not yet resolved, by queue", ["queue"], registry=REGISTRY
)
WAITING_ITEMS = Gauge(
    "civicline_waiting_work_items", "Work items waiting for an agent, by queue", ["queue"],
    registry=REGISTRY,
)

JOBS_QUEUED = Gauge(
    "civicline_jobs_queued", "Jobs ready and waiting for a worker, by job queue", ["queue"],
    registry=REGISTRY,
)


def render() -> bytes:
    return generate_latest(REGISTRY)
