"""Web security shared by every door: CSRF tokens on form posts, request size limits, and
the answers to a rate limit or an oversized request.

CSRF: a random token kept in the session is rendered into every HTML form
(``csrf_token()`` in templates) and checked on unsafe requests that could be forged by
another site: the sign-in and sign-out forms, and any other request that rides on the
session cookie. Exempt, because no browser sends them cross-site with our credentials:
requests carrying an ``Authorization`` header (API bearer tokens, the email webhook
secret), provider webhooks (signed, see ``twilio_webhooks``), JSON bodies (a cross-site
page cannot send ``application/json`` without a CORS preflight, and no view allows one)
and Socket.IO (served beside Flask, authenticated by its own handshake).

Sizes: ``API_MAX_CONTENT_LENGTH`` bounds every request body except the email webhook's,
which takes whole messages with attachments up to ``MAX_CONTENT_LENGTH``.
"""

from __future__ import annotations

import hmac
import math
import secrets
import time

from flask import Flask, Response, current_app, render_template, request, session
from flask_limiter.errors import RateLimitExceeded
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.routing import IntegerConverter

from app.models import MAX_ID

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
_SESSION_KEY = "_csrf"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Checked even for a visitor who is not signed in (login CSRF signs a victim in as the
# attacker; a forged sign-out is a nuisance).
FORM_ENDPOINTS = frozenset({"pages.login", "pages.logout"})
LARGE_BODY_PATHS = ("/webhooks/email",)
TWILIO_PREFIX = "/webhooks/twilio/"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response />'


def csrf_token() -> str:
    """The session's CSRF token, created on first use (rendered into forms)."""
    token = session.get(_SESSION_KEY)
    if not token:
        token = secrets.token_urlsafe(32)
        session[_SESSION_KEY] = token
    return token


def _needs_csrf() -> bool:
    if request.method not in UNSAFE_METHODS:
        return False
    if request.path.startswith("/webhooks/") or request.headers.get("Authorization"):
        return False
    if request.endpoint in FORM_ENDPOINTS:
        return True
    if request.is_json:
        return False
    return bool(session.get("uid"))


def _csrf_valid() -> bool:
    expected = session.get(_SESSION_KEY)
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD) or ""
    return bool(expected) and hmac.compare_digest(sent.encode(), expected.encode())


def _before_request():
    if not request.path.startswith(LARGE_BODY_PATHS):
        request.max_content_length = current_app.config["API_MAX_CONTENT_LENGTH"]
    if not _needs_csrf() or _csrf_valid():
        return None
    if request.endpoint == "pages.login":
        return render_template("login.html", error="This sign-in form expired. Please sign "
                               "in again."), 400
    return {"error": {"code": "csrf_failed", "message": "This form expired or did not come "
                      "from this site. Reload the page and try again."}}, 403


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None):
    """A JSON error, or an empty TwiML document for Twilio (which must never read an
    error aloud or text it to a resident)."""
    if request.path.startswith(TWILIO_PREFIX):
        return Response(EMPTY_TWIML, status, headers, mimetype="text/xml")
    return {"error": {"code": code, "message": message}}, status, headers or {}


def _rate_limited(exc: RateLimitExceeded):
    from app.extensions import limiter

    current = limiter.current_limit
    retry = max(1, math.ceil(current.reset_at - time.time())) if current else 60
    return _error(429, "rate_limited", f"Too many requests ({exc.description}); try again "
                  f"in {retry} seconds.", {"Retry-After": str(retry)})


def _too_large(exc: RequestEntityTooLarge):
    limit = request.max_content_length
    return _error(413, "payload_too_large", f"The request body is larger than the "
                  f"{limit} bytes accepted here." if limit else "The request body is too large.")


def _unstorable_value(exc: sa_exc.DataError):
    # A value from the request the database refuses (a number out of range, a NUL
    # character in text): the client's mistake, and nothing was stored.
    from app.extensions import db

    db.session.rollback()
    return _error(400, "invalid_value", "A value in the request cannot be stored (out of "
                  "range or containing characters that are not allowed).")


class DatabaseIntConverter(IntegerConverter):
    """``<int:...>`` ids fit the database's integer columns: a larger number matches no
    route (404) instead of failing in the database."""

    def __init__(self, map, fixed_digits=0, min=None, max=MAX_ID, signed=False):
        super().__init__(map, fixed_digits, min, max, signed)


def init_app(app: Flask) -> None:
    """Call before the blueprints are registered (their rules use the ``int`` converter)."""
    app.url_map.converters["int"] = DatabaseIntConverter
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.before_request(_before_request)
    app.register_error_handler(RateLimitExceeded, _rate_limited)
    app.register_error_handler(RequestEntityTooLarge, _too_large)
    app.register_error_handler(sa_exc.DataError, _unstorable_value)
