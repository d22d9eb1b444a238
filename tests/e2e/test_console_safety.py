"""Whatever a resident sends (SMS, email, chat) is shown as text in the console and runs
nothing: no dialog opens and no script sets a global."""

from __future__ import annotations

from playwright.sync_api import expect

from app.services.intake import intake
from channels.base import InboundMessage
from tests.e2e.test_console_live import sign_in

SCRIPT = "<script>window.__pwned = 1; alert('script')</script>"
IMG = "<img src=x onerror=\"window.__pwned = 2; alert('img')\">"
PAYLOAD = f"Help {SCRIPT} {IMG}"


def _hostile_messages() -> list[int]:
    sms = intake(InboundMessage(channel="sms", provider_id="SMx1", sender="+15555550150",
                                text=PAYLOAD))
    email = intake(InboundMessage(
        channel="email", provider_id="<x1@example.org>", sender="mallory@example.org",
        sender_name=IMG, subject=f"Subject {SCRIPT}", text=PAYLOAD,
        html=f"<p>Styled</p>{SCRIPT}{IMG}<a href=\"javascript:alert('a')\">link</a>"))
    chat = intake(InboundMessage(channel="chat", provider_id="Sx:1", sender="visitor-x",
                                 sender_name=SCRIPT, text=PAYLOAD,
                                 thread_keys={"chat_session": "Sx"}))
    return [sms.ticket_id, email.ticket_id, chat.ticket_id]


def test_hostile_sms_email_and_chat_render_as_text(live_server, page, seeded, run_jobs):
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    sign_in(page, live_server, "ana@civicline.example", "/console")
    expect(page.locator("#connection")).to_have_text("Live")
    ticket_ids = _hostile_messages()
    run_jobs()
    page.reload()
    expect(page.locator("#connection")).to_have_text("Live")
    for ticket_id in ticket_ids:
        page.evaluate("id => window.civicline.openTicket(id)", ticket_id)
        timeline = page.locator("#timeline")
        expect(timeline).to_contain_text(SCRIPT)
        expect(timeline).to_contain_text(IMG)
        expect(page.locator("#ticket-title")).to_contain_text("<")
    expect(page.get_by_role("tab")).to_have_count(3)
    page.keyboard.press("Alt+2")  # the email
    frame = page.locator("#timeline li.inbound iframe.email-frame")
    expect(frame).to_have_count(1)
    assert frame.get_attribute("sandbox") == ""
    expect(page.frame_locator("#timeline li.inbound iframe").locator("p")).to_have_text("Styled")
    expect(page.locator("#citizen-panel")).to_contain_text(IMG)
    page.wait_for_timeout(300)
    assert page.evaluate("window.__pwned") is None
    assert dialogs == []
    assert page.locator("#console img, #console script:not([src])").count() == 0
