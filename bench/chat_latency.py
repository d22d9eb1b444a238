"""Web chat latency: residents' messages reaching agents over a real server.

Two setups, chosen by the environment:

* **production** (``DATABASE_URL`` names PostgreSQL and ``REDIS_URL`` is set): gunicorn
  as the Procfile runs it (``--web`` processes, 2 by default, each one gevent worker,
  joined by the Socket.IO Redis message queue) with a ``flask worker`` for the
  jobs. Clients are spread over the processes as a load balancer would spread them. Both
  are scratch stores: the database's schema is dropped and migrated and the Redis
  database is flushed first.
* **embedded** (otherwise): ``flask serve`` with the jobs inside the server process, on a
  fresh SQLite database under a temporary folder, as ``make run`` serves it (or on the
  PostgreSQL database of ``DATABASE_URL``, reset as above, when ``REDIS_URL`` is unset).

Agent clients connect to ``/agent`` and resident clients to ``/chat`` (python-socketio
``AsyncClient`` over aiohttp websockets). Each resident opens a chat and asks for a person
(its agent then watches the ticket). Once every resident is set up, the conversations
run as conversations do: the resident sends a line; the agent, on seeing it arrive,
answers through ``POST /api/v1/tickets/<ref>/reply`` as the console does; the resident
waits for that answer, reads it and types the next line, which takes ``--think`` seconds
(random in the range; by default 2-6 s, a fast typist: people usually take longer).
``--think 0`` sends the next line the moment the answer arrives: the server is then
saturated and the figures measure its capacity, not a contact center's day.

Measured: the round trip from the resident's send to the agent's ``interaction.created``
(the headline), and the whole exchange, from the send until the agent's answer is on the
resident's screen. A send or an answer that does not arrive in time is counted and the
resident goes on. Counts messages that never arrived, ones stored twice (two interaction
ids) and ones delivered twice to the same agent.

    python bench/chat_latency.py [--residents 200] [--agents 20] [--messages 20] [--think 2-6]

Last line: ``chat p99: 40 ms, lost 0, duplicated 0``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procfile import command, wait_until_up, web_command  # noqa: E402

SECRET = "chat-latency-benchmark-secret-key"
THINK_SECONDS = "2-6"  # reading the agent's answer and typing the next line
MIN_GAP = 1.05  # the chat allows 10 messages per 10 s per connection
SEND_TIMEOUT = 10.0  # an unanswered send is counted and the resident goes on
ANSWER_TIMEOUT = 15.0  # so is an agent's answer that does not reach the resident
SETUP_TIMEOUT = 60.0
SETUP_CONCURRENCY = 20  # residents opening their chat at the same time

PREPARE = """
import sys
import sqlalchemy as sa
from flask_migrate import upgrade
from app import create_app
from app.auth import issue_token
from app.extensions import db
from app.models import Queue, User
app = create_app()
with app.app_context():
    if db.engine.dialect.name == "postgresql":
        with db.engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    upgrade(directory=sys.argv[1])
    db.session.add(Queue(code="permits", name="Permits", channels=["chat"],
                         max_wait_seconds=3600))
    tokens = []
    for i in range(int(sys.argv[2])):
        user = User(email=f"bench-agent{i}@example.org", role="agent", password_hash="",
                    name=f"Agent {i}")
        user.set_password("bench-password")
        db.session.add(user)
        db.session.flush()
        tokens.append(issue_token(user))
    db.session.commit()
    print("\\n".join(tokens))
