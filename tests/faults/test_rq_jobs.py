"""Jobs on a real Redis, as RQ stores them: CivicLine writes a queued job's hash itself
(``RQRunner.job_hash``), so it must hold exactly what RQ's own ``Queue.enqueue`` writes,
and an RQ worker must run it, retries included. Concurrent enqueues of one process go to
Redis together (``GroupCommit``): each caller returns once its job is queued, and a
failed batch fails each of its callers."""

from __future__ import annotations

import threading

import pytest
import redis as redis_py
from redis.backoff import NoBackoff
from redis.retry import Retry
from rq import Queue
from rq.job import Job

from app import jobs
from tests.faults.helpers import Monitor
from tests.integration import job_fixtures

TIMES = (b"created_at", b"enqueued_at")
QUEUE = "rq-format-test"  # no worker of another test listens here


def _without_times(fields: dict[bytes, bytes]) -> dict[bytes, bytes]:
    return {k: v for k, v in fields.items() if k not in TIMES}


def test_a_queued_job_is_stored_as_rq_stores_it(fault_app):
    runner = fault_app.extensions["civicline_jobs"]
    redis = runner.connection
    for name, args in (("app.tasks.process_inbound", (123,)),
                       ("app.tasks.deliver_outbox", (7,))):  # one with retries
        spec = jobs.resolve(name)
        ours = jobs.enqueue(name, *args, queue=QUEUE)
        q = Queue(QUEUE, connection=redis)
        theirs = q.enqueue("app.jobs.run_job", spec.name, args,
                           **runner._options(spec, None)).id  # noqa: SLF001
        stored_ours, stored_theirs = (redis.hgetall(Job.key_for(i)) for i in (ours, theirs))
        assert set(stored_ours) == set(stored_theirs)
        assert _without_times(stored_ours) == _without_times(stored_theirs)
        assert all(stored_ours[k] for k in TIMES)
        assert [i.decode() for i in redis.lrange(q.key, 0, -1)] == [ours, theirs]
        assert q.key.encode() in redis.smembers("rq:queues")
        job = Job.fetch(ours, connection=redis)
        assert (job.func_name, job.args, job.get_status()) == (
            "app.jobs.run_job", (name, args), "queued")
        assert job.retries_left == (len(spec.retry_intervals) or None)
        q.empty()


def test_an_rq_worker_runs_our_jobs_and_retries_them(fault_app):
    redis = fault_app.extensions["civicline_jobs"].connection
    redis.delete("test:flaky:calls")
    jobs.enqueue(job_fixtures.flaky, "rq-format", 2, queue=QUEUE)  # fails twice, then works
    worker = jobs.worker_class()([Queue(QUEUE, connection=redis)], connection=redis)
    for _ in range(3):
        worker.work(burst=True, with_scheduler=False)
        for job_id in worker.queues[0].scheduled_job_registry.get_job_ids():
            worker.queues[0].enqueue_job(Job.fetch(job_id, connection=redis))
            worker.queues[0].scheduled_job_registry.remove(job_id)
    assert [c.decode() for c in redis.lrange("test:flaky:calls", 0, -1)] == ["rq-format"] * 3
    assert worker.queues[0].failed_job_registry.count == 0


def test_the_worker_writes_its_heartbeat_and_state_between_jobs_only_when_due(
        fault_app, private_redis):
    """``flask worker``'s worker runs every job and keeps its key alive, without RQ's
    repeated heartbeat and "idle" writes between two jobs."""
    redis = fault_app.extensions["civicline_jobs"].connection
    redis.delete("test:flaky:calls")
    for n in range(10):
        jobs.enqueue(job_fixtures.flaky, f"job-{n}", 0, queue=QUEUE)
    worker = jobs.worker_class()([Queue(QUEUE, connection=redis)], connection=redis)
    monitor = Monitor(private_redis.url)
    worker.work(burst=True, with_scheduler=False)
    monitor.stop()
    assert redis.llen("test:flaky:calls") == 10
    assert worker.queues[0].finished_job_registry.count == 10
    worker_writes = [command for _client, command in monitor.commands
                     if worker.key in command and command.upper().startswith("HSET ")]
    # Per job, RQ's own pipelines write two heartbeats (as the job starts, and with the
    # suspension check after it); of those it sends on their own (three more per job with
    # RQ's SimpleWorker: 54 in all here) only the first remains. "idle" is written once
    # per job, when the worker goes back to it (twice with RQ's: 21 here).
    heartbeats = [c for c in worker_writes if "last_heartbeat" in c]
    idle = [c for c in worker_writes if "state idle" in c]
    assert len(heartbeats) <= 2 * 10 + 3, heartbeats
    assert len(idle) <= 10 + 1, idle
    assert redis.ttl(worker.key) > 0 or not redis.exists(worker.key)


