"""Background jobs: one ``enqueue`` wrapper, two backends.

* **Redis mode** (``REDIS_URL`` set): jobs go to RQ queues ``inbound``, ``outbound``,
  ``default`` and ``scheduled``, served by ``flask worker`` (an RQ worker with its
  scheduler for delayed jobs, plus the periodic schedules below).
* **Embedded mode** (no ``REDIS_URL``, the ``make run`` default): the same job functions
  run on a thread inside the server process, delayed and periodic ones included.

Jobs are module-level functions registered with ``@job``, taking ids (never ORM objects),
and safe to run twice. They are enqueued by dotted name. A job that raises an exception
listed in its ``retry_on`` is retried with the job's backoff intervals; other exceptions
fail the job (RQ keeps it in its failed registry; the embedded runner logs it).
"""

from __future__ import annotations

import functools
import heapq
import importlib
import itertools
import logging
import threading
import time
import uuid
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app

if TYPE_CHECKING:
    from app.realtime import HeldPublishes
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

log = logging.getLogger(__name__)

# Redis being unreachable, as opposed to a bug: these park jobs instead of failing callers.
REDIS_ERRORS = (RedisConnectionError, RedisTimeoutError)

QUEUES = ("inbound", "outbound", "default", "scheduled")
RESULT_TTL = 10  # seconds a finished RQ job is kept (see ``RQRunner._options``)
_RUN_JOB = "app.jobs.run_job"  # what RQ runs: it finds and runs the registered job
# The fields of a queued RQ job's hash that differ from job to job.
_PER_JOB = frozenset({"created_at", "enqueued_at", "data", "description", "status"})


@dataclass(frozen=True)
class JobSpec:
    func: Callable[..., Any]
    name: str
    queue: str
    retry_intervals: tuple[int, ...]
    retry_on: tuple[type[BaseException], ...]


REGISTRY: dict[str, JobSpec] = {}


def job(queue: str = "default", retry_intervals: Iterable[int] = (), retry_on=()):
    """Register a module-level function as a job on a named queue."""
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}")

    def decorator(func):
        name = f"{func.__module__}.{func.__qualname__}"
        REGISTRY[name] = JobSpec(func, name, queue, tuple(retry_intervals), tuple(retry_on))
        func.job_name = name
        return func

    return decorator


@dataclass(frozen=True)
class Schedule:
    """A periodic job, declared as data, with a stable id."""

    id: str
    func: str
    every_seconds: int
    queue: str = "scheduled"


SCHEDULES: list[Schedule] = [
    Schedule("routing-tick", "app.tasks.routing_tick", 5),
    Schedule("outbox-sweep", "app.tasks.sweep_outbox", 60),
    Schedule("pending-jobs", "app.tasks.requeue_pending_jobs", 10),
    Schedule("retention", "app.tasks.apply_retention", 3600),
]


def resolve(name: str) -> JobSpec:
    if name not in REGISTRY:
        module, _, _ = name.rpartition(".")
        importlib.import_module(module)
    return REGISTRY[name]


def _name_of(func: Callable[..., Any] | str) -> str:
    return func if isinstance(func, str) else func.job_name


def enqueue(
    func: Callable[..., Any] | str,
    *args: Any,
    delay: float | None = None,
    job_id: str | None = None,
    queue: str | None = None,
    publishes: HeldPublishes | None = None,
) -> str:
    """Queue ``func(*args)`` on its queue (or ``queue``), now or after ``delay`` seconds.

    ``publishes``: realtime events held by ``realtime.held()``, sent to Redis in the same
    round trip as the job when the jobs' Redis carries the Socket.IO message queue."""
    spec = resolve(_name_of(func))
    runner: JobRunner = current_app.extensions["civicline_jobs"]
    return runner.enqueue(spec, args, delay=delay, job_id=job_id, queue=queue or spec.queue,
                          publishes=publishes)


def call_with_app(app: Flask, spec_name: str, args: tuple) -> Any:
    spec = resolve(spec_name)
    with app.app_context():
        return spec.func(*args)


