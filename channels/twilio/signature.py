"""Webhook signatures: is this request really from Twilio?

Twilio signs every webhook with HMAC-SHA1 of the full URL it requested plus the sorted
POST parameters, keyed by the account's auth token, and sends the result in the
``X-Twilio-Signature`` header. Behind a TLS-terminating proxy the URL our server sees
(``http://10.0.0.5:5000/webhooks/twilio/sms``) is not the one Twilio signed
(``https://civicline.example.gov/webhooks/twilio/sms``), so ``public_url`` rebuilds the
signed URL from ``PUBLIC_BASE_URL``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from twilio.request_validator import (
    SIGNATURE_HEADER,
    SIGNATURE_SETTINGS_HEADER,
    RequestValidator,
    compare,
    get_signature_algorithm,
)

__all__ = [
    "SIGNATURE_HEADER",
    "SIGNATURE_SETTINGS_HEADER",
    "algorithm_from_header",
    "public_url",
    "sign",
    "verify",
]


def verify(
    auth_token: str,
    url: str,
    params: Mapping[str, Any] | None,
    signature: str | None,
    algorithm: str | None = None,
) -> bool:
    """True when ``signature`` is Twilio's signature of ``url`` and ``params``.

    ``url`` must be the URL Twilio requested, query string included (see ``public_url``).
    ``params`` is the form body; a multi-value mapping (Flask's ``request.form``) is
    supported. A missing signature or an empty auth token never verifies.
    ``algorithm`` comes from ``algorithm_from_header`` for webhooks signed with a shared
    key; the default is Twilio's classic HMAC-SHA1.
    """
    if not auth_token or not signature:
        return False
    validator = RequestValidator(auth_token)
    params = params if params is not None else {}
    if "bodySHA256" not in url and compare(
            validator.compute_signature(url, params, algorithm), signature):
        # The URL exactly as signed: one HMAC instead of the SDK's two (it tries the URL
        # with and without its port). Anything else gets the SDK's full check.
        return True
    return bool(validator.validate(url, params, signature, algorithm))


def sign(
    auth_token: str,
    url: str,
    params: Mapping[str, Any] | None,
    algorithm: str | None = None,
) -> str:
    """The ``X-Twilio-Signature`` Twilio would send for this request (tests, simulator)."""
    return RequestValidator(auth_token).compute_signature(url, params or {}, algorithm)


def algorithm_from_header(signature_settings: str | None) -> str:
    """The signing algorithm named in ``X-Twilio-Webhooks-Signature-Settings`` (or SHA1)."""
    return get_signature_algorithm(signature_settings)


def public_url(request_url: str, public_base_url: str | None) -> str:
    """The URL Twilio signed, given the URL our server saw and ``PUBLIC_BASE_URL``.

    Scheme and host (with port) come from ``public_base_url``; path and query string come
    from ``request_url``. When the public base URL has a path prefix (the app is mounted
    under ``/contact`` by the proxy, which strips it), the prefix is put back unless the
    request path already starts with it. With no public base URL the request URL is
    returned unchanged.
    """
    if not public_base_url:
        return request_url
    base = urlsplit(public_base_url.strip())
    if not base.scheme or not base.netloc:
        raise ValueError(f"PUBLIC_BASE_URL must be an absolute URL, got {public_base_url!r}")
    seen = urlsplit(request_url)
    prefix = base.path.rstrip("/")
    path = seen.path or "/"
    if prefix and path != prefix and not path.startswith(prefix + "/"):
        path = prefix + path
    return urlunsplit((base.scheme, base.netloc, path, seen.query, ""))
