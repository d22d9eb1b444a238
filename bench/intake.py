"""Intake throughput against the floor that durability sets.

Pushes N InboundMessages (mixed channels; 30% from returning citizens, 20% replies into
open tickets, 2% duplicates) through the intake service in-process and, in the same run
and with the same driver, one bare ``INSERT ...; COMMIT`` per message: blocks of 500 of
each in turn, so both meet the same machine, with the planner's statistics refreshed
between blocks (untimed), as autovacuum keeps them on a database filled over days.
Reads ``DATABASE_URL`` (SQLite under a temporary folder when unset).

    python bench/intake.py [--messages 20000]

Last line: ``intake/floor ratio: 0.52``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402

BLOCK = 500  # messages per turn of intake, then as many floor inserts


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def make_messages(n: int, seed: int = 7):
    from channels.base import InboundMessage

    rng = random.Random(seed)
    citizens: list[tuple[str, str]] = []
    open_threads: list[tuple[str, str, dict]] = []
    out = []
    for i in range(n):
        roll = rng.random()
        if out and roll < 0.02:
            out.append(out[rng.randrange(len(out))])  # a replayed webhook
            continue
        if open_threads and roll < 0.22:
            channel, sender, keys = open_threads[rng.randrange(len(open_threads))]
        elif citizens and roll < 0.52:
            channel, sender = citizens[rng.randrange(len(citizens))]
            keys = {}
        else:
            channel = rng.choice(["sms", "sms", "email", "chat", "voice", "walkin"])
            sender = {
                "sms": f"+1555{2000000 + i:07d}", "voice": f"+1555{2000000 + i:07d}",
                "email": f"resident{i}@example.org", "chat": f"visitor-{i}",
                "walkin": f"+1555{2000000 + i:07d}",
            }[channel]
            keys = {}
            citizens.append((channel, sender))
        pid = f"{channel}-{i}"
        if channel == "email":
            pid = f"<m{i}@example.org>"
            keys = dict(keys) or {}
        if channel == "chat":
            keys = keys or {"chat_session": f"s-{sender}"}
        if channel == "walkin":
            keys = keys or {"walkin_visit": f"v-{i}"}
        msg = InboundMessage(channel=channel, provider_id=pid, sender=sender,
                             text=f"question number {i} about benefits", thread_keys=keys,
                             subject="Question" if channel == "email" else None)
        if channel == "email":
            open_threads.append((channel, sender, {"in_reply_to": pid}))
        elif channel in ("chat", "walkin"):
            open_threads.append((channel, sender, keys))
        else:
            open_threads.append((channel, sender, {}))
        if len(open_threads) > 2000:
            open_threads.pop(0)
        out.append(msg)
    return out


class Floor:
    """One bare INSERT + COMMIT per message through the same DBAPI driver."""

    def __init__(self, engine) -> None:
        self.raw = engine.raw_connection()
        self.cur = self.raw.cursor()
        self.cur.execute("DROP TABLE IF EXISTS bench_floor")
        if engine.dialect.name == "postgresql":
            self.cur.execute("CREATE TABLE bench_floor (id serial PRIMARY KEY, body text)")
            self.sql = "INSERT INTO bench_floor (body) VALUES (%s)"
        else:
            self.cur.execute("CREATE TABLE bench_floor (id integer PRIMARY KEY, body text)")
            self.sql = "INSERT INTO bench_floor (body) VALUES (?)"
        self.raw.commit()
        self.count = 0

    def analyze(self) -> None:
        """Refresh the planner's statistics, untimed. The run starts from empty tables and
        grows them faster than autovacuum looks (once a minute): the plans the database
        keeps for prepared statements would otherwise stay those it chose for a handful
        of rows (scans that grow with every table), which a system filled over days never
        runs on."""
        self.cur.execute("ANALYZE")
        self.raw.commit()
        self.run(1)  # the commit that flushes what ANALYZE wrote is not the floor's

    def run(self, n: int) -> list[float]:
        times = []
        for _ in range(n):
            self.count += 1
            t0 = time.perf_counter()
            self.cur.execute(self.sql, (f"question number {self.count} about benefits",))
            self.raw.commit()
            times.append(time.perf_counter() - t0)
        return times

    def close(self) -> None:
        self.cur.execute("DROP TABLE bench_floor")
        self.raw.commit()
        self.raw.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=20_000)
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL"):
        tmp = tempfile.mkdtemp(prefix="civicline-bench-")
        os.environ["DATABASE_URL"] = f"sqlite:///{tmp}/bench.sqlite3"
    os.environ.pop("REDIS_URL", None)  # intake in-process: embedded job queue

    from flask_migrate import upgrade

    from app import create_app
    from app.config import Config
    from app.extensions import db
    from app.services.intake import intake

    class BenchConfig(Config):
        SQLALCHEMY_DATABASE_URI = Config.SQLALCHEMY_DATABASE_URI
        EMBEDDED_WORKER = False
        REALTIME_DISABLED = False

    from app.config import _database_url

    BenchConfig.SQLALCHEMY_DATABASE_URI = _database_url()
    app = create_app(BenchConfig)
    logging_quiet()
    with app.app_context():
        engine = db.engine
        print(f"database: {engine.dialect.name}; messages: {args.messages}", flush=True)
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        upgrade(directory=str(Path(__file__).resolve().parent.parent / "migrations"))
        messages = make_messages(args.messages)
        runner = app.extensions["civicline_jobs"]
        floor = Floor(engine)
        times: list[float] = []
        ftimes: list[float] = []
        dupes = 0
        # Intake and the floor take turns, a block of each, so that both see the same
        # machine: on a shared host the speed of the disk and the CPU drifts within a run.
        for start in range(0, len(messages), BLOCK):
            for msg in messages[start:start + BLOCK]:
                t0 = time.perf_counter()
                result = intake(msg)
                times.append(time.perf_counter() - t0)
                dupes += result.duplicate
            runner._heap.clear()
            runner._ids.clear()  # follow-up jobs are not part of this measurement
            floor.analyze()
            ftimes += floor.run(len(messages[start:start + BLOCK]))
            if len(times) % 2000 == 0 or len(times) == len(messages):
                print(f"  {len(times)}/{len(messages)} messages (and as many floor inserts)",
                      flush=True)
        floor.close()
        # Both rates count the time of the measured calls alone, measured the same way.
        rate = len(times) / sum(times)
        frate = len(ftimes) / sum(ftimes)
        ms = 1000
        print(f"intake: {rate:,.0f} msgs/s, p50 {statistics.median(times) * ms:.2f} ms, "
              f"p99 {percentile(times, 0.99) * ms:.2f} ms, duplicates seen {dupes}")
        print(f"floor:  {frate:,.0f} msgs/s, p50 {statistics.median(ftimes) * ms:.2f} ms, "
              f"p99 {percentile(ftimes, 0.99) * ms:.2f} ms")
        print(f"intake/floor ratio: {rate / frate:.2f}")


def logging_quiet() -> None:
    import logging

    logging.getLogger().setLevel(logging.WARNING)


if __name__ == "__main__":
    main()