class JobRunner(ABC):
    """What both backends offer: queue a job, and drain the queues in burst mode."""

    backend = "base"

    @abstractmethod
    def enqueue(self, spec, args, *, delay, job_id, queue, publishes=None) -> str:
        """``publishes``: held realtime events this backend may send with the job (what
        it leaves held, ``realtime.held`` sends)."""

    @abstractmethod
    def run_pending(self, max_jobs: int = 10_000, include_delayed: bool = True) -> int: ...

    @abstractmethod
    def backlog(self) -> dict[str, int]:
        """Jobs ready and waiting for a worker, by queue (every queue named; delayed jobs
        and retries not yet due are not counted)."""

    @abstractmethod
    def start(self) -> None:
        """Start executing jobs in the background of this process, if this backend does."""

    @abstractmethod
    def stop(self) -> None:
        """Stop the background execution started by ``start``."""


@dataclass(order=True)
class _Pending:
    run_at: float
    seq: int
    spec_name: str = field(compare=False)
    args: tuple = field(compare=False)
    job_id: str = field(compare=False)
    attempt: int = field(compare=False, default=0)
    queue: str = field(compare=False, default="default")


class EmbeddedRunner(JobRunner):
    """Runs jobs inside this process. With ``thread=True`` a daemon thread works the queue
    and fires the periodic schedules; tests use ``run_pending()`` instead (burst mode)."""

    backend = "embedded"

    def __init__(self, app: Flask, thread: bool):
        self.app = app
        self._heap: list[_Pending] = []
        self._seq = itertools.count()
        self._lock = threading.Condition()
        self._thread_wanted = thread
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._next_schedule: dict[str, float] = {}
        self.failed: list[tuple[str, tuple, str]] = []
        self._ids: set[str] = set()

    def enqueue(self, spec, args, *, delay, job_id, queue, publishes=None) -> str:
        job_id = job_id or uuid.uuid4().hex
        with self._lock:
            if job_id in self._ids:
                return job_id
            self._ids.add(job_id)
            run_at = time.monotonic() + (delay or 0)
            heapq.heappush(self._heap, _Pending(run_at, next(self._seq), spec.name, args, job_id,
                                                queue=queue))
            self._lock.notify()
        return job_id

    def backlog(self) -> dict[str, int]:
        now = time.monotonic()
        counts = dict.fromkeys(QUEUES, 0)
        with self._lock:
            for item in self._heap:
                if item.run_at <= now:
                    counts[item.queue] = counts.get(item.queue, 0) + 1
        return counts

    def _pop_due(self, include_delayed: bool) -> _Pending | None:
        with self._lock:
            if not self._heap:
                return None
            if include_delayed or self._heap[0].run_at <= time.monotonic():
                item = heapq.heappop(self._heap)
                self._ids.discard(item.job_id)
                return item
            return None

    def _execute(self, item: _Pending) -> None:
        spec = resolve(item.spec_name)
        try:
            call_with_app(self.app, item.spec_name, item.args)
        except spec.retry_on as exc:
            if item.attempt < len(spec.retry_intervals):
                delay = spec.retry_intervals[item.attempt]
                log.warning("job %s failed (%s); retry in %ss", spec.name, exc, delay)
                with self._lock:
                    self._ids.add(item.job_id)
                    heapq.heappush(
                        self._heap,
                        _Pending(
                            time.monotonic() + delay,
                            next(self._seq),
                            item.spec_name,
                            item.args,
                            item.job_id,
                            item.attempt + 1,
                            item.queue,
                        ),
                    )
            else:
                log.error("job %s failed after %s attempts: %s", spec.name, item.attempt + 1, exc)
                self.failed.append((spec.name, item.args, repr(exc)))
        except Exception as exc:  # noqa: BLE001 - a job's failure must not stop the runner
            log.exception("job %s failed", spec.name)
            self.failed.append((spec.name, item.args, repr(exc)))

    def run_pending(self, max_jobs: int = 10_000, include_delayed: bool = True) -> int:
        """Burst: run everything queued (delayed jobs and retries too) until empty."""
        count = 0
        while count < max_jobs:
            item = self._pop_due(include_delayed)
            if item is None:
                break
            self._execute(item)
            count += 1
        return count

    def _fire_schedules(self) -> None:
        now = time.monotonic()
        for schedule in SCHEDULES:
            due = self._next_schedule.get(schedule.id, now)
            if due <= now:
                self._next_schedule[schedule.id] = now + schedule.every_seconds
                self.enqueue(
                    resolve(schedule.func), (), delay=None, job_id=None, queue=schedule.queue
                )

    def _loop(self) -> None:
        while not self._stopping:
            self._fire_schedules()
            item = self._pop_due(include_delayed=False)
            if item is not None:
                self._execute(item)
                continue
            with self._lock:
                wait = 1.0
                if self._heap:
                    wait = max(0.0, min(wait, self._heap[0].run_at - time.monotonic()))
                self._lock.wait(wait)

    def start(self) -> None:
        if self._thread_wanted and self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="civicline-jobs", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping = True
        with self._lock:
            self._lock.notify_all()


