"""The journal applier in its own process (settings.agi.applier = "process"): records arrive, outages and a
killed child lose nothing, the child stops with the runtime."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid

import pytest
from sqlalchemy import create_engine, func, select, text

from agi.applier_process import ApplierProcess, ApplierProcessError
from agi.calls import CallRecords
from agi.journal import Journal
from config import SettingsError, load_settings
from store.db import open_database
from store.migrate import upgrade
from store.models import AgentEvent, Call
from tests.conftest import PG_ADMIN_URL
from tests.flows.fakes import QueuePlan, run_fake_call


def _count(db) -> int:
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Call)) or 0


def test_records_reach_the_store_through_the_child(db, tmp_path, shipped_flows, engine_config):
    journal = Journal(tmp_path / "journal")
    records = CallRecords(journal)
    applier = ApplierProcess(journal, db.url, "Asia/Shanghai").start()
    try:
        for i in range(6):
            run_fake_call(shipped_flows, engine_config, records, f"700.{i}",
                      queue=[QueuePlan(member="1001", hold=10, wait=20)])
        assert applier.drain(timeout=20)
        with db.session() as s:
            rows = s.scalars(select(Call).order_by(Call.record_id)).all()
            assert [r.record_id for r in rows] == [f"700.{i}" for i in range(6)]
            assert {r.call_outcome for r in rows} == {"人工接通"} and all(r.state == "complete" for r in rows)
        assert applier.applied > 0 and applier.store_up and applier.alive
    finally:
        applier.stop()
        journal.close()
    assert not applier.alive


def test_a_killed_child_loses_nothing_and_duplicates_nothing(sqlite_db, tmp_path, shipped_flows, engine_config):
    journal = Journal(tmp_path / "journal")
    records = CallRecords(journal)
    first = ApplierProcess(journal, sqlite_db.url, "Asia/Shanghai").start()
    for i in range(5):
        run_fake_call(shipped_flows, engine_config, records, f"710.{i}", hangup_at=2)
    assert first.drain(timeout=20)
    time.sleep(1.0)                                  # the child is idle, asleep waiting for a wake-up
    os.kill(first._process.pid, signal.SIGKILL)
    first._process.join(5)
    assert not first.alive

    def more_calls() -> None:
        for i in range(5, 10):
            run_fake_call(shipped_flows, engine_config, records, f"710.{i}",
                      queue=[QueuePlan(member="1002", hold=5, wait=5)])
    caller = threading.Thread(target=more_calls, daemon=True)
    caller.start()
    caller.join(10)
    assert not caller.is_alive(), "calls blocked on the journal after the applier child died"
    assert not first.drain(timeout=0.5)           # nobody applies while the child is dead
    assert _count(sqlite_db) == 5
    second = ApplierProcess(journal, sqlite_db.url, "Asia/Shanghai").start()
    try:
        assert second.drain(timeout=20)
        assert _count(sqlite_db) == 10
        with sqlite_db.session() as s:
            pops = s.scalar(select(func.count()).select_from(AgentEvent).where(AgentEvent.kind == "screen_pop"))
        assert pops == 0          # FakeChannel runs no agent-connect session: nothing invented
    finally:
        second.stop()
        journal.close()


@pytest.mark.postgres
def test_child_waits_out_a_missing_database(tmp_path, shipped_flows, engine_config):
    name = f"hotline_late_{uuid.uuid4().hex[:8]}"
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    journal = Journal(tmp_path)
    records = CallRecords(journal)
    applier = ApplierProcess(journal, url, "Asia/Shanghai").start()
    db = open_database(url)
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        for i in range(4):
            run_fake_call(shipped_flows, engine_config, records, f"720.{i}", queue=[QueuePlan(wait=5, hangup=True)])
        deadline = time.monotonic() + 10
        while applier.store_up and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not applier.store_up and applier.last_error
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        upgrade(db)
        assert applier.drain(timeout=30)
        assert _count(db) == 4
        deadline = time.monotonic() + 10
        while not applier.store_up and time.monotonic() < deadline:
            time.sleep(0.05)
        assert applier.store_up
    finally:
        applier.stop()
        journal.close()
        db.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_in_memory_sqlite_is_refused(tmp_path):
    journal = Journal(tmp_path)
    try:
        with pytest.raises(ApplierProcessError, match="in-memory"):
            ApplierProcess(journal, "sqlite:///:memory:", "Asia/Shanghai")
    finally:
        journal.close()


def test_applier_setting_is_checked():
    assert load_settings(environ={}).agi.applier == "process"
    assert load_settings(environ={"HOTLINE_AGI__APPLIER": "thread"}).agi.applier == "thread"
    with pytest.raises(SettingsError, match="agi.applier"):
        load_settings(environ={"HOTLINE_AGI__APPLIER": "fork"})
