"""Authentication: bearer tokens for the API and Socket.IO, sessions for the pages.

Tokens are signed (``itsdangerous``) with the user's id and ``token_version``; raising a
user's ``token_version`` (password change, deactivation) revokes every token they hold.
Roles are ranked: agent < supervisor < admin; a route that needs ``agent`` admits all.
"""

from __future__ import annotations

import sqlalchemy as sa
from apiflask import HTTPTokenAuth
from flask import current_app, g
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from app.extensions import db
from app.models import ROLE_RANK, User
from app.services import held

token_auth = HTTPTokenAuth(scheme="Bearer", description="Token from POST /api/v1/auth/token")


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="civicline-api-token")


def issue_token(user: User) -> str:
    return _serializer().dumps({"uid": user.id, "v": user.token_version})


def user_from_token(token: str | None) -> User | None:
    if not token:
        return None
    try:
        data = _serializer().loads(token, max_age=current_app.config["API_TOKEN_MAX_AGE"])
    except (BadSignature, SignatureExpired):
        return None
    uid = data.get("uid")
    user = _load_user(uid) if isinstance(uid, int) else None
    if user is None or not user.active or user.token_version != data.get("v"):
        return None
    return user


_USERS = User.__table__
_SELECT_USER = sa.select(_USERS).where(_USERS.c.id == sa.bindparam("id"))
_NO_SKILLS = (sa.orm.lazyload(User.skills),)


def _load_user(uid: int) -> User | None:
    """The user with id ``uid``, read fresh for this request (so a deactivated user or a
    revoked token is refused at once), as an instance of the request's session.

    On PostgreSQL the row is read by one autocommitted statement (``hotpath``) and placed
    in the session as loaded: every API request is authenticated, and the ORM's own
    ``Session.get`` (a transaction begun for it, the statement's cache key, the loading
    machinery) cost a supervisor's snapshot refresh more than the snapshot. A request that
    reads nothing else then needs no transaction at all. Skills are loaded when something
    uses them (routing does), not for every request."""
    from app.services.hotpath import autocommitted

    known = held(User, uid)
    if known is not None:
        return known
    with autocommitted() as run:
        if run is not None:
            row = run.first(_SELECT_USER, {"id": uid})
            if row is None:
                return None
            user = User(**row._asdict())
            sa.orm.make_transient_to_detached(user)  # as loaded: no history, not pending
            db.session.add(user)
            return user
    return db.session.get(User, uid, options=_NO_SKILLS)


def authenticate(email: str, password: str) -> User | None:
    user = db.session.scalar(sa.select(User).where(User.email == email.strip().lower()))
    if user is None or not user.active or not user.check_password(password):
        return None
    return user


@token_auth.verify_token
def _verify(token: str) -> User | None:
    # The API takes bearer tokens only; the pages get one for their signed-in user.
    user = user_from_token(token)
    if user is not None:
        g.current_user = user
    return user


@token_auth.get_user_roles
def _roles(user: User) -> list[str]:
    rank = ROLE_RANK.get(user.role, 0)
    return [role for role, r in ROLE_RANK.items() if r <= rank]


def current_user() -> User | None:
    return token_auth.current_user or g.get("current_user")
