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


@job(queue="default")
def fails_in_the_database(code: str) -> None:
    """Triggered by tests: a flush the database refuses (two queues with one code)."""
    from app.extensions import db
    from app.models import Queue

    db.session.add_all([Queue(code=code, name="One"), Queue(code=code, name="Two")])
    db.session.flush()


@job(queue="default")
def counts_queues(key: str) -> None:
    """Triggered by tests: records how many queues it reads."""
    import sqlalchemy as sa

    from app.extensions import db, redis_store
    from app.models import Queue

    count = db.session.scalar(sa.select(sa.func.count()).select_from(Queue))
    redis_store.client.rpush(f"test:counts:{key}", count)
