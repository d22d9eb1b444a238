"""A keyboard-only pass through the console: presence, accept an offer, read the
timeline, reply, add a note, wrap up. No mouse."""

from __future__ import annotations

import re

import sqlalchemy as sa
from playwright.sync_api import expect

from app.extensions import db
from app.models import Interaction, Ticket
from app.services.intake import intake
from channels.base import InboundMessage
from tests.e2e.test_console_live import DEMO_PASSWORD, eventually


def _focused(page) -> str:
    return page.evaluate("document.activeElement.id || document.activeElement.textContent")


def test_keyboard_only_shift(live_server, page, seeded, run_jobs):
    page.goto(live_server + "/console")
    page.wait_for_url(re.compile("/login"))
    page.keyboard.press("Tab")  # the header link comes first
    while _focused(page) != "email":
        page.keyboard.press("Tab")
    page.keyboard.type("ana@civicline.example")
    page.keyboard.press("Tab")
    page.keyboard.type(DEMO_PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(live_server + "/console")
    expect(page.locator("#connection")).to_have_text("Live")

    page.keyboard.press("Alt+P")
    assert _focused(page) == "presence"
    page.keyboard.press("Home")  # "Available" is the first choice
    expect(page.locator("#announcer")).to_contain_text("Presence: available")

    result = intake(InboundMessage(channel="sms", provider_id="SMk1", sender="+15555550160",
                                   text="AGENT"))
    run_jobs()
    expect(page.locator("#offers li")).to_have_count(1)
    page.keyboard.press("Alt+A")
    expect(page.locator("#ticket-title")).to_be_focused()
    expect(page.locator("#ticket-title")).to_contain_text(result.ticket_reference)

    page.keyboard.press("Alt+T")
    expect(page.locator("#timeline > li").last).to_be_focused()

    page.keyboard.press("Alt+R")
    expect(page.locator("#reply-text")).to_be_focused()
    page.keyboard.type("We can help. What is your case number?")
    page.keyboard.press("Tab")
    assert _focused(page) == "send-reply"
    page.keyboard.press("Shift+Tab")
    page.keyboard.press("Control+Enter")
    expect(page.locator("#timeline")).to_contain_text("What is your case number?")
    eventually(lambda: db.session.scalar(sa.select(Interaction).where(
        Interaction.author_kind == "agent", Interaction.channel == "sms")))

    page.keyboard.press("Alt+N")
    page.keyboard.type("Resident sounded worried; follow up Friday.")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.locator("#timeline .internal")).to_contain_text("follow up Friday")

    # From the note's button, Tab walks the ticket actions in reading order.
    seen = []
    for _ in range(8):
        page.keyboard.press("Tab")
        seen.append(_focused(page))
        if seen[-1] == "Wrap up and resolve":
            break
    assert seen == ["transfer-queue", "transfer-reason", "Transfer", "disposition",
                    "Wrap up and resolve"]
    page.keyboard.press("Enter")
    expect(page.locator("#ticket-meta")).to_contain_text("Status resolved")
    assert eventually(lambda: db.session.get(Ticket, result.ticket_id).status == "resolved")
    assert db.session.get(Ticket, result.ticket_id).disposition == "answered"
