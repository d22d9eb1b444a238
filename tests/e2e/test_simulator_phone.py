"""The resident simulator drives SMS and the whole IVR in a real browser, through the
same signed webhooks Twilio uses."""

from __future__ import annotations

import sqlalchemy as sa
from playwright.sync_api import expect

from app.extensions import db
from app.models import Interaction, Queue, Ticket, User, WorkItem
from app.services import telephony


def open_all_queues():
    for queue in db.session.scalars(sa.select(Queue)):
        queue.business_hours, queue.holidays = {}, []
    db.session.commit()


def send_text(page, body):
    page.get_by_label("Message", exact=True).fill(body)
    page.get_by_role("button", name="Send text").click()
    expect(page.locator("#sms-status")).to_have_text("Delivered to CivicLine.")


def received(page):
    return page.locator('#sms-log li[data-direction="in"]')


def test_maria_texts_gets_the_answer_then_asks_for_a_person(live_server, page, seeded,
                                                             run_jobs):
    open_all_queues()
    page.goto(live_server + "/simulator")
    expect(page.get_by_role("tab", name="Phone")).to_have_attribute("aria-selected", "true")
    send_text(page, "how do I renew my passport")
    run_jobs()
    expect(received(page).first).to_contain_text("renew your U.S. passport")
    expect(received(page).last).to_have_text("Reply AGENT for a person.")
    send_text(page, "AGENT")
    run_jobs()
    ticket = db.session.scalar(sa.select(Ticket))
    expect(received(page).last).to_contain_text(f"Your reference is {ticket.reference}")
    item = db.session.scalar(sa.select(WorkItem))
    assert item.ticket_id == ticket.id
    assert db.session.get(Queue, item.queue_id).code == "passports"
    # A reload shows the whole conversation again, both sides, in order.
    before = [(li.get_attribute("data-direction"), li.text_content())
              for li in page.locator("#sms-log li").all()]
    page.reload()
    log = page.locator("#sms-log li")
    expect(log).to_have_count(len(before))
    after = [(li.get_attribute("data-direction"), li.text_content()) for li in log.all()]
    assert after == before
    assert [d for d, _ in after] == ["out", "in", "in", "out", "in"]
    page.wait_for_timeout(1500)  # later polls add nothing
    expect(log).to_have_count(len(before))


def test_jose_calls_in_spanish_and_gets_a_text(live_server, page, seeded, run_jobs):
    open_all_queues()
    page.goto(live_server + "/simulator?number=%2B15555550124")
    log = page.locator("#call-log")
    page.get_by_role("button", name="Call +15555550100").click()
    expect(log).to_contain_text("Para español, oprima 2")
    page.get_by_role("button", name="Press 2").click()
    expect(log).to_contain_text("dígame por qué llama")
    page.get_by_label("Say", exact=True).fill("necesito ayuda con mis beneficios de comida")
    page.keyboard.press("Enter")
    expect(log).to_contain_text("SNAP")
    page.get_by_role("button", name="Press 2").click()
    expect(log).to_contain_text("Le enviamos esta respuesta por mensaje de texto")
    run_jobs()
    expect(received(page).first).to_contain_text("SNAP")
    page.get_by_role("button", name="Hang up").click()
    expect(page.locator("#call-status")).to_have_text("You hung up.")
    voice = db.session.scalar(sa.select(Interaction).where(Interaction.channel == "voice"))
    db.session.refresh(voice)
    assert voice.meta["call_status"] == "completed" and voice.meta["language"] == "es"
    texts = db.session.scalars(sa.select(Interaction).where(Interaction.channel == "sms")).all()
    assert texts and {t.ticket_id for t in texts} == {voice.ticket_id}
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Ticket)) == 1


def test_caller_waits_asks_for_a_callback_and_another_is_bridged(live_server, page, new_page,
                                                                 seeded):
    open_all_queues()
    page.goto(live_server + "/simulator?number=%2B15555550161")
    page.get_by_role("button", name="Call +15555550100").click()
    expect(page.locator("#call-log")).to_contain_text("For English, press 1")
    page.get_by_role("button", name="Press 1").click()
    expect(page.locator("#call-log")).to_contain_text("tell me what you are calling about")
    page.get_by_role("button", name="Press 0").click()
    expect(page.locator("#call-hold")).to_contain_text("You are next in line")
    page.get_by_role("button", name="Press 1").click()
    expect(page.locator("#call-log")).to_contain_text("an agent will call you back")
    expect(page.locator("#call-status")).to_have_text("The call ended.")

    second = new_page()
    second.goto(live_server + "/simulator?number=%2B15555550162")
    second.get_by_role("button", name="Call +15555550100").click()
    second.get_by_role("button", name="Press 1").click()
    expect(second.locator("#call-log")).to_contain_text("tell me what you are calling about")
    second.get_by_role("button", name="Press 0").click()
    expect(second.locator("#call-hold")).to_contain_text("number 2 in line")

    items = db.session.scalars(sa.select(WorkItem).order_by(WorkItem.id)).all()
    assert "callback" in items[0].commitments and items[0].status == "waiting"
    agent = db.session.scalar(sa.select(User).where(User.email == "ana@civicline.example"))
    result = telephony.connect_call_for_ticket(items[1].ticket_id, agent.id)
    assert result["action"] == "bridged"
    expect(second.locator("#call-status")).to_have_text(f"Connected to agent-{agent.id}.")


def test_after_hours_voicemail_from_the_browser(live_server, page, seeded):
    for queue in db.session.scalars(sa.select(Queue)):
        queue.business_hours = {"weekly": [{"days": [], "tz": "America/New_York"}]}
    db.session.commit()
    page.goto(live_server + "/simulator?number=%2B15555550163")
    page.get_by_role("button", name="Call +15555550100").click()
    page.get_by_role("button", name="Stay silent").click()  # no key: English
    expect(page.locator("#call-log")).to_contain_text("tell me what you are calling about")
    page.get_by_role("button", name="Press 0").click()
    expect(page.locator("#call-log")).to_contain_text("leave a message")
    page.get_by_label("Your voicemail").fill("My recycling was not picked up on Elm Street")
    page.get_by_role("button", name="Finish recording").click()
    expect(page.locator("#call-log")).to_contain_text("Your message was recorded")
    expect(page.locator("#call-status")).to_have_text("The call ended.")
    voice = db.session.scalar(sa.select(Interaction).where(Interaction.channel == "voice"))
    for _ in range(50):
        db.session.refresh(voice)
        if voice.transcript:
            break
        page.wait_for_timeout(100)
    assert voice.transcript == "My recycling was not picked up on Elm Street"
    assert voice.recording_url.startswith(live_server + "/simulator/recordings/RE")
