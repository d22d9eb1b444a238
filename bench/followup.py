"""Follow-up jobs: what a worker spends per inbound message, against a job that does
nothing.

Every SMS and email a webhook accepts leaves a follow-up job (``process_inbound``: the
knowledge base's answer or the acknowledgement with the reference, sent at once; the work
item for an agent), which may queue more (routing, delivery). Under mixed load
(``bench/load.py``) those jobs take more of the machine than the webhooks themselves, so
this measures them alone, in CPU time, which a busy or slower machine changes far less
than it changes rates.

In rounds, on ``DATABASE_URL`` (PostgreSQL; its schema is dropped and migrated: point it at
a scratch database) and ``REDIS_URL`` (that Redis database is flushed):

1. ``--block`` messages go through the intake service, untimed, as the webhooks take
   them: SMS and email in the proportions of the load benchmark (40:15), 30% from
   returning residents; their follow-up jobs wait in Redis.
2. One RQ worker in this process (``jobs.worker_class()``, what ``flask worker`` runs,
   each job in an app context of its own) works the queues in burst mode until they are
   empty: CPU seconds of this process and wall time.
3. The baseline, in the same round: as many jobs that do nothing, through the same worker
   the same way: RQ's own cost per job (dequeue, bookkeeping, result).

The database server's CPU is not in these figures (it is in ``bench/load.py``'s).

    DATABASE_URL=postgresql://postgres@127.0.0.1/civicline_bench \\
    REDIS_URL=redis://127.0.0.1:6379/11 python bench/followup.py [--messages 3000]

Last line: ``followup: 4.1 ms CPU per message, 9.3 x a no-op job``.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.jobs import job  # noqa: E402


@job(queue="inbound")
def noop(n: int) -> None:
    """The baseline job: RQ's work around a job, and nothing inside it."""


def make_messages(n: int, seed: int = 11):
    from channels.base import InboundMessage

    rng = random.Random(seed)
    senders: list[tuple[str, str]] = []
    out = []
    for i in range(n):
        if senders and rng.random() < 0.30:
            channel, sender = senders[rng.randrange(len(senders))]
        else:
            channel = "sms" if rng.random() < 40 / 55 else "email"
            sender = f"+1555{3000000 + i:07d}" if channel == "sms" else f"resident{i}@example.org"
            senders.append((channel, sender))
        provider_id = f"SM{i:032d}" if channel == "sms" else f"<f{i}@example.org>"
        out.append(InboundMessage(
            channel=channel, provider_id=provider_id,
            sender=sender, text=f"when will my benefits payment number {i} arrive",
            subject="Benefits payment" if channel == "email" else None))
    return out


def work(queues) -> tuple[float, float, int, int]:
    """Run one burst worker until the queues are empty: (CPU s, wall s, done, failed)."""
    from flask import current_app

    from app.extensions import redis_store
    from app.jobs import worker_class

    class CountingWorker(worker_class()):
        done = failed = 0

        def handle_job_success(self, *args, **kwargs):
            self.done += 1
            return super().handle_job_success(*args, **kwargs)

        def handle_job_failure(self, *args, **kwargs):
            self.failed += 1
            return super().handle_job_failure(*args, **kwargs)

    worker = CountingWorker(queues, connection=redis_store.client)
    worker.job_app = current_app._get_current_object()  # a context per job, as flask worker
    cpu, wall = time.process_time(), time.perf_counter()
    worker.work(burst=True, with_scheduler=False, logging_level="WARNING")
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu, wall, worker.done, worker.failed


def first_failure(queues) -> str:
    from rq.job import Job

    for queue in queues:
        for job_id in queue.failed_job_registry.get_job_ids()[:1]:
            info = Job.fetch(job_id, connection=queue.connection).exc_info or ""
            return info.strip().splitlines()[-1] if info.strip() else job_id
    return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--block", type=int, default=250, help="messages per round")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgresql") \
            or not os.environ.get("REDIS_URL"):
        sys.exit("set DATABASE_URL to a scratch PostgreSQL database and REDIS_URL to a "
                 "Redis database this benchmark may flush, e.g. DATABASE_URL=postgresql://"
                 "postgres@127.0.0.1/civicline_bench REDIS_URL=redis://127.0.0.1:6379/11")
    if args.messages < 1 or args.block < 1:
        sys.exit("--messages and --block take 1 or more")
    from bench.load import prepare_database

    prepare_database()  # a fresh schema, a flushed Redis, the general queue and an agent

    from rq import Queue

    from app import create_app
    from app.config import Config, _database_url
    from app.extensions import redis_store
    from app.jobs import QUEUES, enqueue
    from app.services.intake import intake

    class BenchConfig(Config):
        SQLALCHEMY_DATABASE_URI = _database_url()
        EMBEDDED_WORKER = False

    app = create_app(BenchConfig)
    logging.getLogger().setLevel(logging.WARNING)
    messages = make_messages(args.messages)
    totals = {"cpu": 0.0, "wall": 0.0, "jobs": 0, "failed": 0,
              "base_cpu": 0.0, "base_wall": 0.0, "base_jobs": 0}
    with app.app_context():
        queues = [Queue(name, connection=redis_store.client) for name in QUEUES]
        print(f"followup: {len(messages)} messages in rounds of {args.block}; "
              "one burst worker in this process", flush=True)
        done = 0
        for start in range(0, len(messages), args.block):
            block = messages[start:start + args.block]
            for msg in block:
                intake(msg)
            cpu, wall, ok, failed = work(queues)
            totals["cpu"] += cpu
            totals["wall"] += wall
            totals["jobs"] += ok + failed
            totals["failed"] += failed
            for n in range(len(block)):
                enqueue(noop, n)
            cpu, wall, ok, failed = work(queues)
            totals["base_cpu"] += cpu
            totals["base_wall"] += wall
            totals["base_jobs"] += ok
            totals["failed"] += failed
            done += len(block)
            print(f"  {done}/{len(messages)} messages followed up "
                  f"({totals['jobs']} jobs, {totals['failed']} failed)", flush=True)
        if totals["failed"]:
            print(f"first failure: {first_failure(queues)}")
    n = len(messages)
    ms = 1000
    per_message = totals["cpu"] / n
    per_noop = totals["base_cpu"] / max(1, totals["base_jobs"])
    print(f"follow-up: {totals['jobs']} jobs for {n} messages "
          f"({totals['jobs'] / n:.2f} per message), {totals['failed']} failed")
    print(f"  per message: {per_message * ms:.2f} ms CPU, {totals['wall'] / n * ms:.2f} ms wall")
    print(f"  no-op job:   {per_noop * ms:.2f} ms CPU, "
          f"{totals['base_wall'] / max(1, totals['base_jobs']) * ms:.2f} ms wall")
    print(f"followup: {per_message * ms:.1f} ms CPU per message, "
          f"{per_message / per_noop:.1f} x a no-op job")


if __name__ == "__main__":
    main()