class GroupCommit:
    """Redis commands of concurrent callers in one process, sent together (a group
    commit, as databases do for their log).

    ``send(commands)`` returns once a pipeline holding the commands has executed, so a
    job is in Redis before its caller goes on, as when each caller sent its own: a webhook
    still answers 200 only for work that is queued. The first caller to find nobody
    sending sends every command waiting at that moment in one MULTI/EXEC; callers that
    arrive meanwhile wait, and the first of them sends the next batch. So a process with
    tens of webhooks in flight pays one round trip and one pipeline for several jobs,
    while a caller alone sends its own at once. Each caller's commands stay together and
    in order. When a batch fails, every caller in it gets the error (Redis errors: each
    then parks its own job, see ``RQRunner.enqueue``)."""

    WAIT_SECONDS = 60  # then give up on the sender (a hung Redis) with a Redis timeout

    def __init__(self, connection) -> None:
        self.connection = connection
        self._lock = threading.Lock()
        self._waiting: list[_Batched] = []
        self._sending = False

    def send(self, commands: list[tuple]) -> None:
        item = _Batched(commands)
        with self._lock:
            self._waiting.append(item)
            lead, self._sending = not self._sending, True
        if not lead:
            try:
                item.turn.wait(self.WAIT_SECONDS)
            except BaseException:  # interrupted while waiting: never strand the others
                self._leave(item)
                raise
            with self._lock:
                lead = item.handed_turn  # the previous sender passed its turn to this caller
                if not lead and not item.done:  # the sender hangs (a hung Redis): give up
                    if item in self._waiting:
                        self._waiting.remove(item)
                    raise RedisTimeoutError("the Redis batch of this job was not sent in time")
        if lead:
            self._send_batch()
        if item.error is not None:
            raise item.error

    def _leave(self, item: _Batched) -> None:
        """Take a caller that stops waiting out of line; a turn it was handed goes on."""
        with self._lock:
            if item in self._waiting:
                self._waiting.remove(item)
            if item.handed_turn and not item.done:
                self._pass_turn()

    def _pass_turn(self) -> None:
        # Under the lock: the next caller in line sends the next batch, or nobody sends.
        if self._waiting:
            self._waiting[0].handed_turn = True
            self._waiting[0].turn.set()
        else:
            self._sending = False

    def _send_batch(self) -> None:
        with self._lock:
            batch, self._waiting = self._waiting, []
        error: BaseException | None = None
        try:
            with self.connection.pipeline() as pipe:
                for item in batch:
                    for command in item.commands:
                        pipe.execute_command(*command)
                pipe.execute()
        except BaseException as exc:  # noqa: BLE001 - every caller in the batch hears of it
            error = exc
            raise
        finally:
            for item in batch:
                if error is not None:
                    # A sender interrupted (a timeout in its own request) fails the others
                    # as a lost connection would: they park their jobs.
                    item.error = error if isinstance(error, Exception) else RedisConnectionError(
                        f"the batch's sender was interrupted ({type(error).__name__})")
                item.done = True
                item.turn.set()
            with self._lock:
                self._pass_turn()


