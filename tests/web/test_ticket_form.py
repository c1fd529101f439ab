"""Ticket form and save service: per-field Chinese messages, conditional fields, 14-digit numbers.

(Named test_ticket_form.py, not test_tickets.py: tests/store/test_tickets.py exists and the test
directories are not packages, so basenames must be unique.)
"""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from store.models import Call, TicketSequence
from web.tickets import parse_ticket_input

TICKET_RE = re.compile(r"\d{14}")


def _stored(db, record_id: str) -> Call:
    with db.session() as s:
        return s.scalar(select(Call).where(Call.record_id == record_id))


def _today() -> str:
    return datetime.now(ZoneInfo("Asia/Shanghai")).strftime("%Y%m%d")


async def test_invalid_ticket_gives_chinese_messages_per_field_and_no_number(client_for, make_call, db) -> None:
    agent = await client_for("agent")
    call = make_call(agent_id=agent.user.agent_id)
    resp = await agent.post_json(f"/api/calls/{call['record_id']}/ticket",
                                 {"appeal_type": "投诉", "title": "", "is_anonymous": "false", "urgency": "很急"})
    assert resp.status == 422
    body = await resp.json()
    by_field = {p["field"]: p["message"] for p in body["problems"]}
    assert by_field["title"] == "诉求标题(title)：已登记工单时必填"
    assert by_field["claimant_name"] == "姓名或称呼(claimant_name)：是否匿名为否时必填"
    assert by_field["incident_address"] == "事发地点(incident_address)：诉求类型为投诉时必填"
    assert by_field["district"] == "所属区(district)：诉求类型为投诉时必填"
    assert by_field["urgency"].startswith("紧急程度(urgency)：取值 '很急' 不在允许值")
    assert {"claimant_type", "content", "category_code", "accepted", "disposition", "status"} <= set(by_field)
    assert "recording" not in by_field  # not the agent's to fill: never blocks
    row = _stored(db, call["record_id"])
    assert row.ticket_no is None and row.title is None and row.appeal_type is None
    with db.session() as s:
        assert s.scalar(select(TicketSequence.last_value)) is None  # no number consumed


async def test_valid_ticket_gets_a_14_digit_number_once(client_for, make_call, db, valid_ticket) -> None:
    agent = await client_for("agent")
    call = make_call(agent_id=agent.user.agent_id)  # answered, still open, recording not attached yet
    url = f"/api/calls/{call['record_id']}/ticket"
    resp = await agent.post_json(url, valid_ticket)
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    ticket_no = body["ticket_no"]
    assert TICKET_RE.fullmatch(ticket_no) and ticket_no.startswith(_today())
    assert body["created"] is True
    assert [p["field"] for p in body["info"]] == ["recording"]  # shown, not blocking
    row = _stored(db, call["record_id"])
    assert row.ticket_no == ticket_no and row.title == valid_ticket["title"] and row.is_anonymous is False
    assert row.state == "open"  # hangup completes the record, not the ticket form

    again = await agent.post_json(url, {**valid_ticket, "title": "咨询社保卡补办流程"})
    assert again.status == 200
    body = await again.json()
    assert body["ticket_no"] == ticket_no and body["created"] is False
    assert _stored(db, call["record_id"]).title == "咨询社保卡补办流程"

    second = make_call(agent_id=agent.user.agent_id)
    resp = await agent.post_json(f"/api/calls/{second['record_id']}/ticket", valid_ticket)
    assert int((await resp.json())["ticket_no"]) == int(ticket_no) + 1


async def test_save_on_a_completed_call_revalidates_it(client_for, make_call, db, valid_ticket) -> None:
    agent = await client_for("agent")
    recording = {"uri": "file:///a.flac", "sha256": "0" * 64, "duration_seconds": 120.0, "channels": 2,
                 "sample_rate": 8000}
    call = make_call(agent_id=agent.user.agent_id, recording=recording, complete=True)
    assert _stored(db, call["record_id"]).valid is True
    resp = await agent.post_json(f"/api/calls/{call['record_id']}/ticket", valid_ticket)
    assert resp.status == 201 and (await resp.json())["info"] == []
    row = _stored(db, call["record_id"])
    assert (row.state, row.valid, row.problems) == ("complete", True, [])


async def test_contact_phone_defaults_to_the_caller(client_for, make_call, db, valid_ticket) -> None:
    agent = await client_for("agent")
    call = make_call(agent_id=agent.user.agent_id, caller_number="13600001111")
    valid_ticket.pop("contact_phone")
    assert (await agent.post_json(f"/api/calls/{call['record_id']}/ticket", valid_ticket)).status == 201
    assert _stored(db, call["record_id"]).contact_phone == "13600001111"


async def test_anonymous_claimant_must_not_carry_a_name(client_for, make_call, valid_ticket) -> None:
    agent = await client_for("agent")
    call = make_call(agent_id=agent.user.agent_id)
    resp = await agent.post_json(f"/api/calls/{call['record_id']}/ticket", {**valid_ticket, "is_anonymous": True})
    assert resp.status == 422
    assert (await resp.json())["problems"] == [
        {"field": "claimant_name", "code": "consistency", "message": "姓名或称呼(claimant_name)：匿名诉求应为空"}]


