"""Journal + applier: group commit, replay into the store (SQLite and PostgreSQL), idempotency, outage, compaction."""

from __future__ import annotations

import threading
import time
import uuid

import pytest
from sqlalchemy import create_engine, func, select, text

from agi.calls import CallRecords, apply_entries
from agi.engine import FlowRun
from agi.journal import Journal, JournalApplier, Position, journal_files, read_entries, write_checkpoint
from store.db import open_database
from store.migrate import upgrade
from store.models import AgentEvent, Call, Job, Recording, TicketSequence
from tests.conftest import PG_ADMIN_URL
from tests.flows.fakes import Clock, FakeChannel, FakeServices, QueuePlan, run_fake_call


def test_group_commit_many_writers(tmp_path):
    journal = Journal(tmp_path)
    n_threads, per = 16, 50

    def writer(t: int) -> None:
        for i in range(per):
            journal.append({"op": "upsert", "record_id": f"{t}.{i}", "fields": {}, "complete": False})

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    journal.close()
    entries, _ = read_entries(tmp_path, Position(0, 0), 10**6, None)
    assert len(entries) == n_threads * per
    assert journal.fsyncs < journal.entries          # several entries shared one fsync


def test_second_process_cannot_share_the_directory(tmp_path):
    from agi.journal import JournalError
    j = Journal(tmp_path)
    with pytest.raises(JournalError):
        Journal(tmp_path)
    j.close()


def test_records_replay_into_store(db, tmp_path, shipped_flows, engine_config):
    journal = Journal(tmp_path / "journal")
    records = CallRecords(journal)
    applier = JournalApplier(journal, lambda e: apply_entries(db, e))
    run_fake_call(shipped_flows, engine_config, records, "100.1", inputs=["1", "1"],
              queue=[QueuePlan(status="TIMEOUT", wait=60), QueuePlan(member="1001", hold=10, wait=40)])
    # the agent's session writes the same record (same linkedid)
    clock = Clock()
    FlowRun(shipped_flows, FakeChannel(clock, linkedid="100.1", channel_name="Local/1001@hotline-agents-01;1"),
            records, FakeServices(clock), engine_config).run("agent-connect")
    run_fake_call(shipped_flows, engine_config, records, "100.2", services_kw={"open_now": False, "store_down": True})
    run_fake_call(shipped_flows, engine_config, records, "100.3", hangup_at=1)
    while applier.step():
        pass
    with db.session() as s:
        calls = {c.record_id: c for c in s.scalars(select(Call))}
        assert set(calls) == {"100.1", "100.2", "100.3"}
        answered = calls["100.1"]
        assert answered.call_outcome == "人工接通" and answered.state == "complete"
        assert answered.problems == [{"field": "recording", "code": "missing",
                                      "message": "录音文件(recording)：呼叫结果为人工接通时必填"}]
        assert answered.agent_id == "1001" and answered.satisfaction == "满意"
        vm = calls["100.2"]
        assert vm.call_outcome == "留言" and vm.valid is True
        assert vm.ticket_no and len(vm.ticket_no) == 14   # allocated at replay (store was "down" in the call)
        assert calls["100.3"].valid is True and calls["100.3"].call_outcome == "IVR放弃"
        clip = s.scalar(select(Recording).where(Recording.record_id == "100.1"))
        assert clip.kind == "ivr_clip" and clip.call_id == answered.id
        job = s.scalar(select(Job).where(Job.recording_id == clip.id))
        assert job.kind == "transcribe" and job.priority == 100 and job.state == "queued"
        vm_job = s.scalar(select(Job).join(Recording, Job.recording_id == Recording.id)
                          .where(Recording.record_id == "100.2"))
        assert vm_job.priority == 50
        pop = s.scalar(select(AgentEvent).where(AgentEvent.kind == "screen_pop"))
        assert pop.agent_id == "1001" and pop.call_id == answered.id
        assert pop.payload["record_id"] == "100.1" and pop.payload["description_recording_id"] == clip.id
        assert pop.payload["caller_number_masked"] == "*******8000"
        assert "offer:1" in pop.payload["ivr_path"]
    # replaying the whole journal again changes nothing
    counts_before = _counts(db)
    entries, _ = read_entries(journal.directory, Position(0, 0), 10**6, None)
    assert entries, "journal files must still hold the entries of the active file"
    apply_entries(db, entries)
    apply_entries(db, entries)
    assert _counts(db) == counts_before
    journal.close()


def _counts(db):
    with db.session() as s:
        return tuple(s.scalar(select(func.count()).select_from(m)) for m in (Call, Recording, Job, AgentEvent)) + (
            s.scalar(select(TicketSequence.last_value)),)


def test_fill_waits_for_its_record(sqlite_db, tmp_path):
    journal = Journal(tmp_path)
    records = CallRecords(journal)
    applier = JournalApplier(journal, lambda e: apply_entries(sqlite_db, e), defer_retry=0.0)
    records.fill("200.1", {"answered_at": "2026-11-28T02:00:10+00:00", "agent_id": "1001"})
    applier.step()
    assert applier.deferred == 1
    records.open("200.1", {"record_id": "200.1", "channel": "电话", "caller_number": "13800138000",
                           "called_number": "12345", "call_start_at": "2026-11-28T02:00:00+00:00"})
    applier.step()
    applier.step()
    assert applier.deferred == 0
    with sqlite_db.session() as s:
        assert s.scalar(select(Call.agent_id).where(Call.record_id == "200.1")) == "1001"
    journal.close()


