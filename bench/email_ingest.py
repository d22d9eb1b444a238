"""Email ingest throughput through the real webhook, served as production serves it.

Builds N raw messages from the sample corpus (``tests/data/email``), each with a fresh
Message-ID, and serves the app as the README and the Procfile run it: ``--web`` (2) web
processes, each the Procfile's ``gunicorn -k gevent -w 1 ... wsgi:app`` on its own port,
on ``DATABASE_URL`` (its schema is dropped and migrated first: point it at a scratch
database) and ``REDIS_URL`` (that Redis database is flushed). From this separate process
it posts the messages to ``POST /webhooks/email`` over several concurrent keep-alive
connections, spread evenly over the processes as a load balancer spreads them. In the
same run, with the same client and concurrency, it measures the same servers'
``GET /healthz`` (one ``SELECT 1`` and a Redis ``PING``) as the baseline, and the bare
in-process parse rate. Follow-up jobs wait in RQ (no worker runs): this measures taking
mail in, not answering it.

    DATABASE_URL=postgresql://... REDIS_URL=redis://127.0.0.1:6379/15 \
        python bench/email_ingest.py [--messages 10000]

Last line: ``email ingest: 210 msgs/s``.
"""

from __future__ import annotations

import argparse
import http.client
import os
import queue
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procfile import wait_until_up, web_command  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "email"
SECRET = "bench-email-secret"
_MESSAGE_ID = re.compile(rb"^Message-I[Dd]:[^\r\n]*(\r?\n[ \t][^\r\n]*)*\r?\n", re.M | re.I)


def bench_app():
    """The app as configured here, to reset the database with."""
    from app import create_app
    from app.config import Config, _database_url

    class BenchConfig(Config):
        SQLALCHEMY_DATABASE_URI = _database_url()
        EMBEDDED_WORKER = False

    import logging

    app = create_app(BenchConfig)
    logging.getLogger().setLevel(logging.WARNING)
    return app


def server_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "EMAIL_WEBHOOK_SECRET": SECRET,
            "ATTACHMENTS_DIR": os.environ["BENCH_ATTACHMENTS_DIR"],
            # One client address sends everything here: lift the per-source limit.
            "RATELIMIT_EMAIL_WEBHOOK": "1000000 per minute"}


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def make_messages(n: int) -> list[bytes]:
    """The corpus repeated to ``n`` messages, each with its own Message-ID."""
    corpus = [p.read_bytes() for p in sorted(CORPUS.glob("*.eml"))]
    out = []
    for i in range(n):
        raw = corpus[i % len(corpus)]
        eol = b"\r\n" if b"\r\n" in raw[:2000] else b"\n"
        header = b"Message-ID: <bench-%d@bench.civicline.example>" % i + eol
        stripped, count = _MESSAGE_ID.subn(b"", raw, count=1)
        out.append(header + (stripped if count else raw))
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare_database() -> str:
    import sqlalchemy as sa
    from flask_migrate import upgrade

    from app.extensions import db, redis_store

    app = bench_app()
    with app.app_context():
        engine = db.engine
        if engine.dialect.name != "postgresql":
            raise SystemExit("set DATABASE_URL to a scratch PostgreSQL database")
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        upgrade(directory=str(ROOT / "migrations"))
        redis_store.client.flushdb()
        engine.dispose()
        return engine.url.render_as_string(hide_password=True)


def start_servers(ports: list[int]) -> list[subprocess.Popen]:
    venv = Path(sys.executable).parent
    procs = [subprocess.Popen(web_command(venv, "127.0.0.1", port, "--log-level", "warning"),
                              cwd=ROOT, env=server_env(), start_new_session=True)
             for port in ports]
    for port in ports:
        if not wait_until_up(f"http://127.0.0.1:{port}/healthz", procs):
            stop_servers(procs)
            raise SystemExit("gunicorn did not answer /healthz; its output is above")
    return procs