async def test_dispatch_needs_unit_and_deadline(client_for, make_call, db, valid_ticket) -> None:
    agent = await client_for("agent")
    call = make_call(agent_id=agent.user.agent_id)
    url = f"/api/calls/{call['record_id']}/ticket"
    ticket = {**valid_ticket, "disposition": "派单", "status": "已派单", "answer_text": ""}
    resp = await agent.post_json(url, ticket)
    assert {p["field"] for p in (await resp.json())["problems"]} == {"handler_unit", "due_at"}
    resp = await agent.post_json(url, {**ticket, "handler_unit": "朝阳区城管委", "due_at": "2026-12-01T18:00"})
    assert resp.status == 201
    due = _stored(db, call["record_id"]).due_at
    assert due.astimezone(ZoneInfo("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M") == "2026-12-01 18:00"


async def test_only_the_handling_agent_or_a_supervisor_saves(client_for, make_call, db, valid_ticket) -> None:
    agent = await client_for("agent")
    other = await client_for("agent")
    qa = await client_for("qa")
    call = make_call(agent_id=agent.user.agent_id)
    url = f"/api/calls/{call['record_id']}/ticket"
    assert (await other.post_json(url, valid_ticket)).status == 403
    assert (await qa.post_json(url, valid_ticket)).status == 403
    assert _stored(db, call["record_id"]).ticket_no is None
    supervisor = await client_for("supervisor")
    assert (await supervisor.post_json(url, valid_ticket)).status == 201


async def test_masked_viewer_cannot_overwrite_or_unmask_identity(client_for, make_call, db, valid_ticket) -> None:
    agent = await client_for("agent")
    supervisor = await client_for("supervisor")
    call = make_call(agent_id=agent.user.agent_id)
    url = f"/api/calls/{call['record_id']}/ticket"
    assert (await agent.post_json(url, {**valid_ticket, "confidential": True})).status == 201
    resp = await supervisor.post_json(url, {**valid_ticket, "claimant_name": "张**", "contact_phone": "*******8000",
                                            "confidential": False, "urgency": "紧急"})
    assert resp.status == 200
    row = _stored(db, call["record_id"])
    assert (row.claimant_name, row.contact_phone, row.confidential, row.urgency) == ("张三", "13800138000", True, "紧急")


async def test_unknown_fields_and_bad_json_are_refused(client_for, make_call, valid_ticket) -> None:
    agent = await client_for("agent")
    call = make_call(agent_id=agent.user.agent_id)
    url = f"/api/calls/{call['record_id']}/ticket"
    resp = await agent.post_json(url, {**valid_ticket, "ticket_no": "20990101000001"})
    assert resp.status == 422
    assert [p["field"] for p in (await resp.json())["problems"]] == ["ticket_no"]
    resp = await agent.client.post(url, data=b"{not json", headers={"X-CSRF-Token": agent.csrf,
                                                                     "Content-Type": "application/json"})
    assert resp.status == 400


async def test_html_form_shows_errors_next_to_fields_then_the_number(client_for, make_call, db, valid_ticket) -> None:
    agent = await client_for("agent")
    call = make_call(agent_id=agent.user.agent_id, claimant_name=None)
    page_url = f"/calls/{call['record_id']}/ticket"
    resp = await agent.get(page_url)
    text = await resp.text()
    assert resp.status == 200
    for legend in ("诉求人信息", "诉求内容", "处置"):
        assert f"<legend>{legend}</legend>" in text
    assert '<select id="f-appeal_type" name="appeal_type">' in text
    assert 'data-when-field="appeal_type" data-when-values="[&quot;求助&quot;, &quot;投诉&quot;, &quot;举报&quot;]"' in text

    form = {k: ("true" if v is True else "false" if v is False else v) for k, v in valid_ticket.items()}
    bad = {**form, "title": "", "claimant_name": "<script>alert(1)</script>"}
    resp = await agent.post(page_url, data=bad)
    text = await resp.text()
    assert resp.status == 422
    assert ('<div class="errors" data-error-for="title"><p class="field-error" role="alert">'
            '诉求标题(title)：已登记工单时必填</p></div>') in text
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert 'class="ticket-number"' not in text
    assert _stored(db, call["record_id"]).ticket_no is None

    resp = await agent.post(page_url, data=form)
    text = await resp.text()
    ticket_no = _stored(db, call["record_id"]).ticket_no
    assert resp.status == 200 and TICKET_RE.fullmatch(ticket_no)
    assert f'data-ticket-no="{ticket_no}"' in text
    assert "工单编号（请告知来电人）" in text


async def test_fragment_for_the_console(client_for, make_call) -> None:
    agent = await client_for("agent")
    call = make_call(agent_id=agent.user.agent_id)
    resp = await agent.get(f"/calls/{call['record_id']}/ticket?fragment=1")
    text = await resp.text()
    assert resp.status == 200 and text.startswith('<div class="ticket"') and "<html" not in text
    assert f'data-api="/api/calls/{call["record_id"]}/ticket"' in text


def test_parse_ticket_input() -> None:
    values, problems = parse_ticket_input(
        {"is_anonymous": "否", "confidential": "true", "incident_time": "2026-11-28T09:30", "title": "  标题 ",
         "gender": "", "csrf_token": "x", "accepted": "maybe", "due_at": "tomorrow"}, "Asia/Shanghai")
    assert values["is_anonymous"] is False and values["confidential"] is True
    assert values["incident_time"].isoformat() == "2026-11-28T09:30:00+08:00"
    assert values["title"] == "标题" and values["gender"] is None and "csrf_token" not in values
    assert {p.field: p.code for p in problems} == {"accepted": "type", "due_at": "type"}
    _, problems = parse_ticket_input({"title": "x" * 300}, "Asia/Shanghai")
    assert problems[0].message == "诉求标题(title)：不能超过 256 个字符"
