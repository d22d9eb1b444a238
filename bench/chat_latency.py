"""Web chat latency: residents' messages reaching agents over a real server.

Serves the app in a subprocess (``flask serve``: Socket.IO in threading mode, embedded
jobs; a fresh SQLite database under a temporary folder unless ``DATABASE_URL`` is given),
connects agent clients to ``/agent`` and resident clients to ``/chat`` (python-socketio
``AsyncClient`` over aiohttp websockets). Each resident opens a chat, asks for a person
(its agent then watches the ticket), and sends messages paced under the per-connection
rate limit; the round trip is from the resident's send to the agent's
``interaction.created``. Counts messages that never arrived and ones stored or announced twice.

    python bench/chat_latency.py [--residents 200] [--agents 20] [--messages 20]

Last line: ``chat p99: 40 ms, lost 0, duplicated 0``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "chat-latency-benchmark-secret-key"
PACE_SECONDS = 1.05  # the chat allows 10 messages per 10 s per connection

PREPARE = """
import sys
import uuid
import sqlalchemy as sa
from flask_migrate import upgrade
from app import create_app
from app.auth import issue_token
from app.extensions import db
from app.models import Queue, User
app = create_app()
with app.app_context():
    upgrade(directory=sys.argv[1])
    if db.session.scalar(sa.select(Queue).where(Queue.code == "permits")) is None:
        db.session.add(Queue(code="permits", name="Permits", channels=["chat"],
                             max_wait_seconds=3600))
    run = uuid.uuid4().hex[:8]
    tokens = []
    for i in range(int(sys.argv[2])):
        user = User(email=f"bench-{run}-agent{i}@example.org", role="agent", password_hash="",
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


def start_server(env: dict[str, str], agents: int) -> tuple[subprocess.Popen, str, list[str]]:
    python = sys.executable
    tokens = subprocess.run([python, "-c", PREPARE, str(ROOT / "migrations"), str(agents)],
                            cwd=ROOT, env=env, check=True, capture_output=True, text=True
                            ).stdout.split()
    port = free_port()
    server = subprocess.Popen(
        [python, "-m", "flask", "--app", "wsgi", "serve", "--port", str(port)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1)
            return server, url, tokens
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise SystemExit("the server did not start")


class Tally:
    def __init__(self) -> None:
        self.sent_at: dict[str, float] = {}
        self.latencies: list[float] = []
        self.received: dict[str, set[int]] = {}
        self.duplicated = 0  # one message stored (and announced) under two interaction ids
        self.repeated = 0  # the same interaction delivered twice to one agent
        self.errors = 0

    def arrived(self, tag: str, interaction_id: int) -> None:
        now = time.perf_counter()
        ids = self.received.get(tag)
        if ids is not None:
            if interaction_id in ids:
                self.repeated += 1
            else:
                ids.add(interaction_id)
                self.duplicated += 1
            return
        if tag in self.sent_at:
            self.received[tag] = {interaction_id}
            self.latencies.append((now - self.sent_at[tag]) * 1000)


async def agent_client(url: str, token: str, tally: Tally):
    import socketio

    client = socketio.AsyncClient(reconnection=False)

    @client.on("interaction.created", namespace="/agent")
    async def _created(data):
        text = data["interaction"]["text"]
        if data["interaction"]["direction"] == "inbound" and text.startswith("bench "):
            tally.arrived(text, data["interaction"]["id"])

    await client.connect(url, namespaces=["/agent"], auth={"token": token},
                         transports=["websocket"], wait_timeout=30)
    return client


async def resident(url: str, index: int, agent, messages: int, tally: Tally,
                   start: asyncio.Event) -> None:
    import socketio

    client = socketio.AsyncClient(reconnection=False)
    await client.connect(url, namespaces=["/chat"], transports=["websocket"], wait_timeout=30)
    try:
        await client.call("chat.start", {"name": f"Resident {index}"}, namespace="/chat",
                          timeout=60)
        opening = await client.call("chat.message", {"text": "I need help with a permit",
                                                     "client_id": f"open-{index}-{os.getpid()}",
                                                     "topic": "permits"},
                                    namespace="/chat", timeout=60)
        ticket_id = int(opening["reference"].rsplit("-", 1)[1])
        await client.call("chat.person", {}, namespace="/chat", timeout=60)
        await agent.call("watch_ticket", {"ticket_id": ticket_id}, namespace="/agent", timeout=60)
        await start.wait()
        await asyncio.sleep((index % 50) * PACE_SECONDS / 50)  # spread the sends
        for m in range(messages):
            began = time.perf_counter()
            tag = f"bench {index}-{m}"
            tally.sent_at[tag] = time.perf_counter()
            try:
                ack = await client.call("chat.message",
                                        {"text": tag, "client_id": f"m{index}-{m}"},
                                        namespace="/chat", timeout=30)
            except socketio.exceptions.TimeoutError:
                ack = {"ok": None}  # no answer: counted lost unless it reaches the agent
            if ack.get("ok") is False:
                tally.errors += 1
                del tally.sent_at[tag]
            await asyncio.sleep(max(0.0, PACE_SECONDS - (time.perf_counter() - began)))
    finally:
        await client.disconnect()


async def progress(tally: Tally, total: int, done: asyncio.Event) -> None:
    while not done.is_set():
        await asyncio.sleep(2)
        print(f"  sent {len(tally.sent_at)}/{total}, received {len(tally.received)}", flush=True)


async def run(url: str, tokens: list[str], residents: int, messages: int) -> Tally:
    tally = Tally()
    agents = [await agent_client(url, t, tally) for t in tokens]
    start = asyncio.Event()
    tasks = []
    for i in range(residents):
        tasks.append(asyncio.create_task(
            resident(url, i, agents[i % len(agents)], messages, tally, start)))
        if i % 20 == 19:
            await asyncio.sleep(0.2)  # do not open 200 chats in one instant
    await asyncio.sleep(1)
    print(f"{residents} residents and {len(agents)} agents connected; sending", flush=True)
    done = asyncio.Event()
    reporter = asyncio.create_task(progress(tally, residents * messages, done))
    start.set()
    await asyncio.gather(*tasks)
    deadline = time.monotonic() + 10
    while len(tally.received) < len(tally.sent_at) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)  # a late duplicate would show up here
    done.set()
    await reporter
    for agent in agents:
        await agent.disconnect()
    return tally


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=200)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--messages", type=int, default=20)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="civicline-chat-bench-")
    env = {**os.environ, "SECRET_KEY": SECRET, "FLASK_APP": "wsgi"}
    env.setdefault("DATABASE_URL", f"sqlite:///{workdir}/bench.sqlite3")
    server, url, tokens = start_server(env, args.agents)
    print(f"server {url} (database {env['DATABASE_URL'].split('@')[-1]}, "
          f"{'Redis ' + env['REDIS_URL'] if env.get('REDIS_URL') else 'embedded jobs'})")
    try:
        tally = asyncio.run(run(url, tokens, args.residents, args.messages))
    finally:
        server.terminate()
        server.wait(timeout=10)
    lost = len(tally.sent_at) - len(tally.received)
    print(f"messages sent {len(tally.sent_at)}, received {len(tally.received)}, "
          f"refused {tally.errors}, delivered twice to one agent {tally.repeated}")
    print(f"resident→agent round trip: p50 {percentile(tally.latencies, 0.5):.1f} ms, "
          f"p99 {percentile(tally.latencies, 0.99):.1f} ms, "
          f"max {max(tally.latencies, default=float('nan')):.1f} ms")
    print(f"chat p99: {percentile(tally.latencies, 0.99):.0f} ms, lost {lost}, "
          f"duplicated {tally.duplicated}")


if __name__ == "__main__":
    main()
