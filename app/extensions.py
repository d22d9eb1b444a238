"""Extension singletons, bound to an app in ``create_app`` with ``init_app``."""

from __future__ import annotations

import select
import sys

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_migrate import Migrate
from flask_socketio import SocketIO
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import Pool

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)


@event.listens_for(Engine, "connect")
def _sqlite_settings(dbapi_connection, _record) -> None:
    """The embedded SQLite database in write-ahead-log mode: readers (consoles, reports)
    no longer block the writer (intake) and writers queue instead of failing with
    "database is locked". ``synchronous`` stays FULL: a commit is on disk before the
    webhook is answered. Other databases are left alone."""
    if type(dbapi_connection).__module__.startswith("sqlite3"):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


def gevent_patched(module: str) -> bool:
    """Whether gevent has patched this standard-library module: true inside gunicorn's
    gevent worker, which patches before it loads the app; false everywhere else."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and monkey.is_module_patched(module)


def _poll_class():
    """The operating system's ``poll``. Under gevent (gunicorn's gevent worker) the
    ``select`` module is patched; the original ``poll`` is used then, not gevent's
    cooperative one, which hands over to the event loop even with a zero timeout: a busy
    loop took 50-80 ms to come back, on every checkout."""
    if gevent_patched("select"):
        return sys.modules["gevent.monkey"].get_original("select", "poll")
    return select.poll


def _readable(fd: int) -> bool:
    """Whether ``fd`` has data or EOF waiting, at once (``poll`` with a zero timeout)."""
    poller = _poll_class()()
    poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
    return bool(poller.poll(0))


@event.listens_for(Pool, "checkout")
def _alive_on_checkout(dbapi_connection, _record, _proxy) -> None:
    """Hand out only live PostgreSQL connections, at no round trip.

    A pooled connection dies when the server restarts or ends the session; the server
    then sends its goodbye and closes the socket, so the idle connection's socket turns
    readable. Checking that with a zero-timeout ``poll`` finds the dead ones before use,
    as ``pool_pre_ping`` would, without its ``SELECT 1`` on every checkout (a fifth of a
    webhook's time went to that ping). A dead connection raises ``DisconnectionError``,
    on which the pool drops it and checks out (or opens) another. A connection that
    dies without a word (a severed network) fails on first use instead: that request
    gets a 5xx and the pool recycles every connection older than the failure."""
    pgconn = getattr(dbapi_connection, "pgconn", None)
    if pgconn is None:
        return  # SQLite: nothing to lose between uses
    if dbapi_connection.closed or dbapi_connection.broken:
        raise DisconnectionError("the database connection is closed")
    if _readable(pgconn.socket):
        # Idle connections have nothing to read: data or EOF here is the server's goodbye.
        raise DisconnectionError("the database closed this connection")


migrate = Migrate(render_as_batch=True)
socketio = SocketIO()
limiter = Limiter(key_func=get_remote_address, default_limits=[])


class RedisHolder:
    """The Redis client when ``REDIS_URL`` is set; ``None`` in the embedded mode."""

    def __init__(self) -> None:
        self.client = None

    def init_app(self, app) -> None:
        url = app.config.get("REDIS_URL")
        if url:
            import redis

            # Timeouts, so a Redis that silently drops packets fails fast instead of
            # hanging requests (jobs are parked in the database meanwhile).
            self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=3,
                                               health_check_interval=30)
        else:
            self.client = None
        app.extensions["civicline_redis"] = self


redis_store = RedisHolder()
