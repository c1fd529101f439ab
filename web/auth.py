"""Sign-in, sessions, CSRF, login throttling and role checks.

* Sessions are signed cookies (:mod:`web.security`): ``sid`` (session id), ``csrf`` (synchronizer token),
  and for a signed-in user ``uid`` plus a fingerprint of the password hash. Every request reloads the user
  row, so deactivating a user or changing a password ends their sessions at once.
* Access is denied by default: every route needs a signed-in user unless its handler is marked
  :func:`public` (or it is under ``/static/``). Roles are checked with :func:`require_role`.
* Every state-changing request (anything but GET/HEAD/OPTIONS, login included) must carry the session's
  CSRF token: the ``csrf_token`` form field or the ``X-CSRF-Token`` header (fetch/JSON).
* Failed logins are counted per username (in the ``users`` row, shared by every process) and per
  remote address (in this process); ``[web] login_max_failures`` failures lock for
  ``login_lockout_seconds``.
"""

from __future__ import annotations

import functools
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping
from urllib.parse import quote, urlsplit

from aiohttp import web
from argon2 import PasswordHasher
from sqlalchemy.orm import Session

from config import Settings
from config.log import get_logger
from store.audit import audit
from store.models import User, utcnow
from store.records import RecordNotFound
from store.users import get_user, hash_password, verify_password
from web.layout import Safe, csrf_field, page, render
from web.security import (BadSignature, SessionExpired, SessionSigner, load_secret_key, new_token,
                          password_fingerprint, tokens_equal)
from web.state import CSRF_KEY, SETTINGS_KEY, USER_KEY, CurrentUser, Handler, db_read, db_write

log = get_logger(__name__)

SESSION_COOKIE = "hotline_session"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
PUBLIC_PREFIXES = ("/static/",)
_PUBLIC_ATTR = "__hotline_public__"


# --------------------------------------------------------------------------- errors

class AuthError(Exception):
    """Base of access errors; the error middleware turns them into responses."""

    status = 403
    message = "无权访问"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)
        self.message = message or self.message


class Unauthenticated(AuthError):
    status = 401
    message = "请先登录"


class Forbidden(AuthError):
    status = 403
    message = "无权访问"


class CsrfFailed(AuthError):
    status = 403
    message = "请求校验失败(CSRF)，请刷新页面后重试"


class InvalidCredentials(AuthError):
    status = 401
    message = "用户名或密码错误"


class LoginLocked(AuthError):
    status = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"登录失败次数过多，请 {retry_after} 秒后再试")
        self.retry_after = retry_after


# --------------------------------------------------------------------------- state

