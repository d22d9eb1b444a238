"""Supervisor metrics at production size, on PostgreSQL.

Loads 90 days of history with COPY: 200,000 tickets, 1,000,000 interactions, their work
items, survey answers and agents (``--scale 0.1`` for a tenth), plus a busy present: work
waiting and agents on contacts. Builds the ``metrics_hourly`` counters from that history
with the same event rules the live service applies one event at a time, then times the
supervisor's live snapshot and each report over the whole 90 days (20 runs each, p50 and
p99), beside their targets.

    DATABASE_URL=postgresql://postgres@127.0.0.1/civicline_bench \
        python bench/metrics.py [--scale 0.1]

The database's tables are emptied first. Last line:
``supervisor snapshot p99: 45 ms, slowest report: 0.6 s``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa  # noqa: E402

SNAPSHOT_TARGET_MS = 45.0
REPORT_TARGET_S = 0.6
RUNS = 20
DAYS = 90
CHANNELS = [("voice", 35), ("sms", 25), ("email", 20), ("chat", 15), ("walkin", 5)]
LANGUAGES = [("en", 70), ("es", 20), ("zh", 5), ("vi", 5)]
SEGMENTS = [("working_adult", 45), ("senior", 25), ("business", 10), ("student", 10), ("", 10)]
QUEUES = [("benefits", 60), ("passports", 120), ("taxes", 90), ("housing", 60),
          ("sanitation", 120), ("streets", 120), ("general", 60)]
HOUR_WEIGHTS = [1, 1, 1, 1, 1, 2, 4, 8, 12, 14, 14, 13, 12, 13, 13, 12, 10, 8, 6, 4, 3, 2, 1, 1]


def pick(rng: random.Random, table):
    values, weights = zip(*table, strict=True)
    return rng.choices(values, weights)[0]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def progress(label: str, done: int, total: int, started: float) -> None:
    rate = done / max(1e-9, time.perf_counter() - started)
    end = "\n" if done >= total else ""
    print(f"\r  {label}: {done:,}/{total:,} ({rate:,.0f}/s)", end=end, flush=True)


class Copier:
    """Rows for one table, spooled as CSV, then sent with one COPY (one COPY at a time per
    connection, so tables load in foreign-key order)."""

    def __init__(self, conn, table: str, columns: list[str], total: int):
        self.conn, self.table, self.columns, self.total = conn, table, columns, total
        self.rows = 0
        self.started = time.perf_counter()
        self.spool = tempfile.TemporaryFile("w+", newline="")
        self.writer = csv.writer(self.spool)

    def write(self, row: tuple) -> None:
        self.writer.writerow(row)
        self.rows += 1
        if self.rows % 100_000 == 0:
            progress(f"generate {self.table}", self.rows, self.total, self.started)

    def close(self) -> None:
        self.spool.seek(0)
        started = time.perf_counter()
        sent = 0
        with self.conn.cursor() as cur, cur.copy(
                f"COPY {self.table} ({', '.join(self.columns)}) FROM STDIN WITH (FORMAT csv)"
        ) as copy:
            while chunk := self.spool.read(1 << 20):
                copy.write(chunk)
                sent += chunk.count("\n")
                progress(f"COPY {self.table}", min(sent, self.rows), self.rows, started)
        progress(f"COPY {self.table}", self.rows, self.rows, started)
        self.spool.close()


def load(conn, scale: float, seed: int = 11) -> dict:
    rng = random.Random(seed)
    now = datetime.utcnow().replace(microsecond=0)
    start = now - timedelta(days=DAYS)
    n_tickets = int(200_000 * scale)
    n_interactions = int(1_000_000 * scale)
    n_citizens = n_tickets // 2
    n_agents = 60
    empty = json.dumps([])
    obj = json.dumps({})

    with conn.cursor() as cur:
        for i, (code, sla) in enumerate(QUEUES, start=1):
            cur.execute(
                "INSERT INTO queues (id, code, name, department, required_skills, channels,"
                " sla_target_seconds, business_hours, holidays, overflow, max_wait_seconds,"
                " active, created_at) VALUES (%s,%s,%s,'Bench',%s,%s,%s,'{}','[]','{}',600,"
                " true, %s)", (i, code, code.title(), json.dumps([code]),
                               json.dumps([c for c, _ in CHANNELS]), sla, start))
        presences = ["available"] * 10 + ["busy"] * 30 + ["wrap_up"] * 5 + ["away"] * 5
        presences += ["offline"] * (n_agents - len(presences))
        for i in range(1, n_agents + 1):
            cur.execute(
                "INSERT INTO users (id, email, name, password_hash, role, active, token_version,"
                " capacity, presence, presence_since, missed_offers, created_at)"
                " VALUES (%s,%s,%s,'x','agent',true,1,'{}',%s,%s,0,%s)",
                (i, f"agent{i}@bench.example", f"Agent {i}", presences[i - 1],
                 now - timedelta(minutes=rng.randint(1, 240)), start))

    citizens = Copier(conn, "citizens", ["id", "kind", "display_name", "language", "segment",
                                         "created_at", "updated_at"], n_citizens)
    citizen_dims = [None]
    for i in range(1, n_citizens + 1):
        language, segment = pick(rng, LANGUAGES), pick(rng, SEGMENTS)
        citizen_dims.append(language)
        citizens.write((i, "individual", f"Resident {i}", language, segment or None, start, start))
    citizens.close()

    # Spread tickets over 90 days with a working-day hour profile.
    hours = [start + timedelta(hours=h) for h in range(DAYS * 24)]
    weights = [HOUR_WEIGHTS[h.hour] * (0.4 if h.weekday() >= 5 else 1.0) for h in hours]
    counts = [5] * n_tickets
    for i in range(0, n_tickets - 1, 2):
        d = rng.randint(0, 3)
        counts[i] += d
        counts[i + 1] -= d
    counts[-1] += n_interactions - sum(counts)

    tickets = Copier(conn, "tickets", [
        "id", "citizen_id", "subject", "queue_id", "status", "priority", "channel", "language",
        "assigned_agent_id", "sla_due_at", "first_response_at", "resolved_at", "closed_at",
        "last_activity_at", "updated_at", "self_served", "satisfaction", "created_at"], n_tickets)
    interactions = Copier(conn, "interactions", [
        "ticket_id", "citizen_id", "channel", "direction", "author_kind", "text", "attachments",
        "metadata", "delivery_status", "created_at"], n_interactions)
    items = Copier(conn, "work_items", [
        "ticket_id", "queue_id", "channel", "language", "priority", "commitments", "status",
        "arrived_at", "assigned_at", "ended_at", "agent_id", "outcome", "sla_breached",
        "overflow_stage", "created_at"], int(n_tickets * 0.8))
    surveys = Copier(conn, "survey_responses", ["ticket_id", "channel", "score", "created_at"],
                     int(n_tickets * 0.2))
    created_hours = rng.choices(hours, weights, k=n_tickets)
    waiting_left, assigned_left = 150, 90
    for tid in range(1, n_tickets + 1):
        created = created_hours[tid - 1] + timedelta(seconds=rng.randint(0, 3599))
        channel = pick(rng, CHANNELS)
        citizen = rng.randint(1, n_citizens)
        queue = rng.randint(1, len(QUEUES))
        sla = QUEUES[queue - 1][1]
        live = waiting_left > 0 or assigned_left > 0
        if live:  # the present: people waiting now and agents on contacts
            created = now - timedelta(seconds=rng.randint(5, 900))
        escalated = live or rng.random() < 0.75
        wait = int(rng.expovariate(1 / (sla * 0.8)))
        assigned_at = created + timedelta(seconds=wait)
        handle = int(rng.expovariate(1 / 420)) + 30
        ended = assigned_at + timedelta(seconds=handle)
        resolved = None if live else ended + timedelta(minutes=rng.randint(0, 600))
        status = "open" if live else ("closed" if rng.random() < 0.3 else "resolved")
        agent = rng.randint(1, 45)
        first_response = assigned_at + timedelta(seconds=30) if escalated else None
        satisfaction = None
        if not live and rng.random() < 0.2:
            satisfaction = rng.choices([1, 2, 3, 4, 5], [5, 8, 17, 35, 35])[0]
            surveys.write((tid, channel, satisfaction, resolved + timedelta(minutes=5)))
        item_status = None
        if escalated:
            if waiting_left > 0:
                item_status, waiting_left = "waiting", waiting_left - 1
            elif assigned_left > 0:
                item_status, assigned_left = "assigned", assigned_left - 1
            else:
                item_status = rng.choices(["completed", "abandoned", "scheduled"], [90, 7, 3])[0]
            answered = item_status in ("assigned", "completed")
            items.write((
                tid, queue, channel, citizen_dims[citizen], 3, empty, item_status, created,
                assigned_at if answered else None,
                ended if item_status == "completed" else (
                    created + timedelta(seconds=wait) if item_status != "assigned" else None),
                agent if answered else None,
                {"completed": "resolved", "abandoned": "abandoned",
                 "scheduled": "callback"}.get(item_status), False, 0, created))
        tickets.write((
            tid, citizen, "Bench case", queue, status, 3, channel, citizen_dims[citizen],
            agent if escalated and item_status != "waiting" else None,
            created + timedelta(hours=24), first_response, resolved,
            resolved if status == "closed" else None, resolved or created, resolved or created,
            not escalated, satisfaction, created))
        moment = created
        for k in range(counts[tid - 1]):
            inbound = k == 0 or rng.random() < 0.5
            interactions.write((
                tid, citizen, channel, "inbound" if inbound else "outbound",
                "citizen" if inbound else "agent", "Bench message", empty, obj,
                None if inbound else "delivered", moment))
            moment += timedelta(seconds=rng.randint(20, 900) if not live else 1)
    for copier in (tickets, interactions, items, surveys):
        copier.close()
    with conn.cursor() as cur:
        for table in ("queues", "users", "citizens", "tickets", "interactions", "work_items",
                      "survey_responses"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                        f" (SELECT max(id) FROM {table}))")
    conn.commit()
    return {"tickets": n_tickets, "interactions": n_interactions}


# The counters the live service would have written, event by event, for this history.
BACKFILL = """
WITH dims AS (
  SELECT t.id, coalesce(q.code, '') AS queue, coalesce(t.language, '') AS language,
         coalesce(c.segment, '') AS segment, t.channel, t.created_at, t.resolved_at,
         t.first_response_at, t.status, t.self_served
  FROM tickets t JOIN citizens c ON c.id = t.citizen_id LEFT JOIN queues q ON q.id = t.queue_id
), events AS (
  SELECT date_trunc('hour', i.created_at) AS hour, d.queue, i.channel, d.language, d.segment,
         (i.direction = 'inbound')::int AS contacts, (i.direction = 'outbound')::int AS outbound,
         0 AS tickets, 0 AS escalated, 0 AS offered, 0 AS answered, 0 AS answered_in_sla,
         0 AS wait_sum, 0 AS abandoned, 0 AS abandoned_in_sla, 0 AS callbacks, 0 AS handled,
         0 AS handle_sum, 0 AS resolved, 0 AS resolved_first_contact, 0 AS resolution_sum,
         0 AS surveys, 0 AS survey_points
  FROM interactions i JOIN dims d ON d.id = i.ticket_id WHERE i.channel <> 'note'
  UNION ALL
  SELECT date_trunc('hour', d.created_at), d.queue, d.channel, d.language, d.segment,
         0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 FROM dims d
  UNION ALL
  SELECT date_trunc('hour', w.arrived_at), d.queue, w.channel, d.language, d.segment,
         0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
  FROM work_items w JOIN dims d ON d.id = w.ticket_id
  UNION ALL
  SELECT date_trunc('hour', w.assigned_at), d.queue, w.channel, d.language, d.segment,
         0, 0, 0, 0, 0, 1,
         (extract(epoch FROM w.assigned_at - w.arrived_at) <= q.sla_target_seconds)::int,
         extract(epoch FROM w.assigned_at - w.arrived_at)::bigint, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0
  FROM work_items w JOIN dims d ON d.id = w.ticket_id JOIN queues q ON q.id = w.queue_id
  WHERE w.assigned_at IS NOT NULL
  UNION ALL
  SELECT date_trunc('hour', w.ended_at), d.queue, w.channel, d.language, d.segment,
         0, 0, 0, 0, 0, 0, 0, 0, (w.status = 'abandoned')::int,
         (w.status = 'abandoned' AND extract(epoch FROM w.ended_at - w.arrived_at)
            <= q.sla_target_seconds)::int,
         (w.status = 'scheduled')::int, (w.assigned_at IS NOT NULL)::int,
         coalesce(extract(epoch FROM w.ended_at - w.assigned_at), 0)::bigint, 0, 0, 0, 0, 0
  FROM work_items w JOIN dims d ON d.id = w.ticket_id JOIN queues q ON q.id = w.queue_id
  WHERE w.ended_at IS NOT NULL
  UNION ALL
  SELECT date_trunc('hour', d.resolved_at), d.queue, d.channel, d.language, d.segment,
         0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
         (d.first_response_at IS NULL OR NOT EXISTS (
            SELECT 1 FROM interactions i WHERE i.ticket_id = d.id AND i.direction = 'inbound'
              AND i.created_at > d.first_response_at + CASE WHEN d.channel IN
                ('voice', 'chat', 'walkin') THEN interval '30 minutes' ELSE interval '0' END
         ))::int,
         extract(epoch FROM d.resolved_at - d.created_at)::bigint, 0, 0
  FROM dims d WHERE d.resolved_at IS NOT NULL
  UNION ALL
  SELECT date_trunc('hour', s.created_at), d.queue, d.channel, d.language, d.segment,
         0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, (s.score - 1) * 25
  FROM survey_responses s JOIN dims d ON d.id = s.ticket_id
)
INSERT INTO metrics_hourly (hour, queue, channel, language, segment, contacts, outbound,
  tickets, escalated, offered, answered, answered_in_sla, wait_sum, abandoned,
  abandoned_in_sla, callbacks, handled, handle_sum, resolved, resolved_first_contact,
  resolution_sum, surveys, survey_points, kb_queries, kb_self_served)
