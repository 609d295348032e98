"""The Flask application of `rebill web`.

    /api/v1/...      merchant API, authenticated by a store's API key (web.api)
    /login, /, ...   ops dashboard behind an operator sign-in (web.dashboard)
    /metrics         Prometheus metrics, read from the database and Redis
    /health          200 when the database responds

One SQLAlchemy session serves each request and is closed when it ends. The
dashboard's forms carry CSRF tokens (Flask-WTF); the API does not use cookies,
so it is exempt.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import redis
import sqlalchemy as sa
from flask import Flask, Response, current_app, g, jsonify, request
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from models import utcnow
from rebill.runtime import Runtime
from web.ids import RowIdConverter

logger = logging.getLogger(__name__)

Enqueue = Callable[[int], None]

# Seconds that a Redis call of a page or a scrape may take before it gives up.
REDIS_TIMEOUT_SECONDS = 2.0


@dataclass
class WebServices:
    """Services of the request handlers besides Flask: database, broker, clock."""

    runtime: Runtime
    enqueue: Enqueue | None
    redis: redis.Redis | None
    clock: Callable[[], datetime]


def services() -> WebServices:
    return current_app.extensions["rebill"]


def db() -> Session:
    """Return this request's session, opened on first use."""
    if "db_session" not in g:
        g.db_session = services().runtime.sessions()
    return g.db_session


def now() -> datetime:
    return services().clock()


def create_app(
    runtime: Runtime,
    *,
    enqueue: Enqueue | None = None,
    clock: Callable[[], datetime] = utcnow,
    secret_key: str | None = None,
    cookie_secure: bool = False,
) -> Flask:
    """Build the application.

    `enqueue` queues a renewal for a worker (the dashboard's "retry now"); without
    it that action is unavailable. `cookie_secure` marks the session cookie
    Secure, which a deployment behind HTTPS should set.
    """
    app = Flask(__name__)
    settings = runtime.settings
    app.config.update(
        SECRET_KEY=secret_key or settings.web_secret_key,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=cookie_secure,
        PERMANENT_SESSION_LIFETIME=timedelta(hours=settings.web_session_hours),
        # A CSRF token stays valid as long as the sign-in it belongs to.
        WTF_CSRF_TIME_LIMIT=None,
    )
    app.extensions["rebill"] = WebServices(
        runtime=runtime,
        enqueue=enqueue,
        redis=_redis_client(settings.redis_url),
        clock=clock,
    )
    csrf = CSRFProtect(app)
    # Before the blueprints: their routes name this converter.
    app.url_map.converters["id"] = RowIdConverter
    _register_blueprints(app, csrf)
    app.teardown_appcontext(_close_session)
    app.after_request(_security_headers)
    app.add_url_rule("/health", "health", _health)
    app.register_error_handler(HTTPException, _http_error)
    return app


def _http_error(error: HTTPException) -> Response | HTTPException:
    """Return a JSON error under /api/, unknown routes included; else the HTML page."""
    if not request.path.startswith("/api/"):
        return error
    from web.api.errors import handle_http_error

    response, status = handle_http_error(error)
    response.status_code = status
    return response


def _register_blueprints(app: Flask, csrf: CSRFProtect) -> None:
    from web.api import api
    from web.dashboard import dashboard, login_manager
    from web.metrics import metrics

    csrf.exempt(api)
    csrf.exempt(metrics)
    app.register_blueprint(api)
    app.register_blueprint(metrics)
    app.register_blueprint(dashboard)
    login_manager.init_app(app)


def _redis_client(url: str) -> redis.Redis | None:
    if not url:
        return None
    return redis.Redis.from_url(
        url,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
    )


def _close_session(_error: BaseException | None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


def _security_headers(response: Response) -> Response:
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; style-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'",
    )
    return response


def _health() -> tuple[Response, int]:
    try:
        db().execute(sa.text("SELECT 1"))
    except sa.exc.SQLAlchemyError as error:
        logger.error("health check: database unreachable: %s", error)
        return jsonify(status="unavailable", database="unreachable"), 503
    return jsonify(status="ok", database="ok"), 200
