"""Jobs on a real Redis, as RQ stores them: CivicLine writes a queued job's hash itself
(``RQRunner.job_hash``), so it must hold exactly what RQ's own ``Queue.enqueue`` writes,
and an RQ worker must run it, retries included."""

from __future__ import annotations

from rq import Queue, SimpleWorker
from rq.job import Job

from app import jobs
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
    worker = SimpleWorker([Queue(QUEUE, connection=redis)], connection=redis)
    for _ in range(3):
        worker.work(burst=True, with_scheduler=False)
        for job_id in worker.queues[0].scheduled_job_registry.get_job_ids():
            worker.queues[0].enqueue_job(Job.fetch(job_id, connection=redis))
            worker.queues[0].scheduled_job_registry.remove(job_id)
    assert [c.decode() for c in redis.lrange("test:flaky:calls", 0, -1)] == ["rq-format"] * 3
    assert worker.queues[0].failed_job_registry.count == 0
