"""Access tokens for agents' browser softphones (Twilio Voice JavaScript SDK)."""

from __future__ import annotations

from twilio.jwt.access_token import AccessToken
from twilio.jwt.access_token.grants import VoiceGrant

MAX_TTL = 24 * 3600  # Twilio rejects access tokens valid for longer than a day


def voice_access_token(
    account_sid: str,
    api_key: str,
    api_secret: str,
    twiml_app_sid: str,
    identity: str,
    ttl: int = 3600,
) -> str:
    """A signed JWT letting the agent ``identity`` place calls through the TwiML app
    ``twiml_app_sid`` and receive calls dialed to ``<Client>identity</Client>``.

    ``api_key``/``api_secret`` are a Twilio API key (SK...) and its secret, not the auth
    token. The app hands the token to the console, which refreshes it before ``ttl``
    seconds pass.
    """
    if not identity:
        raise ValueError("an agent identity is required")
    if not 0 < ttl <= MAX_TTL:
        raise ValueError(f"ttl must be between 1 and {MAX_TTL} seconds, got {ttl}")
    token = AccessToken(account_sid, api_key, api_secret, identity=identity, ttl=ttl)
    token.add_grant(VoiceGrant(outgoing_application_sid=twiml_app_sid, incoming_allow=True))
    jwt = token.to_jwt()
    return jwt.decode("ascii") if isinstance(jwt, bytes) else jwt