SELECT hour, queue, channel, language, segment, sum(contacts), sum(outbound), sum(tickets),
  sum(escalated), sum(offered), sum(answered), sum(answered_in_sla), sum(wait_sum),
  sum(abandoned), sum(abandoned_in_sla), sum(callbacks), sum(handled), sum(handle_sum),
  sum(resolved), sum(resolved_first_contact), sum(resolution_sum), sum(surveys),
  sum(survey_points), 0, 0
FROM events GROUP BY hour, queue, channel, language, segment
"""


def timed(fn, runs: int = RUNS) -> tuple[float, float]:
    fn()  # warm the plan cache and the buffer pool, as a running dashboard has
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples), percentile(samples, 0.99)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="fraction of 200,000 tickets / 1,000,000 interactions")
    parser.add_argument("--reuse", action="store_true",
                        help="time the data a previous run loaded instead of loading again")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgresql", "postgres")):
        sys.exit("bench/metrics.py needs DATABASE_URL pointing at PostgreSQL")

    from flask_migrate import upgrade

    from app import create_app
    from app.config import Config
    from app.extensions import db
    from app.services import metrics_service
    from tests.conftest import _clean

    class BenchConfig(Config):
        REDIS_URL = None
        EMBEDDED_WORKER = False
        REALTIME_DISABLED = True

    app = create_app(BenchConfig)
    with app.app_context():
        upgrade(directory=str(Path(__file__).resolve().parent.parent / "migrations"))
        if args.reuse:
            sizes = {"tickets": db.session.scalar(sa.text("SELECT count(*) FROM tickets")),
                     "interactions": db.session.scalar(
                         sa.text("SELECT count(*) FROM interactions"))}
            started = time.perf_counter()
        else:
            _clean(db)
            print(f"Loading {DAYS} days of history (scale {args.scale}) with COPY…")
            raw = db.engine.raw_connection()
            started = time.perf_counter()
            sizes = load(raw.driver_connection, args.scale)
            raw.close()
            print(f"  loaded in {time.perf_counter() - started:.1f} s")
            started = time.perf_counter()
            with db.engine.begin() as conn:
                conn.execute(sa.text(BACKFILL))
                conn.execute(sa.text("ANALYZE"))
        rows = db.session.scalar(sa.select(sa.func.count()).select_from(
            metrics_service.MetricsHourly))
        built = "reused" if args.reuse else f"built in {time.perf_counter() - started:.1f} s"
        print(f"  metrics_hourly: {rows:,} counter rows ({built})")
        until = metrics_service.hour_of(metrics_service.utcnow()) + timedelta(hours=1)
        since = until - timedelta(days=DAYS)

        def snapshot():
            metrics_service.live_snapshot()
            db.session.rollback()

        print(f"\n{sizes['tickets']:,} tickets, {sizes['interactions']:,} interactions; "
              f"{RUNS} runs each, after one warm-up")
        print(f"{'what':<34}{'p50':>10}{'p99':>10}{'target':>10}{'p99/target':>12}")
        p50, p99 = timed(snapshot)
        snap_p99_ms = p99 * 1000
        print(f"{'live snapshot':<34}{p50 * 1000:>8.1f}ms{p99 * 1000:>8.1f}ms"
              f"{SNAPSHOT_TARGET_MS:>8.0f}ms{snap_p99_ms / SNAPSHOT_TARGET_MS:>12.2f}")
        slowest = 0.0
        for name in metrics_service.REPORTS:
            def run(name=name):
                metrics_service.report(name, since, until)
                db.session.rollback()

            p50, p99 = timed(run)
            slowest = max(slowest, p99)
            print(f"{'report ' + name + ' (90 days)':<34}{p50:>9.3f}s{p99:>9.3f}s"
                  f"{REPORT_TARGET_S:>9.1f}s{p99 / REPORT_TARGET_S:>12.2f}")
        hour = metrics_service.hour_of(metrics_service.utcnow())
        key = (hour, "benefits", "sms", "en", "working_adult")

        def one_event():
            with db.engine.begin() as conn:
                metrics_service.apply(conn, {key: {"answered": 1, "wait_sum": 30,
                                                   "answered_in_sla": 1}})

        p50, p99 = timed(one_event, runs=200)
        print(f"{'counter upsert (own transaction)':<34}{p50 * 1000:>8.2f}ms{p99 * 1000:>8.2f}ms")
        snap = metrics_service.live_snapshot()
        print(f"\nnow: {snap['totals']['waiting']} waiting, "
              f"{sum(len(a['work']) for a in snap['agents'])} on contacts, "
              f"occupancy {snap['occupancy_pct']}%")
        sink = io.StringIO()
        print(json.dumps(metrics_service.report("fcr", since, until)["total"]), file=sink)
        print("fcr over 90 days:", sink.getvalue().strip())
    print(f"supervisor snapshot p99: {snap_p99_ms:.0f} ms, slowest report: {slowest:.1f} s")


if __name__ == "__main__":
    main()
