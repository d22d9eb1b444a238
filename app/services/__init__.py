"""Services: plain functions that views, Socket.IO handlers, CLI commands and jobs call.

Permission checks and validation live here, once. Services raise ``ServiceError``
subclasses that views map to status codes.
"""


def commit_keeping_loaded() -> None:
    """Commit without expiring what the session holds.

    For the end of a request that has just written these rows: what it announces and
    returns afterwards is exactly what it committed, so reading it all back (a new
    transaction and a query per row) would only cost time.
    """
    from app.extensions import db

    session = db.session()
    previous = session.expire_on_commit
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = previous


def held(model: type, ident: int):
    """The row of ``model`` with primary key ``ident`` if this request's or job's session
    already holds it (no query, unlike ``Session.get`` with options), else ``None``."""
    from sqlalchemy.orm.util import identity_key

    from app.extensions import db

    return db.session.identity_map.get(identity_key(model, ident))


class ServiceError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 detail: dict | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if status:
            self.status = status
        self.detail = detail or {}


class NotFound(ServiceError):
    status = 404
    code = "not_found"


class Forbidden(ServiceError):
    status = 403
    code = "forbidden"


class Conflict(ServiceError):
    status = 409
    code = "conflict"


class Invalid(ServiceError):
    status = 400
    code = "invalid"
