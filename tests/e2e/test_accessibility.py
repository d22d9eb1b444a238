"""axe-core finds no serious or critical accessibility violations on the product's pages:
the console (with a ticket open), the supervisor dashboard, and each resident-facing page
this app serves (simulator, kiosk, board, chat widget demo)."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.test_console_live import sign_in

AXE = Path(__file__).parent / "vendor" / "axe-4.10.3.min.js"
RESIDENT_PAGES = ("/simulator", "/kiosk", "/board", "/chat-demo")


def axe_violations(page) -> list[dict]:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations")
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "nodes": [n["target"] for n in v["nodes"]][:5]}
            for v in result if v["impact"] in ("serious", "critical")]


def test_console_with_an_open_ticket(live_server, page, seeded, run_jobs):
    from app.services.intake import intake
    from channels.base import InboundMessage

    sign_in(page, live_server, "ana@civicline.example", "/console")
    page.get_by_label("Presence").select_option("available")
    intake(InboundMessage(channel="sms", provider_id="SMa11y", sender="+15555550170",
                          text="AGENT"))
    email = intake(InboundMessage(channel="email", provider_id="<a11y@example.org>",
                                  sender="pat@example.org", subject="Trash pickup",
                                  text="Missed again.", html="<p>Missed <b>again</b>.</p>"),
                   follow_up=False)
    run_jobs()
    expect(page.locator("#offers li")).to_have_count(1)
    page.keyboard.press("Alt+A")
    expect(page.locator("#timeline")).to_contain_text("AGENT")
    page.evaluate("id => window.civicline.openTicket(id)", email.ticket_id)
    expect(page.locator("#timeline")).to_contain_text("Missed again.")
    assert axe_violations(page) == []


def test_supervisor_dashboard(live_server, page, seeded):
    sign_in(page, live_server, "supervisor@civicline.example", "/supervisor")
    expect(page.locator("#agents-table")).to_contain_text("Agent")
    expect(page.locator("#r-equity-table")).to_contain_text("dimension")
    assert axe_violations(page) == []


def _resident_pages() -> list[str]:
    from app import create_app
    from tests.conftest import _test_config

    rules = {r.rule for r in create_app(_test_config()).url_map.iter_rules()}
    return [path for path in RESIDENT_PAGES if path in rules]


@pytest.mark.parametrize("path", _resident_pages())
def test_resident_page(live_server, page, seeded, path):
    page.goto(live_server + path)
    page.wait_for_load_state("networkidle")
    assert axe_violations(page) == []
