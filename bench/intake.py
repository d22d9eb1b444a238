"""Intake throughput against the floor that durability sets.

Pushes N InboundMessages (mixed channels; 30% from returning citizens, 20% replies into
open tickets, 2% duplicates) through the intake service in-process and, in the same run
and with the same driver, one bare ``INSERT ...; COMMIT`` per message: blocks of 500 of
each in turn, so both meet the same machine, with the planner's statistics refreshed
between blocks (untimed), as autovacuum keeps them on a database filled over days.
Reads ``DATABASE_URL`` (SQLite under a temporary folder when unset).

On SQLite it also prints what intake's own statements cost with no Python of ours around
them: every statement and commit that intake ran in a block is recorded (SQLAlchemy's
cursor events) and run again, message by message, on the bare driver against a copy of
the database kept in step. That is the least any code writing these rows with this
driver can spend, and its ratio to the floor is the most intake could reach on this
database. (On PostgreSQL intake already runs its statements on the driver directly.)

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


class Replay:
    """Intake's statements, recorded as it runs them, run again on the bare driver (see
    the module docstring). The copy starts as the migrated, empty database and replays
    every message in order, so it holds the same rows, ids included, as the original."""

    def __init__(self, engine, path: str) -> None:
        import sqlite3

        with engine.connect() as conn:
            conn.exec_driver_sql(f"VACUUM INTO '{path}'")
        self.shadow = sa.create_engine(f"sqlite:///{path}", poolclass=sa.pool.NullPool)
        self.raw = self.shadow.raw_connection()  # the app's settings (WAL, FULL sync)
        self.cur = self.raw.cursor()
        self.errors = (sqlite3.IntegrityError,)
        self.log: list[tuple] = []
        self.messages: list[list[tuple]] = []
        self.failed = 0
        sa.event.listen(engine, "before_cursor_execute", self._statement)
        sa.event.listen(engine, "commit", self._commit)
        sa.event.listen(engine, "rollback", self._rollback)
        sa.event.listen(engine, "handle_error", self._error)

    def _statement(self, _conn, _cursor, sql, params, _context, many) -> None:
        self.log.append(["executemany" if many else "execute", sql, params, False])

    def _commit(self, _conn) -> None:
        self.log.append(["commit"])

    def _rollback(self, _conn) -> None:
        self.log.append(["rollback"])

    def _error(self, _context) -> None:
        if self.log and self.log[-1][0].startswith("execute"):
            self.log[-1][3] = True  # it failed in intake: it fails here too

    def end_message(self) -> None:
        self.messages.append(self.log)
        self.log = []

    def run(self) -> list[float]:
        """Replay the recorded messages, each timed whole, and forget them."""
        times = []
        for steps in self.messages:
            t0 = time.perf_counter()
            for step in steps:
                if step[0] == "commit":
                    self.raw.commit()
                elif step[0] == "rollback":
                    self.raw.rollback()
                else:
                    kind, sql, params, failing = step
                    try:
                        getattr(self.cur, kind)(sql, params)
                    except self.errors:
                        if not failing:
                            raise
                        self.failed += 1
            self.raw.rollback()  # as the pool resets a connection handed back
            times.append(time.perf_counter() - t0)
        self.messages = []
        return times

    def counts(self, engine) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """Rows per table in the original and in the copy: equal when the replay wrote
        what intake wrote."""
        sql = ("SELECT (SELECT count(*) FROM tickets), (SELECT count(*) FROM interactions),"
               " (SELECT count(*) FROM citizens), (SELECT max(id) FROM interactions)")
        with engine.connect() as conn:
            original = tuple(conn.exec_driver_sql(sql).one())
        return original, tuple(self.cur.execute(sql).fetchone())

    def close(self) -> None:
        self.raw.close()
        self.shadow.dispose()


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
        replay = None
        if engine.dialect.name == "sqlite":
            replay = Replay(engine, str(Path(engine.url.database).with_suffix(".copy")))
        times: list[float] = []
        ftimes: list[float] = []
        rtimes: list[float] = []
        dupes = 0
        # Intake and the floor take turns, a block of each, so that both see the same
        # machine: on a shared host the speed of the disk and the CPU drifts within a run.
        for start in range(0, len(messages), BLOCK):
            for msg in messages[start:start + BLOCK]:
                t0 = time.perf_counter()
                result = intake(msg)
                times.append(time.perf_counter() - t0)
                dupes += result.duplicate
                if replay is not None:
                    replay.end_message()
            runner._heap.clear()
            runner._ids.clear()  # follow-up jobs are not part of this measurement
            floor.analyze()
            ftimes += floor.run(len(messages[start:start + BLOCK]))
            if replay is not None:
                rtimes += replay.run()
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
        if replay is not None:
            original, copy = replay.counts(engine)
            replay.close()
            rrate = len(rtimes) / sum(rtimes)
            print(f"intake's statements alone: {rrate:,.0f} msgs/s, "
                  f"p50 {statistics.median(rtimes) * ms:.2f} ms, "
                  f"p99 {percentile(rtimes, 0.99) * ms:.2f} ms, "
                  f"ratio to the floor {rrate / frate:.2f} (the most intake can reach here)")
            if original != copy:
                print(f"  the replay went astray: tickets, interactions, citizens and last id "
                      f"{copy} against {original}", file=sys.stderr)
        print(f"intake/floor ratio: {rate / frate:.2f}")


def logging_quiet() -> None:
    import logging

    logging.getLogger().setLevel(logging.WARNING)


if __name__ == "__main__":
    main()
