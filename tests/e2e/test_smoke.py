"""The landing page and sign-in work in a real browser."""


def test_landing_page_links_every_door(live_server, page, seeded):
    page.goto(live_server + "/")
    assert page.get_by_role("heading", name="CivicLine").is_visible()
    for name in ("Resident simulator", "Agent console", "Supervisor dashboard"):
        assert page.get_by_role("link", name=name).count() == 1


def test_sign_in_with_keyboard(live_server, page, seeded):
    page.goto(live_server + "/login")
    page.get_by_label("Email").fill("ana@civicline.example")
    page.get_by_label("Password").fill("wrong")
    page.keyboard.press("Enter")
    assert page.get_by_role("alert").inner_text() == "Wrong email or password."
    page.get_by_label("Password").fill("civicline-demo")
    page.keyboard.press("Enter")
    page.wait_for_url(live_server + "/")
