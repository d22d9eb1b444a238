"""The JSON REST API under ``/api/v1``, one blueprint per resource family."""

from apiflask import APIBlueprint

bp = APIBlueprint("api", __name__, url_prefix="/api/v1", tag="api")

from app.api import admin, auth, citizens, queues, tickets  # noqa: E402,F401
from app.api import kb  # noqa: E402,F401
from app.api import voice  # noqa: E402,F401
from app.api import reports  # noqa: E402,F401
from app.api import walkins  # noqa: E402,F401
from app.api import routing  # noqa: E402,F401
from app.api import privacy  # noqa: E402,F401