"""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The server processes of one setup, their logs, and how to stop them."""

    def __init__(self, env: dict[str, str], workdir: str, web: int) -> None:
        self.env = env
        self.workdir = workdir
        self.processes: list[subprocess.Popen] = []
        self.production = env["DATABASE_URL"].startswith("postgres") and bool(
            env.get("REDIS_URL"))
        self.web = web if self.production else 1
        self.urls: list[str] = []

    @property
    def url(self) -> str:
        return ", ".join(self.urls)

    def describe(self) -> str:
        database = self.env["DATABASE_URL"].split("@")[-1]
        if self.production:
            return (f"production: {self.web} x '{' '.join(command('web'))}' "
                    f"+ 1 flask worker, "
                    f"PostgreSQL {database}, Redis {self.env['REDIS_URL'].split('@')[-1]}")
        return f"embedded: flask serve with in-process jobs, {database}"

    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        log = open(Path(self.workdir) / f"{name}.log", "wb")  # noqa: SIM115 - kept open
        proc = subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=log,
                                stderr=subprocess.STDOUT)
        self.processes.append(proc)
        return proc

    def start(self, agents: int) -> list[str]:
        python = sys.executable
        if self.production:
            import redis

            redis.Redis.from_url(self.env["REDIS_URL"]).flushdb()
        tokens = subprocess.run([python, "-c", PREPARE, str(ROOT / "migrations"), str(agents)],
                                cwd=ROOT, env=self.env, check=True, capture_output=True,
                                text=True).stdout.split()
        ports = [free_port() for _ in range(self.web)]
        self.urls = [f"http://127.0.0.1:{port}" for port in ports]
        if self.production:
            for n, port in enumerate(ports):
                self._spawn(f"web{n}", web_command(Path(python).parent, "127.0.0.1", port,
                                                   "--log-level", "warning"))
            self._spawn("worker", [python, "-m", "flask", "--app", "wsgi", "worker",
                                   "--queues", "inbound,outbound,default,scheduled"])
        else:
            self._spawn("web", [python, "-m", "flask", "--app", "wsgi", "serve",
                                "--port", str(ports[0])])
        for url in self.urls:
            if not wait_until_up(url + "/healthz", self.processes):
                self.stop()
                raise SystemExit(f"the server did not start; see the logs in {self.workdir}")
        return tokens

    def stop(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.processes:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


class Tally:
    def __init__(self) -> None:
        self.sent_at: dict[str, float] = {}
        self.latencies: list[float] = []  # resident -> agent
        self.exchanges: list[float] = []  # send -> the agent's answer on the resident's screen
        self.replies: list[float] = []  # the agent's reply request, sent -> answered
        self.received: dict[str, set[int]] = {}
        self.duplicated = 0  # one message stored (and announced) under two interaction ids
        self.repeated = 0  # the same interaction delivered twice to one agent
        self.refused = 0  # answered {"ok": false}
        self.unanswered = 0  # no answer within SEND_TIMEOUT
        self.answers_missing = 0  # the agent's answer did not reach the resident in time
        self.reply_errors = 0  # the agent's reply request failed
        self.ready = 0
        self.setup_failed: list[str] = []
        self.lag: list[float] = []  # how late this client's event loop woke up
        self.elapsed = 0.0

    def arrived(self, agent: int, tag: str, interaction_id: int) -> bool:
        """Record an agent's copy of a resident message; True the first time it arrives."""
        now = time.perf_counter()
        ids = self.received.get(tag)
        if ids is not None:
            if (agent, interaction_id) in ids:
                self.repeated += 1
            elif all(i != interaction_id for _, i in ids):
                self.duplicated += 1
            ids.add((agent, interaction_id))
            return False
        if tag in self.sent_at:
            self.received[tag] = {(agent, interaction_id)}
            self.latencies.append((now - self.sent_at[tag]) * 1000)
            return True
        return False


async def agent_client(url: str, number: int, token: str, tally: Tally, http):
    """An agent: sees each resident line arrive and answers it, as the console does."""
    import socketio

    client = socketio.AsyncClient(reconnection=False)
    headers = {"Authorization": f"Bearer {token}"}

    async def answer(reference: str, tag: str) -> None:
        began = time.perf_counter()
        try:
            async with http.post(f"{url}/api/v1/tickets/{reference}/reply", headers=headers,
                                 json={"text": f"re: {tag}", "channel": "chat"}) as response:
                await response.read()
                if response.status >= 300:
                    tally.reply_errors += 1
                else:
                    tally.replies.append((time.perf_counter() - began) * 1000)
        except Exception:  # noqa: BLE001 - counted; the resident's wait times out
            tally.reply_errors += 1

    @client.on("interaction.created", namespace="/agent")
    async def _created(data):
        text = data["interaction"]["text"]
        if data["interaction"]["direction"] == "inbound" and text.startswith("bench "):
            if tally.arrived(number, text, data["interaction"]["id"]):
                asyncio.create_task(answer(data["ticket"]["reference"], text))

    await client.connect(url, namespaces=["/agent"], auth={"token": token},
                         transports=["websocket"], wait_timeout=30)
    return client


async def open_chat(client, url: str, index: int, agent) -> None:
    """Connect, start a chat, ask a question, ask for a person; the agent watches it."""
    await client.connect(url, namespaces=["/chat"], transports=["websocket"], wait_timeout=30)
    await client.call("chat.start", {"name": f"Bench resident {index}"}, namespace="/chat",
                      timeout=SETUP_TIMEOUT)
    opening = await client.call("chat.message", {"text": "I need help with a permit",
                                                 "client_id": f"open-{index}",
                                                 "topic": "permits"},
                                namespace="/chat", timeout=SETUP_TIMEOUT)
    ticket_id = int(opening["reference"].rsplit("-", 1)[1])
    await client.call("chat.person", {}, namespace="/chat", timeout=SETUP_TIMEOUT)
    await agent.call("watch_ticket", {"ticket_id": ticket_id}, namespace="/agent",
                     timeout=SETUP_TIMEOUT)


async def resident(url: str, index: int, agent, messages: int, think: tuple[float, float],
                   tally: Tally, setup_slots: asyncio.Semaphore, start: asyncio.Event) -> None:
    import socketio

    client = socketio.AsyncClient(reconnection=False)
    answers: dict[str, asyncio.Event] = {}
    rng = random.Random(index)

    @client.on("chat.message", namespace="/chat")
    async def _message(data):
        text = data.get("text") or ""
        if data.get("author") == "agent" and text.startswith("re: "):
            event = answers.get(text[4:])
            if event is not None:
                event.set()

    try:
        async with setup_slots:
            try:
                await open_chat(client, url, index, agent)
            except Exception as exc:  # noqa: BLE001 - counted, and the others go on
                tally.setup_failed.append(f"resident {index}: {type(exc).__name__} {exc}")
                return
            tally.ready += 1
        await start.wait()
        await asyncio.sleep(rng.uniform(*think))  # people start typing at different times
        for m in range(messages):
            tag = f"bench {index}-{m}"
            answered = answers[tag] = asyncio.Event()
            began = tally.sent_at[tag] = time.perf_counter()
            try:
                ack = await client.call("chat.message",
                                        {"text": tag, "client_id": f"m{index}-{m}"},
                                        namespace="/chat", timeout=SEND_TIMEOUT)
            except socketio.exceptions.SocketIOError:
                # No answer (or the socket dropped): lost unless it reaches the agent.
                tally.unanswered += 1
                ack = {}
            if ack.get("ok") is False:
                tally.refused += 1
                del tally.sent_at[tag]
            else:
                try:
                    await asyncio.wait_for(answered.wait(), ANSWER_TIMEOUT)
                    tally.exchanges.append((time.perf_counter() - began) * 1000)
                except TimeoutError:
                    tally.answers_missing += 1
            # Reading the answer and typing the next line (never faster than the limit).
            pause = rng.uniform(*think)
            await asyncio.sleep(max(pause, MIN_GAP - (time.perf_counter() - began)))
    finally:
        await close(client)


async def close(client) -> None:
    try:
        await asyncio.wait_for(client.disconnect(), 5)
    except Exception:  # noqa: BLE001 - closing what may already be gone
        pass


async def watch_loop(tally: Tally, done: asyncio.Event) -> None:
    """How late the event loop wakes up: a busy client would inflate the round trips."""
    while not done.is_set():
        began = time.perf_counter()
        await asyncio.sleep(0.05)
        tally.lag.append((time.perf_counter() - began - 0.05) * 1000)


async def progress(tally: Tally, total: int, done: asyncio.Event) -> None:
    began = time.monotonic()
    while not done.is_set():
        await asyncio.sleep(2)
        window = tally.latencies[-400:]
        print(f"  {time.monotonic() - began:5.0f} s  sent {len(tally.sent_at)}/{total}, "
              f"received {len(tally.received)}, unanswered {tally.unanswered}, "
              f"recent p99 {percentile(window, 0.99):.0f} ms", flush=True)


async def run(urls: list[str], tokens: list[str], residents: int, messages: int,
              think: tuple[float, float]) -> Tally:
    import aiohttp

    tally = Tally()
    http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64))
    agents = [await agent_client(urls[n % len(urls)], n, t, tally, http)
              for n, t in enumerate(tokens)]
    start, done = asyncio.Event(), asyncio.Event()
    slots = asyncio.Semaphore(SETUP_CONCURRENCY)
    # A resident and the agent answering them are on different processes when there are
    # several: their messages cross the Socket.IO message queue.
    tasks = [asyncio.create_task(resident(urls[(i % len(agents) + 1) % len(urls)], i,
                                          agents[i % len(agents)], messages, think,
                                          tally, slots, start))
             for i in range(residents)]
    began = report = time.monotonic()
    while tally.ready + len(tally.setup_failed) < residents:
        await asyncio.sleep(0.2)
        if time.monotonic() - report >= 5:
            report = time.monotonic()
            print(f"  {report - began:5.0f} s  chats open {tally.ready}/{residents}, "
                  f"failed {len(tally.setup_failed)}", flush=True)
    print(f"{tally.ready} residents ready ({len(tally.setup_failed)} failed to open a chat) "
          f"in {time.monotonic() - began:.0f} s, {len(agents)} agents; sending "
          f"exchanges with {think[0]:g}-{think[1]:g} s to read and type", flush=True)
    for failure in tally.setup_failed[:5]:
        print(f"  {failure}")
    reporter = asyncio.create_task(progress(tally, tally.ready * messages, done))
    watcher = asyncio.create_task(watch_loop(tally, done))
    cpu = time.process_time()
    began = time.monotonic()
    start.set()
    await asyncio.gather(*tasks, return_exceptions=True)
    deadline = time.monotonic() + 10
    while len(tally.received) < len(tally.sent_at) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # a late duplicate would show up here
    done.set()
    await asyncio.gather(reporter, watcher)
    print(f"client: {time.process_time() - cpu:.1f} s CPU; event loop late by "
          f"p99 {percentile(tally.lag, 0.99):.0f} ms, max {max(tally.lag, default=0):.0f} ms")
    await asyncio.gather(*(close(a) for a in agents))
    await http.close()
    tally.elapsed = time.monotonic() - began
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=200)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--web", type=int, default=2,
                        help="gunicorn processes in the production setup")
    parser.add_argument("--think", default=THINK_SECONDS,
                        help="seconds a resident takes to read an answer and type the next "
                             "line: a range such as 2-6, or one number")
    args = parser.parse_args()
    try:
        low, _, high = args.think.partition("-")
        think = (float(low), float(high or low))
    except ValueError:
        parser.error("--think takes seconds, such as 2-6 or 0")
    if think[0] < 0 or think[1] < think[0]:
        parser.error("--think takes a range from low to high, such as 2-6")
    if args.web < 1 or args.residents < 1 or args.agents < 1 or args.messages < 1:
        parser.error("--web, --residents, --agents and --messages take 1 or more")
    workdir = tempfile.mkdtemp(prefix="civicline-chat-bench-")
    env = {**os.environ, "SECRET_KEY": SECRET, "FLASK_APP": "wsgi"}
    if not env.get("DATABASE_URL", "").startswith("postgres"):
        # The embedded setup: a fresh SQLite database and in-process jobs.
        env["DATABASE_URL"] = f"sqlite:///{workdir}/bench.sqlite3"
        env.pop("REDIS_URL", None)
    server = Server(env, workdir, args.web)
    print(f"setup: {server.describe()}", flush=True)
    try:
        tokens = server.start(args.agents)
        print(f"server {server.url} (logs in {workdir})", flush=True)
        tally = asyncio.run(run(server.urls, tokens, args.residents, args.messages, think))
    finally:
        server.stop()
    lost = len(tally.sent_at) - len(tally.received)
    rate = len(tally.sent_at) / tally.elapsed if tally.elapsed else 0.0
    print(f"setup: {server.describe()}; {args.residents} residents, {args.agents} agents, "
          f"{think[0]:g}-{think[1]:g} s to read and type; {rate:.0f} resident messages/s "
          f"and as many agent answers")
    print(f"messages sent {len(tally.sent_at)}, received {len(tally.received)}, "
          f"refused {tally.refused}, unanswered {tally.unanswered}; stored twice "
          f"{tally.duplicated}, delivered twice to one agent {tally.repeated}; "
          f"chats that failed to open {len(tally.setup_failed)}; agent answers failed "
          f"{tally.reply_errors}, not on the resident's screen in time {tally.answers_missing}")
    print(f"exchange (send → the agent's answer on screen): p50 "
          f"{percentile(tally.exchanges, 0.5):.1f} ms, "
          f"p99 {percentile(tally.exchanges, 0.99):.1f} ms")
    print(f"agent's reply request: p50 {percentile(tally.replies, 0.5):.1f} ms, "
          f"p99 {percentile(tally.replies, 0.99):.1f} ms")
    print(f"resident→agent round trip: p50 {percentile(tally.latencies, 0.5):.1f} ms, "
          f"p99 {percentile(tally.latencies, 0.99):.1f} ms, "
          f"max {max(tally.latencies, default=float('nan')):.1f} ms")
    print(f"chat p99: {percentile(tally.latencies, 0.99):.0f} ms, lost {lost}, "
          f"duplicated {tally.duplicated + tally.repeated}")


if __name__ == "__main__":
    main()
