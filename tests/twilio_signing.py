"""Posting Twilio webhooks as Twilio does: the form, signed with the account's auth token
by the SDK's own ``RequestValidator`` (through ``channels.twilio.sign``)."""

from __future__ import annotations

from channels import twilio as tw


def post_signed(client, path, params, *, base="http://localhost", signed_url=None, token=None):
    """POST ``params`` to ``path`` with a valid ``X-Twilio-Signature`` for the URL Twilio
    would have signed (``signed_url``, by default ``base + path``)."""
    token = token or client.application.config["TWILIO_AUTH_TOKEN"]
    signature = tw.sign(token, signed_url or base + path, params)
    return client.post(path, data=params, base_url=base,
                       headers={"X-Twilio-Signature": signature})
