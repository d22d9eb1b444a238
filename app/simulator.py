"""The resident simulator: a phone in the browser for demos and end-to-end tests.

The phone tab sends SMS and walks the IVR exactly as Twilio would: the page asks
``POST /simulator/twilio/sign`` for the ``X-Twilio-Signature`` of the request it is about
to make (signed server-side with the same token the webhooks check, see
``telephony.auth_token``), then posts the signed form to the real webhook. So the
simulator exercises signature checks, parsing, intake and TwiML end to end, and the
page interprets the TwiML it gets back (Say, Gather, Enqueue, Record, Dial, Hangup).
Replies come from the simulator outbox (``Outbox.simulated``), polled by the page.
The email tab builds an RFC 5322 message and posts it to the real ``/webhooks/email``
with the webhook secret (server-side, so the secret never reaches the page); its inbox
polls the simulator outbox. The chat and walk-in tabs embed the real chat demo page and
the kiosk.
Disabled (404) unless ``SIMULATOR_ENABLED``; production turns it off by default.
"""

from __future__ import annotations

import sqlalchemy as sa
from apiflask import APIBlueprint
from flask import abort, current_app, jsonify, render_template, request

from app.extensions import db
from app.models import MAX_ID, Outbox
from app.services import Invalid, telephony
from app.services.contacts import normalize_phone
from channels import twilio as tw

bp = APIBlueprint("simulator", __name__, enable_openapi=False)

SIGNABLE_PREFIX = "/webhooks/twilio/"
DEFAULT_NUMBER = "+15555550123"
HISTORY = 100  # texts or emails a poll returns at most


@bp.before_request
def _only_when_enabled():
    if not current_app.config.get("SIMULATOR_ENABLED"):
        abort(404)


@bp.get("/simulator")
def page():
    """A person opens the resident simulator (demos, end-to-end tests)."""
    config = current_app.config
    return render_template(
        "simulator.html",
        number=request.args.get("number", DEFAULT_NUMBER),
        city_number=config.get("TWILIO_PHONE_NUMBER"),
        account_sid=config.get("TWILIO_ACCOUNT_SID") or "AC" + "5" * 32,
    )


@bp.post("/simulator/twilio/sign")
def sign():
    """The simulator page asks for the signature Twilio would put on its next request."""
    data = request.get_json(silent=True) or {}
    path, params = data.get("path"), data.get("params")
    if not isinstance(path, str) or not path.startswith(SIGNABLE_PREFIX):
        return {"error": {"code": "bad_request", "message": "path must be a Twilio webhook"}}, 400
    if not isinstance(params, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in params.items()):
        return {"error": {"code": "bad_request", "message": "params must map strings"}}, 400
    url = tw.public_url(request.host_url.rstrip("/") + path,
                        current_app.config.get("PUBLIC_BASE_URL"))
    return {"signature": tw.sign(telephony.auth_token(), url, params), "path": path}


@bp.get("/simulator/phone/messages")
def phone_messages():
    """The simulator page polls for texts the center sent to the simulated phone
    (``direction`` "in"). Its first poll (``history=1``: the page was opened or reloaded,
    or the number changed) also gets the texts this phone sent (``direction`` "out",
    ``id`` 0), in the order they were written, so the whole conversation shows again."""
    try:
        number = normalize_phone(request.args.get("number", ""))
    except Invalid as exc:
        return {"error": {"code": exc.code, "message": exc.message}}, 400
    if request.args.get("history") == "1":  # the last 100 texts, both ways, in order
        items = _simulated_outbox("sms", number, _after(), newest=True)
        items = sorted(items + _texts_sent_from(number), key=lambda item: item["order"])
        items = items[-HISTORY:]
    else:
        items = _simulated_outbox("sms", number, _after())
    return jsonify({"number": number, "items": items})


def _texts_sent_from(number: str, limit: int = HISTORY) -> list[dict]:
    """The last texts a phone sent to the center."""
    from app.models import ContactPoint, Interaction

    rows = db.session.execute(
        sa.select(Interaction.id, Interaction.text, Interaction.created_at)
        .join(ContactPoint, ContactPoint.id == Interaction.contact_point_id)
        .where(ContactPoint.kind == "phone", ContactPoint.value == number,
               Interaction.channel == "sms", Interaction.direction == "inbound")
        .order_by(Interaction.id.desc()).limit(limit)).all()
    return [{"id": 0, "direction": "out", "text": text or "", "order": interaction_id,
             "at": at.isoformat() + "Z"} for interaction_id, text, at in reversed(rows)]


@bp.post("/simulator/email/send")
def email_send():
    """The simulator page sends an email as a resident, through the real email webhook."""
    import email.utils
    import uuid
    from email.message import EmailMessage

    data = request.get_json(silent=True) or {}
    sender, subject, body = data.get("from"), data.get("subject"), data.get("body")
    if not all(isinstance(v, str) and v.strip() for v in (sender, subject, body)):
        return {"error": {"code": "bad_request",
                          "message": "from, subject and body are required"}}, 400
    message = EmailMessage()
    message["From"] = sender.strip()
    message["To"] = current_app.config.get("EMAIL_FROM")
    message["Subject"] = subject.strip()
    message["Date"] = email.utils.formatdate(localtime=False)
    message["Message-ID"] = f"<{uuid.uuid4().hex}@simulator.civicline.invalid>"
    message.set_content(body)
    response = current_app.test_client().post(
        "/webhooks/email", data=message.as_bytes(),
        headers={"Content-Type": "message/rfc822",
                 "Authorization": f"Bearer {current_app.config.get('EMAIL_WEBHOOK_SECRET')}"},
        environ_base={"REMOTE_ADDR": request.remote_addr or "127.0.0.1"})
    return response.get_json(), response.status_code


@bp.get("/simulator/email/messages")
def email_messages():
    """The simulator page polls for emails the center sent to the resident's address."""
    from app.services.contacts import normalize_email

    try:
        address = normalize_email(request.args.get("address", ""))
    except Invalid as exc:
        return {"error": {"code": exc.code, "message": exc.message}}, 400
    items = _simulated_outbox("email", address, _after())
    return jsonify({"address": address, "items": items})


def _after() -> int:
    """The page's ``after`` (the last outbox row it has), kept within what an id holds."""
    return min(max(request.args.get("after", 0, type=int) or 0, 0), MAX_ID)


def _simulated_outbox(channel: str, address: str, after: int,
                      newest: bool = False) -> list[dict]:
    """What the center sent to one simulated phone or mailbox since outbox row ``after``:
    the first 100 rows, or with ``newest`` the last 100, oldest first either way."""
    from app.models import Interaction

    query = sa.select(Outbox).where(
        Outbox.channel == channel, Outbox.to_address == address,
        Outbox.simulated.is_(True), Outbox.id > after)
    if newest:
        rows = list(reversed(db.session.scalars(
            query.order_by(Outbox.id.desc()).limit(HISTORY)).all()))
    else:
        rows = db.session.scalars(query.order_by(Outbox.id).limit(HISTORY)).all()
    items = []
    for row in rows:
        interaction = db.session.get(Interaction, row.interaction_id)
        item = {"id": row.id, "direction": "in", "text": interaction.text if interaction else "",
                "order": row.interaction_id,
                "at": row.sent_at.isoformat() + "Z" if row.sent_at else None}
        if channel == "email":
            item["subject"] = (row.payload or {}).get("subject") or ""
        items.append(item)
    return items