def _round_trips(commands: list[str]) -> int:
    """What a client sent as MONITOR shows it: a MULTI ... EXEC block is one round trip
    (the pipeline's), any other command one each."""
    trips, in_block = 0, False
    for command in commands:
        name = command.split(" ", 1)[0].upper()
        if name == "MULTI":
            in_block = True
            trips += 1
        elif name == "EXEC":
            in_block = False
        elif not in_block:
            trips += 1
    return trips


def test_the_worker_spends_six_round_trips_to_redis_per_job(fault_app, private_redis):
    """A job costs ``flask worker``'s worker its pop and read, RQ's two start pipelines
    and one end pipeline, and the suspension check at most once a second. RQ's own
    SimpleWorker adds the dependents' WATCH and read, a PERSIST, the job's heartbeat and
    "idle" on their own and a suspension check per job (and its repeated heartbeats and
    states between jobs: 17 round trips in all)."""
    redis = fault_app.extensions["civicline_jobs"].connection
    redis.delete("test:flaky:calls")
    for n in range(20):
        jobs.enqueue(job_fixtures.flaky, f"job-{n}", 0, queue=QUEUE)
    worker = jobs.worker_class()([Queue(QUEUE, connection=redis)], connection=redis)
    worker.work(burst=True, with_scheduler=False, max_jobs=1)  # registration, maintenance
    monitor = Monitor(private_redis.url)
    worker.work(burst=True, with_scheduler=False)
    monitor.stop()
    assert redis.llen("test:flaky:calls") == 20
    assert worker.queues[0].finished_job_registry.count == 20
    assert worker.queues[0].started_job_registry.count == 0
    job_calls = [c for _client, c in monitor.commands if "test:flaky:calls" in c]
    assert len(job_calls) == 19
    bookkeeping = [c for _client, c in monitor.commands
                   if "test:flaky:calls" not in c and not c.upper().startswith("PING")]
    assert not [c for c in bookkeeping if c.upper().startswith("WATCH ")
                or c.upper().startswith("SMEMBERS ") and ":dependents" in c]
    # 19 jobs; the empty queue's last pop and the worker's goodbye come on top.
    assert _round_trips(bookkeeping) <= 19 * 6 + 12, bookkeeping


