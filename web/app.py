"""The aiohttp application: state, lifetimes, middlewares and the route modules.

Other web modules add their pages by exposing ``setup_routes(app: web.Application) -> None`` and
being listed in :data:`ROUTE_MODULES`. They read shared state with the typed keys of
:mod:`web.state` (``app[SETTINGS_KEY]``, ``app[DB_KEY]``), run store calls with ``db_read`` /
``db_write``, protect handlers with ``web.auth.require_role(...)`` and apply the call rules of
:mod:`web.access`. Every route needs a signed-in user unless marked ``@web.auth.public``.
"""

from __future__ import annotations

import importlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import AsyncIterator

from aiohttp import web

from config import Settings
from config.log import get_logger
from store.db import Database
from store.users import ensure_first_admin
from web.auth import error_middleware, init_auth, public, session_middleware
from web.layout import page, render
from web.state import DB_KEY, EXECUTOR_KEY, POLL_INTERVAL_KEY, SETTINGS_KEY, USER_KEY, Handler, db_read, db_write  # noqa: F401

log = get_logger(__name__)

STATIC_DIR = Path(__file__).with_name("static")

# Each module exposes setup_routes(app). Append yours here (e.g. "web.qa", "web.kpi", "web.api_docs").
ROUTE_MODULES: tuple[str, ...] = (
    "web.auth",
    "web.agent",
    "web.tickets",
    "web.admin",
    "web.qa",
    "web.kpi",
    "web.api_docs",
)

DB_THREADS = 16
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob:; "
       "connect-src 'self' {ws}; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")


@web.middleware
async def security_headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Baseline headers on every response; a handler may set its own Content-Security-Policy."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        _secure_headers(request, exc)
        raise
    _secure_headers(request, response)
    return response


def _secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    if response.prepared:  # websockets and streamed downloads sent their headers already
        return
    host = request.host
    response.headers.setdefault("Content-Security-Policy", CSP.format(ws=f"ws://{host} wss://{host}"))
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.get(USER_KEY) is not None or request.path.startswith("/api/"):
        response.headers.setdefault("Cache-Control", "no-store")


async def _executor_ctx(app: web.Application) -> AsyncIterator[None]:
    executor = ThreadPoolExecutor(max_workers=DB_THREADS, thread_name_prefix="web-db")
    app[EXECUTOR_KEY] = executor
    yield
    executor.shutdown(wait=True, cancel_futures=True)


@public
async def healthz(request: web.Request) -> web.StreamResponse:
    return web.json_response({"status": "ok"})


async def home(request: web.Request) -> web.StreamResponse:
    user = request[USER_KEY]
    assert user is not None  # non-public route: the session middleware guarantees it
    if user.role == "agent":
        return web.Response(status=303, headers={"Location": "/agent"})
    return page(request, "首页", render('<p>欢迎，$name。请从上方菜单选择功能。</p>', name=user.display_name))


def create_app(settings: Settings, db: Database, *, poll_interval: float = 0.3,
               route_modules: tuple[str, ...] | None = None) -> web.Application:
    """The web application over an open, migrated store.

    ``poll_interval`` is the agent-event poller's period in seconds (screen pops reach the websocket
    within about that long). The database is not closed by the app: its owner disposes of it.
    """
    app = web.Application(middlewares=[security_headers_middleware, error_middleware, session_middleware],
                          client_max_size=4 * 1024 * 1024)
    app[SETTINGS_KEY] = settings
    app[DB_KEY] = db
    app[POLL_INTERVAL_KEY] = poll_interval
    init_auth(app, settings)
    app.cleanup_ctx.append(_executor_ctx)
    app.router.add_get("/", home, name="home")
    app.router.add_get("/healthz", healthz)
    app.router.add_static("/static/", STATIC_DIR, name="static", append_version=True)
    for name in route_modules if route_modules is not None else ROUTE_MODULES:
        module = importlib.import_module(name)
        module.setup_routes(app)
    return app


def ensure_admin(db: Database) -> str | None:
    """First start: create ``admin`` with a random one-time password, log it once and return it.

    Returns None when users exist already (the password is never shown again).
    """
    with db.write() as session:
        password = ensure_first_admin(session)
    if password is not None:
        # The password itself is shown once by the caller (`hotline serve`), never written to the log.
        log.warning("first_admin_created", username="admin")
    return password
