"""CivicLine: the application factory."""

from __future__ import annotations

import logging
from pathlib import Path

from apiflask import APIFlask
from flask.sessions import SecureCookieSessionInterface
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException

from app.config import Config, config_from_env
from app.extensions import db, gevent_patched, limiter, migrate, redis_store, socketio


def async_mode() -> str:
    """``gevent`` inside gunicorn's gevent worker (which monkey-patches the standard
    library before it loads the app), ``threading`` everywhere else (``flask serve``,
    ``make run``, tests, workers)."""
    return "gevent" if gevent_patched("socket") else "threading"


class _SessionInterface(SecureCookieSessionInterface):
    """Signed cookie sessions for the pages; none for the webhooks (``/webhooks/``): the
    providers that call them send no cookie, and opening a session (building its signing
    serializer) cost about 4% of an SMS webhook's CPU. They get Flask's null session."""

    def open_session(self, app, request):
        if request.path.startswith("/webhooks/"):
            return None  # Flask then uses its null session (empty, refuses writes)
        return super().open_session(app, request)


def create_app(config_class: type[Config] | None = None) -> APIFlask:
    config_class = config_class or config_from_env()
    config_class.validate()
    app = APIFlask(
        __name__,
        title="CivicLine API",
        version="1.0",
        spec_path="/api/v1/openapi.json",
        docs_path="/api/v1/docs",
    )
    app.config.from_object(config_class)
    app.session_interface = _SessionInterface()
    app.config["VALIDATION_ERROR_STATUS_CODE"] = 400
    app.config["AUTH_ERROR_STATUS_CODE"] = 401
    app.config["RATELIMIT_STORAGE_URI"] = app.config.get("REDIS_URL") or "memory://"
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )

    if str(app.config.get("SQLALCHEMY_DATABASE_URI", "")).startswith("postgresql"):
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {
            "pool_size": app.config["DB_POOL_SIZE"],
            "max_overflow": app.config["DB_MAX_OVERFLOW"],
            # The connection returned last is handed out next: a process uses as few
            # of its connections as its concurrency needs, and their server processes
            # stay warm, instead of going round all of them in turn.
            "pool_use_lifo": True,
            **app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {}),
        }
    db.init_app(app)
    migrate.init_app(app, db, directory=str(Path(__file__).parent.parent / "migrations"))
    redis_store.init_app(app)
    limiter.init_app(app)
    message_queue = app.config.get("SOCKETIO_MESSAGE_QUEUE", app.config.get("REDIS_URL"))
    socketio.server_options.pop("client_manager", None)  # an earlier app's (tests)
    manager = {}
    if message_queue and message_queue.startswith(("redis://", "rediss://")):
        from app.realtime import RedisMessageQueue

        # Flask-SocketIO's own choice for a Redis URL, able to hold publishes for a
        # pipeline (see ``realtime.held``).
        manager["client_manager"] = RedisMessageQueue(
            message_queue, channel="flask-socketio",
            shares_server=message_queue == app.config.get("REDIS_URL"))
    socketio.init_app(
        app,
        message_queue=message_queue,
        **manager,
        async_mode=async_mode(),
        cors_allowed_origins=app.config.get("SOCKETIO_CORS_ORIGINS", "*"),
        logger=False,
        engineio_logger=False,
    )

    from app import jobs

    jobs.init_app(app)
    _register_errors(app)
    from app import security

    security.init_app(app)

    @app.spec_processor
    def _api_paths_only(spec):
        # Pages (console, supervisor, survey) answer HTML; the document describes the API.
        spec["paths"] = {p: v for p, v in spec["paths"].items() if p.startswith("/api/")}
        return spec

    from app import kb_pages  # noqa: F401  (adds /kb pages to the pages blueprint)
    from app.api import bp as api_bp
    from app.chat import bp as chat_bp
    from app.console import bp as console_bp
    from app.email_webhooks import bp as email_bp
    from app.health import bp as health_bp
    from app.pages import bp as pages_bp
    from app.simulator import bp as simulator_bp
    from app.supervisor import bp as supervisor_bp
    from app.twilio_webhooks import bp as twilio_bp
    from app.walkins import bp as walkins_bp

    app.register_blueprint(api_bp)
    app.register_blueprint(chat_bp)
    app.register_blueprint(walkins_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(pages_bp)
    app.register_blueprint(console_bp)
    app.register_blueprint(supervisor_bp)
    app.register_blueprint(email_bp)
    app.register_blueprint(twilio_bp)
    app.register_blueprint(simulator_bp)

    from app import sockets

    sockets.register(socketio)

    from app.cli import register as register_cli

    register_cli(app)
    return app


def _register_errors(app: APIFlask) -> None:
    from app.services import ServiceError

    @app.error_processor
    def _error(error):
        extra = dict(error.extra_data or {})
        code = extra.pop("code", None) or _code_for(error.status_code)
        body = {"error": {"code": code, "message": error.message}}
        if error.detail:
            body["error"]["detail"] = error.detail
        if extra:
            body["error"].update(extra)
        return body, error.status_code, error.headers

    @app.errorhandler(ServiceError)
    def _service_error(exc: ServiceError):
        body = {"error": {"code": exc.code, "message": exc.message}}
        if exc.detail:
            body["error"]["detail"] = exc.detail
        return body, exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        return {"error": {"code": _code_for(exc.code or 500), "message": exc.description}}, exc.code

    @app.errorhandler(sa_exc.OperationalError)
    @app.errorhandler(sa_exc.InterfaceError)
    @app.errorhandler(sa_exc.TimeoutError)
    def _database_unavailable(exc):
        # The database is down or restarting: nothing was stored, so answer 503 and let
        # the provider (Twilio, the mail relay) or the client retry; never a 2xx.
        from flask import Response, request

        from app.extensions import db

        try:
            db.session.rollback()
        except Exception:  # noqa: BLE001 - the connection is already gone
            db.session.remove()
        logging.getLogger(__name__).warning("database unavailable: %s", str(exc).splitlines()[0])
        headers = {"Retry-After": "5"}
        if request.path.startswith("/webhooks/twilio"):
            return Response('<?xml version="1.0" encoding="UTF-8"?><Response />', 503,
                            headers, mimetype="text/xml")
        body = {"error": {"code": "database_unavailable",
                          "message": "The database is unavailable; try again shortly."}}
        return body, 503, headers


def _code_for(status: int) -> str:
    return {
        400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
        405: "method_not_allowed", 409: "conflict", 413: "payload_too_large",
        415: "unsupported_media_type", 422: "invalid", 429: "rate_limited",
    }.get(status, "error" if status >= 500 else "bad_request")
