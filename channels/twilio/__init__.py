"""Twilio channel adapter: SMS/MMS and voice for CivicLine.

Framework-free: the app's webhook views verify signatures with ``signature``, parse
forms with ``sms``, ``voice`` and ``status``, answer with the TwiML builders, and its
outbox jobs send through ``outbound``. ``tokens`` issues agents' softphone tokens.
"""

from channels.twilio.outbound import (
    make_client,
    place_call,
    redirect_call,
    send_sms,
    sms_sender,
)
from channels.twilio.signature import public_url, sign, verify
from channels.twilio.sms import classify_keyword, messaging_twiml, parse_sms
from channels.twilio.status import STATUS_RANK, StatusUpdate, parse_status, should_apply
from channels.twilio.tokens import voice_access_token
from channels.twilio.voice import parse_recording, parse_voice, parse_wait

__all__ = [
    "STATUS_RANK",
    "StatusUpdate",
    "classify_keyword",
    "make_client",
    "messaging_twiml",
    "parse_recording",
    "parse_sms",
    "parse_status",
    "parse_voice",
    "parse_wait",
    "place_call",
    "public_url",
    "redirect_call",
    "send_sms",
    "should_apply",
    "sms_sender",
    "sign",
    "verify",
    "voice_access_token",
]
