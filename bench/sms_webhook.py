"""SMS webhook throughput and latency, served by gunicorn on PostgreSQL and Redis.

What it does, in one run:

1. Resets the database named by ``DATABASE_URL`` (drops and recreates the ``public``
   schema, then ``flask db upgrade``: a fresh schema from the migrations) and flushes the
   Redis database of ``REDIS_URL``. Use a database of its own: everything in it is lost.
2. Serves the app as the README and the Procfile run it: ``--web`` (2) web processes,
   each ``gunicorn -k gevent -w 1 ... -b 127.0.0.1:PORT wsgi:app`` on its own port,
   with ``TWILIO_AUTH_TOKEN`` set so every webhook's signature is really checked
   (against ``PUBLIC_BASE_URL``, the address of the load balancer in front of them).
   Follow-up jobs go to RQ and wait there: no worker runs, so only the webhook (verify,
   parse, intake, commit, enqueue) is timed.
3. From this process (an asyncio/aiohttp client), at fixed concurrency, the client's
   connections spread evenly over the web processes as a load balancer spreads them:
   * signed ``POST /webhooks/twilio/sms`` for ``--seconds`` (30% of messages from
     returning numbers, 2% replays of an earlier MessageSid): the peak rate;
   * ``GET /static/simulator.js`` (a small static file) of the same server for the
     same time: the trivial baseline. The two take turns (``--turns``, 3: a third of
     the time each, in turn) so that both meet the same machine;
   * signed SMS webhooks paced at half the peak rate (open loop): p99 there.
4. Counts errors and duplicate interactions (two rows for one MessageSid; must be 0).

    DATABASE_URL=postgresql://postgres@127.0.0.1/civicline_bench \\
    REDIS_URL=redis://127.0.0.1:6379/14 python bench/sms_webhook.py [--seconds 30]

Last line: ``sms/trivial ratio: 0.31, p99 at half peak: 23 ms``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procfile import wait_until_up, web_command  # noqa: E402
from channels.twilio import sign  # noqa: E402

TOKEN = "bench-twilio-auth-token"
PUBLIC_BASE = "http://sms.bench.test"  # the load balancer's address, which Twilio signs
CITY = "+15555550100"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def reset_database(env: dict[str, str]) -> None:
    import redis
    import sqlalchemy as sa

    from app.config import _database_url

    engine = sa.create_engine(_database_url())
    if engine.dialect.name != "postgresql":
        raise SystemExit("DATABASE_URL must point at PostgreSQL")
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    engine.dispose()
    redis.Redis.from_url(env["REDIS_URL"]).flushdb()
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
                   cwd=ROOT, env=env, check=True, capture_output=True)
    print("fresh schema from the migrations; Redis flushed", flush=True)


class Messages:
    """Twilio's SMS webhook forms: new and returning numbers, and a few replays."""

    path = "/webhooks/twilio/sms"

    def __init__(self, public_base: str, seed: int = 11):
        self.url = public_base + self.path  # what Twilio signs
        self.rng = random.Random(seed)
        self.n = 0
        self.sent: list[dict[str, str]] = []
        self.numbers: list[str] = []

    def next(self) -> tuple[dict[str, str], dict[str, str]]:
        self.n += 1
        if self.sent and self.rng.random() < 0.02:
            form = self.rng.choice(self.sent)  # a replayed webhook
        else:
            if self.numbers and self.rng.random() < 0.3:
                sender = self.rng.choice(self.numbers)
            else:
                sender = f"+1555{3000000 + self.n:07d}"
                self.numbers.append(sender)
            form = {"MessageSid": f"SM{os.getpid():08x}{self.n:024x}",
                    "AccountSid": "AC" + "0" * 32, "From": sender, "To": CITY,
                    "NumMedia": "0", "SmsStatus": "received",
                    "Body": self.rng.choice(["When is my property tax due?",
                                             "how do I renew my passport",
                                             "pothole on Elm St 🕳️", "necesito ayuda"])}
            self.sent.append(form)
        return form, {"X-Twilio-Signature": sign(TOKEN, self.url, form)}