def stop_servers(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def drive(
    ports: list[int],
    requests: list[tuple[str, str, bytes | None, dict]],
    concurrency: int,
    label: str,
    expect: tuple[int, ...],
) -> tuple[float, list[float], dict[int, int]]:
    """Send every request over ``concurrency`` keep-alive connections, spread evenly over
    ``ports``; returns (elapsed seconds, per-request latencies, status counts)."""
    work: queue.Queue = queue.Queue()
    for item in requests:
        work.put(item)
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    done = [0]
    step = max(1, len(requests) // 10)

    def worker(port: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while True:
            try:
                method, path, body, headers = work.get_nowait()
            except queue.Empty:
                break
            t0 = time.perf_counter()
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            elapsed = time.perf_counter() - t0
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            with lock:
                latencies.append(elapsed)
                statuses[response.status] = statuses.get(response.status, 0) + 1
                done[0] += 1
                if done[0] % step == 0:
                    print(f"  {label}: {done[0]}/{len(requests)}", flush=True)
        conn.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=worker, args=(ports[n % len(ports)],))
               for n in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    unexpected = {s: c for s, c in statuses.items() if s not in expect}
    if unexpected:
        raise SystemExit(f"{label}: unexpected statuses {unexpected}")
    return elapsed, latencies, statuses


def parse_rate(messages: list[bytes]) -> float:
    from channels.email import parse

    sample = messages[: min(len(messages), 2000)]
    start = time.perf_counter()
    for raw in sample:
        parse(raw)
    return len(sample) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--web", type=int, default=2, help="gunicorn processes")
    parser.add_argument("--baseline-requests", type=int, default=3000)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL") or not os.environ.get("REDIS_URL"):
        raise SystemExit("set DATABASE_URL (a scratch PostgreSQL database) and REDIS_URL "
                         "(a Redis database of its own: it is flushed)")
    if min(args.web, args.concurrency, args.messages) < 1:
        raise SystemExit("--web, --concurrency and --messages take 1 or more")
    os.environ.setdefault("BENCH_ATTACHMENTS_DIR", tempfile.mkdtemp(prefix="civicline-att-"))

    database = prepare_database()
    generated = make_messages(args.messages + 50)
    messages, warm_up = generated[: args.messages], generated[args.messages :]
    size = sum(len(m) for m in messages) / len(messages)
    ports = [free_port() for _ in range(args.web)]
    argv = web_command("", "127.0.0.1", ports[0])
    print(
        f"database: {database}; messages: {len(messages)} (mean {size:,.0f} bytes); "
        f"serving: {args.web} x '{' '.join(argv[1:])}'; client concurrency "
        f"{args.concurrency}",
        flush=True,
    )
    servers = start_servers(ports)
    try:
        headers = {"Content-Type": "message/rfc822", "Authorization": f"Bearer {SECRET}"}
        posts = [("POST", "/webhooks/email", raw, headers) for raw in messages]
        warm = [("POST", "/webhooks/email", raw, headers) for raw in warm_up]
        drive(ports, warm, args.concurrency, "warm-up", (202,))
        elapsed, latencies, statuses = drive(ports, posts, args.concurrency, "email",
                                             (200, 202))
        base = [("GET", "/healthz", None, {})] * args.baseline_requests
        b_elapsed, b_latencies, _ = drive(ports, base, args.concurrency, "healthz", (200,))
    finally:
        stop_servers(servers)
    rate = len(posts) / elapsed
    b_rate = len(base) / b_elapsed
    p_rate = parse_rate(messages)
    ms = 1000
    print(f"statuses: {dict(sorted(statuses.items()))} (202 taken in, 200 a duplicate)")
    print(
        f"webhook: {rate:,.0f} msgs/s, p50 {statistics.median(latencies) * ms:.1f} ms, "
        f"p99 {percentile(latencies, 0.99) * ms:.1f} ms"
    )
    print(
        f"baseline GET /healthz (same servers, same client): {b_rate:,.0f} req/s, "
        f"p99 {percentile(b_latencies, 0.99) * ms:.1f} ms; webhook/baseline ratio "
        f"{rate / b_rate:.2f}"
    )
    print(
        f"bare parse in one process: {p_rate:,.0f} msgs/s; webhook/parse ratio {rate / p_rate:.2f}"
    )
    print(f"email ingest: {rate:.0f} msgs/s")


if __name__ == "__main__":
    main()
