"""Email doors: the inbound webhook, the SMTP listener command, attachment downloads.

``POST /webhooks/email`` takes one raw RFC 5322 message (``Content-Type:
message/rfc822``) from a mail provider's inbound relay, authenticated by ``Authorization:
Bearer $EMAIL_WEBHOOK_SECRET``. ``flask smtp-server`` receives the same messages by SMTP.
Both answer only after the message is committed.
"""

from __future__ import annotations

import hmac
import threading

import click
from apiflask import APIBlueprint, abort
from flask import current_app, request, send_file

from app.auth import token_auth
from app.extensions import limiter
from app.services import email_service
from channels.email import AttachmentTooLarge

bp = APIBlueprint("email", __name__, tag="email", cli_group=None)


@bp.record_once
def _wire(_state) -> None:
    email_service.register()


def _authorized() -> bool:
    secret = current_app.config.get("EMAIL_WEBHOOK_SECRET")
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not secret or scheme.lower() != "bearer" or not token:
        return False
    return hmac.compare_digest(token.strip().encode(), secret.encode())


@limiter.request_filter
def _from_the_relay() -> bool:
    """Authenticated relay requests pass the limiter without a look at its rules."""
    return request.endpoint == f"{bp.name}.email_webhook" and _authorized()


@bp.post("/webhooks/email")
# Spent only by requests without the right secret (see the Twilio webhooks: what the
# mail relay authenticated is never throttled, and skips the limiter's round trip).
@limiter.limit(lambda: current_app.config["RATELIMIT_EMAIL_WEBHOOK"])
@bp.doc(hide=True)
def email_webhook():
    """Called by the mail provider's inbound relay with one raw message per request."""
    if not _authorized():
        abort(
            401,
            "missing or wrong webhook secret (Authorization: Bearer ...)",
            headers={"WWW-Authenticate": 'Bearer realm="email webhook"'},
        )
    if request.mimetype != "message/rfc822":
        abort(415, f"send one raw message as message/rfc822, not {request.mimetype or 'nothing'}")
    raw = request.get_data(cache=False)
    try:
        outcome = email_service.ingest(raw, content_type=request.content_type)
    except AttachmentTooLarge as exc:
        abort(
            413,
            str(exc),
            extra_data={
                "code": "attachment_too_large",
                "filename": exc.filename,
                "size": exc.size,
                "limit": exc.limit,
            },
        )
    return outcome.as_json(), 200 if outcome.duplicate else 202


@bp.get("/api/v1/attachments/<sha256>")
@bp.auth_required(token_auth, roles=["agent"])
def download_attachment(sha256: str):
    """Called by the agent console to open a file a resident sent with an email."""
    found = email_service.stored_attachment(sha256)
    if found is None:
        abort(404, "no such attachment")
    path, info = found
    response = send_file(
        path,
        mimetype=info.get("content_type") or "application/octet-stream",
        as_attachment=True,
        download_name=info.get("filename") or sha256,
        max_age=3600,
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "sandbox"
    return response


@bp.cli.command("smtp-server")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=2525, type=int, show_default=True)
@click.option(
    "--max-size",
    default=None,
    type=int,
    help="Largest message accepted, in bytes (default: MAX_CONTENT_LENGTH).",
)
def smtp_server(host: str, port: int, max_size: int | None) -> None:
    """Run by operators: receive residents' email by SMTP and take it in."""
    app = current_app._get_current_object()
    max_size = max_size or app.config["MAX_CONTENT_LENGTH"]
    controller = email_service.smtp_controller(app, host, port, max_size)
    controller.start()
    click.echo(f"SMTP intake on {host}:{controller.port} (messages up to {max_size} bytes)")
    stop = threading.Event()
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        controller.stop()
