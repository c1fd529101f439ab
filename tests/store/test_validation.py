"""validate_record: required and conditional rules, types, enums, consistency; messages name 中文名(id)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from store.validation import validate_record

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 28, 9, 0, 0, tzinfo=CST)


def answered_record(**over) -> dict:
    rec = {
        "record_id": "1795901084.29", "channel": "电话", "caller_number": "13800138000", "called_number": "12345",
        "call_start_at": T0, "ivr_path": ["greeting", "queue"], "queue_id": "hotline",
        "queue_enter_at": T0 + timedelta(seconds=10), "answered_at": T0 + timedelta(seconds=22),
        "ended_at": T0 + timedelta(seconds=202), "wait_seconds": 12, "talk_seconds": 180,
        "call_outcome": "人工接通", "hangup_party": "诉求人", "agent_id": "1001", "language": "普通话",
        "recording": {"uri": "archive/2026/11/28/1795901084.29.flac", "sha256": "ab" * 32, "duration_seconds": 202.0,
                      "channels": 2, "sample_rate": 8000},
        "transfer_type": "无", "callback_required": False,
    }
    rec.update(over)
    return rec


def ticket_fields(**over) -> dict:
    rec = {
        "ticket_no": "20261128000001", "claimant_type": "自然人", "claimant_name": "张先生", "contact_phone": "13800138000",
        "is_anonymous": False, "confidential": False, "appeal_type": "投诉", "category_code": "0301",
        "title": "夜间施工噪声", "content": "朝阳区某工地夜间施工，噪声扰民，请求处理。", "incident_address": "朝阳区某路1号",
        "district": "朝阳区", "urgency": "一般", "accepted": True, "disposition": "派单", "handler_unit": "朝阳区城管委",
        "due_at": T0 + timedelta(days=7), "status": "已派单",
    }
    rec.update(over)
    return rec


def fields(problems) -> set[str]:
    return {p.field for p in problems}


def test_valid_answered_call_with_ticket_has_no_problems() -> None:
    assert validate_record({**answered_record(), **ticket_fields()}) == []


def test_valid_ivr_abandon_needs_no_queue_or_agent_fields() -> None:
    rec = {"record_id": "1.2", "channel": "电话", "caller_number": "anonymous", "called_number": "12345",
           "call_start_at": T0, "ivr_path": ["greeting"], "ended_at": T0 + timedelta(seconds=4),
           "call_outcome": "IVR放弃", "hangup_party": "诉求人", "language": "普通话", "transfer_type": "无",
           "callback_required": True}
    assert validate_record(rec) == []


def test_answered_call_missing_answer_fields_gets_named_problems() -> None:
    rec = answered_record(answered_at=None, agent_id="", recording=None, talk_seconds=None, wait_seconds=192)
    problems = validate_record(rec)
    assert fields(problems) == {"answered_at", "agent_id", "recording", "talk_seconds"}
    msg = {p.field: p.message for p in problems}
    assert msg["answered_at"] == "应答时间(answered_at)：呼叫结果为人工接通时必填"
    assert msg["agent_id"].startswith("坐席工号(agent_id)")


def test_queued_fields_required_once_queued() -> None:
    rec = answered_record(call_outcome="排队放弃", answered_at=None, talk_seconds=None, agent_id=None, recording=None,
                          queue_id=None, wait_seconds=None)
    assert fields(validate_record(rec)) == {"queue_id", "wait_seconds"}


def test_always_fields() -> None:
    problems = validate_record({})
    assert fields(problems) == {"record_id", "channel", "caller_number", "called_number", "call_start_at", "ivr_path",
                                "ended_at", "call_outcome", "hangup_party", "language", "transfer_type", "callback_required"}


@pytest.mark.parametrize("over, field", [
    ({"call_outcome": "挂断"}, "call_outcome"),
    ({"channel": "电报"}, "channel"),
    ({"wait_seconds": "12"}, "wait_seconds"),
    ({"callback_required": "no"}, "callback_required"),
    ({"call_start_at": "2026-11-28 09:00:00"}, "call_start_at"),      # no offset
    ({"ivr_path": "greeting"}, "ivr_path"),
    ({"recording": "file.wav"}, "recording"),
])
def test_types_and_enums(over, field) -> None:
    assert field in fields(validate_record(answered_record(**over)))


@pytest.mark.parametrize("over, missing", [
    ({"is_anonymous": False, "claimant_name": None}, "claimant_name"),
    ({"claimant_type": "法人"}, "org_name"),
    ({"appeal_type": "举报", "incident_address": None}, "incident_address"),
    ({"appeal_type": "求助", "district": ""}, "district"),
    ({"accepted": False, "disposition": "不予受理", "handler_unit": None, "due_at": None}, "rejection_reason"),
    ({"disposition": "直接答复", "handler_unit": None, "due_at": None}, "answer_text"),
    ({"disposition": "派单", "handler_unit": None}, "handler_unit"),
    ({"satisfaction": "满意"}, "satisfaction_source"),
    ({"transfer_type": "一键转110"}, "transfer_target"),
    ({"urgency": None}, "urgency"),
])
def test_conditional_requirements(over, missing) -> None:
    problems = validate_record({**answered_record(), **ticket_fields(**over)})
    assert missing in fields(problems)


def test_conditions_not_triggered_are_not_required() -> None:
    rec = {**answered_record(), **ticket_fields(appeal_type="咨询", incident_address=None, district=None,
                                                disposition="直接答复", answer_text="已告知办理流程", handler_unit=None,
                                                due_at=None, status="直接办结", is_anonymous=True, claimant_name="")}
    assert validate_record(rec) == []


def test_consistency_rules() -> None:
    rec = answered_record(wait_seconds=99, talk_seconds=5, ticket_no="2026-1")
    got = fields(validate_record(rec))
    assert {"wait_seconds", "talk_seconds", "ticket_no"} <= got
    assert "ended_at" in fields(validate_record(answered_record(ended_at=T0 - timedelta(seconds=1))))
    incomplete = answered_record(recording={"uri": "x.flac"})
    assert "recording" in fields(validate_record(incomplete))


def test_iso_strings_are_accepted() -> None:
    rec = answered_record(call_start_at=T0.isoformat(), queue_enter_at=(T0 + timedelta(seconds=10)).isoformat(),
                          answered_at=(T0 + timedelta(seconds=22)).isoformat(), ended_at=(T0 + timedelta(seconds=202)).isoformat())
    assert validate_record(rec) == []
