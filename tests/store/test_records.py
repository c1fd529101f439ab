"""Call record life-cycle in the store: open, complete (flagged, never dropped), snapshot replay, schema check."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from store.db import Database, SchemaOutOfDate, open_database
from store.migrate import check_schema, upgrade
from store.models import Call
from store.records import UnknownField, complete_call, get_call, open_call, record_dict, save_snapshot

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 28, 9, 0, tzinfo=CST)


def _open(db: Database, record_id: str = "1795901013.1") -> None:
    with db.write() as s:
        open_call(s, {"record_id": record_id, "caller_number": "13800138000", "called_number": "12345",
                      "call_start_at": T0.isoformat(), "channel": "电话", "ivr_path": ["greeting"]})


def test_incomplete_record_is_stored_flagged(db: Database) -> None:
    _open(db)
    with db.write() as s:
        problems = complete_call(s, "1795901013.1", {"ended_at": (T0 + timedelta(seconds=30)).isoformat(),
                                                     "call_outcome": "人工接通", "hangup_party": "坐席"})
    assert {p.field for p in problems} >= {"answered_at", "agent_id", "talk_seconds", "recording"}
    with db.session() as s:
        call = get_call(s, "1795901013.1")
        assert call.state == "complete" and call.valid is False
        assert any("应答时间(answered_at)" in p["message"] for p in call.problems)


def test_valid_record_round_trips_with_aware_times(db: Database) -> None:
    _open(db)
    with db.write() as s:
        problems = complete_call(s, "1795901013.1", {"ended_at": (T0 + timedelta(seconds=8)).isoformat(),
                                                     "call_outcome": "IVR放弃", "hangup_party": "诉求人",
                                                     "callback_required": True})
    assert problems == []
    with db.session() as s:
        rec = record_dict(get_call(s, "1795901013.1"), tz="Asia/Shanghai", as_json=True)
    assert rec["call_start_at"] == "2026-11-28T09:00:00+08:00"
    assert rec["ended_at"] == "2026-11-28T09:00:08+08:00"
    assert rec["transcript"] is None and rec["qa_review"] is None


def test_open_is_idempotent_and_unknown_fields_rejected(db: Database) -> None:
    _open(db)
    _open(db)
    with db.session() as s:
        assert s.query(Call).count() == 1
    with db.write() as s, pytest.raises(UnknownField):
        open_call(s, {"record_id": "x", "caller_number": "1", "called_number": "2", "call_start_at": T0, "colour": "red"})


def test_snapshot_replay_twice_changes_nothing(db: Database) -> None:
    snap = {"record_id": "9.9", "caller_number": "anonymous", "called_number": "12345", "channel": "电话",
            "call_start_at": T0.isoformat(), "ivr_path": ["greeting", {"node": "menu", "keys": "1"}],
            "ended_at": (T0 + timedelta(seconds=3)).isoformat(), "call_outcome": "IVR放弃", "hangup_party": "诉求人",
            "language": "普通话", "transfer_type": "无", "callback_required": True}
    for _ in range(2):
        with db.write() as s:
            save_snapshot(s, snap, complete=True)
    with db.session() as s:
        calls = s.query(Call).all()
    assert len(calls) == 1 and calls[0].valid is True and calls[0].ivr_path == snap["ivr_path"]


def test_out_of_date_schema_is_refused(tmp_path) -> None:
    db = open_database(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    with pytest.raises(SchemaOutOfDate, match="hotline db upgrade"):
        check_schema(db)
    upgrade(db, "0001")
    upgrade(db)
    check_schema(db)
    db.dispose()
