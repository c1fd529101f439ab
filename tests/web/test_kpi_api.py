"""KPI dashboard, callback list and the API docs (both back-ends).

Fixture day 2026-03-02 (Asia/Shanghai): 09:10 answered w10 满意 · 09:30 answered w30 · 10:05 queue abandon w3
(short) · 10:20 queue abandon w40 (callback) · 11:00 voicemail w60 (callback) · 12:00 IVR abandon (callback).
By hand: offered 5, answered 2, short 1 → eligible 4; 人工接通率 2/4 = 50.0 %, 15秒接通率 1/4 = 25.0 %,
放弃率 1/4 = 25.0 %, 平均等待 (10+30)/2 = 20.0 s, 最长等待 60 s, 回拨完成率 0/3.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web

from store.db import Database
from store.models import Call
from web.api_docs import openapi

SH = ZoneInfo("Asia/Shanghai")


def _at(h: int, m: int) -> datetime:
    return datetime(2026, 3, 2, h, m, tzinfo=SH)


@pytest.fixture
def kpi_calls(db: Database) -> None:
    rows = [("k1", _at(9, 10), "人工接通", 10, True, "满意", False), ("k2", _at(9, 30), "人工接通", 30, True, None, False),
            ("k3", _at(10, 5), "排队放弃", 3, True, None, False), ("k4", _at(10, 20), "排队放弃", 40, True, None, True),
            ("k5", _at(11, 0), "留言", 60, True, None, True), ("k6", _at(12, 0), "IVR放弃", None, False, None, True)]
    with db.write() as s:
        for rid, start, outcome, wait, queued, sat, cb in rows:
            s.add(Call(record_id=rid, channel="电话", caller_number="1380013" + rid[-1] * 4, called_number="12345",
                       call_start_at=start, queue_enter_at=start if queued else None, wait_seconds=wait,
                       talk_seconds=100 if outcome == "人工接通" else None, call_outcome=outcome,
                       agent_id="1001" if outcome == "人工接通" else None, satisfaction=sat,
                       callback_required=cb, ivr_path=[], problems=[]))


async def test_kpi_json(client_for: Any, kpi_calls: None) -> None:
    sup = await client_for("supervisor")
    resp = await sup.get("/api/kpi?from=2026-03-02&to=2026-03-03&bucket=hour")
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    figs = {f["key"]: f for f in body["total"]["figures"]}
    assert (figs["connection_rate"]["numerator"], figs["connection_rate"]["denominator"]) == (2, 4)
    assert figs["connection_rate"]["display"] == "50.0%" and figs["connection_rate"]["label"] == "人工接通率"
    assert figs["service_level"]["display"] == "25.0%" and figs["abandon_rate"]["display"] == "25.0%"
    assert figs["avg_wait"]["value"] == 20.0 and figs["max_wait"]["value"] == 60
    assert (figs["callback_completion"]["numerator"], figs["callback_completion"]["denominator"]) == (0, 3)
    assert (figs["voicemail"]["value"], figs["ivr_abandoned"]["value"], figs["short_abandons"]["value"]) == (1, 1, 1)
    assert len(body["buckets"]) == 24
    hour12 = {f["key"]: f for f in body["buckets"][12]["figures"]}
    assert hour12["connection_rate"]["value"] is None and hour12["connection_rate"]["display"] == "—"
    # thresholds from the query: 30 s service level, 2 s short abandons
    body = await (await sup.get("/api/kpi?from=2026-03-02&to=2026-03-03&bucket=day&sl=30&short=2")).json()
    figs = {f["key"]: f for f in body["total"]["figures"]}
    assert figs["service_level"]["label"] == "30秒接通率"
    assert (figs["service_level"]["numerator"], figs["service_level"]["denominator"]) == (2, 5)
    assert len(body["buckets"]) == 1
    resp = await sup.get("/api/kpi?from=2026-03-02&to=2026-03-03&bucket=week")
    assert resp.status == 400 and (await resp.json())["parameter"] == "bucket"
    resp = await sup.get("/api/kpi?from=2026-03-03&to=2026-03-02")
    assert resp.status == 400
    agent = await client_for("agent")
    assert (await agent.get("/api/kpi")).status == 403


async def test_kpi_page(client_for: Any, kpi_calls: None) -> None:
    sup = await client_for("supervisor")
    resp = await sup.get("/kpi?from=2026-03-02&to=2026-03-03&bucket=hour")
    assert resp.status == 200
    html = await resp.text()
    for text in ("人工接通率", "15秒接通率", "人工应答及时率", "放弃率", "平均等待时长", "平均通话时长", "最长等待时长",
                 "回拨完成率", "满意度", "IVR放弃", "排队超时", "留言", "2 / 4", "<svg", "目标95%", "漏接回拨"):
        assert text in html, text
    assert "<script" not in html.split("</main>")[0].split("<main")[1]     # charts are server-side SVG
    assert "标记已回拨" in html


async def test_callbacks_masking_and_marking(client_for: Any, kpi_calls: None, db: Database) -> None:
    period = "from=2026-03-02&to=2026-03-03"
    sup = await client_for("supervisor")
    body = await (await sup.get(f"/api/callbacks?{period}")).json()
    assert [c["record_id"] for c in body["callbacks"]] == ["k6", "k5", "k4"]
    assert body["callbacks"][0]["caller_number"] == "13800136666"
    qa = await client_for("qa")
    body = await (await qa.get(f"/api/callbacks?{period}")).json()
    assert body["callbacks"][0]["caller_number"] == "*******6666"
    assert (await qa.post_json("/api/calls/k6/callback", {})).status == 403
    resp = await sup.post_json("/api/calls/k6/callback", {})
    assert resp.status == 200 and (await resp.json())["called_back_by"] == sup.user.username
    assert (await sup.post_json("/api/calls/k1/callback", {})).status == 409
    assert (await sup.post_json("/api/calls/none/callback", {})).status == 404
    agent = await client_for("agent")
    resp = await agent.post("/callbacks/k5", {"next": "/callbacks?pending=1"})
    assert resp.status == 303 and resp.headers["Location"] == "/callbacks?pending=1&marked=1"
    body = await (await sup.get(f"/api/callbacks?{period}&pending=1")).json()
    assert [c["record_id"] for c in body["callbacks"]] == ["k4"]
    with db.session() as s:
        k5 = s.query(Call).filter_by(record_id="k5").one()
        assert k5.called_back_by == agent.user.username and k5.called_back_at is not None
    body = await (await sup.get("/api/kpi?from=2026-03-02&to=2026-03-03&bucket=day")).json()
    figs = {f["key"]: f for f in body["total"]["figures"]}
    # called back now, years after the call: recorded, but not within the 24 h deadline
    assert figs["callback_completion"]["numerator"] == 0
    html = await (await agent.get(f"/callbacks?{period}&pending=0")).text()
    assert "已回拨" in html and "13800134444" in html


async def test_openapi_covers_every_api_route(web_app: web.Application, anon_client: Any) -> None:
    doc = openapi()
    documented = {(path, method.upper()) for path, item in doc["paths"].items() for method in item}
    routes = set()
    for route in web_app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter") or ""
        if path.startswith("/api/") and route.method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            routes.add((path, route.method))
    assert routes and routes <= documented, routes - documented
    resp = await anon_client.get("/api/openapi.json")
    assert resp.status == 200 and (await resp.json())["openapi"].startswith("3.")
    resp = await anon_client.get("/api/docs")
    html = await resp.text()
    assert resp.status == 200 and "/api/kpi" in html and "服务指标" in html and "KpiSeries" in html and "数据结构" in html
