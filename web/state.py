"""Typed application and request state shared by every web module, and the thread-executor DB helpers.

The store is synchronous SQLAlchemy; handlers never touch it on the event loop. They call
:func:`db_read` / :func:`db_write` with a function of a :class:`~sqlalchemy.orm.Session`::

    call = await db_read(request, lambda s: get_call(s, record_id))
    ticket = await db_write(request, save_ticket, user, record_id, values)   # save_ticket(session, ...)
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, TypeVar

from aiohttp import web
from config import Settings
from store.db import Database
from store.models import User

T = TypeVar("T")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class CurrentUser:
    """The signed-in user as the web layer sees it (a detached copy of the ``users`` row)."""

    id: int
    username: str
    role: str
    agent_id: str | None
    display_name: str

    @classmethod
    def from_model(cls, user: User) -> "CurrentUser":
        return cls(id=user.id, username=user.username, role=user.role, agent_id=user.agent_id,
                   display_name=user.display_name or user.username)


SETTINGS_KEY = web.AppKey("settings", Settings)
DB_KEY = web.AppKey("db", Database)
EXECUTOR_KEY = web.AppKey("executor", ThreadPoolExecutor)
# Period of the agent-event poller (seconds); set by create_app.
POLL_INTERVAL_KEY = web.AppKey("agent_poll_interval", float)

# Set by the session middleware (web.auth): the user (None when anonymous) and the session's CSRF token.
USER_KEY = web.RequestKey("user", CurrentUser | None)  # type: ignore[arg-type]
CSRF_KEY = web.RequestKey("csrf_token", str)


async def run_sync(app: web.Application, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking function in the app's thread pool."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(app[EXECUTOR_KEY], functools.partial(fn, *args, **kwargs))


def _app(target: web.Request | web.Application) -> web.Application:
    return target.app if isinstance(target, web.Request) else target


async def db_read(target: web.Request | web.Application, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(session, *args, **kwargs)`` in a read session, off the event loop."""
    app = _app(target)
    db = app[DB_KEY]

    def work() -> T:
        with db.session() as session:
            return fn(session, *args, **kwargs)

    return await run_sync(app, work)


async def db_write(target: web.Request | web.Application, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(session, *args, **kwargs)`` in one write transaction (committed on return, rolled back on error)."""
    app = _app(target)
    db = app[DB_KEY]

    def work() -> T:
        with db.write() as session:
            return fn(session, *args, **kwargs)

    return await run_sync(app, work)


def current_user(request: web.Request) -> CurrentUser | None:
    return request.get(USER_KEY)


def settings_of(request: web.Request) -> Settings:
    return request.app[SETTINGS_KEY]

