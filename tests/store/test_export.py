"""records export: keyed by Appendix C ids, confidential claimants masked unless an admin asks, audited."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone

import pytest

from store.appendix_c import FIELD_IDS
from store.audit import list_events
from store.db import Database
from store.export import ExportNotAllowed, ExportRequest, export_records
from store.records import save_snapshot
from store.users import add_user

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 28, 9, 0, tzinfo=CST)


def _seed(db: Database) -> None:
    base = {"channel": "电话", "called_number": "12345", "ivr_path": [], "language": "普通话", "transfer_type": "无",
            "call_outcome": "IVR放弃", "hangup_party": "诉求人", "callback_required": True}
    with db.write() as s:
        save_snapshot(s, {**base, "record_id": "1.1", "caller_number": "13800138000", "claimant_name": "张三",
                          "contact_phone": "13800138000", "confidential": True,
                          "call_start_at": T0.isoformat(), "ended_at": (T0 + timedelta(seconds=5)).isoformat()}, complete=True)
        save_snapshot(s, {**base, "record_id": "1.2", "caller_number": "13900139000", "claimant_name": "李四",
                          "confidential": False,
                          "call_start_at": (T0 + timedelta(hours=1)).isoformat(),
                          "ended_at": (T0 + timedelta(hours=1, seconds=5)).isoformat()}, complete=True)
        save_snapshot(s, {**base, "record_id": "1.3", "caller_number": "13700137000",
                          "call_start_at": (T0 + timedelta(days=2)).isoformat(),
                          "ended_at": (T0 + timedelta(days=2, seconds=5)).isoformat()}, complete=True)
        add_user(s, "root", "admin", "a-long-password")
        add_user(s, "qa1", "qa", "a-long-password")


def _export(db: Database, **kw) -> str:
    out = io.StringIO()
    req = ExportRequest(start=T0 - timedelta(minutes=1), end=T0 + timedelta(days=1), **kw)
    with db.write() as s:
        export_records(s, req, out)
    return out.getvalue()


def test_jsonl_masks_confidential_and_is_audited(db: Database) -> None:
    _seed(db)
    lines = [json.loads(line) for line in _export(db, actor="qa1").splitlines()]
    assert [r["record_id"] for r in lines] == ["1.1", "1.2"]
    assert set(lines[0]) == set(FIELD_IDS)
    assert lines[0]["claimant_name"] == "张*" and lines[0]["caller_number"] == "*******8000"
    assert lines[1]["claimant_name"] == "李四" and lines[1]["caller_number"] == "13900139000"
    assert lines[0]["call_start_at"] == "2026-11-28T09:00:00+08:00"
    with db.session() as s:
        events = list_events(s, action="export")
    assert len(events) == 1 and events[0].actor == "qa1" and events[0].detail["count"] == 2


def test_unmasked_needs_an_admin(db: Database) -> None:
    _seed(db)
    with pytest.raises(ExportNotAllowed):
        _export(db, actor="qa1", unmasked=True)
    rows = list(csv.DictReader(io.StringIO(_export(db, actor="root", unmasked=True, fmt="csv"))))
    assert rows[0]["claimant_name"] == "张三" and rows[0]["confidential"] == "true"
    assert list(rows[0]) == list(FIELD_IDS)