class Stats:
    def __init__(self, name: str):
        self.name, self.latencies, self.errors, self.started = name, [], 0, time.monotonic()
        self.elapsed = 0.0  # time spent in finished turns (``closed_loop``)

    def report(self, elapsed: float | None = None) -> dict[str, float]:
        elapsed = self.elapsed if elapsed is None else elapsed
        ok = len(self.latencies)
        return {"rps": ok / elapsed, "p50": percentile(self.latencies, 0.5) * 1000,
                "p99": percentile(self.latencies, 0.99) * 1000, "errors": self.errors, "n": ok}


async def _one(session, stats: Stats, method: str, url: str, data=None, headers=None) -> None:
    start = time.perf_counter()
    try:
        async with session.request(method, url, data=data, headers=headers) as response:
            await response.read()
            if response.status != 200:
                stats.errors += 1
                return
    except Exception:  # noqa: BLE001 - a failed request is counted, not fatal
        stats.errors += 1
        return
    stats.latencies.append(time.perf_counter() - start)


async def _progress(stats: Stats, stop_at: float, since: float | None = None) -> None:
    while time.monotonic() < stop_at:
        await asyncio.sleep(5)
        elapsed = stats.elapsed + time.monotonic() - (since or stats.started)
        print(f"  {stats.name}: {len(stats.latencies)} ok, {stats.errors} errors, "
              f"{len(stats.latencies) / elapsed:.0f} req/s", flush=True)


async def closed_loop(stats: Stats, request, bases: list[str], seconds: float,
                      concurrency: int) -> None:
    """One turn of ``seconds``: ``concurrency`` clients, each with its own connection to
    one web process (spread evenly over ``bases``), each sending its next request when the
    last is answered. Adds to ``stats``."""
    import aiohttp

    began = time.monotonic()
    stop_at = began + seconds
    async def worker(base: str):
        async with aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=1)) as session:
            while time.monotonic() < stop_at:
                method, path, data, headers = request()
                await _one(session, stats, method, base + path, data, headers)

    ticker = asyncio.create_task(_progress(stats, stop_at, began))
    await asyncio.gather(*(worker(bases[n % len(bases)]) for n in range(concurrency)))
    ticker.cancel()
    stats.elapsed += time.monotonic() - began


async def paced(name: str, request, bases: list[str], seconds: float, rate: float,
                concurrency: int) -> dict:
    """Open loop: start requests at ``rate`` per second whatever the answers do, in turn
    to each web process."""
    import aiohttp

    stats = Stats(name)
    stop_at = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=concurrency * 4)
    async with aiohttp.ClientSession(connector=connector) as session:
        ticker = asyncio.create_task(_progress(stats, stop_at))
        tasks, interval, due, n = [], 1.0 / rate, time.monotonic(), 0
        while due < stop_at:
            method, path, data, headers = request()
            url = bases[n % len(bases)] + path
            n += 1
            tasks.append(asyncio.create_task(_one(session, stats, method, url, data, headers)))
            due += interval
            await asyncio.sleep(max(0.0, due - time.monotonic()))
        await asyncio.gather(*tasks)
        ticker.cancel()
    return stats.report(seconds)


