"""Scenario 1 in real browsers: a resident texts from the simulator, the agent gets the
offer live, accepts, inserts a knowledge-base answer and replies; the resident's phone
shows the reply and the supervisor's counters move."""

from __future__ import annotations

import re
import time

import sqlalchemy as sa
from playwright.sync_api import expect

from app.extensions import db
from app.models import Interaction, Offer, Outbox

DEMO_PASSWORD = "civicline-demo"


def sign_in(page, base: str, email: str, target: str) -> None:
    page.goto(f"{base}/login?next={target}")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(base + target)


def eventually(check, timeout: float = 10.0):
    """Poll the database (as the server commits) until ``check()`` is truthy."""
    deadline = time.monotonic() + timeout
    while True:
        db.session.rollback()
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.1)


def count(model, *where) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*where))


def go_available(page) -> None:
    page.get_by_label("Presence").select_option("available")
    expect(page.locator("#announcer")).to_contain_text("Presence: available")


def text_from_simulator(sim, message: str) -> None:
    sim.locator("#sms-body").fill(message)
    sim.get_by_role("button", name="Send text").click()


def test_sms_reaches_the_console_live_and_the_reply_reaches_the_phone(
        live_server, new_page, seeded, run_jobs, artifacts):
    console, supervisor, sim = new_page(), new_page(), new_page()
    sign_in(console, live_server, "ana@civicline.example", "/console")
    expect(console.locator("#connection")).to_have_text("Live")
    go_available(console)
    sign_in(supervisor, live_server, "supervisor@civicline.example", "/supervisor")
    expect(supervisor.locator("#t-answered")).to_have_text("0")
    expect(supervisor.locator("#connection")).to_have_text("Live")

    sim.goto(live_server + "/simulator?number=%2B15555550123")
    text_from_simulator(sim, "How do I get food assistance benefits?")
    eventually(lambda: count(Interaction, Interaction.direction == "inbound") == 1)
    # The webhook queues its follow-up just after it stores the text, so run the jobs
    # until their effect shows: the knowledge base answers by SMS ...
    eventually(lambda: run_jobs() >= 0 and count(
        Interaction, Interaction.direction == "outbound") >= 1)
    text_from_simulator(sim, "AGENT")
    eventually(lambda: count(Interaction, Interaction.direction == "inbound") == 2)
    # ... and routing offers the ticket to the only available agent, once.
    eventually(lambda: run_jobs() >= 0 and count(Offer) >= 1)
    assert count(Offer) == 1

    offer = console.locator("#offers li")
    expect(offer).to_have_count(1)
    expect(offer.locator(".countdown")).to_have_text(re.compile(r"^\d+ s left$"))
    offer.get_by_role("button", name=re.compile("^Accept")).click()

    timeline = console.locator("#timeline")
    expect(timeline).to_contain_text("How do I get food assistance benefits?")
    expect(timeline).to_contain_text("Knowledge base")
    expect(console.locator("#citizen-panel")).to_contain_text("Maria Lopez")
    expect(console.locator("#citizen-panel")).to_contain_text("+15555550123")
    expect(console.locator("#channel-reason")).to_contain_text("sms")

    suggestion = console.locator("#kb-list li").first
    expect(suggestion).to_be_visible()
    suggestion.get_by_role("button", name=re.compile("^Insert")).click()
    reply_box = console.get_by_label("Message to the resident")
    expect(reply_box).not_to_have_value("")
    expect(console.locator("#kb-used")).to_contain_text("version")
    reply_box.press("End")
    reply_box.type(" Reply here if you need more help.")
    expect(console.locator("#sms-length")).to_contain_text("segment")
    console.get_by_role("button", name="Send reply").click()
    expect(console.locator("#announcer")).to_contain_text("Reply queued by sms")
    sent = eventually(lambda: db.session.scalar(sa.select(Interaction).where(
        Interaction.author_kind == "agent")))
    assert sent.kb_article_id is not None and sent.kb_article_version is not None
    # Delivery to the simulator outbox (its job is queued just after the reply commits).
    eventually(lambda: run_jobs() >= 0 and count(Outbox, Outbox.status == "pending") == 0)

    expect(sim.locator("#sms-log")).to_contain_text("Reply here if you need more help.",
                                                      timeout=15_000)
    expect(timeline).to_contain_text("delivered")
    expect(supervisor.locator("#t-answered")).to_have_text("1", timeout=8_000)
    expect(supervisor.locator("#t-contacts")).not_to_have_text("0")
    console.screenshot(path=str(artifacts / "console.png"), full_page=True)
    supervisor.screenshot(path=str(artifacts / "supervisor.png"), full_page=True)


def test_console_needs_sign_in_and_several_chats_stay_open(live_server, page, seeded,
                                                           run_jobs):
    from app.services.intake import intake
    from channels.base import InboundMessage

    page.goto(live_server + "/console")
    page.wait_for_url(re.compile(r"/login\?next=/console$"))
    page.get_by_label("Email").fill("ana@civicline.example")
    page.get_by_label("Password").fill(DEMO_PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(live_server + "/console")
    expect(page.locator("#connection")).to_have_text("Live")

    results = [intake(InboundMessage(channel="chat", provider_id=f"S{n}:1",
                                     sender=f"visitor-{n}", text=f"Chat question {n}",
                                     thread_keys={"chat_session": f"S{n}"}), follow_up=False)
               for n in (1, 2)]
    expect(page.locator("#waiting li")).to_have_count(0)  # not queued yet: no follow-up
    for result in results:
        page.evaluate("id => window.civicline.openTicket(id)", result.ticket_id)
    tabs = page.get_by_role("tab")
    expect(tabs).to_have_count(2)
    expect(tabs.nth(1)).to_have_attribute("aria-selected", "true")
    intake(InboundMessage(channel="chat", provider_id="S1:2", sender="visitor-1",
                          text="Are you still there?", thread_keys={"chat_session": "S1"}),
           follow_up=False)
    expect(tabs.nth(0)).to_contain_text("1 new")
    page.keyboard.press("Alt+1")
    expect(page.locator("#timeline")).to_contain_text("Are you still there?")
    expect(tabs.nth(0)).not_to_contain_text("new")

    # No softphone credentials: no Twilio SDK; a call in one of my queues shows up instead.
    expect(page.locator("#phone-status")).to_contain_text("Softphone not configured")
    assert page.locator("script[src*='twilio']").count() == 0
    call = intake(InboundMessage(channel="voice", provider_id="CAe2e1", sender="+15555550190",
                                 text="(caller chose general information)", topic="general"),
                  follow_up=False)
    expect(page.locator("#calls li")).to_contain_text(call.ticket_reference)
