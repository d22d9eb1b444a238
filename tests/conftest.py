"""Shared fixtures.

Backends: with ``DATABASE_URL`` / ``REDIS_URL`` set (CI sets both) the suite runs on real
PostgreSQL and Redis; otherwise on a temporary SQLite file with the embedded job runner.
The schema always comes from the Alembic migrations. Side-effect fixtures clean the
database (and Redis) before each test, so no test depends on another's state.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import sqlalchemy as sa

from app.config import TestConfig, _database_url

ROOT = Path(__file__).resolve().parent.parent
_SQLITE_DIR = tempfile.mkdtemp(prefix="civicline-tests-")


def _test_config() -> type[TestConfig]:
    class Cfg(TestConfig):
        SQLALCHEMY_DATABASE_URI = (
            _database_url() if os.environ.get("DATABASE_URL")
            else f"sqlite:///{_SQLITE_DIR}/test.sqlite3"
        )
        REDIS_URL = os.environ.get("REDIS_URL") or None
        RATELIMIT_STORAGE_URI = "memory://"

    return Cfg


@pytest.fixture(scope="session")
def config_class():
    return _test_config()


@pytest.fixture(scope="session")
def _migrated(config_class):
    """Apply the migrations once per test session (drop everything first on PostgreSQL)."""
    from flask_migrate import upgrade

    from app import create_app
    from app.extensions import db

    app = create_app(config_class)
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            with db.engine.begin() as conn:
                conn.execute(sa.text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        upgrade(directory=str(ROOT / "migrations"))
        db.engine.dispose()
    return True


def _clean(db) -> None:
    tables = [t.name for t in reversed(db.metadata.sorted_tables)]
    if db.engine.dialect.name == "postgresql":
        with db.engine.begin() as conn:
            conn.execute(sa.text(
                "TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " RESTART IDENTITY CASCADE"))
    else:
        with db.engine.begin() as conn:
            conn.execute(sa.text("PRAGMA foreign_keys=OFF"))
            for t in tables:
                conn.execute(sa.text(f'DELETE FROM "{t}"'))
            conn.execute(sa.text("DELETE FROM sqlite_sequence")) if conn.execute(sa.text(
                "SELECT name FROM sqlite_master WHERE name='sqlite_sequence'")).first() else None


@pytest.fixture
def app(_migrated, config_class):
    from app import create_app
    from app.extensions import db, redis_store

    app = create_app(config_class)
    with app.app_context():
        _clean(db)
        from app import realtime
        from app.services import intake

        realtime._QUEUE_CODES.clear()  # ids restart with every clean database
        intake._QUEUE_IDS.clear()
        if redis_store.client is not None:
            redis_store.client.flushdb()
        yield app
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def run_jobs(app):
    """Burst-run every queued job in this process (the embedded runner or an RQ worker)."""

    def _run() -> int:
        return app.extensions["civicline_jobs"].run_pending()

    return _run


@pytest.fixture
def make_user(app):
    from app.extensions import db
    from app.models import User

    def _make(email="agent@example.org", role="agent", password="correct-horse", **kw):
        user = User(email=email, role=role, name=kw.pop("name", email.split("@")[0]),
                    password_hash="", **kw)
        user.set_password(password)
        db.session.add(user)
        db.session.commit()
        return user

    return _make


@pytest.fixture
def auth_headers(app, make_user):
    """``auth_headers(role)`` -> headers with a bearer token for a new user of that role."""
    from app.auth import issue_token

    counter = iter(range(1, 10_000))

    def _headers(role: str = "agent", user=None):
        user = user or make_user(email=f"{role}{next(counter)}@example.org", role=role)
        return {"Authorization": f"Bearer {issue_token(user)}"}

    return _headers


@pytest.fixture
def seeded(app):
    from app.seed import seed

    seed(echo=lambda *_: None)
    return app


@pytest.fixture
def live_server(app):
    """The app (with Socket.IO) served by a real threaded HTTP server on a free port."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=5)
