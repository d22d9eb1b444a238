"""Fault-test fixtures: a private Redis and a private PostgreSQL cluster that tests may
stop, kill and restart (never the machine's shared services), CivicLine's production
processes (gunicorn, ``flask worker``) as subprocesses in their own process groups, and
an SMTP server that captures mail. Every process started here is killed on teardown."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from bench.procfile import web_command

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
FAKES = "tests.faults.fakes"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate: Callable[[], object], timeout: float, what: str,
               interval: float = 0.1) -> object:
    """Poll ``predicate`` until it returns something truthy, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}"
                         + (f" (last error: {last_error!r})" if last_error else ""))


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _stat(pid: int | str) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (state, parent, group,
    ...), or None when the process is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (RQ's work horses call setsid, leaving the group)."""
    children: dict[int, list[int]] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        child = stat.split("/")[2]
        fields = _stat(child)
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(child))
    found, frontier = [], [pid]
    while frontier:
        frontier = [c for p in frontier for c in children.get(p, [])]
        found.extend(frontier)
    return found


def _running(pids: list[int]) -> list[int]:
    """Those of ``pids`` that still run (an exited process not yet reaped does not)."""
    return [pid for pid in pids if (fields := _stat(pid)) and fields[0] not in ("Z", "X")]


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL, timeout: float = 15) -> None:
    """Signal a process started with ``start_new_session`` and everything it forked, and
    wait until all of them are gone: a worker that outlived its supervising shell (it
    finishes its job on SIGTERM) would take the next test's jobs."""
    tree: list[int] = []
    if proc.poll() is None:
        tree = descendants(proc.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        for pid in tree:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout)
    deadline = time.monotonic() + timeout
    while _running(tree) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in _running(tree):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class RedisServer:
    """A private ``redis-server`` on a fixed free port, with no persistence."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.dir = workdir
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = open(self.dir / "redis.log", "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.dir)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_until(lambda: _port_open(self.port), 30, "private redis to listen")

    def stop(self) -> None:
        """Kill it outright (SIGKILL): clients see refused connections until ``start``."""
        if self.proc is not None:
            kill_group(self.proc)
            self.proc = None
        wait_until(lambda: not _port_open(self.port), 10, "private redis to stop")

    def flush(self) -> None:
        import redis

        redis.Redis.from_url(self.url).flushall()


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (package postgresql)")
    return found[-1]


class PostgresServer:
    """A private PostgreSQL cluster (initdb in a temp folder, run as ``postgres`` when
    the tests run as root, since initdb refuses root)."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.dir = workdir
        self.data = workdir / "data"
        self.user = "postgres" if os.geteuid() == 0 else None

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = list(args)
        if self.user:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=120)

    def init(self) -> None:
        if self.user:
            pw = pwd.getpwnam(self.user)
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        self._run(_pg_bin("initdb"), "-D", str(self.data), "-U", "postgres", "-A", "trust",
                  "--no-sync", "-E", "UTF8")

    def start(self) -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-l", str(self.dir / "pg.log"),
                  "-w", "-t", "60", "-o",
                  f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                  "-c fsync=off -c max_connections=300", "start")
        wait_until(lambda: _port_open(self.port), 30, "private PostgreSQL to listen")

    def stop(self, mode: str = "fast") -> None:
        self._run(_pg_bin("pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60",
                  "stop", check=False)

    def url(self, database: str) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        engine = sa.create_engine(
            f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres",
            isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        engine.dispose()
        return self.url(name)


@pytest.fixture(scope="session")
def fault_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="civicline-faults-"))
    path.chmod(0o755)
    yield path
    if not os.environ.get("FAULT_KEEP_LOGS"):  # keep process logs when debugging
        shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def private_redis(fault_dir) -> Iterator[RedisServer]:
    workdir = fault_dir / "redis"
    workdir.mkdir()
    server = RedisServer(workdir)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def private_pg(fault_dir) -> Iterator[PostgresServer]:
    workdir = fault_dir / "pg"
    workdir.mkdir()
    server = PostgresServer(workdir)
    server.init()
    server.start()
    yield server
    server.stop("immediate")


def _config_class(database_url: str, redis_url: str | None):
    from app.config import TestConfig

    url = database_url.replace("postgresql://", "postgresql+psycopg://", 1)

    class FaultConfig(TestConfig):
        SQLALCHEMY_DATABASE_URI = url
        REDIS_URL = redis_url
        RATELIMIT_STORAGE_URI = "memory://"
        # The test process only inspects and seeds; the subprocesses emit events.
        REALTIME_DISABLED = True

    return FaultConfig