@dataclass
class _Batched:
    commands: list[tuple]
    turn: threading.Event = field(default_factory=threading.Event)
    done: bool = False
    handed_turn: bool = False
    error: BaseException | None = None


class RQRunner(JobRunner):
    """Enqueues on RQ; ``flask worker`` (or ``run_pending`` in tests) executes."""

    backend = "rq"

    def __init__(self, app: Flask, connection):
        self.app = app
        self.connection = connection
        self._queues: dict[str, Any] = {}
        self._static: dict[tuple[str, str], dict[str, Any]] = {}
        self._group = GroupCommit(connection)

    def start(self) -> None:
        """Nothing runs in the web process: ``flask worker`` processes execute RQ jobs."""

    def stop(self) -> None:
        """Nothing to stop here (see ``start``)."""

    def backlog(self) -> dict[str, int]:
        with self.connection.pipeline(transaction=False) as pipe:
            for name in QUEUES:
                pipe.llen(self.queue(name).key)
            return dict(zip(QUEUES, pipe.execute(), strict=True))

    def queue(self, name: str):
        """One ``Queue`` per name and runner: RQ remembers the Redis server's version on it,
        which it would otherwise ask Redis for on every enqueue."""
        if name not in self._queues:
            from rq import Queue

            self._queues[name] = Queue(name, connection=self.connection)
        return self._queues[name]

    def enqueue(self, spec, args, *, delay, job_id, queue, publishes=None) -> str:
        """Enqueue on RQ; while Redis is unreachable, park the job in the database instead
        (the ``pending-jobs`` schedule re-enqueues it), so callers never fail after commit."""
        try:
            return self.enqueue_now(spec, args, delay=delay, job_id=job_id, queue=queue,
                                    publishes=publishes)
        except REDIS_ERRORS as exc:
            return park(spec.name, args, delay=delay, job_id=job_id, queue=queue, error=exc)

    @staticmethod
    def _options(spec: JobSpec, job_id: str | None) -> dict[str, Any]:
        from rq import Retry

        # Our jobs return nothing and nothing reads their results: a finished job expires
        # after RESULT_TTL seconds instead of RQ's default of several minutes, which at a
        # few hundred jobs a second held most of Redis's memory. (Not 0: RQ deletes such a
        # job at once, which costs its worker nine more round trips per job than letting
        # it expire.) Failed jobs stay a week for inspection (``rq info``, the failed job
        # registry).
        options: dict[str, Any] = {"job_timeout": 300, "result_ttl": RESULT_TTL,
                                   "failure_ttl": 7 * 86400}
        if job_id:
            options["job_id"] = job_id
        if spec.retry_intervals:
            options["retry"] = Retry(
                max=len(spec.retry_intervals), interval=list(spec.retry_intervals))
        return options

    def job_hash(self, spec: JobSpec, args: tuple, queue: str) -> dict[str, Any]:
        """The fields RQ's ``Queue.enqueue`` stores in a queued job's hash, for
        ``run_job(spec.name, args)`` on ``queue``.

        What is the same for every job of a spec and queue (timeouts, TTLs, retries, origin)
        comes from a job RQ itself created, once; each job adds its own payload, call
        string and times. Building the hash this way instead of through ``Queue.enqueue``
        (a ``Job`` object, its status written twice, RQ's bookkeeping) took a third off
        the CPU of an enqueue, which every webhook pays; a test holds the two hashes equal.
        """
        from rq.job import JobStatus
        from rq.utils import get_call_string, now, utcformat

        static = self._static.get((spec.name, queue))
        if static is None:
            options = self._options(spec, None)
            options["timeout"] = options.pop("job_timeout")
            template = self.queue(queue).create_job(_RUN_JOB, args=(spec.name, ()), **options)
            template.origin = queue
            static = {k: v for k, v in template.to_dict().items() if k not in _PER_JOB}
            static["status"] = JobStatus.QUEUED.value
            self._static[(spec.name, queue)] = static
        call = (spec.name, args)
        when = utcformat(now())
        return {**static, "created_at": when, "enqueued_at": when,
                "data": zlib.compress(self.queue(queue).serializer.dumps(
                    (_RUN_JOB, None, call, {}))),
                "description": get_call_string(_RUN_JOB, call, {})}

    def enqueue_now(self, spec, args, *, delay, job_id, queue, publishes=None) -> str:
        from datetime import timedelta

        q = self.queue(queue)
        if delay:  # rare: RQ schedules it, in a pipeline of its own
            with self.connection.pipeline() as pipe:
                if job_id:  # a finished run of this id is kept a while: start afresh
                    pipe.delete(q.job_class.key_for(job_id))
                job_id = q.enqueue_in(timedelta(seconds=delay), _RUN_JOB, spec.name, args,
                                      pipeline=pipe, **self._options(spec, job_id)).id
                if publishes is not None:
                    publishes.add_to(pipe)
                pipe.execute()
            return job_id
        # The commands ``Queue.enqueue`` sends for a job without dependencies, then the
        # realtime events the caller held for it: everything computed here, so that
        # sending them (together with other callers', see ``GroupCommit``) cannot fail
        # for a reason of this job's own.
        commands = [("SADD", q.redis_queues_keys, q.key)]
        if job_id:
            key = q.job_class.key_for(job_id)
            # A job id of our own (``outbox-7``) may name a finished run still kept
            # (RESULT_TTL): its fields and its expiry must not carry over to this one.
            commands.append(("DEL", key))
        else:
            job_id = str(uuid.uuid4())
            key = q.job_class.key_for(job_id)
        commands += [("HSET", key,
                     *itertools.chain.from_iterable(self.job_hash(spec, args, queue).items())),
                    ("RPUSH", q.key, job_id)]
        if publishes is not None:
            commands += [("PUBLISH", channel, payload)
                         for channel, payload in publishes.take_shared()]
        self._group.send(commands)
        return job_id

    def run_pending(self, max_jobs: int = 10_000, include_delayed: bool = True) -> int:
        """Burst: move due delayed jobs in, then work every queue until empty."""
        from rq.registry import ScheduledJobRegistry

        total = 0
        for _ in range(50):
            if include_delayed:
                for name in QUEUES:
                    q = self.queue(name)
                    registry = ScheduledJobRegistry(queue=q)
                    for job_id in registry.get_job_ids():
                        q.enqueue_job(q.fetch_job(job_id))
                        registry.remove(job_id)
            queues = [self.queue(n) for n in QUEUES]
            pending = sum(q.count for q in queues)
            if not pending:
                break
            worker = worker_class()(queues, connection=self.connection)
            worker.work(burst=True, with_scheduler=False, max_jobs=max_jobs)
            total += pending
        return total