def duplicates() -> tuple[int, int]:
    import sqlalchemy as sa

    from app.config import _database_url

    engine = sa.create_engine(_database_url())
    with engine.connect() as conn:
        dupes = conn.scalar(sa.text(
            "SELECT count(*) FROM (SELECT provider_id FROM interactions WHERE channel = 'sms' "
            "AND direction = 'inbound' GROUP BY provider_id HAVING count(*) > 1) d"))
        total = conn.scalar(sa.text(
            "SELECT count(*) FROM interactions WHERE channel = 'sms' AND direction = 'inbound'"))
    engine.dispose()
    return dupes, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--web", type=int, default=2, help="gunicorn processes")
    parser.add_argument("--turns", type=int, default=3,
                        help="alternating turns of SMS webhooks and the static file")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL") or not os.environ.get("REDIS_URL"):
        raise SystemExit("set DATABASE_URL (PostgreSQL) and REDIS_URL")
    if args.web < 1 or args.concurrency < 1 or args.turns < 1 or args.seconds <= 0:
        raise SystemExit("--web, --concurrency and --turns take 1 or more, --seconds more "
                         "than 0")

    ports = [free_port() for _ in range(args.web)]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    env = {**os.environ, "TWILIO_AUTH_TOKEN": TOKEN, "PUBLIC_BASE_URL": PUBLIC_BASE,
           "TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_SIMULATOR": "1", "FLASK_APP": "wsgi",
           # One client address sends everything here: lift the per-source limit.
           "RATELIMIT_TWILIO": "1000000 per minute"}
    reset_database(env)
    servers = []
    try:
        for port in ports:
            argv = web_command(Path(sys.executable).parent, "127.0.0.1", port,
                               "--log-level", "warning")
            servers.append(subprocess.Popen(argv, cwd=ROOT, env=env, start_new_session=True,
                                            stdout=subprocess.DEVNULL,
                                            stderr=subprocess.PIPE))
        print(f"serving: {args.web} x '{' '.join(argv[1:])}'", flush=True)
        for base, server in zip(bases, servers, strict=True):
            _wait_for(base + "/static/simulator.js", server)
        messages = Messages(PUBLIC_BASE)

        def sms_request():
            form, headers = messages.next()
            return "POST", messages.path, form, headers

        def trivial_request():
            return "GET", "/static/simulator.js", None, None

        # The two peak rates are measured in alternating turns, so that both meet the
        # same machine: on a shared host the speed of the CPU drifts within a run.
        sms_stats, trivial_stats = Stats("sms"), Stats("trivial")
        turn = args.seconds / args.turns
        for n in range(args.turns):
            print(f"turn {n + 1}/{args.turns}: SMS webhooks, then the static file, "
                  f"{args.concurrency} concurrent, {turn:.0f} s each", flush=True)
            asyncio.run(closed_loop(sms_stats, sms_request, bases, turn, args.concurrency))
            asyncio.run(closed_loop(trivial_stats, trivial_request, bases, turn,
                                    args.concurrency))
        sms, trivial = sms_stats.report(), trivial_stats.report()
        half = max(1.0, sms["rps"] / 2)
        print(f"SMS webhooks paced at {half:.0f} req/s (half the peak), {args.seconds:.0f} s",
              flush=True)
        paced_sms = asyncio.run(paced("sms@half", sms_request, bases, args.seconds, half,
                                      args.concurrency))
    finally:
        for server in servers:
            os.killpg(server.pid, signal.SIGTERM)
        for server in servers:
            server.wait(timeout=30)
    dupes, total = duplicates()
    results = (("sms webhook", sms), ("static file", trivial), ("sms at half peak", paced_sms))
    for name, r in results:
        print(f"{name:>17}: {r['rps']:8.1f} req/s  p50 {r['p50']:7.1f} ms  "
              f"p99 {r['p99']:7.1f} ms  errors {r['errors']}  ({r['n']} ok)")
    print(f"inbound SMS interactions: {total}; duplicate interactions: {dupes}")
    print(f"sms/trivial ratio: {sms['rps'] / trivial['rps']:.2f}, "
          f"p99 at half peak: {paced_sms['p99']:.0f} ms")


def _wait_for(url: str, server: subprocess.Popen) -> None:
    if not wait_until_up(url, [server]):
        output = server.stderr.read().decode()[-2000:] if server.poll() is not None else ""
        raise SystemExit("the server did not start" + (f": {output}" if output else ""))


if __name__ == "__main__":
    main()