@pytest.fixture
def fault_db(request, private_pg, private_redis):
    """A fresh, migrated database in the private cluster, and a flushed private Redis."""
    from flask_migrate import upgrade

    from app import create_app
    from app.extensions import db

    name = "faults_" + request.node.name.lower().replace("[", "_").replace("]", "")[:40]
    url = private_pg.create_database(name)
    private_redis.flush()
    app = create_app(_config_class(url, private_redis.url))
    with app.app_context():
        upgrade(directory=str(ROOT / "migrations"))
        db.engine.dispose()
    return url


@pytest.fixture
def fault_app(fault_db, private_redis):
    """The app in this process, on the private database and Redis (to seed and inspect)."""
    from app import create_app
    from app.extensions import db

    app = create_app(_config_class(fault_db, private_redis.url))
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


class Processes:
    """CivicLine's production commands as subprocesses, killed (by group) on teardown."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.env = env
        self.procs: list[subprocess.Popen] = []

    def _spawn(self, name: str, cmd: list[str], extra_env: dict[str, str] | None) -> \
            subprocess.Popen:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(cmd, cwd=ROOT, env={**self.env, **(extra_env or {})},
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        proc.log_path = self.workdir / f"{name}.log"  # type: ignore[attr-defined]
        self.procs.append(proc)
        return proc

    def web(self, name: str = "web", extra_env: dict[str, str] | None = None) -> str:
        """The Procfile's web command (``gunicorn -k gevent -w 1 ...``) on a free local
        port; returns its URL."""
        port = free_port()
        proc = self._spawn(name, web_command(VENV_BIN, "127.0.0.1", port), extra_env)
        url = f"http://127.0.0.1:{port}"
        import requests

        def ready():
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited: {proc.log_path.read_text()[-3000:]}")
            return requests.get(url + "/healthz", timeout=5).status_code in (200, 503)

        wait_until(ready, 90, f"{name} to serve")
        return url

    def worker(self, name: str = "worker", queues: str = "inbound,outbound,default,scheduled",
               extra_env: dict[str, str] | None = None,
               supervised: bool = False) -> subprocess.Popen:
        """``flask --app wsgi worker --queues ...`` as in the Procfile. ``supervised``
        restarts it whenever it exits, as systemd's ``Restart=always`` does in
        production (an RQ worker exits when Redis drops in the middle of a job)."""
        cmd = [str(VENV_BIN / "flask"), "--app", "wsgi", "worker"]
        if queues:
            cmd += ["--queues", queues]
        if supervised:
            cmd = ["sh", "-c", 'while true; do "$@"; sleep 1; done', "supervise", *cmd]
        proc = self._spawn(name, cmd, extra_env)
        wait_until(lambda: "worker serving" in proc.log_path.read_text()
                   or proc.poll() is not None, 90, f"{name} to start")
        assert proc.poll() is None, proc.log_path.read_text()[-3000:]
        return proc

    def kill(self, proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        kill_group(proc, sig)

    def close(self) -> None:
        for proc in self.procs:
            kill_group(proc, signal.SIGTERM, timeout=10)


TWILIO_SID = "AC" + "1" * 32
TWILIO_TOKEN = "fault-twilio-token"
EMAIL_SECRET = "fault-email-secret"


@pytest.fixture
def processes(fault_db, private_redis, fault_dir, request) -> Iterator[Processes]:
    """Start ``gunicorn`` and ``flask worker`` like production, on the private services."""
    workdir = fault_dir / f"procs-{request.node.name[:40]}-{time.monotonic_ns()}"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_URL", "REDIS_URL", "SMTP_URL", "TWILIO_"))}
    env.update({
        "PATH": f"{VENV_BIN}:{env.get('PATH', '')}", "PYTHONPATH": str(ROOT),
        "DATABASE_URL": fault_db, "REDIS_URL": private_redis.url,
        "SECRET_KEY": "fault-tests-secret-key-0123456789",
        "TWILIO_ACCOUNT_SID": TWILIO_SID, "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_PHONE_NUMBER": "+15555550100", "EMAIL_WEBHOOK_SECRET": EMAIL_SECRET,
        "PUBLIC_BASE_URL": "http://civicline.test", "SIMULATOR_ENABLED": "0",
        # All test traffic comes from 127.0.0.1; per-address webhook limits would cut it.
        "RATELIMIT_TWILIO": "100000 per minute", "RATELIMIT_EMAIL_WEBHOOK": "100000 per minute",
        "FAULT_TWILIO_LOG": str(workdir / "twilio.jsonl"),
        "TWILIO_HTTP_CLIENT_FACTORY": f"{FAKES}:file_recording_client",
    })
    procs = Processes(workdir, env)
    yield procs
    procs.close()


@pytest.fixture
def smtp_capture() -> Iterator:
    """A real SMTP server (aiosmtpd) capturing mail; ``script`` queues error replies."""
    from tests.faults.fakes import CapturingSMTP

    server = CapturingSMTP()
    server.start()
    yield server
    server.stop()