@functools.cache
def worker_class():
    """RQ's ``SimpleWorker`` (jobs run in the worker's own process: they are short and
    take ids, and a fork per job cost more than most jobs themselves), without the
    bookkeeping that repeats itself or that our jobs do not use.

    RQ's own worker made 17 round trips to Redis per job; this one makes 6 (the job's
    pop and read, RQ's two pipelines as it starts, the pipeline as it ends, and the check
    for ``rq suspend``):

    * a heartbeat sent on its own is skipped when the last one is less than
      ``HEARTBEAT_EVERY`` seconds old (the worker's key lives for minutes), and a state
      already written is not written again. Heartbeats in RQ's own pipelines (as a job
      starts and ends, and while a long job runs) are all kept;
    * the job's hash is made persistent in the pipeline that marks it started, not by a
      command of its own as it runs (``_Job.perform``);
    * the job's heartbeat as it ends is not sent on its own: the pipeline that records
      its end follows at once, and no success or failure callback runs in between;
    * a finished job has no dependents to enqueue (no job of ours is enqueued with
      ``depends_on``): its end is one transaction, with the worker's "idle" state in it,
      without RQ's WATCH of the dependents' key and read of them first;
    * ``rq suspend`` is looked for at most once a second, not before every job."""
    from rq import SimpleWorker
    from rq.job import Job, _job_stack
    from rq.utils import now
    from rq.worker import WorkerStatus

    class _Job(Job):
        def perform(self):
            _job_stack.push(self)
            try:
                self._result = self._execute()
            finally:
                assert self is _job_stack.pop()
            return self._result

    class Worker(SimpleWorker):
        job_class = _Job
        _suspension_checked = 0.0
        # ``flask worker`` sets its app: each job then runs in an app context of its own,
        # with a database session of its own, closed (and rolled back, if the job failed
        # half-way) as the job ends. Without it (tests, benchmarks) jobs run in the
        # caller's context.
        job_app = None

        def execute_job(self, job, queue):
            if self.job_app is None:
                return super().execute_job(job, queue)
            with self.job_app.app_context():
                return super().execute_job(job, queue)

        def heartbeat(self, timeout=None, pipeline=None):
            last = getattr(self, "last_heartbeat", None)
            if (pipeline is None and timeout is None and last is not None
                    and (now() - last).total_seconds() < HEARTBEAT_EVERY):
                return
            super().heartbeat(timeout, pipeline)

        def set_state(self, state, pipeline=None):
            if pipeline is None and state == getattr(self, "_state", None):
                return
            super().set_state(state, pipeline)

        def check_for_suspension(self, burst):
            if time.monotonic() - self._suspension_checked >= 1:
                super().check_for_suspension(burst)
                self._suspension_checked = time.monotonic()

        def prepare_job_execution(self, job, remove_from_intermediate_queue=False):
            with self.connection.pipeline() as pipeline:
                self.set_current_job_id(job.id, pipeline=pipeline)
                self.set_current_job_working_time(0, pipeline=pipeline)
                heartbeat_ttl = self.get_heartbeat_ttl(job)
                self.heartbeat(heartbeat_ttl, pipeline=pipeline)
                job.heartbeat(now(), heartbeat_ttl, pipeline=pipeline)
                job.prepare_for_execution(self.name, pipeline=pipeline)
                pipeline.persist(job.key)
                if remove_from_intermediate_queue:
                    pipeline.lrem(self.queue_class(job.origin, connection=self.connection)
                                  .intermediate_queue_key, 1, job.id)
                pipeline.execute()

        def handle_execution_ended(self, job, queue, heartbeat_ttl):
            job.ended_at = now()

        def handle_job_success(self, job, queue, started_job_registry):
            with self.connection.pipeline() as pipeline:
                pipeline.multi()
                self.increment_successful_job_count(pipeline=pipeline)
                self.increment_total_working_time(job.ended_at - job.started_at, pipeline)
                result_ttl = job.get_result_ttl(self.default_result_ttl)
                if result_ttl != 0:
                    job._handle_success(
                        result_ttl, pipeline=pipeline, worker_name=self.name,
                        execution_id=self.execution.id if self.execution else None,
                        execution_started_at=(self.execution.created_at
                                              if self.execution else None),
                        execution_ended_at=job.ended_at)
                job.cleanup(result_ttl, pipeline=pipeline, remove_from_queue=False)
                self.cleanup_execution(job, pipeline=pipeline)
                self.set_state(WorkerStatus.IDLE, pipeline=pipeline)
                pipeline.execute()
            self.log.info("Successfully completed job %s in %ss on worker %s", job.id,
                          job.ended_at - job.started_at, self.name)

    return Worker


