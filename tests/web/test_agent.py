"""Agent console: websocket screen pop from AgentEvent rows, transcript ready, role and masking rules."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest
from aiohttp import WSMsgType

from store.models import AgentEvent, Recording, Transcript
from web.agent import HUB_KEY
from web.access import call_scope, can_edit_ticket, can_view_call, visible_record
from web.state import CurrentUser

WS_TIMEOUT = 5.0


def _insert_event(db, **fields) -> int:
    with db.write() as s:
        ev = AgentEvent(**fields)
        s.add(ev)
        s.flush()
        return ev.id


async def _poller_passed(app, event_id: int) -> None:
    """Wait until the poller has moved past ``event_id`` (events up to it count as history)."""
    for _ in range(200):
        if app[HUB_KEY].last_event_id >= event_id:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the agent-event poller did not advance")


async def _receive(ws, timeout: float = WS_TIMEOUT) -> dict:
    msg = await ws.receive(timeout=timeout)
    assert msg.type == WSMsgType.TEXT, msg
    return msg.json()


async def test_screen_pop_reaches_the_agent_only(client_for, make_call, db) -> None:
    agent = await client_for("agent")
    other = await client_for("agent")
    old = make_call(agent_id="1999", caller_number="13911112222", ticket_no="20260101000007", appeal_type="投诉",
                    title="噪音扰民", call_start_at=datetime.now(timezone.utc) - timedelta(days=3))
    older = make_call(agent_id="1999", caller_number="13911112222",
                      call_start_at=datetime.now(timezone.utc) - timedelta(days=9))
    make_call(agent_id="1999", caller_number="13700000000")  # another number: not history
    call = make_call(agent_id=agent.user.agent_id, caller_number="13911112222", confidential=True,
                     claimant_name="王五")

    ws = await agent.ws_connect()
    ws_other = await other.ws_connect()
    assert (await _receive(ws))["type"] == "hello"
    assert (await _receive(ws_other))["type"] == "hello"

    _insert_event(db, agent_id=agent.user.agent_id, call_id=call["id"], kind="screen_pop",
                  payload={"record_id": call["record_id"], "ivr_path": ["greeting", "menu:2", "queue"],
                           "appeal_type": "投诉", "clip_recording_id": None, "transcript": "我家楼下工地夜间施工"})
    pop = await _receive(ws)
    assert pop["type"] == "screen_pop" and pop["record_id"] == call["record_id"]
    assert pop["ivr_path"] == ["greeting", "menu:2", "queue"]
    assert pop["appeal_type"] == "投诉"
    assert pop["clip"]["transcript"] == "我家楼下工地夜间施工"
    # The handling agent sees a confidential claimant unmasked.
    assert pop["call"]["caller_number"] == "13911112222"
    assert pop["call"]["claimant_name"] == "王五"
    assert [h["record_id"] for h in pop["history"]] == [old["record_id"], older["record_id"]]  # newest first
    assert pop["history"][0]["ticket_no"] == "20260101000007" and pop["history"][0]["title"] == "噪音扰民"
    assert pop["ticket_url"] == f"/calls/{call['record_id']}/ticket"

    with pytest.raises(asyncio.TimeoutError):
        await ws_other.receive(timeout=0.5)
    await ws.close()
    await ws_other.close()


async def test_transcript_ready_for_whoever_has_the_call(client_for, make_call, db) -> None:
    agent = await client_for("agent")
    call = make_call(agent_id=agent.user.agent_id)
    with db.write() as s:
        rec = Recording(call_id=call["id"], record_id=call["record_id"], kind="ivr_clip", uri="file:///clip.wav")
        s.add(rec)
        s.flush()
        s.add(Transcript(recording_id=rec.id, call_id=call["id"], channel=0, speaker="诉求人", model="test",
                         segments=[], text="路灯坏了三天"))
        recording_id = rec.id
    ws = await agent.ws_connect()
    assert (await _receive(ws))["type"] == "hello"
    _insert_event(db, agent_id="*", call_id=call["id"], kind="transcript_ready",
                  payload={"record_id": call["record_id"], "recording_id": recording_id})
    msg = await _receive(ws)
    assert msg == {"type": "transcript_ready", "event_id": msg["event_id"], "record_id": call["record_id"],
                   "recording_id": recording_id, "transcript": "路灯坏了三天"}
    await ws.close()


async def test_transcript_ready_before_the_record_names_the_agent(client_for, make_call, db) -> None:
    agent = await client_for("agent")
    call = make_call(agent_id=None, call_outcome="排队放弃")  # the agent column is not written yet
    ws = await agent.ws_connect()
    await _receive(ws)
    _insert_event(db, agent_id=agent.user.agent_id, call_id=call["id"], kind="screen_pop",
                  payload={"record_id": call["record_id"]})
    assert (await _receive(ws))["type"] == "screen_pop"
    _insert_event(db, agent_id="*", call_id=call["id"], kind="transcript_ready",
                  payload={"record_id": call["record_id"], "transcript": {"text": "停水了"}})
    msg = await _receive(ws)
    assert msg["type"] == "transcript_ready" and msg["transcript"] == "停水了"
    await ws.close()


async def test_reconnecting_console_gets_the_open_pop_again(client_for, make_call, db, web_app) -> None:
    agent = await client_for("agent")
    call = make_call(agent_id=agent.user.agent_id)  # state open: the call is going on
    event_id = _insert_event(db, agent_id=agent.user.agent_id, call_id=call["id"], kind="screen_pop",
                             payload={"record_id": call["record_id"], "ivr_path": ["queue"]})
    await _poller_passed(web_app, event_id)
    ws = await agent.ws_connect()
    assert (await _receive(ws))["type"] == "hello"
    msg = await _receive(ws)
    assert msg["type"] == "screen_pop" and msg["replay"] is True and msg["record_id"] == call["record_id"]
    await ws.close()


async def test_old_events_are_not_replayed_to_new_consoles(client_for, make_call, db, web_app) -> None:
    agent = await client_for("agent")
    done = make_call(agent_id=agent.user.agent_id, complete=True)
    event_id = _insert_event(db, agent_id=agent.user.agent_id, call_id=done["id"], kind="screen_pop",
                             payload={"record_id": done["record_id"]})
    await _poller_passed(web_app, event_id)
    ws = await agent.ws_connect()
    assert (await _receive(ws))["type"] == "hello"
    with pytest.raises(asyncio.TimeoutError):
        await ws.receive(timeout=0.5)
    await ws.close()


async def test_console_and_websocket_need_an_agent(client_for, anon_client) -> None:
    qa = await client_for("qa")
    assert (await qa.get("/agent")).status == 403
    resp = await qa.client.get("/ws/agent")
    assert resp.status == 403
    resp = await anon_client.get("/ws/agent")
    assert resp.status == 401
    agent = await client_for("agent")
    resp = await agent.get("/agent")
    text = await resp.text()
    assert resp.status == 200 and 'data-ws="/ws/agent"' in text and "/static/agent.js" in text


async def test_cross_site_websocket_refused(client_for) -> None:
    agent = await client_for("agent")
    resp = await agent.client.get("/ws/agent", headers={"Origin": "https://evil.example", "Connection": "Upgrade",
                                                        "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
                                                        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="})
    assert resp.status == 403


# --------------------------------------------------------------------------- role rules (web.access)

AGENT_A = CurrentUser(1, "a", "agent", "1001", "A")
AGENT_B = CurrentUser(2, "b", "agent", "1002", "B")
QA = CurrentUser(3, "q", "qa", None, "Q")
SUPERVISOR = CurrentUser(4, "s", "supervisor", None, "S")
ADMIN = CurrentUser(5, "ad", "admin", None, "AD")
CONFIDENTIAL = {"record_id": "r1", "agent_id": "1001", "confidential": True, "claimant_name": "张三丰",
                "contact_phone": "13800138000", "caller_number": "13800138000", "title": "t"}


def test_view_rules() -> None:
    assert can_view_call(AGENT_A, CONFIDENTIAL)
    assert not can_view_call(AGENT_B, CONFIDENTIAL)
    assert can_view_call(QA, CONFIDENTIAL) and can_view_call(SUPERVISOR, CONFIDENTIAL) and can_view_call(ADMIN, CONFIDENTIAL)
    assert not can_view_call(None, CONFIDENTIAL)
    assert can_edit_ticket(AGENT_A, CONFIDENTIAL) and can_edit_ticket(SUPERVISOR, CONFIDENTIAL)
    assert not can_edit_ticket(QA, CONFIDENTIAL) and not can_edit_ticket(AGENT_B, CONFIDENTIAL)
    assert str(call_scope(AGENT_A).compile(compile_kwargs={"literal_binds": True})) == "calls.agent_id = '1001'"
    assert str(call_scope(CurrentUser(6, "x", "agent", None, "X")).compile()) in ("false", "0 = 1")


def test_confidential_masking() -> None:
    for viewer in (QA, SUPERVISOR):
        shown = visible_record(viewer, CONFIDENTIAL)
        assert (shown["claimant_name"], shown["contact_phone"], shown["caller_number"]) == ("张**", "*******8000", "*******8000")
        assert shown["title"] == "t"
    for viewer in (ADMIN, AGENT_A):
        assert visible_record(viewer, CONFIDENTIAL) == CONFIDENTIAL
    plain = {**CONFIDENTIAL, "confidential": False}
    assert visible_record(QA, plain) == plain


async def test_ticket_view_respects_the_rules_over_http(client_for, make_call) -> None:
    agent = await client_for("agent")
    other = await client_for("agent")
    qa = await client_for("qa")
    admin = await client_for("admin")
    call = make_call(agent_id=agent.user.agent_id, confidential=True, claimant_name="张三丰",
                     contact_phone="13800138000", caller_number="13800138000")
    url = f"/api/calls/{call['record_id']}/ticket"
    assert (await other.get(url)).status == 403
    assert (await other.get(f"/calls/{call['record_id']}/ticket")).status == 403
    masked = await (await qa.get(url)).json()
    assert masked["claimant_name"] == "张**" and masked["contact_phone"] == "*******8000"
    for viewer in (admin, agent):
        shown = await (await viewer.get(url)).json()
        assert shown["claimant_name"] == "张三丰" and shown["contact_phone"] == "13800138000"
    assert (await qa.get(f"/calls/{call['record_id']}/ticket")).status == 403  # QA reads, does not fill
    assert (await agent.get("/api/calls/no-such-call/ticket")).status == 404
