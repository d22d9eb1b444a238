"""The supervisor namespace pushes the live snapshot at least every 2 seconds to
supervisors, and refuses agents."""

from __future__ import annotations

import threading
import time

import pytest

from app.auth import issue_token
from app.services.intake import intake
from channels.base import InboundMessage


def test_snapshots_are_pushed_to_supervisors_and_agents_are_refused(app, live_server,
                                                                    make_user):
    import socketio as sio

    supervisor = make_user(email="dana@example.org", role="supervisor")
    agent = make_user(email="ana@example.org", role="agent")
    refused = sio.Client(reconnection=False)
    with pytest.raises(sio.exceptions.ConnectionError):
        refused.connect(live_server, namespaces=["/supervisor"],
                        auth={"token": issue_token(agent)}, transports=["websocket"],
                        wait_timeout=2)

    arrivals: list[tuple[float, dict]] = []
    two = threading.Event()
    client = sio.Client(reconnection=False)

    @client.on("metrics.snapshot", namespace="/supervisor")
    def _on_snapshot(data):
        arrivals.append((time.monotonic(), data))
        if len(arrivals) >= 3:
            two.set()

    client.connect(live_server, namespaces=["/supervisor"],
                   auth={"token": issue_token(supervisor)}, transports=["websocket"],
                   wait_timeout=10)
    try:
        intake(InboundMessage(channel="sms", provider_id="SMpush1", sender="+15555550620",
                              text="hello"), follow_up=False)
        assert two.wait(8), f"only {len(arrivals)} snapshots arrived"
    finally:
        client.disconnect()
    gaps = [b[0] - a[0] for a, b in zip(arrivals, arrivals[1:], strict=False)]
    assert max(gaps) <= 2.5
    latest = arrivals[-1][1]
    # Other app instances of this test process may still push a snapshot taken before
    # this test's data existed; the live state this test made must show up.
    assert any(data["totals"]["contacts"] == 1 for _, data in arrivals[1:])
    assert set(latest) >= {"queues", "channels", "presence", "agents", "occupancy_pct"}
