"""Web fixtures: the app over the store on both back-ends, and signed-in clients per role.

Reusable by every web test module::

    async def test_something(client_for, make_call):
        call = make_call(agent_id="1001")
        qa = await client_for("qa")
        resp = await qa.get(f"/calls/{call['record_id']}")
        resp = await qa.post_json("/api/...", {...})          # X-CSRF-Token added
        resp = await qa.post("/form", data={...})             # csrf_token field added

``client_for(role, username=None, agent_id=None)`` creates the user (agents get agent id 1001, 1002, …
unless given) and returns a :class:`WebClient` signed in on the shared test server; each has its own
cookie jar, so several users can be signed in at once.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Awaitable, Callable

import pytest
from aiohttp import ClientResponse, web
from aiohttp.test_utils import TestClient, TestServer

from config import Settings, load_settings
from store.db import Database
from store.records import save_snapshot
from store.users import add_user
from web.app import create_app

TEST_PASSWORD = "correct horse battery"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]*)">')


@pytest.fixture
def web_settings(tmp_path) -> Settings:
    base = load_settings(environ={})
    return dataclasses.replace(
        base,
        general=dataclasses.replace(base.general, data_dir=str(tmp_path / "var")),
        web=dataclasses.replace(base.web, secret_key="test-secret-" + "k" * 40, cookie_secure=False,
                                login_max_failures=3, login_lockout_seconds=60),
    )


@pytest.fixture
def web_app(web_settings: Settings, db: Database) -> web.Application:
    return create_app(web_settings, db, poll_interval=0.05)


@pytest.fixture
async def web_server(aiohttp_server: Callable[..., Awaitable[TestServer]], web_app: web.Application) -> TestServer:
    return await aiohttp_server(web_app)


@pytest.fixture
async def anon_client(aiohttp_client: Callable[..., Awaitable[TestClient]], web_server: TestServer) -> TestClient:
    return await aiohttp_client(web_server)


@dataclasses.dataclass(frozen=True)
class UserInfo:
    username: str
    password: str
    role: str
    agent_id: str | None


@pytest.fixture
def make_user(db: Database) -> Callable[..., UserInfo]:
    counter = itertools.count(1)
    agent_ids = itertools.count(1001)

    def _make(role: str, username: str | None = None, agent_id: str | None = None,
              password: str = TEST_PASSWORD) -> UserInfo:
        if role == "agent" and agent_id is None:
            agent_id = str(next(agent_ids))
        username = username or f"{role}{next(counter)}"
        with db.write() as s:
            add_user(s, username, role, password, agent_id=agent_id)
        return UserInfo(username, password, role, agent_id)

    return _make


class WebClient:
    """A test client signed in as one user; adds the CSRF token to state-changing requests."""

    def __init__(self, client: TestClient, user: UserInfo | None) -> None:
        self.client = client
        self.user = user
        self.csrf = ""

    async def refresh_csrf(self) -> str:
        resp = await self.client.get("/api/session")
        self.csrf = (await resp.json())["csrf_token"]
        return self.csrf

    async def login(self, username: str, password: str, next_url: str = "") -> ClientResponse:
        await self.refresh_csrf()
        resp = await self.client.post("/login", data={"username": username, "password": password,
                                                       "csrf_token": self.csrf, "next": next_url},
                                      allow_redirects=False)
        await self.refresh_csrf()
        return resp

    async def get(self, path: str, **kw: Any) -> ClientResponse:
        kw.setdefault("allow_redirects", False)
        return await self.client.get(path, **kw)

    async def post(self, path: str, data: dict[str, Any] | None = None, **kw: Any) -> ClientResponse:
        kw.setdefault("allow_redirects", False)
        return await self.client.post(path, data={"csrf_token": self.csrf, **(data or {})}, **kw)

    async def post_json(self, path: str, payload: Any, **kw: Any) -> ClientResponse:
        headers = {"X-CSRF-Token": self.csrf, **kw.pop("headers", {})}
        return await self.client.post(path, json=payload, headers=headers, **kw)

    async def ws_connect(self, path: str = "/ws/agent", **kw: Any) -> Any:
        return await self.client.ws_connect(path, **kw)

    @property
    def server(self) -> TestServer:
        return self.client.server  # type: ignore[return-value]


@pytest.fixture
def client_for(aiohttp_client: Callable[..., Awaitable[TestClient]], web_server: TestServer,
               make_user: Callable[..., UserInfo]) -> Callable[..., Awaitable[WebClient]]:
    async def _client_for(role: str, username: str | None = None, agent_id: str | None = None) -> WebClient:
        user = make_user(role, username=username, agent_id=agent_id)
        wc = WebClient(await aiohttp_client(web_server), user)
        resp = await wc.login(user.username, user.password)
        assert resp.status == 303, await resp.text()
        return wc

    return _client_for


@pytest.fixture
async def new_client(aiohttp_client: Callable[..., Awaitable[TestClient]], web_server: TestServer) -> Callable[[], Awaitable[WebClient]]:
    """An anonymous WebClient factory (each with its own cookie jar)."""
    async def _new() -> WebClient:
        wc = WebClient(await aiohttp_client(web_server), None)
        await wc.refresh_csrf()
        return wc

    return _new


def answered_call_fields(**overrides: Any) -> dict[str, Any]:
    """A complete answered call (the telephony part of Appendix C), without ticket fields or recording."""
    start = overrides.pop("call_start_at", None) or datetime.now(timezone.utc) - timedelta(minutes=5)
    enter = start + timedelta(seconds=8)
    answered = enter + timedelta(seconds=12)
    ended = answered + timedelta(seconds=120)
    fields: dict[str, Any] = {
        "record_id": f"1795901133.{next(_record_seq)}", "channel": "电话", "caller_number": "13800138000",
        "called_number": "12345", "call_start_at": start.isoformat(), "ivr_path": ["greeting", "queue"],
        "queue_id": "hotline", "queue_enter_at": enter.isoformat(), "answered_at": answered.isoformat(),
        "ended_at": ended.isoformat(), "wait_seconds": 12, "talk_seconds": 120, "call_outcome": "人工接通",
        "hangup_party": "诉求人", "agent_id": "1001", "language": "普通话", "transfer_type": "无",
        "callback_required": False,
    }
    fields.update(overrides)
    return fields


_record_seq = itertools.count(1)

VALID_TICKET: dict[str, Any] = {
    "claimant_type": "自然人", "claimant_name": "张三", "gender": "男", "contact_phone": "13800138000",
    "is_anonymous": False, "confidential": False, "appeal_type": "咨询", "category_code": "0101",
    "title": "咨询社保卡补办", "content": "来电人咨询社保卡丢失后如何补办。", "urgency": "一般", "accepted": True,
    "disposition": "直接答复", "answer_text": "告知携带身份证到社保网点办理。", "status": "直接办结",
}


@pytest.fixture
def make_call(db: Database) -> Callable[..., dict[str, Any]]:
    """Insert a call record; ``complete=True`` marks it completed (validated). Returns the fields used."""

    def _make(complete: bool = False, **overrides: Any) -> dict[str, Any]:
        fields = answered_call_fields(**overrides)
        with db.write() as s:
            call = save_snapshot(s, fields, complete=complete)
            fields["id"] = call.id
        return fields

    return _make


@pytest.fixture
def valid_ticket() -> dict[str, Any]:
    """Ticket fields (JSON API form) that pass Appendix C for a 咨询 answered directly."""
    return dict(VALID_TICKET)
