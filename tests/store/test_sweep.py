"""The stale-record sweep: records left ``open`` (crash + unreachable ``h`` extension) are closed from their evidence."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import structlog
from sqlalchemy import select, text
from structlog.testing import capture_logs

import store.sweep as sweep_mod
from cli.main import main
from config.settings import SettingsError, load_settings
from store.db import Database
from store.models import Call, utcnow
from store.records import get_call, open_call, record_dict, save_snapshot
from store.sweep import (SWEPT_STEP, closing_fields, decide_outcome, is_swept, sweep, sweep_stale_calls)
from store.validation import validate_record

NOW = datetime(2026, 11, 28, 14, 0, tzinfo=timezone.utc)
MAX_OPEN = 4 * 3600
CALLER = "13912345678"


def _open(db: Database, record_id: str, start: datetime, **fields: Any) -> None:
    base: dict[str, Any] = {"record_id": record_id, "caller_number": CALLER, "called_number": "12345",
                            "call_start_at": start.isoformat(), "channel": "电话", "language": "普通话",
                            "transfer_type": "无", "callback_required": False, "ivr_path": ["greeting", "hours:open"]}
    base.update({k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in fields.items()})
    with db.write() as s:
        open_call(s, base)


def _stale_set(db: Database) -> dict[str, datetime]:
    """One of each: answered, queued-unanswered, IVR-only (stale); fresh open; old complete."""
    t = NOW - timedelta(hours=5)
    _open(db, "answered.1", t, queue_id="hotline", queue_enter_at=t + timedelta(seconds=20),
          answered_at=t + timedelta(seconds=50), agent_id="1001",
          ivr_path=["greeting", "hours:open", "->queue", "queue"])
    _open(db, "queued.2", t, queue_id="hotline", queue_enter_at=t + timedelta(seconds=20),
          ivr_path=["greeting", "hours:open", "->queue", "queue", "queue:TIMEOUT", "offer:-", "queue_again"])
    _open(db, "ivr.3", t, ivr_path=["greeting"])
    _open(db, "fresh.4", NOW - timedelta(hours=3, minutes=59))
    with db.write() as s:
        save_snapshot(s, {"record_id": "done.5", "caller_number": CALLER, "called_number": "12345", "channel": "电话",
                          "call_start_at": (t - timedelta(days=1)).isoformat(), "ivr_path": ["greeting"],
                          "ended_at": (t - timedelta(days=1) + timedelta(seconds=9)).isoformat(),
                          "call_outcome": "IVR放弃", "hangup_party": "诉求人", "language": "普通话",
                          "transfer_type": "无", "callback_required": True}, complete=True)
    return {"start": t}


def _row(db: Database, record_id: str) -> Call:
    with db.session() as s:
        return get_call(s, record_id)


def _verdict_matches(call: Call) -> None:
    expected = [p.to_dict() for p in validate_record(record_dict(call))]
    assert call.problems == expected
    assert call.valid is (not expected)


# ------------------------------------------------------------------ the three kinds of stale record

def test_sweep_closes_stale_records_by_their_evidence(db: Database) -> None:
    t = _stale_set(db)["start"]
    with db.write() as s:
        result = sweep_stale_calls(s, NOW, MAX_OPEN)
    assert sorted(result.record_ids) == ["answered.1", "ivr.3", "queued.2"]

    answered = _row(db, "answered.1")
    assert answered.state == "complete" and answered.call_outcome == "人工接通"
    assert answered.hangup_party == "系统"
    assert answered.ended_at == t + timedelta(seconds=50)           # answered_at: the last proof of life
    assert (answered.wait_seconds, answered.talk_seconds) == (30, 0)
    assert answered.callback_required is False
    assert answered.ivr_path == ["greeting", "hours:open", "->queue", "queue", SWEPT_STEP]
    assert answered.valid is False and [p["field"] for p in answered.problems] == ["recording"]
    _verdict_matches(answered)

    queued = _row(db, "queued.2")
    assert queued.state == "complete" and queued.call_outcome == "系统失败" and queued.hangup_party == "系统"
    assert queued.ended_at == t + timedelta(seconds=20) and queued.wait_seconds == 0 and queued.talk_seconds is None
    assert queued.callback_required is True and queued.ivr_path[-1] == SWEPT_STEP
    assert queued.valid is True and queued.problems == []
    _verdict_matches(queued)

    ivr = _row(db, "ivr.3")
    assert ivr.state == "complete" and ivr.call_outcome == "系统失败" and ivr.ended_at == t
    assert ivr.wait_seconds is None and ivr.talk_seconds is None
    assert ivr.callback_required is True and ivr.ivr_path == ["greeting", SWEPT_STEP]
    assert ivr.valid is True
    _verdict_matches(ivr)


def test_fresh_open_and_complete_records_are_left_alone(db: Database) -> None:
    _stale_set(db)
    before_fresh, before_done = _row(db, "fresh.4"), _row(db, "done.5")
    sweep(db, NOW, MAX_OPEN)
    fresh, done = _row(db, "fresh.4"), _row(db, "done.5")
    assert fresh.state == "open" and fresh.call_outcome is None and fresh.ended_at is None
    assert fresh.ivr_path == ["greeting", "hours:open"] and fresh.valid is None
    assert fresh.updated_at == before_fresh.updated_at
    assert (done.ended_at, done.call_outcome, done.hangup_party, done.ivr_path, done.updated_at) == (
        before_done.ended_at, before_done.call_outcome, before_done.hangup_party, before_done.ivr_path,
        before_done.updated_at)
    # once it is old enough, the fresh one goes too
    assert sweep(db, NOW + timedelta(minutes=2), MAX_OPEN).record_ids == ["fresh.4"]


def test_second_sweep_closes_nothing(db: Database) -> None:
    _stale_set(db)
    first = sweep(db, NOW, MAX_OPEN)
    assert first.count == 3
    snapshot = {rid: record_dict(_row(db, rid)) for rid in first.record_ids}
    second = sweep(db, NOW, MAX_OPEN)
    assert second.count == 0 and second.record_ids == []
    for rid, before in snapshot.items():
        after = record_dict(_row(db, rid))
        assert after == before and after["ivr_path"].count(SWEPT_STEP) == 1


def test_dry_run_changes_nothing(db: Database) -> None:
    _stale_set(db)
    with db.session() as s:
        before = {c.record_id: (record_dict(c), c.state, c.valid, c.updated_at) for c in s.scalars(select(Call))}
    result = sweep(db, NOW, MAX_OPEN, dry_run=True)
    assert result.dry_run and sorted(result.record_ids) == ["answered.1", "ivr.3", "queued.2"]
    assert {r.record_id: r.call_outcome for r in result.records} == {
        "answered.1": "人工接通", "queued.2": "系统失败", "ivr.3": "系统失败"}
    assert all(r.valid is None for r in result.records)
    with db.session() as s:
        after = {c.record_id: (record_dict(c), c.state, c.valid, c.updated_at) for c in s.scalars(select(Call))}
    assert after == before
    assert sweep(db, NOW, MAX_OPEN).count == 3            # the real sweep still has them all


def test_chunks_cover_every_stale_record(db: Database) -> None:
    t = NOW - timedelta(hours=6)
    for i in range(7):
        _open(db, f"c.{i}", t + timedelta(seconds=i))
    with db.write() as s:
        part = sweep_stale_calls(s, NOW, MAX_OPEN, limit=3)
    assert part.count == 3 and part.examined == 3
    total = sweep(db, NOW, MAX_OPEN, chunk=2)
    assert sorted(total.record_ids) == [f"c.{i}" for i in range(3, 7)]
    with db.session() as s:
        assert s.scalar(select(Call).where(Call.state == "open")) is None


def test_postgresql_skips_a_row_a_live_writer_holds(db: Database) -> None:
    if db.dialect != "postgresql":
        pytest.skip("FOR UPDATE SKIP LOCKED is PostgreSQL's; SQLite has one writer at a time")
    t = NOW - timedelta(hours=5)
    _open(db, "held.1", t)
    _open(db, "free.2", t)
    with db.engine.connect() as other, ThreadPoolExecutor(1) as pool:
        tx = other.begin()
        other.execute(text("SELECT id FROM calls WHERE record_id = 'held.1' FOR UPDATE"))
        try:
            swept = pool.submit(sweep, db, NOW, MAX_OPEN).result(timeout=10)   # must not wait for the lock
        finally:
            tx.rollback()
    assert swept.record_ids == ["free.2"] and _row(db, "held.1").state == "open"
    assert sweep(db, NOW, MAX_OPEN).record_ids == ["held.1"]


# ------------------------------------------------------------------ the IVR path and the row say otherwise

def test_voicemail_ticket_means_message_and_gets_its_number(db: Database) -> None:
    t = NOW - timedelta(hours=5)
    ticket = {"claimant_type": "自然人", "claimant_name": "语音留言来电人（待回拨核实）", "is_anonymous": False,
              "confidential": False, "category_code": "IVR-VOICEMAIL", "title": "语音留言", "content": "见留言录音。",
              "urgency": "一般", "accepted": True, "disposition": "派单", "handler_unit": "12345热线回拨组",
              "due_at": t + timedelta(hours=24), "status": "已派单", "appeal_type": "其他", "contact_phone": CALLER}
    _open(db, "vm.1", t, ivr_path=["greeting", "hours:closed", "after_hours", "->voicemail", "voicemail:ok"], **ticket)
    assert sweep(db, NOW, MAX_OPEN).record_ids == ["vm.1"]
    call = _row(db, "vm.1")
    assert call.call_outcome == "留言" and call.callback_required is True
    assert call.ticket_no is not None and len(call.ticket_no) == 14   # deferred allocation done, as the replay does
    assert call.valid is True
    _verdict_matches(call)


def test_flow_failure_and_unknown_paths_are_system_failures(db: Database) -> None:
    t = NOW - timedelta(hours=5)
    _open(db, "err.1", t, queue_id="hotline", queue_enter_at=t + timedelta(seconds=15),
          ivr_path=["greeting", "hours:open", "->queue", "queue", "error"])
    _open(db, "empty.2", t, ivr_path=[])
    _open(db, "closed.3", t, ivr_path=["greeting", "hours:closed", "after_hours"])
    sweep(db, NOW, MAX_OPEN)
    err, empty, closed = _row(db, "err.1"), _row(db, "empty.2"), _row(db, "closed.3")
    assert err.call_outcome == "系统失败" and err.wait_seconds == 0 and err.callback_required is True
    assert empty.call_outcome == "系统失败" and empty.ivr_path == [SWEPT_STEP]
    assert closed.call_outcome == "非工作时段" and closed.callback_required is False
    for call in (err, empty, closed):
        assert call.valid is True and is_swept(record_dict(call))
        _verdict_matches(call)


def test_an_unlocated_menu_appeal_is_dropped_like_the_normal_close(db: Database) -> None:
    t = NOW - timedelta(hours=5)
    _open(db, "menu.1", t, appeal_type="投诉", ivr_path=["greeting", "menu:3", "set_complaint"])
    sweep(db, NOW, MAX_OPEN)
    call = _row(db, "menu.1")
    assert call.appeal_type is None and call.valid is True and call.call_outcome == "系统失败"


def test_closing_fields_is_pure_and_never_uses_the_sweep_time() -> None:
    t = NOW - timedelta(hours=9)
    record = {"record_id": "p.1", "call_start_at": t, "queue_enter_at": (t + timedelta(seconds=5)).isoformat(),
              "answered_at": None, "ivr_path": ["queue"], "callback_required": False, "hangup_party": None}
    frozen = json.dumps(record, default=str)
    out = closing_fields(record)
    assert json.dumps(record, default=str) == frozen                     # input untouched
    assert out["ended_at"] == t + timedelta(seconds=5) and out["wait_seconds"] == 0
    assert out["call_outcome"] == decide_outcome(record) == "系统失败"
    assert out["ivr_path"] == ["queue", SWEPT_STEP] and out["hangup_party"] == "系统"
    # a hangup party the call itself stored is kept; an answered call's durations follow its own times
    answered = {**record, "answered_at": t + timedelta(seconds=65), "hangup_party": "坐席"}
    out = closing_fields(answered)
    assert (out["call_outcome"], out["hangup_party"], out["wait_seconds"], out["talk_seconds"]) == ("人工接通", "坐席", 60, 0)
    assert closing_fields({**record, "ivr_path": out["ivr_path"]})["ivr_path"].count(SWEPT_STEP) == 1


def test_one_log_event_per_swept_record_without_the_phone_number(db: Database, monkeypatch) -> None:
    _stale_set(db)
    with capture_logs() as logs:
        monkeypatch.setattr(sweep_mod, "log", structlog.get_logger("test_sweep"))
        result = sweep(db, NOW, MAX_OPEN)
    events = [e for e in logs if e["event"] == "call_record_swept"]
    assert sorted(e["record_id"] for e in events) == sorted(result.record_ids) and len(events) == 3
    assert {e["record_id"]: e["call_outcome"] for e in events}["queued.2"] == "系统失败"
    assert all(CALLER not in str(e) and CALLER[-4:] not in json.dumps(e, default=str) for e in events)


# ------------------------------------------------------------------ settings, CLI, serve

def test_settings_defaults_and_environment() -> None:
    s = load_settings({})
    assert (s.records.max_open_seconds, s.records.sweep_interval_seconds) == (14400, 300)
    s = load_settings({"HOTLINE_RECORDS__MAX_OPEN_SECONDS": "7200", "HOTLINE_RECORDS__SWEEP_INTERVAL_SECONDS": "60"})
    assert (s.records.max_open_seconds, s.records.sweep_interval_seconds) == (7200, 60)
    with pytest.raises(SettingsError, match="records.max_open_seconds"):
        load_settings({"HOTLINE_RECORDS__MAX_OPEN_SECONDS": "0"})


def test_cli_records_sweep(db: Database, monkeypatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HOTLINE_DATABASE__URL", db.url)
    now = utcnow()
    _open(db, "cli.old", now - timedelta(hours=2), queue_id="hotline", queue_enter_at=now - timedelta(hours=2, seconds=-10))
    _open(db, "cli.new", now - timedelta(minutes=10))

    assert main(["records", "sweep", "--dry-run"]) == 0                   # default 4 h: nothing is that old
    assert "dry run: would close 0 records open longer than 14400 s" in capsys.readouterr().out

    assert main(["records", "sweep", "--max-open-seconds", "3600", "--dry-run"]) == 0
    out = capsys.readouterr().out
    lines = [json.loads(x) for x in out.splitlines() if x.startswith("{")]
    assert [x["record_id"] for x in lines] == ["cli.old"] and lines[0]["call_outcome"] == "系统失败"
    assert "dry run: would close 1 records" in out and _row(db, "cli.old").state == "open"

    assert main(["records", "sweep", "--max-open-seconds", "3600"]) == 0
    captured = capsys.readouterr()
    assert "closed 1 records open longer than 3600 s" in captured.out
    assert CALLER not in captured.out + captured.err
    events = [json.loads(x) for x in captured.err.splitlines() if x.startswith("{")]
    assert [e["record_id"] for e in events if e.get("event") == "call_record_swept"] == ["cli.old"]
    old, new = _row(db, "cli.old"), _row(db, "cli.new")
    assert old.state == "complete" and old.call_outcome == "系统失败" and old.ivr_path[-1] == SWEPT_STEP
    assert new.state == "open"

    assert main(["records", "sweep", "--max-open-seconds", "3600"]) == 0
    assert "closed 0 records" in capsys.readouterr().out
    assert main(["records", "sweep", "--max-open-seconds", "0"]) == 2


def test_serve_sweeps_periodically_and_survives_a_database_error(db: Database, monkeypatch) -> None:
    from cli import serve

    settings = load_settings({})
    settings = dataclasses.replace(settings, records=dataclasses.replace(settings.records, max_open_seconds=3600))
    _open(db, "bg.1", utcnow() - timedelta(hours=2))
    calls: list[str] = []
    real_sweep = serve.sweep_stale_records

    def flaky(*args: Any, **kwargs: Any) -> Any:
        calls.append("try")
        if len(calls) == 1:
            raise RuntimeError("database down")
        return real_sweep(*args, **kwargs)

    monkeypatch.setattr(serve, "sweep_stale_records", flaky)

    async def run() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(serve._sweep_stale_records(db, settings, stop, interval=0.05))
        for _ in range(200):
            await asyncio.sleep(0.05)
            if _row(db, "bg.1").state == "complete":
                break
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(run())
    assert len(calls) >= 2                              # the failure was logged, the next interval retried
    assert _row(db, "bg.1").state == "complete"
