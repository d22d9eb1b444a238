"""Job functions used by the job-runner tests."""

from app.jobs import job

CALLS: list[str] = []


class Flaky(Exception):
    pass


@job(queue="default", retry_intervals=(0, 0, 0), retry_on=(Flaky,))
def flaky(key: str, failures: int) -> None:
    """Triggered by tests: fails ``failures`` times, then succeeds."""
    from app.extensions import redis_store

    if redis_store.client is not None:
        n = redis_store.client.incr(f"test:flaky:{key}")
        redis_store.client.rpush("test:flaky:calls", key)
    else:
        CALLS.append(key)
        n = len(CALLS)
    if n <= failures:
        raise Flaky(f"attempt {n}")