def test_concurrent_enqueues_go_to_redis_together_and_each_is_queued(fault_app, private_redis):
    runner = fault_app.extensions["civicline_jobs"]
    redis = runner.connection
    monitor = Monitor(private_redis.url)
    # Redis holds every command for 300 ms: the first caller's batch waits, the others
    # line up behind it and go in the next batch.
    redis_py.Redis.from_url(private_redis.url).client_pause(300)
    ids: dict[int, str] = {}

    def enqueue(n: int) -> None:
        with fault_app.app_context():
            ids[n] = jobs.enqueue("app.tasks.process_inbound", n, queue=QUEUE)

    threads = [threading.Thread(target=enqueue, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    monitor.stop()
    assert len(ids) == 12 and len(set(ids.values())) == 12
    queued = [i.decode() for i in redis.lrange(Queue(QUEUE, connection=redis).key, 0, -1)]
    assert sorted(queued) == sorted(ids.values())
    for n, job_id in ids.items():
        assert Job.fetch(job_id, connection=redis).args == ("app.tasks.process_inbound", (n,))
    batches = monitor.names().count("MULTI")
    assert 2 <= batches < 12, f"{batches} batches for 12 jobs"


def test_a_failed_batch_fails_each_of_its_callers_and_the_next_starts_afresh():
    dead = redis_py.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1,
                          retry=Retry(NoBackoff(), 0))  # nothing listens on port 1
    group = jobs.GroupCommit(dead)
    errors: list[BaseException] = []

    def send(n: int) -> None:
        try:
            group.send([("RPUSH", "q", str(n))])
        except redis_py.exceptions.ConnectionError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(errors) == 6
    assert group._waiting == [] and group._sending is False  # noqa: SLF001
    with pytest.raises(redis_py.exceptions.ConnectionError):
        group.send([("RPUSH", "q", "again")])  # sent (and failed) at once, not waiting


def test_a_job_id_run_again_starts_afresh_while_its_finished_run_is_kept(fault_app):
    """A finished job is kept ``RESULT_TTL`` seconds (letting it expire costs RQ fewer
    round trips than deleting it); enqueuing its id again (``outbox-7`` style) queues a
    fresh job, without the finished run's fields or expiry, and it runs again."""
    redis = fault_app.extensions["civicline_jobs"].connection
    redis.delete("test:flaky:calls")
    worker = jobs.worker_class()([Queue(QUEUE, connection=redis)], connection=redis)
    key = Job.key_for("fixed-id")

    jobs.enqueue(job_fixtures.flaky, "twice", 0, job_id="fixed-id", queue=QUEUE)
    worker.work(burst=True, with_scheduler=False)
    assert Job.fetch("fixed-id", connection=redis).get_status() == "finished"
    assert 0 < redis.ttl(key) <= jobs.RESULT_TTL and redis.hget(key, "ended_at")

    jobs.enqueue(job_fixtures.flaky, "twice", 0, job_id="fixed-id", queue=QUEUE)
    assert redis.ttl(key) == -1  # no expiry carried over: it waits as long as it must
    assert redis.hget(key, "status") == b"queued" and not redis.hget(key, "ended_at")
    worker.work(burst=True, with_scheduler=False)
    assert [c.decode() for c in redis.lrange("test:flaky:calls", 0, -1)] == ["twice"] * 2


def test_flask_worker_runs_each_job_in_its_own_session(fault_app):
    """A job the database refuses half-way fails alone: ``flask worker`` gives every job
    a session of its own, so the next job does not inherit a failed transaction."""
    import sqlalchemy as sa

    from app.extensions import db
    from app.models import Queue as ServiceQueue

    redis = fault_app.extensions["civicline_jobs"].connection
    queue = Queue("default", connection=redis)
    queue.empty()
    redis.delete("test:counts:after-failure")
    queues_before = db.session.scalar(sa.select(sa.func.count()).select_from(ServiceQueue))
    jobs.enqueue(job_fixtures.fails_in_the_database, "twice", queue="default")
    jobs.enqueue(job_fixtures.counts_queues, "after-failure", queue="default")
    result = fault_app.test_cli_runner().invoke(
        args=["worker", "--burst", "--queues", "default", "--nice", "0"])
    assert result.exit_code == 0, result.output
    assert redis.lrange("test:counts:after-failure", 0, -1) == [str(queues_before).encode()]
    assert queue.failed_job_registry.count == 1
    assert queue.finished_job_registry.count >= 1


@pytest.mark.parametrize(("order", "expected"), [
    # In turns: a backlog of texts does not hold back a reply, routing or the timers.
    ("fair", ["in-1", "reply", "route", "tick", "in-2", "in-3", "in-4"]),
    ("priority", ["in-1", "in-2", "in-3", "in-4", "reply", "route", "tick"]),
])
def test_flask_worker_serves_the_queues_in_turns(fault_app, order, expected):
    redis = fault_app.extensions["civicline_jobs"].connection
    for name in jobs.QUEUES:
        Queue(name, connection=redis).empty()
    redis.delete("test:flaky:calls")
    for n in range(1, 5):
        jobs.enqueue(job_fixtures.flaky, f"in-{n}", 0, queue="inbound")
    jobs.enqueue(job_fixtures.flaky, "reply", 0, queue="outbound")
    jobs.enqueue(job_fixtures.flaky, "route", 0, queue="default")
    jobs.enqueue(job_fixtures.flaky, "tick", 0, queue="scheduled")
    args = ["worker", "--burst", "--nice", "0", "--no-schedules"]
    if order != "fair":
        args += ["--order", order]  # fair is the default
    result = fault_app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 0, result.output
    assert [c.decode() for c in redis.lrange("test:flaky:calls", 0, -1)] == expected