def test_files_are_compacted_once_applied(sqlite_db, tmp_path, shipped_flows, engine_config):
    journal = Journal(tmp_path, max_file_bytes=2000)
    records = CallRecords(journal)
    applier = JournalApplier(journal, lambda e: apply_entries(sqlite_db, e))
    for i in range(20):
        run_fake_call(shipped_flows, engine_config, records, f"300.{i}", hangup_at=2)
    assert len(journal_files(tmp_path)) > 3
    while applier.step():
        pass
    assert [i for i, _ in journal_files(tmp_path)] == [journal.current_index]
    with sqlite_db.session() as s:
        assert s.scalar(select(func.count()).select_from(Call)) == 20
    journal.close()
    # a restart resumes from the checkpoint and applies nothing twice
    journal2 = Journal(tmp_path)
    applier2 = JournalApplier(journal2, lambda e: apply_entries(sqlite_db, e))
    assert applier2.step() == 0
    journal2.close()


@pytest.mark.postgres
def test_calls_flow_while_database_is_missing_then_arrive(tmp_path, shipped_flows, engine_config, pg_url):
    """The store points at a PostgreSQL database that does not exist yet: calls go on; records arrive later."""
    name = f"hotline_late_{uuid.uuid4().hex[:8]}"
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    db = open_database(url)
    journal = Journal(tmp_path)
    records = CallRecords(journal)
    applier = JournalApplier(journal, lambda e: apply_entries(db, e), max_backoff=0.3).start()
    try:
        started = time.monotonic()
        for i in range(10):
            run_fake_call(shipped_flows, engine_config, records, f"400.{i}", queue=[QueuePlan(wait=5, hangup=True)])
        assert time.monotonic() - started < 5          # the outage did not slow the calls down
        deadline = time.monotonic() + 10
        while applier.failures == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert applier.failures > 0 and not applier.store_up
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        upgrade(db)
        assert applier.drain(timeout=20)
        deadline = time.monotonic() + 10
        while not applier.store_up and time.monotonic() < deadline:
            time.sleep(0.05)
        with db.session() as s:
            rows = s.scalars(select(Call)).all()
            assert len(rows) == 10 and all(r.call_outcome == "排队放弃" and r.valid for r in rows)
    finally:
        applier.stop()
        journal.close()
        db.dispose()
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_stopped_applier_then_resumed(sqlite_db, tmp_path, shipped_flows, engine_config):
    journal = Journal(tmp_path)
    records = CallRecords(journal)
    applier = JournalApplier(journal, lambda e: apply_entries(sqlite_db, e)).start()
    applier.pause()
    for i in range(5):
        run_fake_call(shipped_flows, engine_config, records, f"500.{i}", hangup_at=1)
    time.sleep(0.3)
    with sqlite_db.session() as s:
        assert s.scalar(select(func.count()).select_from(Call)) == 0
    applier.resume()
    assert applier.drain(timeout=10)
    with sqlite_db.session() as s:
        assert s.scalar(select(func.count()).select_from(Call)) == 5
    applier.stop()
    journal.close()


def test_journal_sustains_200_calls_per_second(tmp_path, shipped_flows, engine_config):
    """Concurrent sessions writing whole calls (open, steps, queue entry, completion) through group commit."""
    journal = Journal(tmp_path)
    records = CallRecords(journal)
    n_calls, workers = 400, 40
    done = []

    def worker(w: int) -> None:
        for i in range(w, n_calls, workers):
            run_fake_call(shipped_flows, engine_config, records, f"600.{i}", queue=[QueuePlan(member="1001", hold=3)],
                      inputs=["1"])
            done.append(i)

    started = time.monotonic()
    threads = [threading.Thread(target=worker, args=(w,)) for w in range(workers)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    elapsed = time.monotonic() - started
    rate = n_calls / elapsed
    journal.close()
    assert len(done) == n_calls
    print(f"journal: {rate:.0f} calls/s, {journal.entries} entries, {journal.fsyncs} fsyncs")
    assert rate >= 200, f"{rate:.0f} calls/s ({journal.entries} entries, {journal.fsyncs} fsyncs)"


def test_a_failed_group_commit_is_reported_to_its_writers_only(tmp_path, monkeypatch):
    import errno

    from agi import journal as journal_mod
    from agi.journal import JournalError
    journal = Journal(tmp_path)
    journal.append({"op": "upsert", "record_id": "1", "fields": {}})
    real_fsync = journal_mod.os.fsync

    def full_disk(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(journal_mod.os, "fsync", full_disk)
    with pytest.raises(JournalError, match="No space left"):
        journal.append({"op": "upsert", "record_id": "2", "fields": {}})
    monkeypatch.setattr(journal_mod.os, "fsync", real_fsync)
    journal.append({"op": "upsert", "record_id": "3", "fields": {}})      # the next commit succeeds again
    journal.append({"op": "upsert", "record_id": "4", "fields": {}}, wait=False)
    journal.close()
    assert journal.fsyncs == 3 and journal.entries == 3
