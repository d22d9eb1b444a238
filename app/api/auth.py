"""Token issue endpoint."""

from apiflask import abort

from app.api import bp
from app.api.schemas import TokenIn, TokenOut
from app.auth import authenticate, issue_token
from app.extensions import limiter


@bp.post("/auth/token")
@limiter.limit("20 per minute")
@bp.input(TokenIn, arg_name="body")
@bp.output(TokenOut)
@bp.doc(summary="Exchange email and password for a bearer token", security=[])
def create_token(body):
    """Called by API clients and the console's login to obtain a bearer token."""
    user = authenticate(body["email"], body["password"])
    if user is None:
        abort(401, "wrong email or password", extra_data={"code": "invalid_credentials"})
    return {"token": issue_token(user), "user_id": user.id, "role": user.role}
