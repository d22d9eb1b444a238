"""Mixed load on the production setup from the README, on loopback.

Starts ``--web`` (2) web processes with the Procfile's command
(``gunicorn -k gevent -w 1 ... -b 127.0.0.1:PORT wsgi:app``) and
``--workers`` (2) with the Procfile's worker command
(``flask --app wsgi worker --queues inbound,outbound,default,scheduled``) on
``DATABASE_URL`` (PostgreSQL; its schema is dropped and migrated first: point it at a
scratch database) and ``REDIS_URL`` (that Redis database is flushed). Client threads
are spread over the web processes, as a load balancer would. From this separate
process it sends, open-loop at ``--rate`` requests per second in total for ``--seconds``:

* SMS webhooks signed as Twilio signs them (``channels.twilio.sign``), 40%;
* email webhooks (``message/rfc822`` with the bearer secret), 15%;
* chat messages from residents connected to ``/chat`` over WebSocket, 10%;
* agent replies through ``POST /api/v1/tickets/<ref>/reply``, 15%;
* supervisor refreshes through ``GET /api/v1/supervisor/snapshot``, 20%.

Outbound messages go to the simulator outbox (no provider is called). The same load runs
first for ``--warmup`` (10) seconds, reported on its own line and left out of the
figures. It prints progress with each 5 s window's p50 and p99, then throughput, p50 and
p99 per kind and errors, the CPU each part used per request (web, workers, PostgreSQL,
Redis, this client; the machine's idle time and the time its host stole), how long
after the load the workers had emptied the queues, what was sent against what is
stored, how many new work items still waited for routing as the load ended, and how
long after the agent sent them replies left. The scratch database gets the README's
``wal_compression``.
Last line: ``load: lost 0, duplicated 0, webhook p99 40 ms``.

    DATABASE_URL=postgresql://... REDIS_URL=redis://127.0.0.1:6379/7 python bench/load.py
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import queue
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import uuid
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procfile import wait_until_up, web_command, worker_command  # noqa: E402

SECRET_KEY = "bench-load-secret-key-0123456789abcdef"
EMAIL_SECRET = "bench-email-secret"
TWILIO_SID, TWILIO_TOKEN = "AC" + "2" * 32, "bench-twilio-token"
PUBLIC_BASE_URL = "http://bench.civicline.test"
PASSWORD = "bench-password-123"
MIX = (("sms", 0.40), ("email", 0.15), ("chat", 0.10), ("reply", 0.15), ("supervisor", 0.20))
CHAT_RESIDENTS = 40  # each sends at most 10 messages per 10 s (the widget's limit)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TWILIO_", "SMTP_"))}
    env.update({
        "SECRET_KEY": SECRET_KEY, "EMAIL_WEBHOOK_SECRET": EMAIL_SECRET,
        "TWILIO_ACCOUNT_SID": TWILIO_SID, "TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "TWILIO_SIMULATOR": "1", "PUBLIC_BASE_URL": PUBLIC_BASE_URL,
        "SIMULATOR_ENABLED": "0", "PYTHONPATH": str(ROOT),
        # All load comes from 127.0.0.1; per-address webhook limits would cut it.
        "RATELIMIT_TWILIO": "1000000 per minute",
        "RATELIMIT_EMAIL_WEBHOOK": "1000000 per minute",
    })
    return env


def waiting_for_routing() -> str:
    """New work items no routing step has taken in yet (``queued_at`` is set by the step
    that takes an item in), called as the load ends: work that agents cannot be offered
    because the routing job waits behind other jobs."""
    import sqlalchemy as sa

    from app.config import _database_url

    engine = sa.create_engine(_database_url())
    with engine.connect() as conn:
        total, unrouted = conn.execute(sa.text(
            "SELECT count(*), count(*) - count(queued_at) FROM work_items")).one()
    engine.dispose()
    return f"work items: {total}, {unrouted} not yet routed as the load ended"


def replies_sent() -> str:
    """How long after the agent sent them their replies left (the outbox's ``sent_at``),
    warm-up included: a reply's delivery job waiting behind other jobs shows here."""
    import sqlalchemy as sa

    from app.config import _database_url

    engine = sa.create_engine(_database_url())
    with engine.connect() as conn:
        rows = conn.execute(sa.text(
            "SELECT extract(epoch FROM o.sent_at - i.created_at) FROM outbox o "
            "JOIN interactions i ON i.id = o.interaction_id "
            "WHERE i.author_kind = 'agent' AND o.sent_at IS NOT NULL")).scalars().all()
    engine.dispose()
    done = [float(r) for r in rows]
    return (f"replies sent: {len(done)}, p50 {pct(done, 50):.1f} s, p99 {pct(done, 99):.1f} s"
            " after the agent sent them")


def prepare_database() -> None:
    """Drop and migrate the scratch schema, flush Redis, seed a queue and two users."""
    os.environ.update({"SECRET_KEY": SECRET_KEY})
    import logging

    import sqlalchemy as sa
    from flask_migrate import upgrade

    from app import create_app
    from app.config import Config, _database_url
    from app.extensions import db, redis_store
    from app.models import Queue, User

    class BenchConfig(Config):
        SQLALCHEMY_DATABASE_URI = _database_url()
        SECRET_KEY = globals()["SECRET_KEY"]
        EMBEDDED_WORKER = False

    app = create_app(BenchConfig)
    logging.getLogger().setLevel(logging.WARNING)
    with app.app_context():
        with db.engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        compress_wal()
        upgrade(directory=str(ROOT / "migrations"))
        redis_store.client.flushdb()
        db.session.add(Queue(code="general", name="General", business_hours={}, holidays=[],
                             channels=["sms", "email", "chat"]))
        for email, role in (("agent@bench.example", "agent"),
                            ("supervisor@bench.example", "supervisor")):
            user = User(email=email, name=role, role=role, password_hash="")
            user.set_password(PASSWORD)
            db.session.add(user)
        db.session.commit()
        db.engine.dispose()


def compress_wal() -> None:
    """The README's PostgreSQL setting that a database can carry by itself:
    ``wal_compression`` (lz4 where the server has it). After each checkpoint, the first
    change to every page writes the whole page to the write-ahead log; compressed, that
    burst no longer stalls commits for seconds (a checkpoint forced during this load put
    the next 5 s window's p99 at 369 ms without, 99 ms with). Needs a superuser; without
    one the server's own setting stays, and this says so."""
    import sqlalchemy as sa

    from app.extensions import db

    with db.engine.connect() as conn:
        name = conn.execute(sa.text("SELECT current_database()")).scalar()
        conn.rollback()
        error = None
        for method in ("lz4", "on"):
            try:
                with conn.begin():
                    conn.execute(sa.text(
                        f'ALTER DATABASE "{name}" SET wal_compression = \'{method}\''))
            except sa.exc.DBAPIError as exc:
                error = exc.orig
                continue
            print(f"load: wal_compression = {method} on database {name}", flush=True)
            return
    print(f"load: could not set wal_compression ({error}); the server's setting stays",
          flush=True)


def start(cmd: list[str], log: Path) -> subprocess.Popen:
    out = open(log, "ab")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(cmd, cwd=ROOT, env=server_env(), stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)
    out.close()
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def cpu_seconds(groups: dict[str, list[int]]) -> dict[str, float]:
    """CPU time (user + system) so far of each named set of process groups (a process
    started here leads its own group, children included), of every PostgreSQL and Redis
    server process, and of this client; and the machine's idle time and the time its
    host stole (a virtual machine's neighbours: everything runs slower then). Linux's
    /proc; empty where there is none. A
    process that exits meanwhile takes its time with it (a PostgreSQL connection closed
    during the load: few, with the pool's defaults)."""
    tick = os.sysconf("SC_CLK_TCK")
    owner = {pgid: name for name, pgids in groups.items() for pgid in pgids}
    servers = {"postgres": "postgres", "redis-server": "redis"}
    totals = dict.fromkeys([*groups, *servers.values()], 0.0)
    try:
        pids = [pid for pid in os.listdir("/proc") if pid.isdigit()]
    except OSError:
        return {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:  # gone meanwhile
            continue
        command = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        name = owner.get(int(fields[2])) or servers.get(command)
        if name:
            totals[name] += (int(fields[11]) + int(fields[12])) / tick
    usage = os.times()
    totals["client"] = usage.user + usage.system
    try:  # the whole machine: cores left idle, and time the host gave to other machines
        with open("/proc/stat") as f:
            cpu = f.readline().split()
        totals["idle"] = (int(cpu[4]) + int(cpu[5])) / tick
        totals["stolen"] = int(cpu[8]) / tick
    except (OSError, IndexError, ValueError):  # no /proc/stat: these two are left out
        pass
    return totals


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.error_samples: list[str] = []
        self.window: list[float] = []  # latencies answered since the last progress line

    def record(self, kind: str, seconds: float, ok: bool, detail: str = "") -> None:
        with self.lock:
            if ok:
                self.latency[kind].append(seconds)
                self.window.append(seconds)
            else:
                self.errors[kind] += 1
                if len(self.error_samples) < 5:
                    self.error_samples.append(f"{kind}: {detail[:200].strip()}")

    def take_window(self) -> list[float]:
        with self.lock:
            window, self.window = self.window, []
        return window

    def total(self) -> int:
        with self.lock:
            return sum(map(len, self.latency.values())) + sum(self.errors.values())


def pct(values: list[float], p: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


class Response:
    """What the server answered: status and body."""

    def __init__(self, status: int, body: bytes) -> None:
        self.status_code = status
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)


class Http:
    """One keep-alive HTTP/1.1 connection to one web process, on ``http.client``.

    The client shares the machine's two cores with the servers it measures, so it is kept
    lean: ``requests`` cost about twice as much CPU per call. A request that fails is
    not sent again: it counts as an error (one sent as gunicorn closes an idle
    connection included, which the README's load-balancer advice is about)."""

    def __init__(self, base: str) -> None:
        parts = urllib.parse.urlsplit(base)
        self.host, self.port = parts.hostname, parts.port
        self.conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, *, data=None, json_body=None,
                headers: dict | None = None, timeout: float = 30) -> Response:
        headers = dict(headers or {})
        body = data
        if json_body is not None:
            body = json.dumps(json_body).encode()
            headers["Content-Type"] = "application/json"
        elif isinstance(data, dict):
            body = urllib.parse.urlencode(data).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        if self.conn is None:
            self.conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        try:
            self.conn.request(method, path, body=body, headers=headers)
            response = self.conn.getresponse()
            answer = Response(response.status, response.read())
        except BaseException:
            self.conn.close()
            self.conn = None
            raise
        if response.will_close:
            self.conn.close()
            self.conn = None
        return answer

    def post(self, path: str, *, data=None, json=None, headers=None, timeout=30) -> Response:
        return self.request("POST", path, data=data, json_body=json, headers=headers,
                            timeout=timeout)

    def get(self, path: str, *, headers=None, timeout=30) -> Response:
        return self.request("GET", path, headers=headers, timeout=timeout)


class Load:
    """The traffic: what to send, and what was accepted (to compare with the database)."""

    def __init__(self, bases: list[str], stats: Stats) -> None:
        self.bases = bases
        self.base = bases[0]
        self.turn = 0
        self.stats = stats
        self.local = threading.local()
        self.sent = {"sms": [], "email": [], "chat": [], "reply": []}
        self.lock = threading.Lock()
        self.refs: list[str] = []
        self.agent = self.supervisor = ""
        self.chats: queue.Queue = queue.Queue()
        self.dropped = 0

    def session(self) -> Http:
        """This client thread's connection to its web process (threads are spread over
        them, as a load balancer would)."""
        if not hasattr(self.local, "session"):
            with self.lock:
                base = self.bases[self.turn % len(self.bases)]
                self.turn += 1
            self.local.session = Http(base)
        return self.local.session

    def first(self) -> Http:
        """A connection to the first web process (log-ins and ticket look-ups)."""
        if not hasattr(self.local, "first"):
            self.local.first = Http(self.base)
        return self.local.first

    def token(self, email: str) -> str:
        response = self.first().post("/api/v1/auth/token", timeout=30,
                                       json={"email": email, "password": PASSWORD})
        if response.status_code != 200:
            sys.exit(f"load: could not log in as {email}: HTTP {response.status_code}")
        return response.json()["token"]

    def accepted(self, kind: str, key) -> None:
        with self.lock:
            self.sent[kind].append(key)

    def sms(self) -> None:
        from channels import twilio as tw

        sid = "SM" + uuid.uuid4().hex
        form = {"MessageSid": sid, "AccountSid": TWILIO_SID, "To": "+15555550100",
                "From": f"+1555{random.randint(2000000, 2000999)}", "NumMedia": "0",
                "Body": random.choice(["When is my property tax due?", "trash pickup missed",
                                       "how do I renew my passport", "AGENT"])}
        signature = tw.sign(TWILIO_TOKEN, PUBLIC_BASE_URL + "/webhooks/twilio/sms", form)
        response = self.session().post("/webhooks/twilio/sms", data=form,
                                       headers={"X-Twilio-Signature": signature}, timeout=30)
        if response.status_code == 200:
            self.accepted("sms", sid)
        return response.status_code == 200, f"HTTP {response.status_code} {response.text}"

    def email(self):
        message_id = f"<{uuid.uuid4().hex}@residents.example>"
        raw = (f"From: resident{random.randint(1, 500)}@residents.example\r\n"
               f"To: help@civicline.example\r\nSubject: Missed trash pickup\r\n"
               f"Message-ID: {message_id}\r\nContent-Type: text/plain; charset=utf-8\r\n"
               f"\r\nOur bins were not emptied this week.\r\n").encode()
        response = self.session().post(
            "/webhooks/email", data=raw, timeout=30,
            headers={"Content-Type": "message/rfc822",
                     "Authorization": f"Bearer {EMAIL_SECRET}"})
        ok = response.status_code in (200, 202)
        if ok:
            self.accepted("email", message_id)
        return ok, f"HTTP {response.status_code} {response.text}"

    def chat(self):
        client = self.chats.get(timeout=30)
        try:
            ack = client.call("chat.message", {"text": "Is the pool open today?",
                                               "client_id": uuid.uuid4().hex},
                              namespace="/chat", timeout=30)
        finally:
            self.chats.put(client)
        ok = bool(ack and ack.get("ok"))
        if ok:
            self.accepted("chat", ack["message"]["id"])
        return ok, str(ack)

    def reply(self):
        with self.lock:
            ref = random.choice(self.refs) if self.refs else None
        if ref is None:
            return self.supervisor_refresh()
        response = self.session().post(
            f"/api/v1/tickets/{ref}/reply", timeout=30,
            json={"text": f"Thanks, we are looking into it ({uuid.uuid4().hex[:8]})."},
            headers={"Authorization": f"Bearer {self.agent}"})
        ok = response.status_code in (200, 201)
        if ok:
            self.accepted("reply", response.json().get("id"))
        # 400: the resident texted STOP, so the reply is refused by design.
        return ok or response.status_code == 400, f"HTTP {response.status_code} {response.text}"

    def supervisor_refresh(self):
        response = self.session().get("/api/v1/supervisor/snapshot", timeout=30,
                                      headers={"Authorization": f"Bearer {self.supervisor}"})
        return response.status_code == 200, f"HTTP {response.status_code} {response.text}"

    def refresh_refs(self) -> None:
        response = self.first().get("/api/v1/tickets?limit=100", timeout=30,
                                      headers={"Authorization": f"Bearer {self.supervisor}"})
        if response.status_code == 200:
            items = response.json().get("items", [])
            refs = [t["reference"] for t in items if t.get("channel") in ("sms", "email")]
            with self.lock:
                self.refs = refs or self.refs

    def run_one(self, kind: str, due: float | None = None) -> None:
        # Latency counts from when the request was due (open loop), so time spent waiting
        # for a free client thread while the server lags is not hidden.
        began = due if due is not None else time.perf_counter()
        try:
            action = {"sms": self.sms, "email": self.email, "chat": self.chat,
                      "reply": self.reply, "supervisor": self.supervisor_refresh}[kind]
            ok, detail = action()
        except Exception as exc:  # noqa: BLE001 - counted as an error of this kind
            ok, detail = False, repr(exc)
        self.stats.record(kind, time.perf_counter() - began, ok, detail)


def connect_chats(load: Load, count: int) -> list:
    import socketio

    clients = []
    for n in range(count):
        client = socketio.Client(reconnection=False)
        client.connect(load.bases[n % len(load.bases)], namespaces=["/chat"],
                       transports=["websocket"],
                       wait_timeout=30)
        state = client.call("chat.start", {"name": f"Resident {n}"}, namespace="/chat",
                            timeout=30)
        assert state and state.get("ok"), state
        clients.append(client)
        load.chats.put(client)
    return clients


def drive(load: Load, seconds: float, rate: float, threads: int) -> None:
    """Open-loop: requests are due at fixed times whatever the latency of earlier ones."""
    work: queue.Queue = queue.Queue()

    def worker() -> None:
        while True:
            item = work.get()
            if item is None:
                return
            load.run_one(*item)

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    kinds = [k for k, _ in MIX]
    weights = [w for _, w in MIX]
    began = time.monotonic()
    n = 0
    next_report = began + 5
    next_refs = began + 2
    while True:
        now = time.monotonic()
        if now - began >= seconds:
            break
        due = began + n / rate
        if due > now:
            time.sleep(min(due - now, 0.01))
            continue
        work.put((random.choices(kinds, weights)[0], time.perf_counter() - (now - due)))
        n += 1
        if now >= next_refs:
            threading.Thread(target=load.refresh_refs, daemon=True).start()
            next_refs = now + 5
        if now >= next_report:
            done = load.stats.total()
            errors = sum(load.stats.errors.values())
            window = load.stats.take_window()
            print(f"  {now - began:5.0f} s: {n} due, {done} answered, {errors} errors, "
                  f"backlog {work.qsize()}, p50 {pct(window, 50) * 1000:.0f} ms, "
                  f"p99 {pct(window, 99) * 1000:.0f} ms", flush=True)
            next_report = now + 5
    dropped = 0
    while True:  # what the server could not take within the period is not sent late
        try:
            work.get_nowait()
            dropped += 1
        except queue.Empty:
            break
    for _ in pool:
        work.put(None)
    for thread in pool:
        thread.join(60)
    load.dropped = dropped
    print(f"load: sent {n - dropped} of {n} due requests ({dropped} dropped: the servers "
          f"fell behind)", flush=True)


def drain(redis_url: str, timeout: float = 120) -> bool:
    import redis
    from rq import Queue
    from rq.registry import StartedJobRegistry

    connection = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = 0
        for name in ("inbound", "outbound", "default"):
            q = Queue(name, connection=connection)
            busy += q.count + len(StartedJobRegistry(queue=q))
        if not busy:
            return True
        time.sleep(1)
    return False


def compare(load: Load) -> tuple[int, int, dict[str, tuple[int, int]]]:
    """Lost and duplicated: accepted messages missing from, or twice in, the database."""
    import sqlalchemy as sa

    from app.config import _database_url

    engine = sa.create_engine(_database_url())
    lost = duplicated = 0
    per_kind: dict[str, tuple[int, int]] = {}
    with engine.connect() as conn:
        for kind, column in (("sms", "provider_id"), ("email", "provider_id"),
                             ("chat", "id"), ("reply", "id")):
            keys = [str(k) for k in load.sent[kind] if k is not None]
            direction = "outbound" if kind == "reply" else "inbound"
            channel = {"reply": None}.get(kind, kind)
            query = (f"SELECT {column}::text, count(*) FROM interactions "
                     f"WHERE direction = :direction"
                     + (" AND channel = :channel" if channel else "")
                     + f" GROUP BY {column}")
            rows = dict(conn.execute(sa.text(query),
                                     {"direction": direction, "channel": channel}).all())
            stored = [k for k in keys if k in rows]
            lost += len(keys) - len(stored)
            duplicated += sum(rows[k] - 1 for k in stored)
            per_kind[kind] = (len(keys), len(stored))
        if load.sent["reply"]:
            ids = [int(i) for i in load.sent["reply"] if i is not None]
            outbox = dict(conn.execute(sa.text(
                "SELECT interaction_id, count(*) FROM outbox WHERE interaction_id = ANY(:ids)"
                " GROUP BY interaction_id"), {"ids": ids}).all())
            lost += sum(1 for i in ids if i not in outbox)
            duplicated += sum(c - 1 for c in outbox.values())
    engine.dispose()
    return lost, duplicated, per_kind


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--rate", type=float, default=200, help="requests per second")
    parser.add_argument("--warmup", type=float, default=10,
                        help="seconds of the same load first, reported apart (0: none)")
    parser.add_argument("--threads", type=int, default=64, help="client threads")
    parser.add_argument("--web", type=int, default=2, help="gunicorn processes")
    parser.add_argument("--workers", type=int, default=2,
                        help="flask worker processes (the README runs two)")
    args = parser.parse_args()
    if (min(args.web, args.workers, args.threads) < 1 or args.rate <= 0 or args.seconds <= 0
            or args.warmup < 0):
        sys.exit("--web, --workers and --threads take 1 or more; --rate and --seconds more "
                 "than 0; --warmup 0 or more")
    if not os.environ.get("DATABASE_URL", "").startswith(("postgresql", "postgres")):
        sys.exit("set DATABASE_URL to a scratch PostgreSQL database (its schema is dropped)")
    if not os.environ.get("REDIS_URL"):
        sys.exit("set REDIS_URL (that Redis database is flushed)")
    return args


def main() -> int:
    args = parse_args()
    print("load: preparing the database", flush=True)
    prepare_database()
    ports = [free_port() for _ in range(args.web)]
    bases = [f"http://127.0.0.1:{port}" for port in ports]
    logs = Path(tempfile.mkdtemp(prefix="civicline-load-"))
    venv = Path(sys.executable).parent
    webs = [start(web_command(venv, "127.0.0.1", port), logs / f"web-{port}.log")
            for port in ports]
    workers = [start(worker_command(venv), logs / f"worker-{n}.log")
               for n in range(1, args.workers + 1)]
    try:
        for base in bases:
            if not wait_until_up(base + "/healthz", webs):
                sys.exit(f"gunicorn did not start; see the logs in {logs}")
        stats = Stats()
        load = Load(bases, stats)
        load.agent = load.token("agent@bench.example")
        load.supervisor = load.token("supervisor@bench.example")
        print(f"load: {len(webs)} gunicorn + {len(workers)} flask workers up; connecting "
              f"{CHAT_RESIDENTS} chat residents", flush=True)
        clients = connect_chats(load, CHAT_RESIDENTS)
        for _ in range(20):  # tickets for agents to reply to
            load.run_one("sms")
        load.refresh_refs()
        stats.latency.clear()
        if args.warmup:
            # New processes open their database connections, fill their statement caches
            # and load the knowledge base's index during their first seconds of traffic.
            # That start is measured here, on its own line, and not in the figures below;
            # its messages are checked with the others.
            print(f"load: warm-up, {args.rate:.0f} requests/s for {args.warmup:.0f} s",
                  flush=True)
            drive(load, args.warmup, args.rate, args.threads)
            warm = [v for values in stats.latency.values() for v in values]
            print(f"warm-up: {len(warm)} answered, {sum(stats.errors.values())} errors, "
                  f"p50 {pct(warm, 50) * 1000:.0f} ms, p99 {pct(warm, 99) * 1000:.0f} ms",
                  flush=True)
            stats.latency.clear()
            stats.errors.clear()  # printed above; the table below is the measured period's
            stats.take_window()
        print(f"load: {args.rate:.0f} requests/s for {args.seconds:.0f} s", flush=True)
        groups = {"web": [p.pid for p in webs], "workers": [p.pid for p in workers]}
        cpu_before = cpu_seconds(groups)
        began = time.monotonic()
        drive(load, args.seconds, args.rate, args.threads)
        elapsed = time.monotonic() - began
        cpu_after = cpu_seconds(groups)
        routing = waiting_for_routing()
        print("load: waiting for the workers to drain the queues", flush=True)
        drained = drain(os.environ["REDIS_URL"])
        lag = time.monotonic() - began - elapsed
        for client in clients:
            client.disconnect()

        print(f"\n{'kind':<11}{'ok':>7}{'errors':>8}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}")
        for kind, _ in MIX:
            values = stats.latency[kind]
            print(f"{kind:<11}{len(values):>7}{stats.errors[kind]:>8}"
                  f"{len(values) / elapsed:>8.1f}{pct(values, 50) * 1000:>9.0f}"
                  f"{pct(values, 99) * 1000:>9.0f}")
        total = sum(map(len, stats.latency.values()))
        print(f"{'total':<11}{total:>7}{sum(stats.errors.values()):>8}{total / elapsed:>8.1f}")
        for sample in stats.error_samples:
            print(f"  error sample: {sample}")
        if cpu_after:  # where the machine's two cores went while the load ran
            used = {k: cpu_after[k] - cpu_before.get(k, 0.0) for k in cpu_after}
            print("cpu during the load, ms per request and share of one core: " + ", ".join(
                f"{k} {v / max(stats.total(), 1) * 1000:.2f} ({v / elapsed:.0%})"
                for k, v in used.items()))
        lost, duplicated, per_kind = compare(load)
        for kind, (sent, stored) in per_kind.items():
            print(f"stored {kind}: {stored} of {sent} accepted")
        print(routing)
        print(replies_sent())
        if drained:  # the follow-up jobs queued during the load, done this long after it
            print(f"workers: the queues were empty {lag:.0f} s after the load ended")
        else:
            print("warning: the queues had not drained after 120 s")
        webhook = stats.latency["sms"] + stats.latency["email"]
        print(f"load: lost {lost}, duplicated {duplicated}, "
              f"webhook p99 {pct(webhook, 99) * 1000:.0f} ms")
        return 0 if not (lost or duplicated) else 1
    finally:
        for worker in workers:
            stop(worker)
        for web in webs:
            stop(web)


if __name__ == "__main__":
    sys.exit(main())