@dataclass
class AddressThrottle:
    """Failed logins per key (remote address, unknown username) in this process, with lockout."""

    max_failures: int
    lockout_seconds: int
    max_entries: int = 10_000
    _entries: "OrderedDict[str, tuple[int, float]]" = field(default_factory=OrderedDict)  # key -> (failures, locked_until)

    def locked_for(self, key: str, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        failures, until = self._entries.get(key, (0, 0.0))
        return max(0, int(until - now + 0.999)) if until > now else 0

    def failure(self, key: str, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        failures, until = self._entries.pop(key, (0, 0.0))
        if until and until <= now:
            failures, until = 0, 0.0
        failures += 1
        if failures >= self.max_failures:
            failures, until = 0, now + self.lockout_seconds
        self._entries[key] = (failures, until)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def success(self, key: str) -> None:
        self._entries.pop(key, None)


@dataclass
class RevokedSessions:
    """Session ids ended by logout in this process, kept until their cookie would have expired anyway."""

    _until: dict[str, float] = field(default_factory=dict)

    def revoke(self, sid: str, exp: float) -> None:
        now = time.time()
        self._until = {k: v for k, v in self._until.items() if v > now}
        self._until[sid] = exp

    def __contains__(self, sid: object) -> bool:
        return isinstance(sid, str) and self._until.get(sid, 0) > time.time()


@dataclass
class AuthState:
    signer: SessionSigner
    secret: bytes
    throttle: AddressThrottle
    revoked: RevokedSessions


AUTH_KEY = web.AppKey("auth", AuthState)
_SESSION_KEY = web.RequestKey("session_data", dict)
_COOKIE_SET_KEY = web.RequestKey("session_cookie_set", bool)


def init_auth(app: web.Application, settings: Settings) -> None:
    secret = load_secret_key(settings)
    app[AUTH_KEY] = AuthState(
        signer=SessionSigner(secret, settings.web.session_max_age_seconds),
        secret=secret,
        throttle=AddressThrottle(settings.web.login_max_failures, settings.web.login_lockout_seconds),
        revoked=RevokedSessions(),
    )


# --------------------------------------------------------------------------- decorators

def public(handler: Handler) -> Handler:
    """Mark a handler as reachable without signing in."""
    setattr(handler, _PUBLIC_ATTR, True)
    return handler


def require_role(*roles: str) -> Callable[[Handler], Handler]:
    """Handler decorator: a signed-in user, and (if roles are given) one of these roles."""

    def decorator(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapper(request: web.Request) -> web.StreamResponse:
            user = request.get(USER_KEY)
            if user is None:
                raise Unauthenticated()
            if roles and user.role not in roles:
                raise Forbidden()
            return await handler(request)

        return wrapper

    return decorator


login_required = require_role()


def require_user(request: web.Request) -> CurrentUser:
    user = request.get(USER_KEY)
    if user is None:
        raise Unauthenticated()
    return user


def _is_public(request: web.Request) -> bool:
    if request.path.startswith(PUBLIC_PREFIXES):
        return True
    handler = request.match_info.handler
    return bool(getattr(handler, _PUBLIC_ATTR, False))


def wants_json(request: web.Request) -> bool:
    return (request.path.startswith("/api/") or request.path.startswith("/ws/")
            or request.content_type == "application/json"
            or "application/json" in request.headers.get("Accept", "").split(";")[0])


# --------------------------------------------------------------------------- session cookie

def _set_cookie(request: web.Request, response: web.StreamResponse, data: Mapping[str, Any]) -> None:
    auth = request.app[AUTH_KEY]
    settings = request.app[SETTINGS_KEY]
    response.set_cookie(
        SESSION_COOKIE, auth.signer.dumps(data), max_age=settings.web.session_max_age_seconds, path="/",
        secure=settings.web.cookie_secure, httponly=True, samesite="Lax",
    )
    request[_COOKIE_SET_KEY] = True


def start_session(request: web.Request, response: web.StreamResponse, user: User) -> None:
    """Sign ``user`` in: a fresh session id and CSRF token (no fixation of a pre-login session)."""
    auth = request.app[AUTH_KEY]
    old = request.get(_SESSION_KEY) or {}
    if old.get("sid"):
        auth.revoked.revoke(old["sid"], float(old.get("exp", time.time())))
    data = {"sid": new_token(), "csrf": new_token(), "uid": user.id,
            "pwf": password_fingerprint(user.password_hash, auth.secret)}
    request[CSRF_KEY] = data["csrf"]
    _set_cookie(request, response, data)


def end_session(request: web.Request, response: web.StreamResponse) -> None:
    auth = request.app[AUTH_KEY]
    old = request.get(_SESSION_KEY) or {}
    if old.get("sid"):
        auth.revoked.revoke(old["sid"], float(old.get("exp", time.time())))
    response.del_cookie(SESSION_COOKIE, path="/")
    request[_COOKIE_SET_KEY] = True


def _load_user(session: Session, uid: int) -> User | None:
    return session.get(User, uid)


async def _resolve_session(request: web.Request) -> tuple[dict[str, Any] | None, CurrentUser | None]:
    auth = request.app[AUTH_KEY]
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None, None
    try:
        data = auth.signer.loads(token)
    except (BadSignature, SessionExpired):
        return None, None
    if data.get("sid") in auth.revoked or not isinstance(data.get("csrf"), str):
        return None, None
    uid = data.get("uid")
    if uid is None:
        return data, None
    row = await db_read(request, _load_user, int(uid))
    if row is None or not row.active or not tokens_equal(data.get("pwf"), password_fingerprint(row.password_hash, auth.secret)):
        return None, None
    return data, CurrentUser.from_model(row)


async def _submitted_csrf(request: web.Request) -> str | None:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        value = form.get(CSRF_FIELD)
        return value if isinstance(value, str) else None
    return None


@web.middleware
async def session_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve the session, enforce sign-in (unless public) and CSRF, keep the cookie."""
    data, user = await _resolve_session(request)
    fresh = data is None
    if data is None:
        data = {"sid": new_token(), "csrf": new_token()}
    request[_SESSION_KEY] = data
    request[USER_KEY] = user
    request[CSRF_KEY] = data["csrf"]

    def keep_cookie(response: web.StreamResponse) -> None:
        if fresh and not request.get(_COOKIE_SET_KEY) and not response.prepared:
            _set_cookie(request, response, data)

    try:
        if request.method not in SAFE_METHODS:
            if not tokens_equal(await _submitted_csrf(request), data["csrf"]):
                log.warning("csrf_rejected", path=request.path, method=request.method, remote=request.remote)
                raise CsrfFailed()
        if user is None and not _is_public(request):
            raise Unauthenticated()
        response = await handler(request)
    except web.HTTPException as exc:
        keep_cookie(exc)
        raise
    keep_cookie(response)
    return response


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Access errors (and unknown call records) as JSON (API, fetch) or as a page / a redirect to the login form."""
    try:
        return await handler(request)
    except AuthError as exc:
        if wants_json(request):
            headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, LoginLocked) else None
            return web.json_response({"error": type(exc).__name__, "message": exc.message}, status=exc.status,
                                     headers=headers)
        if isinstance(exc, Unauthenticated) and request.method in SAFE_METHODS:
            return redirect(f"/login?next={quote(request.path_qs, safe='')}", status=302)
        return page(request, "错误", render('<p class="error">$m</p>', m=exc.message), status=exc.status)
    except RecordNotFound as exc:
        if wants_json(request):
            return web.json_response({"error": "RecordNotFound", "message": "来电记录不存在", "record_id": str(exc)},
                                     status=404)
        return page(request, "未找到", render('<p class="error">来电记录不存在：$r</p>', r=str(exc)), status=404)


# --------------------------------------------------------------------------- login service

_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("timing-equaliser-not-a-password")


def _equalise_timing(password: str) -> None:
    """Spend one argon2 verification, so unknown usernames answer as slowly as known ones."""
    try:
        _HASHER.verify(_DUMMY_HASH, password)
    except Exception:  # noqa: BLE001 - a mismatch is the expected outcome
        pass


@dataclass(frozen=True)
class LoginResult:
    user: User | None = None
    locked_for: int = 0


def check_login(session: Session, settings: Settings, username: str, password: str,
                now: datetime | None = None) -> LoginResult:
    """Verify a login against the ``users`` row, counting failures and locking the account.

    Runs in a write transaction that commits even when the login fails, so failure counts persist.
    """
    now = now or utcnow()
    user = get_user(session, username)
    if user is None or not user.active:
        _equalise_timing(password)
        return LoginResult()
    if user.locked_until is not None and user.locked_until > now:
        return LoginResult(locked_for=max(1, int((user.locked_until - now).total_seconds() + 0.999)))
    if verify_password(user, password):
        user.failed_logins = 0
        user.locked_until = None
        if _needs_rehash(user):
            user.password_hash = hash_password(password)
        session.flush()
        return LoginResult(user=user)
    user.failed_logins = (user.failed_logins or 0) + 1
    if user.failed_logins >= settings.web.login_max_failures:
        user.failed_logins = 0
        user.locked_until = now + timedelta(seconds=settings.web.login_lockout_seconds)
        log.warning("login_locked", username=username, seconds=settings.web.login_lockout_seconds)
    session.flush()
    return LoginResult()


def _needs_rehash(user: User) -> bool:
    try:
        return _HASHER.check_needs_rehash(user.password_hash)
    except Exception:  # noqa: BLE001 - an unparsable hash simply is not rehashed here
        return False


async def login(request: web.Request, username: str, password: str) -> User:
    """The login service: throttles, verifies, audits; raises :class:`LoginLocked` / :class:`InvalidCredentials`."""
    auth = request.app[AUTH_KEY]
    settings = request.app[SETTINGS_KEY]
    remote = request.remote or "?"
    addr_key, name_key = f"addr:{remote}", f"user:{username.lower()}"
    locked = max(auth.throttle.locked_for(addr_key), auth.throttle.locked_for(name_key))
    if locked:
        await _audit(request, username or "-", "login_blocked", "user", username, {"retry_after": locked})
        raise LoginLocked(locked)
    result = await db_write(request, check_login, settings, username, password)
    if result.locked_for:
        await _audit(request, username, "login_blocked", "user", username, {"retry_after": result.locked_for})
        raise LoginLocked(result.locked_for)
    if result.user is None:
        auth.throttle.failure(addr_key)
        auth.throttle.failure(name_key)
        await _audit(request, username or "-", "login_failed", "user", username, {})
        raise InvalidCredentials()
    auth.throttle.success(name_key)
    auth.throttle.success(addr_key)
    await _audit(request, username, "login", "user", username, {})
    log.info("login", username=username, role=result.user.role)
    return result.user


# --------------------------------------------------------------------------- audit

async def _audit(request: web.Request, actor: str, action: str, target_type: str, target_id: str,
                 detail: Mapping[str, Any]) -> None:
    await db_write(request, audit, actor[:64], action, target_type, str(target_id)[:128], dict(detail),
                   request.remote)


async def audit_request(request: web.Request, action: str, target_type: str = "", target_id: str = "",
                        detail: Mapping[str, Any] | None = None) -> None:
    """Record who (the signed-in user), what (action on target), when (now) and from where (remote address).

    Call it for every playback, download and export, e.g.
    ``await audit_request(request, "playback", "call", record_id, {"recording_id": 7})``.
    """
    user = request.get(USER_KEY)
    await _audit(request, user.username if user else "-", action, target_type, target_id, detail or {})


# --------------------------------------------------------------------------- handlers

_LOGIN_FORM = """
<form method="post" action="/login" class="card narrow">
$csrf
<input type="hidden" name="next" value="$next">
<label>用户名<input name="username" autocomplete="username" required value="$username" autofocus></label>
<label>密码<input name="password" type="password" autocomplete="current-password" required></label>
$error
<button type="submit" class="primary">登录</button>
</form>
"""


def _safe_next(target: str | None) -> str:
    """Only local paths: ``/agent`` yes, ``//evil.example`` or ``https://…`` no."""
    if not target:
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _login_page(request: web.Request, next_url: str, username: str = "", error: str = "", status: int = 200) -> web.Response:
    body = render(_LOGIN_FORM, csrf=csrf_field(request), next=next_url, username=username,
                  error=render('<p class="error" role="alert">$e</p>', e=error) if error else Safe(""))
    return page(request, "登录", body, status=status, main_class="login")


@public
async def login_form(request: web.Request) -> web.StreamResponse:
    next_url = _safe_next(request.query.get("next"))
    if request.get(USER_KEY) is not None:
        raise web.HTTPFound(next_url)
    return _login_page(request, next_url)


@public
async def login_submit(request: web.Request) -> web.StreamResponse:
    as_json = request.content_type == "application/json"
    if as_json:
        body = await request.json()
        data: Mapping[str, Any] = body if isinstance(body, dict) else {}
    else:
        data = await request.post()
    username = str(data.get("username") or "").strip()[:64]
    password = str(data.get("password") or "")
    next_url = _safe_next(str(data.get("next") or ""))
    try:
        user = await login(request, username, password)
    except (InvalidCredentials, LoginLocked) as exc:
        if as_json:
            raise
        return _login_page(request, next_url, username, exc.message, status=exc.status)
    response: web.StreamResponse
    if as_json:
        response = web.json_response({"username": user.username, "role": user.role, "agent_id": user.agent_id})
    else:
        if next_url == "/":
            next_url = home_for(user.role)
        response = redirect(next_url)
    start_session(request, response, user)
    if as_json:
        response.headers[CSRF_HEADER] = request[CSRF_KEY]
    return response


@public
async def logout(request: web.Request) -> web.StreamResponse:
    user = request.get(USER_KEY)
    if user is not None:
        await audit_request(request, "logout", "user", user.username)
    response: web.StreamResponse
    if request.content_type == "application/json":
        response = web.json_response({"ok": True})
    else:
        response = redirect("/login")
    end_session(request, response)
    return response


@public
async def session_info(request: web.Request) -> web.StreamResponse:
    """The signed-in user (or null) and this session's CSRF token, for fetch and API clients."""
    user = request.get(USER_KEY)
    info = None if user is None else {"username": user.username, "role": user.role, "agent_id": user.agent_id,
                                      "display_name": user.display_name}
    return web.json_response({"user": info, "csrf_token": request[CSRF_KEY]})


def redirect(location: str, status: int = 303) -> web.Response:
    """A redirect response (returned, not raised, so middlewares can still set cookies on it)."""
    return web.Response(status=status, headers={"Location": location})


def home_for(role: str) -> str:
    return {"agent": "/agent", "admin": "/admin/users"}.get(role, "/")


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/login", login_form, name="login")
    app.router.add_post("/login", login_submit)
    app.router.add_post("/logout", logout, name="logout")
    app.router.add_get("/api/session", session_info)