HEARTBEAT_EVERY = 5  # seconds between two heartbeats a worker sends on their own


_current_app_for_worker: Flask | None = None


def run_job(name: str, args: tuple) -> Any:
    """RQ entry point (called by an RQ worker): runs a registered job in the app context.

    Only exceptions in the job's ``retry_on`` are retried; any other failure spends the
    job's remaining retries so RQ records it as failed once.
    """
    from flask import has_app_context

    spec = resolve(name)
    try:
        if has_app_context():
            try:
                return spec.func(*args)
            except BaseException:
                # The caller's session goes on to other work: a transaction this job left
                # failed half-way must not fail that too.
                from app.extensions import db

                db.session.rollback()
                raise
        app = _current_app_for_worker
        if app is None:
            from app import create_app

            app = create_app()
        with app.app_context():
            return spec.func(*args)
    except Exception as exc:
        if not isinstance(exc, spec.retry_on):
            from rq import get_current_job

            current = get_current_job()
            if current is not None:
                current.retries_left = 0
        raise


def init_app(app: Flask) -> JobRunner:
    global _current_app_for_worker
    from app.extensions import redis_store

    if redis_store.client is not None:
        runner: JobRunner = RQRunner(app, redis_store.client)
    else:
        runner = EmbeddedRunner(app, thread=app.config.get("EMBEDDED_WORKER", True))
        if app.config.get("EMBEDDED_WORKER", True):
            # Under gunicorn the embedded worker starts with the first request, so CLI
            # commands that load the app (migrations, seeding) never start it.
            app.before_request(lambda: runner.start())
    app.extensions["civicline_jobs"] = runner
    _current_app_for_worker = app
    return runner


