"""The walk-in kiosk and the now-serving board in a real browser, keyboard only."""

from __future__ import annotations

import sqlalchemy as sa

from app.extensions import db
from app.models import Queue, WalkInVisit


def test_kiosk_check_in_with_keyboard_and_board_update(app, live_server, page, new_page,
                                                       client, make_user, auth_headers):
    db.session.add_all([
        Queue(code="housing", name="Housing help", walkin_prefix="H", channels=["walkin"]),
        Queue(code="benefits", name="Food and cash benefits", walkin_prefix="B",
              channels=["walkin"]),
    ])
    db.session.commit()
    board = new_page()
    board.goto(live_server + "/board")
    board.get_by_text("No numbers called yet.").wait_for()

    page.goto(live_server + "/kiosk")
    page.keyboard.press("Tab")  # the header link
    page.keyboard.press("Tab")  # the first service
    assert page.evaluate("document.activeElement.name") == "queue"
    page.keyboard.press("ArrowDown")  # the second service, alphabetical: Housing help
    assert page.get_by_label("Housing help").is_checked()
    page.keyboard.press("Tab")
    page.wait_for_function(
        "document.activeElement && document.activeElement.id === 'kiosk-language'")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    assert page.get_by_label("Language").input_value() == "zh"
    page.keyboard.press("Tab")
    page.keyboard.type("555-555-0177")
    page.keyboard.press("Enter")
    heading = page.get_by_role("heading", name="Your number")
    heading.wait_for()
    page.wait_for_function(
        "document.activeElement && document.activeElement.id === 'kiosk-result-title'")
    assert page.locator("#kiosk-number").inner_text() == "H-001"
    assert "You are next for Housing help" in page.locator("#kiosk-wait").inner_text()
    assert "text you" in page.locator("#kiosk-text").inner_text()
    visit = db.session.scalar(sa.select(WalkInVisit))
    assert visit.language == "zh" and visit.phone == "+15555550177"

    # The next visitor: "Done" resets the kiosk and returns focus to the services.
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.name") == "queue"
    page.keyboard.press("Enter")  # submitting with no service chosen
    page.get_by_role("alert").get_by_text("Choose a service first.").wait_for()

    agent = make_user(email="li@example.org", desk="3", role="supervisor")  # serves every line
    response = client.post("/api/v1/walkins/next", json={}, headers=auth_headers(user=agent))
    assert response.get_json()["visit"]["number"] == "H-001"
    board.get_by_text("H-001 → desk 3").wait_for()
    assert board.get_by_text("No numbers called yet.").count() == 0
