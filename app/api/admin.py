"""Administration: payloads intake could not parse, kept for inspection."""

import sqlalchemy as sa
from apiflask import Schema
from apiflask.fields import Integer, List, Nested, String

from app.api import bp
from app.api.schemas import UTCDateTime
from app.auth import token_auth
from app.extensions import db
from app.models import FailedPayload


class FailedPayloadOut(Schema):
    id = Integer()
    received_at = UTCDateTime()
    source = String()
    content_type = String(allow_none=True)
    error = String()
    size = Integer()
    preview = String()


class FailedPayloadList(Schema):
    items = List(Nested(FailedPayloadOut))


@bp.get("/failed-payloads")
@bp.auth_required(token_auth, roles=["admin"])
@bp.output(FailedPayloadList)
def list_failed_payloads():
    """Called by administrators to inspect provider payloads that could not be parsed."""
    rows = db.session.scalars(
        sa.select(FailedPayload).order_by(FailedPayload.id.desc()).limit(200)).all()
    return {"items": [
        {"id": r.id, "received_at": r.received_at, "source": r.source,
         "content_type": r.content_type, "error": r.error, "size": len(r.body),
         "preview": r.body[:500].decode("utf-8", "replace")} for r in rows]}
