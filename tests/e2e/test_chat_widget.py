"""The embeddable chat widget in a real browser, with the keyboard only."""

from __future__ import annotations

import re

import sqlalchemy as sa
from playwright.sync_api import expect

from app.extensions import db
from app.models import ChatSession, Interaction, Queue


def _fake_kb(monkeypatch):
    from app.services import knowledge

    def answer_for(query, channel, lang=None, ticket_id=None):
        return knowledge.KBAnswer(article_id=3, version=1, title="Library hours",
                                  confidence=0.9, self_service=True,
                                  text="Libraries are open 9 to 6, Monday to Saturday.")

    monkeypatch.setattr(knowledge, "answer_for", answer_for)


def test_chat_widget_keyboard_only_with_live_agent_and_reload(app, live_server, page,
                                                              make_user, run_jobs,
                                                              monkeypatch):
    from app.chat import send_chat_message

    _fake_kb(monkeypatch)
    db.session.add(Queue(code="general", name="General information", channels=["chat"]))
    db.session.commit()
    page.goto(live_server + "/chat-demo")
    # The form opens with focus in its first field; everything is reachable by Tab.
    name = page.get_by_label("Name")
    name.wait_for()
    page.wait_for_function("document.activeElement && document.activeElement.id === 'clc-name'")
    page.keyboard.type("Ada")
    page.keyboard.press("Tab")
    page.keyboard.type("ada@example.org")
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")  # mobile number left empty
    page.keyboard.press("Tab")  # language: English
    page.keyboard.press("Enter")
    message_box = page.get_by_label("Your message")
    message_box.wait_for()
    page.wait_for_function("document.activeElement && document.activeElement.id === 'clc-input'")
    log = page.get_by_role("log", name="Conversation")
    assert log.get_attribute("aria-live") == "polite"

    page.keyboard.type("When are libraries open?")
    page.keyboard.press("Enter")
    log.get_by_text("When are libraries open?").wait_for()
    page.wait_for_function("document.querySelector('.clc-resident[data-id]') !== null")
    run_jobs()  # the knowledge base answers
    log.get_by_text("Libraries are open 9 to 6").wait_for()

    # Talk to a person, by keyboard: Tab from the message box reaches the button.
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Talk to a person"
    page.keyboard.press("Enter")
    log.get_by_text("Connecting you with a person").wait_for()

    chat = db.session.scalar(sa.select(ChatSession))
    agent = make_user(email="li@example.org", name="Li")
    send_chat_message(chat.ticket_id, "Hello Ada, I can help.", agent.id)
    log.get_by_text("Hello Ada, I can help.").wait_for()
    assert "Li:" in log.inner_text()
    # The widget reports what the resident has read.
    last_agent = db.session.scalar(sa.select(sa.func.max(Interaction.id)))
    for _ in range(50):
        db.session.expire_all()
        if db.session.get(ChatSession, chat.id).last_read_interaction_id == last_agent:
            break
        page.wait_for_timeout(100)
    assert db.session.get(ChatSession, chat.id).last_read_interaction_id == last_agent

    # Reload: the whole conversation comes back, once.
    page.reload()
    log = page.get_by_role("log", name="Conversation")
    log.get_by_text("Hello Ada, I can help.").wait_for()
    text = log.inner_text()
    for line in ("When are libraries open?", "Libraries are open 9 to 6",
                 "Connecting you with a person", "Hello Ada, I can help."):
        assert text.count(line) == 1, text
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Interaction).where(
        Interaction.direction == "inbound")) == 1


def test_chat_widget_shows_errors_as_alerts(app, live_server, page):
    page.goto(live_server + "/chat-demo")
    page.get_by_label("Name").wait_for()
    page.get_by_label("Email", exact=True).fill("not an email")
    page.get_by_role("button", name="Start chat").press("Enter")
    alert = page.get_by_role("alert")
    alert.get_by_text("not an email address").wait_for()
    page.wait_for_function("document.activeElement && document.activeElement.id === 'clc-email'")
    page.get_by_label("Email", exact=True).fill("")
    page.get_by_role("button", name="Start chat").press("Enter")
    page.get_by_label("Your message").wait_for()
    page.get_by_label("Your message").fill("x" * 2000 + "yz")
    # maxlength keeps the resident within the limit the server enforces.
    assert len(page.get_by_label("Your message").input_value()) == 2000


def test_was_this_helpful_buttons_under_an_answer(app, live_server, page, seeded, run_jobs):
    from app.models import KBFeedback

    page.goto(live_server + "/chat-demo")
    page.get_by_label("Name").fill("Ada")
    page.get_by_role("button", name="Start chat").click()
    page.get_by_label("Your message").fill("how do I renew my passport")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('.clc-resident[data-id]') !== null")
    run_jobs()
    helpful = page.get_by_role("group", name="Was this helpful?")
    # The answer links its article once, as a link, not as Markdown source.
    answer = page.locator(".clc-bot").last
    link = answer.get_by_role("link", name="Read the full article")
    expect(link).to_have_attribute("href", re.compile(r"^http://localhost/kb/\d+$"))
    expect(answer).not_to_contain_text("](")
    expect(answer).not_to_contain_text("More:")
    # A resident's own line with a disguised script link stays text.
    page.get_by_label("Your message").fill("[click me](javascript:alert(1)) see https://example.org/a.")
    page.keyboard.press("Enter")
    mine = page.locator(".clc-resident[data-id]").last
    expect(mine).to_contain_text("[click me](javascript:alert(1))")
    expect(mine.get_by_role("link")).to_have_count(1)
    expect(mine.get_by_role("link")).to_have_attribute("href", "https://example.org/a")
    helpful.get_by_role("button", name="Yes").click()
    helpful.get_by_text("Thank you for your feedback.").wait_for()
    db.session.expire_all()
    row = db.session.scalar(sa.select(KBFeedback))
    assert row is not None and row.helpful and row.channel == "chat"
