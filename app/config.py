"""Configuration from the environment (12-factor), with sane local defaults.

``Config`` is the embedded default used by ``make run``: SQLite under ``instance/``,
background jobs inside the server process, no Redis needed. Setting ``REDIS_URL`` switches
jobs to RQ queues served by ``flask worker`` and Socket.IO to the Redis message queue.
``ProductionConfig`` (``CIVICLINE_ENV=production``) refuses to start without a real
``SECRET_KEY``.
"""

from __future__ import annotations

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
INSECURE_DEV_KEY = "civicline-dev-key-change-me"


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _int(name: str, default: int) -> int:
    value = _env(name)
    return int(value) if value is not None else default


def _float(name: str, default: float | None) -> float | None:
    value = _env(name)
    return float(value) if value is not None else default


def _database_url() -> str:
    url = _env("DATABASE_URL")
    if not url:
        return f"sqlite:///{BASE_DIR / 'instance' / 'civicline.sqlite3'}"
    # Heroku-style and plain postgres URLs both mean psycopg 3 here.
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _from_factory(spec: str | None):
    """Call ``package.module:callable`` (or a dotted path) and return what it builds."""
    if not spec:
        return None
    import importlib

    module, _, name = spec.partition(":") if ":" in spec else spec.rpartition(".")
    return getattr(importlib.import_module(module), name)()


class ConfigError(RuntimeError):
    """A configuration that must not be run; raised at start, never mid-call."""


class Config:
    ENV_NAME = "development"
    TESTING = False
    SECRET_KEY = _env("SECRET_KEY", INSECURE_DEV_KEY)
    SQLALCHEMY_DATABASE_URI = _database_url()
    # Pooled connections are checked at checkout without a round trip (see
    # ``extensions._alive_on_checkout``) instead of by ``pool_pre_ping``.
    SQLALCHEMY_ENGINE_OPTIONS: dict = {}
    # PostgreSQL connections each process keeps open, and how many more it may open in a
    # burst (closed again when returned). None more by default: a connection opened for
    # a burst costs the server a new process with cold caches, just when it is busiest
    # (the README's Deployment section has the figures). A request that finds every
    # connection in use waits for one (see ``create_app``).
    DB_POOL_SIZE = int(_env("DB_POOL_SIZE", "25"))
    DB_MAX_OVERFLOW = int(_env("DB_MAX_OVERFLOW", "0"))
    REDIS_URL = _env("REDIS_URL")
    # Supervisors and wallboards refreshing the live snapshot within this many seconds
    # share one computation per process (0: compute it for every request).
    SUPERVISOR_SNAPSHOT_MAX_AGE = float(_env("SUPERVISOR_SNAPSHOT_MAX_AGE", "1"))
    # Embedded mode only: run queued jobs on a thread inside the server process.
    EMBEDDED_WORKER = True
    PUBLIC_BASE_URL = _env("PUBLIC_BASE_URL", "http://127.0.0.1:5000")
    TWILIO_ACCOUNT_SID = _env("TWILIO_ACCOUNT_SID")
    TWILIO_AUTH_TOKEN = _env("TWILIO_AUTH_TOKEN")
    TWILIO_PHONE_NUMBER = _env("TWILIO_PHONE_NUMBER", "+15555550100")
    TWILIO_API_KEY = _env("TWILIO_API_KEY")
    TWILIO_API_SECRET = _env("TWILIO_API_SECRET")
    TWILIO_TWIML_APP_SID = _env("TWILIO_TWIML_APP_SID")
    # Simulator mode: outbound SMS and calls stay in the simulator outbox even with credentials.
    TWILIO_SIMULATOR = _env("TWILIO_SIMULATOR", "0") == "1"
    # A twilio.http.HttpClient to use instead of the network (tests inject a recording one).
    # TWILIO_HTTP_CLIENT_FACTORY ("package.module:callable") builds one in every process,
    # workers included; it exists for fault tests and staging, never for production.
    TWILIO_HTTP_CLIENT_FACTORY = _env("TWILIO_HTTP_CLIENT_FACTORY")
    TWILIO_HTTP_CLIENT = _from_factory(TWILIO_HTTP_CLIENT_FACTORY)
    # The /simulator page and its request-signing endpoint (off in production).
    SIMULATOR_ENABLED = _env("SIMULATOR_ENABLED", "1") == "1"
    SMTP_URL = _env("SMTP_URL")
    EMAIL_FROM = _env("EMAIL_FROM", "CivicLine <help@civicline.example>")
    EMAIL_DOMAIN = _env("EMAIL_DOMAIN", "civicline.example")
    EMAIL_WEBHOOK_SECRET = _env("EMAIL_WEBHOOK_SECRET", "dev-email-secret")
    MAX_CONTENT_LENGTH = _int("MAX_CONTENT_LENGTH", 25 * 1024 * 1024)
    # Every other door (JSON API, pages, Twilio forms) takes far less than an email.
    API_MAX_CONTENT_LENGTH = _int("API_MAX_CONTENT_LENGTH", 1024 * 1024)
    MAX_ATTACHMENT_BYTES = _int("MAX_ATTACHMENT_BYTES", 10 * 1024 * 1024)
    # Where attachments are kept (content-addressed); unset: ``instance/attachments``.
    ATTACHMENTS_DIR = _env("ATTACHMENTS_DIR")
    API_TOKEN_MAX_AGE = _int("API_TOKEN_MAX_AGE", 7 * 24 * 3600)
    HOST = _env("HOST", "127.0.0.1")
    PORT = _int("PORT", 5000)
    RATELIMIT_STORAGE_URI = _env("REDIS_URL", "memory://")
    RATELIMIT_ENABLED = True
    # Rate limits never turn a Redis outage into errors: limits fall back to memory.
    RATELIMIT_IN_MEMORY_FALLBACK_ENABLED = True
    RATELIMIT_SWALLOW_ERRORS = True
    # Webhooks are limited per source address, and only their unauthenticated requests
    # (a wrong Twilio signature, a wrong email secret) count: a flood of forged requests
    # must not reach the database, and what the provider authenticated is never refused.
    RATELIMIT_TWILIO = _env("RATELIMIT_TWILIO", "6000 per minute")
    RATELIMIT_EMAIL_WEBHOOK = _env("RATELIMIT_EMAIL_WEBHOOK", "1200 per minute")
    # Outbox sweep: rows pending this long lost their job; a row "sending" longer than
    # the timeout lost its worker mid-send and is settled as "unknown".
    OUTBOX_STALE_SECONDS = _int("OUTBOX_STALE_SECONDS", 300)
    OUTBOX_SENDING_TIMEOUT = _int("OUTBOX_SENDING_TIMEOUT", 300)
    # Routing (app.services.routing_service, routing.engine): how long an agent has to
    # accept an offer, misses before they are set away, how fast waiting priorities age,
    # wrap-up after each item (unset: none) and when a declined item may return to them.
    ROUTING_OFFER_TIMEOUT_SECONDS = _float("ROUTING_OFFER_TIMEOUT_SECONDS", 30.0)
    ROUTING_MAX_MISSED_OFFERS = _int("ROUTING_MAX_MISSED_OFFERS", 2)
    ROUTING_AGING_SECONDS = _float("ROUTING_AGING_SECONDS", 300.0)
    ROUTING_WRAP_UP_SECONDS = _float("ROUTING_WRAP_UP_SECONDS", None)
    ROUTING_REOFFER_AFTER_SECONDS = _float("ROUTING_REOFFER_AFTER_SECONDS", 120.0)
    # Routing jobs for new work start at least this far apart (with Redis): a step reads
    # every open item, so in a storm back-to-back steps would crowd out other jobs
    # (app.services.followup.queue_routing).
    ROUTING_STEP_SPACING_SECONDS = _float("ROUTING_STEP_SPACING_SECONDS", 1.0)
    # Knowledge base: "on" fuses BM25F with a local embedding model (English, Spanish)
    # (knowledge_base.semantic); "off" is lexical only. Off by default: it lifts English
    # MRR, but loading the model takes seconds and every article is embedded at first use.
    KB_SEMANTIC = (_env("KB_SEMANTIC", "off") or "off").lower()
    # Privacy: closed tickets older than this are anonymized by the retention job.
    RETENTION_DAYS = _int("RETENTION_DAYS", 730)
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    # apiflask: keep the OpenAPI document under the API prefix.
    SPEC_FORMAT = "json"
    INFO = {"description": "CivicLine REST API: tickets, citizens, queues, agents."}

    @classmethod
    def validate(cls) -> None:
        """Checks that must pass before serving; the development config has none."""


