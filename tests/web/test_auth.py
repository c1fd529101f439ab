"""Sign-in, sessions, CSRF, throttling, role checks, first admin, audit (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
import os
import stat
import time

import pytest
from aiohttp import web
from sqlalchemy import select
from structlog.testing import capture_logs

from store.models import AuditEvent, User
from web.app import create_app, ensure_admin
from web.auth import AUTH_KEY, SESSION_COOKIE, AddressThrottle, audit_request, require_role
from web.security import BadSignature, SessionExpired, SessionSigner, load_secret_key


async def test_login_and_logout(client_for, aiohttp_client, web_server) -> None:
    agent = await client_for("agent")
    resp = await agent.get("/agent")
    assert resp.status == 200
    assert "坐席工作台" in await resp.text()
    info = await (await agent.get("/api/session")).json()
    assert info["user"]["username"] == agent.user.username and info["user"]["agent_id"] == agent.user.agent_id

    token = agent.client.session.cookie_jar.filter_cookies(agent.client.make_url("/"))[SESSION_COOKIE].value
    replay = await aiohttp_client(web_server)  # a second browser presenting the same cookie
    headers = {"Cookie": f"{SESSION_COOKIE}={token}"}
    info = await (await replay.get("/api/session", headers=headers)).json()
    assert info["user"]["username"] == agent.user.username

    resp = await agent.post("/logout")
    assert resp.status == 303 and resp.headers["Location"] == "/login"
    resp = await agent.get("/agent")
    assert resp.status == 302 and resp.headers["Location"].startswith("/login?next=")
    # The cookie of the ended session no longer works, even if replayed.
    info = await (await replay.get("/api/session", headers=headers)).json()
    assert info["user"] is None


async def test_login_redirects_to_next_but_never_off_site(make_user, new_client) -> None:
    user = make_user("qa")
    wc = await new_client()
    resp = await wc.login(user.username, user.password, next_url="/admin/audit")
    assert resp.headers["Location"] == "/admin/audit"
    wc2 = await new_client()
    resp = await wc2.login(user.username, user.password, next_url="//evil.example/x")
    assert resp.headers["Location"] == "/"


async def test_anonymous_requests(anon_client) -> None:
    resp = await anon_client.get("/agent", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "/login?next=%2Fagent"
    resp = await anon_client.get("/api/calls/x/ticket")
    assert resp.status == 401
    assert (await resp.json())["message"] == "请先登录"
    resp = await anon_client.get("/login")
    assert resp.status == 200 and 'name="csrf_token"' in await resp.text()
    assert (await anon_client.get("/healthz")).status == 200


async def test_wrong_password(make_user, new_client, db) -> None:
    user = make_user("agent")
    wc = await new_client()
    resp = await wc.login(user.username, "not the password")
    assert resp.status == 401
    assert "用户名或密码错误" in await resp.text()
    assert (await (await wc.get("/api/session")).json())["user"] is None
    with db.session() as s:
        row = s.scalar(select(User).where(User.username == user.username))
        assert row.failed_logins == 1
        actions = [e.action for e in s.scalars(select(AuditEvent).where(AuditEvent.actor == user.username))]
    assert actions == ["login_failed"]
    # Unknown users get the same answer.
    resp = await wc.login("nobody", "whatever")
    assert resp.status == 401 and "用户名或密码错误" in await resp.text()


async def test_lockout_per_username(make_user, new_client, web_app, db) -> None:
    user = make_user("agent")
    wc = await new_client()
    for _ in range(3):  # login_max_failures = 3 in the test settings
        assert (await wc.login(user.username, "wrong password")).status == 401
    resp = await wc.login(user.username, user.password)
    assert resp.status == 429
    assert "登录失败次数过多" in await resp.text()
    # The lock lives in the users row: another process (a fresh address throttle) refuses too.
    web_app[AUTH_KEY].throttle = AddressThrottle(3, 60)
    assert (await wc.login(user.username, user.password)).status == 429
    with db.session() as s:
        assert s.scalar(select(User.locked_until).where(User.username == user.username)) is not None
    # After the lockout the right password works again.
    with db.write() as s:
        s.scalar(select(User).where(User.username == user.username)).locked_until = None
    assert (await wc.login(user.username, user.password)).status == 303


async def test_lockout_per_address(make_user, new_client) -> None:
    user = make_user("qa")
    wc = await new_client()
    for name in ("ghost1", "ghost2", "ghost3"):  # different (unknown) usernames from one address
        assert (await wc.login(name, "x" * 10)).status == 401
    resp = await wc.login(user.username, user.password)
    assert resp.status == 429


def test_address_throttle_expires() -> None:
    throttle = AddressThrottle(max_failures=2, lockout_seconds=10)
    throttle.failure("a", now=100.0)
    assert throttle.locked_for("a", now=100.0) == 0
    throttle.failure("a", now=101.0)
    assert throttle.locked_for("a", now=101.0) == 10
    assert throttle.locked_for("a", now=111.5) == 0
    assert throttle.locked_for("b", now=101.0) == 0


async def test_json_login(make_user, new_client) -> None:
    user = make_user("supervisor")
    wc = await new_client()
    resp = await wc.post_json("/login", {"username": user.username, "password": user.password})
    assert resp.status == 200
    assert (await resp.json())["role"] == "supervisor"
    token = resp.headers["X-CSRF-Token"]
    assert token and token != wc.csrf  # rotated at sign-in
    resp = await wc.post_json("/login", {"username": user.username, "password": "bad"})
    assert resp.status == 403  # the pre-login token is gone with the old session


async def test_csrf_missing_or_wrong(client_for, make_call, new_client, make_user) -> None:
    agent = await client_for("agent")
    call = make_call(agent_id=agent.user.agent_id)
    url = f"/api/calls/{call['record_id']}/ticket"
    resp = await agent.client.post(url, json={"title": "x"})
    assert resp.status == 403
    assert (await resp.json())["error"] == "CsrfFailed"
    resp = await agent.client.post(url, json={"title": "x"}, headers={"X-CSRF-Token": "forged"})
    assert resp.status == 403
    resp = await agent.client.post("/logout", data={"csrf_token": "forged"}, allow_redirects=False)
    assert resp.status == 403
    assert (await agent.get("/agent")).status == 200  # still signed in
    # Login itself is protected (no login CSRF).
    user = make_user("qa")
    wc = await new_client()
    resp = await wc.client.post("/login", data={"username": user.username, "password": user.password},
                                allow_redirects=False)
    assert resp.status == 403


async def test_cookie_flags(make_user, new_client, aiohttp_client, web_settings, db) -> None:
    user = make_user("qa")
    wc = await new_client()
    resp = await wc.login(user.username, user.password)
    cookie = resp.cookies[SESSION_COOKIE]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and cookie["path"] == "/"
    assert not cookie["secure"]  # test settings: cookie_secure = false
    assert int(cookie["max-age"]) == web_settings.web.session_max_age_seconds
    secure = dataclasses.replace(web_settings, web=dataclasses.replace(web_settings.web, cookie_secure=True))
    client = await aiohttp_client(create_app(secure, db))
    resp = await client.get("/login")
    assert resp.cookies[SESSION_COOKIE]["secure"]
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Frame-Options"] == "DENY"


async def test_tampered_cookie_is_anonymous(client_for, aiohttp_client, web_server) -> None:
    agent = await client_for("agent")
    token = agent.client.session.cookie_jar.filter_cookies(agent.client.make_url("/"))[SESSION_COOKIE].value
    body, mac = token.split(".")
    other = await aiohttp_client(web_server)
    good = await other.get("/agent", headers={"Cookie": f"{SESSION_COOKIE}={token}"}, allow_redirects=False)
    assert good.status == 200
    forged = body[:-2] + ("AA" if body[-2:] != "AA" else "BB") + "." + mac
    resp = await other.get("/agent", headers={"Cookie": f"{SESSION_COOKIE}={forged}"}, allow_redirects=False)
    assert resp.status == 302


def test_signer_expiry_and_signature() -> None:
    signer = SessionSigner(b"s" * 40, max_age_seconds=60)
    token = signer.dumps({"uid": 1}, now=1000)
    assert signer.loads(token, now=1059)["uid"] == 1
    with pytest.raises(SessionExpired):
        signer.loads(token, now=1060)
    with pytest.raises(BadSignature):
        SessionSigner(b"t" * 40, max_age_seconds=60).loads(token, now=1000)
    with pytest.raises(BadSignature):
        signer.loads("garbage", now=1000)


def test_secret_key_generated_once_with_0600(web_settings, tmp_path) -> None:
    settings = dataclasses.replace(web_settings, web=dataclasses.replace(web_settings.web, secret_key=""),
                                   general=dataclasses.replace(web_settings.general, data_dir=str(tmp_path / "d")))
    first = load_secret_key(settings)
    path = tmp_path / "d" / "secret_key"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert len(first) >= 32
    assert load_secret_key(settings) == first
    configured = dataclasses.replace(settings, web=dataclasses.replace(settings.web, secret_key="configured-secret"))
    assert load_secret_key(configured) == b"configured-secret"


async def test_role_checks(client_for) -> None:
    agent = await client_for("agent")
    qa = await client_for("qa")
    admin = await client_for("admin")
    assert (await agent.get("/admin/users")).status == 403
    assert (await qa.get("/admin/audit")).status == 403
    assert (await qa.get("/agent")).status == 403  # no agent id: no console
    assert (await admin.get("/admin/users")).status == 200
    resp = await admin.get("/admin/audit?format=json")
    events = await resp.json()
    assert {"login"} <= {e["action"] for e in events}
    assert {agent.user.username, qa.user.username, admin.user.username} <= {e["actor"] for e in events}


async def test_admin_adds_user_with_generated_password(client_for, new_client, db) -> None:
    admin = await client_for("admin")
    resp = await admin.post("/admin/users", data={"username": "li", "display_name": "李四", "role": "agent",
                                                  "agent_id": "2001"})
    assert resp.status == 200
    text = await resp.text()
    password = text.split('<code class="secret">')[1].split("</code>")[0]
    wc = await new_client()
    assert (await wc.login("li", password)).status == 303
    resp = await admin.post("/admin/users", data={"username": "wang", "role": "agent", "agent_id": "2001"})
    assert resp.status == 422 and "2001" in await resp.text()
    resp = await admin.post("/admin/users", data={"username": "<b>x</b>", "role": "agent"})
    assert resp.status == 422
    assert "<b>x</b>" not in await resp.text()  # echoed back escaped


def test_first_admin_created_once(db) -> None:
    with capture_logs() as logs:
        password = ensure_admin(db)
    assert password and len(password) >= 12 and password != "admin"
    created = [e for e in logs if e["event"] == "first_admin_created"]
    assert len(created) == 1 and created[0]["username"] == "admin"
    assert all(password not in str(e) for e in logs), "the one-time password must not reach the log"
    assert ensure_admin(db) is None
    with db.session() as s:
        admins = list(s.scalars(select(User).where(User.role == "admin")))
    assert [a.username for a in admins] == ["admin"]


async def test_first_admin_can_sign_in(db, new_client) -> None:
    password = ensure_admin(db)
    wc = await new_client()
    resp = await wc.login("admin", password)
    assert resp.status == 303 and resp.headers["Location"] == "/admin/users"


async def test_audit_request_records_who_what_when(web_settings, db, aiohttp_client, make_user) -> None:
    app = create_app(web_settings, db)

    @require_role("qa", "supervisor", "admin")
    async def play(request: web.Request) -> web.Response:
        await audit_request(request, "playback", "call", request.match_info["rid"], {"recording_id": 7})
        return web.Response(text="ok")

    app.router.add_get("/test/play/{rid}", play)
    client = await aiohttp_client(app)
    user = make_user("qa")
    csrf = (await (await client.get("/api/session")).json())["csrf_token"]
    resp = await client.post("/login", data={"username": user.username, "password": user.password, "csrf_token": csrf},
                             allow_redirects=False)
    assert resp.status == 303
    before = time.time()
    assert (await client.get("/test/play/1795901133.9")).status == 200
    with db.session() as s:
        event = s.scalar(select(AuditEvent).where(AuditEvent.action == "playback"))
    assert (event.actor, event.target_type, event.target_id, event.detail) == (user.username, "call", "1795901133.9",
                                                                              {"recording_id": 7})
    assert event.remote == "127.0.0.1"
    assert abs(event.at.timestamp() - before) < 60
