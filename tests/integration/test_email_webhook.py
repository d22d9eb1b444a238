"""``POST /webhooks/email`` with the sample corpus: authentication, content types, size
limits, unreadable messages, replays, threading, attachments and auto-replies."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import FailedPayload, Interaction, Outbox, Ticket, WorkItem

CORPUS = Path(__file__).resolve().parents[1] / "data" / "email"
SECRET = "test-email-secret"


@pytest.fixture(autouse=True)
def attachments_dir(app, tmp_path):
    app.config["ATTACHMENTS_DIR"] = str(tmp_path / "attachments")
    return tmp_path / "attachments"


def eml(name: str) -> bytes:
    return (CORPUS / name).read_bytes()


def post(client, raw: bytes, *, secret: str | None = SECRET, content_type: str = "message/rfc822"):
    headers = {"Content-Type": content_type}
    if secret is not None:
        headers["Authorization"] = f"Bearer {secret}"
    return client.post("/webhooks/email", data=raw, headers=headers)


def test_missing_or_wrong_secret_is_401_and_nothing_is_stored(client):
    for secret in (None, "wrong-secret", ""):
        resp = post(client, eml("gmail_plain.eml"), secret=secret)
        assert resp.status_code == 401
        assert resp.get_json()["error"]["code"] == "unauthorized"
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    resp = client.post(
        "/webhooks/email",
        data=eml("gmail_plain.eml"),
        headers={"Content-Type": "message/rfc822", "Authorization": f"Basic {SECRET}"},
    )
    assert resp.status_code == 401
    assert db.session.scalar(sa.select(sa.func.count(Interaction.id))) == 0


def test_other_content_types_are_415(client):
    for content_type in ("text/plain", "application/json", "multipart/form-data; boundary=x"):
        resp = post(client, eml("gmail_plain.eml"), content_type=content_type)
        assert resp.status_code == 415
        assert resp.get_json()["error"]["code"] == "unsupported_media_type"
    assert db.session.scalar(sa.select(sa.func.count(Interaction.id))) == 0


def test_oversized_attachment_is_413_with_a_clear_message(app, client):
    app.config["MAX_ATTACHMENT_BYTES"] = 50
    resp = post(client, eml("attachment_image_jpeg.eml"))
    assert resp.status_code == 413
    error = resp.get_json()["error"]
    assert error["code"] == "attachment_too_large"
    assert "IMG_2041.jpg" in error["message"] and "over the limit of 50 bytes" in error["message"]
    assert error["filename"] == "IMG_2041.jpg" and error["limit"] == 50
    assert db.session.scalar(sa.select(sa.func.count(Interaction.id))) == 0


def test_unreadable_message_is_kept_and_answered_400(client):
    raw = b"this is not an email at all\r\n\r\njust some bytes\r\n"
    resp = post(client, raw)
    assert resp.status_code == 400
    error = resp.get_json()["error"]
    assert error["code"] == "unreadable_email"
    stored = db.session.get(FailedPayload, error["detail"]["failed_payload_id"])
    assert stored.source == "email" and stored.body == raw
    assert stored.content_type == "message/rfc822"
    assert "sender" in stored.error


def test_new_message_opens_a_ticket_and_a_replay_is_a_no_op(client, run_jobs):
    first = post(client, eml("gmail_plain.eml"))
    assert first.status_code == 202
    body = first.get_json()
    assert body["created_ticket"] and not body["duplicate"]
    ticket = db.session.get(Ticket, body["ticket_id"])
    assert body["ticket"] == ticket.reference and ticket.channel == "email"

    again = post(client, eml("gmail_plain.eml"))
    assert again.status_code == 200
    assert again.get_json()["duplicate"] is True
    assert again.get_json()["ticket"] == ticket.reference
    assert again.get_json()["interaction_id"] == body["interaction_id"]
    assert db.session.scalar(sa.select(sa.func.count(Interaction.id))) == 1
    assert db.session.scalar(sa.select(sa.func.count(Ticket.id))) == 1


def test_every_corpus_message_is_taken_in(client):
    names = sorted(p.name for p in CORPUS.glob("*.eml"))
    assert len(names) > 60
    for name in names:
        resp = post(client, eml(name))
        assert resp.status_code in (200, 202), (name, resp.get_json())
        interaction_id = resp.get_json()["interaction_id"]
        assert db.session.get(Interaction, interaction_id) is not None, name


def test_reply_threads_into_the_ticket_without_its_quoted_history(client):
    opened = post(client, eml("gmail_plain.eml")).get_json()
    ticket = db.session.get(Ticket, opened["ticket_id"])
    original_id = db.session.get(Interaction, opened["interaction_id"]).provider_id
    reply = (
        "From: Jordan Reyes <jordan.reyes@gmail.com>\r\n"
        "To: City Help <help@city.gov>\r\n"
        f"Subject: Re: {ticket.subject}\r\n"
        "Message-ID: <reply-1@mail.gmail.com>\r\n"
        f"In-Reply-To: {original_id}\r\n"
        f"References: {original_id}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        "Still nothing, the bins were not picked up.\r\n\r\n"
        "On Mon, Mar 9, 2026 at 4:12 PM Jordan Reyes <jordan.reyes@gmail.com> wrote:\r\n"
        "> My trash was not picked up on Monday.\r\n"
    ).encode()
    resp = post(client, reply)
    assert resp.status_code == 202
    body = resp.get_json()
    assert body["ticket_id"] == ticket.id and not body["created_ticket"]
    row = db.session.get(Interaction, body["interaction_id"])
    assert row.text == "Still nothing, the bins were not picked up."
    assert "> My trash was not picked up" in row.full_text


def test_reference_in_the_subject_threads_a_message_without_headers(client):
    opened = post(client, eml("gmail_plain.eml")).get_json()
    raw = (
        "From: someone.else@example.net\r\n"
        f"Subject: About my case {opened['ticket']}\r\n"
        "Message-ID: <by-subject-1@example.net>\r\n\r\n"
        "Any news?\r\n"
    ).encode()
    body = post(client, raw).get_json()
    assert body["ticket_id"] == opened["ticket_id"]


def test_attachments_are_stored_once_and_downloadable_by_agents(
    client, auth_headers, attachments_dir
):
    resp = post(client, eml("attachment_multiple.eml"))
    assert resp.status_code == 202
    row = db.session.get(Interaction, resp.get_json()["interaction_id"])
    names = [a["filename"] for a in row.attachments]
    assert names == ["site-plan.pdf", "site.png", "Certificado de seguro ñ.docx"]
    for att in row.attachments:
        digest = att["url"].rsplit("/", 1)[1]
        content = (attachments_dir / digest).read_bytes()
        assert hashlib.sha256(content).hexdigest() == digest
        assert len(content) == att["size"]

    pdf = row.attachments[0]
    assert client.get(pdf["url"]).status_code == 401
    download = client.get(pdf["url"], headers=auth_headers("agent"))
    assert download.status_code == 200
    assert download.mimetype == "application/pdf"
    assert "site-plan.pdf" in download.headers["Content-Disposition"]
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert hashlib.sha256(download.data).hexdigest() == pdf["url"].rsplit("/", 1)[1]
    assert (
        client.get("/api/v1/attachments/" + "0" * 64, headers=auth_headers("agent")).status_code
        == 404
    )
    assert (
        client.get(
            "/api/v1/attachments/..%2f..%2fetc%2fpasswd", headers=auth_headers("agent")
        ).status_code
        == 404
    )


def test_path_traversal_file_name_stays_inside_the_store(client, attachments_dir):
    body = post(client, eml("attachment_path_traversal_name.eml")).get_json()
    row = db.session.get(Interaction, body["interaction_id"])
    assert "/" not in row.attachments[0]["filename"]
    stored = {p.name for p in attachments_dir.iterdir()}
    assert all(len(n.removesuffix(".json")) == 64 for n in stored)


@pytest.mark.parametrize(
    "name",
    [
        "autoreply_auto_submitted.eml",
        "ooo_outlook_automatic_reply.eml",
        "ooo_german_abwesenheitsnotiz.eml",
        "precedence_bulk_newsletter.eml",
    ],
)
def test_auto_replies_are_recorded_but_never_answered(client, run_jobs, name):
    body = post(client, eml(name)).get_json()
    assert body["auto_reply"] is True
    run_jobs()
    row = db.session.get(Interaction, body["interaction_id"])
    assert row.meta["auto_reply"] is True
    assert db.session.scalar(sa.select(sa.func.count(Outbox.id))) == 0
    assert db.session.scalar(sa.select(sa.func.count(WorkItem.id))) == 0


def test_bounce_for_a_message_we_did_not_send_is_recorded_only(client, run_jobs):
    body = post(client, eml("dsn_postfix.eml")).get_json()
    assert body["auto_reply"] is True and "bounce" not in body
    run_jobs()
    assert db.session.scalar(sa.select(sa.func.count(Outbox.id))) == 0


@pytest.mark.parametrize("header", [
    "this-is-not-a-language-tag-at-all", "=HYPERLINK(\"http://x\")", "es-MX", "", "zh-Hans-CN"])
def test_any_content_language_header_is_accepted_and_only_a_real_tag_is_kept(client, header):
    raw = (
        "From: Lee <lee@example.net>\r\nTo: help@city.gov\r\nSubject: Trash\r\n"
        f"Message-ID: <lang-{abs(hash(header))}@example.net>\r\nContent-Language: {header}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nNobody came.\r\n").encode()
    res = post(client, raw)
    assert res.status_code == 202, res.get_json()
    ticket = db.session.get(Ticket, res.get_json()["ticket_id"])
    expected = {"es-MX": "es", "zh-Hans-CN": "zh"}.get(header)
    assert ticket.language == expected


def test_over_long_header_values_are_taken_whole_or_cut_never_refused(client):
    """A subject, a sender name, a Message-ID and a thread reference longer than their
    columns: the email is stored (cut where a column must cut it), and a second copy of
    it is still recognized as the same email."""
    long_id = "<" + "m" * 400 + "@example.net>"
    raw = (
        f"From: {'N' * 300} <longname@example.net>\r\nTo: help@city.gov\r\n"
        f"Subject: {'S' * 1000}\r\nMessage-ID: {long_id}\r\n"
        f"In-Reply-To: <{'r' * 500}@example.net>\r\n"
        f"References: <{'q' * 500}@example.net>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nA very long subject.\r\n").encode()
    res = post(client, raw)
    assert res.status_code == 202, res.get_json()
    again = post(client, raw)
    assert again.status_code in (200, 202) and again.get_json()["duplicate"]
    ticket = db.session.get(Ticket, res.get_json()["ticket_id"])
    assert ticket.subject == "S" * 300
    assert db.session.scalar(sa.select(sa.func.count()).select_from(Interaction)) == 1
    # A reply to that long Message-ID threads into the same case.
    reply = (
        "From: Lee <longname@example.net>\r\nTo: help@city.gov\r\nSubject: Re: hello\r\n"
        f"Message-ID: <short-reply@example.net>\r\nIn-Reply-To: {long_id}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n\r\nAnd another thing.\r\n").encode()
    threaded = post(client, reply)
    assert threaded.status_code == 202 and threaded.get_json()["ticket_id"] == ticket.id


def test_nul_characters_are_dropped_and_the_email_is_taken(client):
    raw = (b"From: Lee <lee@example.net>\r\nTo: help@city.gov\r\nSubject: Hi\x00there\r\n"
           b"Message-ID: <nul@example.net>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
           b"Body with a \x00NUL.\r\n")
    res = post(client, raw)
    assert res.status_code == 202, res.get_json()
    row = db.session.get(Interaction, res.get_json()["interaction_id"])
    assert row.text == "Body with a NUL." and row.subject == "Hithere"


def test_an_email_the_database_refuses_is_kept_as_a_failed_payload(client, monkeypatch):
    from app.services import email_service

    def refused(msg, **_kw):
        raise sa.exc.DataError("INSERT ...", {}, ValueError("value too long for the column"))

    monkeypatch.setattr(email_service, "intake", refused)
    raw = eml("gmail_plain.eml")
    res = post(client, raw)
    assert res.status_code == 400
    body = res.get_json()["error"]
    assert body["code"] == "unreadable_email" and "value too long" in body["message"]
    kept = db.session.get(FailedPayload, body["detail"]["failed_payload_id"])
    assert kept.body == raw and kept.error.startswith("not storable")
