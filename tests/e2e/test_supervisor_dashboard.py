"""The supervisor dashboard in a real browser: supervisors only, metrics pushed live,
presence changed from the agents view, reports with gaps highlighted and CSV export."""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa
from playwright.sync_api import expect

from app.extensions import db
from app.models import AuditLog, User, utcnow
from app.services import metrics_service
from app.services.intake import intake
from channels.base import InboundMessage
from tests.e2e.test_console_live import eventually, sign_in


def test_agents_are_refused(live_server, page, seeded):
    sign_in(page, live_server, "ana@civicline.example", "/console")
    response = page.goto(live_server + "/supervisor")
    assert response.status == 403
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "This page is for the supervisor role")


def test_live_metrics_are_pushed_and_presence_can_be_changed(live_server, page, seeded,
                                                             run_jobs):
    ana = db.session.scalar(sa.select(User).where(User.email == "ana@civicline.example"))
    ana.presence = "available"
    db.session.commit()
    sign_in(page, live_server, "supervisor@civicline.example", "/supervisor")
    expect(page.locator("#connection")).to_have_text("Live")
    expect(page.locator("#t-waiting")).to_have_text("0")

    stamp = page.locator("#live-at")
    expect(stamp).not_to_have_text("")
    for _ in range(2):  # pushes keep arriving without any reload, every 2 s
        before = stamp.inner_text()
        expect(stamp).not_to_have_text(before, timeout=4_000)

    intake(InboundMessage(channel="sms", provider_id="SMsup1", sender="+15555550180",
                          text="AGENT"))
    run_jobs()
    ana.presence = "away"  # nobody to take it: it waits
    db.session.commit()
    intake(InboundMessage(channel="sms", provider_id="SMsup2", sender="+15555550181",
                          text="AGENT"))
    run_jobs()
    expect(page.locator("#t-contacts")).to_have_text("2", timeout=5_000)
    expect(page.locator("#channel-table")).to_contain_text("sms")

    db.session.rollback()
    ana.presence = "available"
    db.session.commit()
    row = page.locator("#agents-table tr", has_text="Ana Reyes")
    expect(row).to_have_count(1, timeout=5_000)
    row.get_by_label("Presence of Ana Reyes").select_option("away")
    # The supervisor's change is stored and audited (routing may also have set her away
    # after missed offers, so wait for the audit entry, not just the presence).
    eventually(lambda: db.session.scalar(sa.select(AuditLog).where(
        AuditLog.action == "agent.presence", AuditLog.object_id == str(ana.id))))
    assert db.session.get(User, ana.id).presence == "away"


def test_reports_highlight_gaps_and_export_csv(live_server, page, seeded):
    hour = metrics_service.hour_of(utcnow() - timedelta(hours=2))
    metrics_service.apply(db.session.connection(), {
        (hour, "benefits", "voice", "en", "working_adult"): {"answered": 30, "wait_sum": 900,
                                                             "contacts": 30},
        (hour, "benefits", "voice", "es", "working_adult"): {"answered": 10, "wait_sum": 1500,
                                                             "contacts": 10},
        (hour, "benefits", "sms", "en", "senior"): {"contacts": 5, "surveys": 2,
                                                    "survey_points": 150},
    })
    db.session.commit()
    sign_in(page, live_server, "supervisor@civicline.example", "/supervisor")
    page.get_by_label("Period").select_option("1")
    page.get_by_role("button", name="Show").first.click()
    expect(page.locator("#r-volume-summary")).to_contain_text("voice 40")
    expect(page.locator("#r-satisfaction-summary")).to_contain_text("75")
    flagged = page.locator("#r-equity-table tr.flagged")
    page.locator("#report-equity summary").click()
    expect(flagged.filter(has_text="es")).to_have_count(1)
    expect(flagged.first).to_contain_text("gap")
    expect(page.locator("#r-equity-summary")).to_contain_text("language es")
    assert page.locator("#report-volume canvas").count() == 2
    with page.expect_download() as download:
        page.locator("#report-equity a.csv").click()
    text = open(download.value.path(), encoding="utf-8").read()
    assert text.splitlines()[0].startswith("dimension,value,answered,avg_wait_seconds")
    assert "language,es,10,150.0" in text