def periodic_loop(app: Flask, connection, stop: threading.Event) -> None:
    """In ``flask worker``: enqueue each schedule once per period across all workers
    (a Redis ``SET NX`` per schedule slot stops two workers from doubling it)."""
    while not stop.is_set():
        now = time.time()
        for schedule in SCHEDULES:
            slot = int(now // schedule.every_seconds)
            key = f"civicline:schedule:{schedule.id}:{slot}"
            try:
                if connection.set(key, "1", nx=True, ex=schedule.every_seconds * 2):
                    with app.app_context():
                        spec = resolve(schedule.func)
                        app.extensions["civicline_jobs"].enqueue_now(
                            spec, (), delay=None, job_id=None, queue=schedule.queue)
            except REDIS_ERRORS as exc:
                # Redis is down: skip this slot; the schedules resume when it answers.
                log.warning("schedule %s skipped: Redis unreachable (%s)", schedule.id, exc)
                break
            except Exception:  # noqa: BLE001 - one bad schedule must not stop the others
                log.exception("schedule %s could not be enqueued", schedule.id)
        stop.wait(1.0)


def park(name: str, args: tuple, *, delay: float | None, job_id: str | None, queue: str,
         error: BaseException) -> str:
    """Keep a job whose enqueue failed in ``pending_jobs`` (its own transaction)."""
    import sqlalchemy as sa

    from app.extensions import db
    from app.models import PendingJob, utcnow

    values = {"created_at": utcnow(), "func": name, "args": list(args), "job_id": job_id,
              "queue": queue, "delay_seconds": delay, "attempts": 0,
              "last_error": f"{type(error).__name__}: {error}"[:300]}
    try:
        with db.engine.begin() as conn:
            if job_id is None or conn.execute(
                    sa.select(PendingJob.id).where(PendingJob.job_id == job_id)).first() is None:
                conn.execute(sa.insert(PendingJob).values(**values))
    except Exception:  # noqa: BLE001 - the caller's data is committed; never fail it now
        log.exception("job %s%s lost: Redis and the database both failed", name, args)
    else:
        log.warning("Redis unreachable (%s): job %s%s parked for the pending-jobs sweep",
                    error, name, args)
    return job_id or f"parked-{uuid.uuid4().hex}"


def requeue_pending(limit: int = 1000) -> int:
    """Re-enqueue parked jobs, oldest first, until Redis fails again; returns how many."""
    import sqlalchemy as sa

    from app.extensions import db
    from app.models import PendingJob

    runner: JobRunner = current_app.extensions["civicline_jobs"]
    rows = db.session.scalars(sa.select(PendingJob).order_by(PendingJob.id).limit(limit)).all()
    done = 0
    for row in rows:
        try:
            enqueue_now = getattr(runner, "enqueue_now", runner.enqueue)
            enqueue_now(resolve(row.func), tuple(row.args), delay=row.delay_seconds,
                        job_id=row.job_id, queue=row.queue)
        except REDIS_ERRORS as exc:
            row.attempts += 1
            row.last_error = f"{type(exc).__name__}: {exc}"[:300]
            db.session.commit()
            break
        # Deleted after the enqueue: a crash in between enqueues twice, and jobs are
        # safe to run twice.
        db.session.delete(row)
        db.session.commit()
        done += 1
    return done
