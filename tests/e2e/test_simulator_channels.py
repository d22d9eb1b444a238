"""The simulator's email, web chat and walk-in tabs reach the same ticket model."""

from __future__ import annotations

import sqlalchemy as sa
from playwright.sync_api import expect

from app.extensions import db
from app.models import Interaction, Ticket
from app.services import outbound


def test_email_tab_sends_through_the_webhook_and_shows_the_reply(live_server, page, seeded,
                                                                  run_jobs):
    page.goto(live_server + "/simulator")
    page.get_by_role("tab", name="Email").click()
    page.get_by_label("Your email address").fill("maria@example.org")
    page.get_by_label("Subject").fill("Missed trash pickup")
    page.get_by_label("Email message").fill("Nobody came for the trash on Elm Street.")
    page.get_by_role("button", name="Send email").click()
    expect(page.locator("#mail-status")).to_contain_text("Sent. Ticket CL-")
    db.session.expire_all()
    ticket = db.session.scalar(sa.select(Ticket).where(Ticket.channel == "email"))
    assert ticket is not None and ticket.subject == "Missed trash pickup"
    inbound = db.session.scalar(sa.select(Interaction).where(Interaction.ticket_id == ticket.id))
    assert inbound.text.startswith("Nobody came")
    # An agent answers; the resident's inbox shows it with the ticket reference.
    run_jobs()
    outbound.queue_message(ticket, "email", "A truck is on its way.",
                           subject=f"[{ticket.reference}] Re: Missed trash pickup")
    run_jobs()
    inbox = page.locator("#mail-inbox li")
    expect(inbox.filter(has_text="A truck is on its way.")).to_have_count(1)
    expect(inbox.filter(has_text="A truck is on its way.")).to_contain_text(ticket.reference)
    # Replying keeps the reference in the subject, so the reply threads into the ticket.
    inbox.filter(has_text="A truck is on its way.").get_by_role("button").click()
    page.get_by_label("Email message").fill("Still nothing.")
    page.get_by_role("button", name="Send email").click()
    expect(page.locator("#mail-status")).to_contain_text(ticket.reference)
    db.session.expire_all()
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Ticket)
                             .where(Ticket.channel == "email")) == 1


def test_chat_and_walkin_tabs_embed_the_real_pages(live_server, page, seeded):
    page.goto(live_server + "/simulator")
    page.get_by_role("tab", name="Web chat").click()
    expect(page.locator("#chat-frame")).to_have_attribute("src", "/chat-demo")
    # The whole sign-up form shows without scrolling inside the frame.
    start = page.frame_locator("#chat-frame").get_by_role("button", name="Start chat")
    expect(start).to_be_in_viewport()
    page.get_by_role("tab", name="Walk-in").click()
    expect(page.locator("#kiosk-frame")).to_have_attribute("src", "/kiosk")
    kiosk = page.frame_locator("#kiosk-frame")
    expect(kiosk.get_by_role("heading").first).to_be_visible()
    # Keyboard: arrow keys move between channel tabs.
    page.get_by_role("tab", name="Walk-in").press("ArrowLeft")
    expect(page.get_by_role("tab", name="Web chat")).to_have_attribute("aria-selected", "true")