class ProductionConfig(Config):
    ENV_NAME = "production"
    SESSION_COOKIE_SECURE = True
    SIMULATOR_ENABLED = _env("SIMULATOR_ENABLED", "0") == "1"
    EMAIL_WEBHOOK_SECRET = _env("EMAIL_WEBHOOK_SECRET")

    @classmethod
    def validate(cls) -> None:
        if not cls.SECRET_KEY or cls.SECRET_KEY == INSECURE_DEV_KEY or len(cls.SECRET_KEY) < 16:
            raise ConfigError(
                "SECRET_KEY is missing or is the development default. Set SECRET_KEY to a "
                "long random value (for example: python -c 'import secrets; "
                "print(secrets.token_hex(32))') before starting in production."
            )
        if not _env("DATABASE_URL"):
            raise ConfigError("DATABASE_URL must be set in production (PostgreSQL).")
        if not cls.EMAIL_WEBHOOK_SECRET:
            raise ConfigError("EMAIL_WEBHOOK_SECRET must be set in production.")


class TestConfig(Config):
    """Tests: the embedded backend unless DATABASE_URL / REDIS_URL are set (as CI sets them).

    Jobs never run on a background thread in tests: the ``run_jobs`` fixture drains the
    queues in burst mode, the same way for the embedded runner and for RQ.
    """

    ENV_NAME = "testing"
    TESTING = True
    SECRET_KEY = "test-secret-key-for-civicline-tests"
    SQLALCHEMY_DATABASE_URI = _env("DATABASE_URL") and _database_url() or "sqlite://"
    EMBEDDED_WORKER = False
    RATELIMIT_ENABLED = False
    SUPERVISOR_SNAPSHOT_MAX_AGE = 0.0  # each read sees the change a test just made
    EMAIL_WEBHOOK_SECRET = "test-email-secret"
    TWILIO_ACCOUNT_SID = "AC" + "0" * 32
    TWILIO_AUTH_TOKEN = "test-twilio-auth-token"
    TWILIO_SIMULATOR = True
    PUBLIC_BASE_URL = "http://localhost"


def config_from_env() -> type[Config]:
    return ProductionConfig if _env("CIVICLINE_ENV") == "production" else Config
