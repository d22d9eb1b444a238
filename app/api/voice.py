"""Agents' browser softphone: Twilio Voice access tokens."""

from apiflask import abort
from flask import current_app

from app.api import bp
from app.auth import current_user, token_auth
from app.services import telephony
from channels.twilio import voice_access_token

TOKEN_TTL = 3600


@bp.get("/voice/token")
@bp.auth_required(token_auth, roles=["agent"])
def voice_token():
    """Called by the agent console to register its softphone with Twilio."""
    if not telephony.softphone_configured():
        abort(409, "The softphone is not configured: set TWILIO_ACCOUNT_SID, TWILIO_API_KEY, "
              "TWILIO_API_SECRET and TWILIO_TWIML_APP_SID.",
              extra_data={"code": "voice_not_configured"})
    config = current_app.config
    identity = telephony.agent_identity(current_user().id)
    token = voice_access_token(config["TWILIO_ACCOUNT_SID"], config["TWILIO_API_KEY"],
                               config["TWILIO_API_SECRET"], config["TWILIO_TWIML_APP_SID"],
                               identity, ttl=TOKEN_TTL)
    return {"token": token, "identity": identity, "ttl": TOKEN_TTL}
