"""Process AGI (`hotline-agi main`, one Python process per call): concurrent calls each keep their own
journal, records reach the store, and journals left behind while the store was down are adopted later."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from agi.calls import CallRecords
from agi.emulator import CallerScript, CallSpec, EmulatorConfig, run_process_call
from agi.flows import adopt_orphan_journals, process_journal_dir
from agi.journal import Journal
from config import load_settings
from store.db import open_database
from store.migrate import upgrade
from store.models import Call

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def site(tmp_path, monkeypatch):
    db_url = f"sqlite:///{tmp_path / 'hotline.sqlite3'}"
    db = open_database(db_url)
    upgrade(db)
    env = {"HOTLINE_DATABASE__URL": db_url, "HOTLINE_AGI__JOURNAL_DIR": str(tmp_path / "journal"),
           "HOTLINE_AGI__FLOWS_DIR": str(ROOT / "ivr_flows"), "HOTLINE_AGI__SOUNDS_DIR": str(tmp_path / "sounds"),
           "HOTLINE_RECORDINGS__SPOOL_DIR": str(tmp_path / "spool")}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield load_settings(env), db
    db.dispose()


async def _calls(n: int) -> list:
    command = [str(Path(sys.executable).with_name("hotline-agi")), "main"]
    specs = [CallSpec(script="hotline-agi", callerid="13800138000", linkedid=f"1800000100.{i}", uniqueid=f"1800000100.{i}",
                      caller=CallerScript(hangup_at_command=3)) for i in range(n)]
    return await asyncio.gather(*(run_process_call(command, spec, EmulatorConfig()) for spec in specs))


def test_concurrent_process_calls_each_leave_a_record(site) -> None:
    settings, db = site
    reports = asyncio.run(_calls(3))
    assert all(r.hung_up for r in reports)
    with db.session() as s:
        calls = {c.record_id: c for c in s.scalars(select(Call))}
    assert sorted(calls) == ["1800000100.0", "1800000100.1", "1800000100.2"]
    assert all(c.state == "complete" and c.valid and c.call_outcome == "IVR放弃" for c in calls.values())
    leftover = list((Path(settings.agi.journal_dir) / "proc").glob("*"))
    assert leftover == [], "an applied process journal is removed"


def test_orphan_journal_is_adopted(site) -> None:
    settings, db = site
    orphan = process_journal_dir(settings.agi.journal_dir, pid=999_999)
    journal = Journal(orphan)
    records = CallRecords(journal)
    records.open("1800000200.1", {"caller_number": "13800138000", "called_number": "12345", "channel": "电话",
                                  "call_start_at": "2026-11-28T09:00:00+08:00", "ivr_path": ["greeting"],
                                  "language": "普通话", "transfer_type": "无"})
    records.complete("1800000200.1", {"ended_at": "2026-11-28T09:00:05+08:00", "call_outcome": "IVR放弃",
                                      "hangup_party": "诉求人", "callback_required": True})
    journal.close()  # the process died before its applier ran (e.g. the database was down)

    assert adopt_orphan_journals(dataclasses.replace(settings), db) == 1
    with db.session() as s:
        call = s.scalar(select(Call).where(Call.record_id == "1800000200.1"))
    assert call is not None and call.valid is True and call.callback_required is True
    assert not orphan.exists()
