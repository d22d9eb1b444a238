"""Builders for routing tests: small routers with named agents and queues."""

from __future__ import annotations

import pytest

from routing.engine import Router
from routing.model import AVAILABLE, Agent, OverflowStep, Queue


def make_router(**config) -> Router:
    config.setdefault("wrap_up_seconds", {})
    config.setdefault("languages", ("en", "es", "vi"))
    router = Router(**config)
    router.add_queue(
        Queue(
            "licenses",
            "dmv",
            "licenses",
            sla_target_seconds=30.0,
            min_proficiency=3,
            overflow=(
                OverflowStep(60.0, "relax_proficiency"),
                OverflowStep(120.0, "department"),
                OverflowStep(300.0, "general"),
            ),
        )
    )
    router.add_queue(Queue("plates", "dmv", "plates", sla_target_seconds=60.0))
    router.add_queue(Queue("benefits", "social", "benefits", sla_target_seconds=60.0))
    return router


def make_agent(
    agent_id: str,
    topics: dict[str, int] | None = None,
    languages: dict[str, int] | None = None,
    capacity: dict[str, int] | None = None,
    presence: str = AVAILABLE,
    **extra,
) -> Agent:
    return Agent(
        agent_id=agent_id,
        topics={"licenses": 4} if topics is None else topics,
        languages={"en": 5} if languages is None else languages,
        capacity={"voice": 1, "chat": 3, "email": 5} if capacity is None else capacity,
        presence=presence,
        **extra,
    )


@pytest.fixture
def router() -> Router:
    return make_router()
