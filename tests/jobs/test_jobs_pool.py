"""The supervisor: workers recycled after N jobs and restarted, crashed workers restarted, clean stop
gives an unfinished job back. Real processes, the trivial real transcriber (jobsupport.voiced_transcriber)."""

from __future__ import annotations

import dataclasses
import os
import signal
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import func, select

from asr.pool import PoolConfig, PoolError, WorkerPool
from asr.worker import WorkerConfig
from jobsupport import enqueue_recording, make_recording, wait_for
from store import jobs
from store.db import Database
from store.models import Job

FACTORY = "jobsupport:voiced_transcriber"


def _wav(tmp_path: Path) -> str:
    burst = np.concatenate([np.zeros(2000), np.random.default_rng(2).standard_normal(4000) * 0.2, np.zeros(2000)])
    path = tmp_path / "r.wav"
    sf.write(str(path), np.stack([burst, burst], axis=1).astype(np.float32), 8000)
    return str(path)


def _pool(db: Database, processes: int = 1, fast: int = 0, **worker_kw) -> WorkerPool:
    worker = WorkerConfig(database_url=db.url, lease_seconds=10, poll_seconds=0.05, retry_backoff_seconds=0,
                          transcriber_factory=FACTORY, **worker_kw)
    return WorkerPool(PoolConfig(worker=worker, processes=processes, fast_path_workers=fast,
                                 restart_backoff_seconds=0.1, stop_grace_seconds=5))


def _states(db: Database) -> dict[str, int]:
    with db.session() as s:
        return dict(s.execute(select(Job.state, func.count()).group_by(Job.state)).all())


def test_workers_are_recycled_after_max_jobs(db: Database, tmp_path: Path) -> None:
    path = _wav(tmp_path)
    for _ in range(7):
        enqueue_recording(db, make_recording(db, path))
    pool = _pool(db, processes=1, max_jobs=3)
    pool.start()
    try:
        assert wait_for(lambda: _states(db) == {jobs.DONE: 7}, timeout=90), _states(db)
        (slot,) = pool.status()
        assert slot.recycles >= 2 and slot.starts >= 3 and slot.crashes == 0
    finally:
        pool.stop()
    assert pool.pids() == []


def test_crashed_worker_is_restarted_and_fast_slot_is_reserved(db: Database, tmp_path: Path) -> None:
    pool = _pool(db, processes=1, fast=1)
    pool.start()
    try:
        assert wait_for(lambda: len(pool.pids()) == 2, timeout=30)
        bulk, fast = pool.status()
        assert bulk.name == "asr-bulk-0" and fast.name == "asr-fast-0"
        # Bulk workers renice themselves at start-up so the fast path gets the CPU first.
        assert wait_for(lambda: os.getpriority(os.PRIO_PROCESS, bulk.pid) == 10, timeout=30)
        assert os.getpriority(os.PRIO_PROCESS, fast.pid) == 0
        os.kill(bulk.pid, signal.SIGKILL)
        assert wait_for(lambda: pool.status()[0].starts == 2 and pool.status()[0].alive, timeout=30)
        assert pool.status()[0].crashes == 1 and pool.status()[0].pid != bulk.pid
        # The restarted worker works.
        jid = enqueue_recording(db, make_recording(db, _wav(tmp_path)))
        assert wait_for(lambda: jobs.get_job(db, jid).state == jobs.DONE, timeout=60)
    finally:
        pool.stop()


def test_stop_gives_the_running_job_back(db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOTLINE_TEST_TRANSCRIBE_DELAY", "60")
    jid = enqueue_recording(db, make_recording(db, _wav(tmp_path)))
    pool = _pool(db, processes=1)
    pool = dataclasses.replace(pool, config=dataclasses.replace(pool.config, stop_grace_seconds=0.5))
    pool.start()
    try:
        assert wait_for(lambda: jobs.get_job(db, jid).state == jobs.RUNNING, timeout=30)
    finally:
        pool.stop()
    job = jobs.get_job(db, jid)
    assert job is not None and job.state == jobs.QUEUED and job.attempts == 0 and job.lease_owner is None


def test_pool_needs_a_worker(db: Database) -> None:
    with pytest.raises(PoolError):
        _pool(db, processes=0, fast=0)


def test_sigterm_to_the_whole_group_stops_idle_workers(db: Database) -> None:
    """systemd, `timeout` and Ctrl-\\ signal the whole process group: idle workers get SIGTERM while they sleep
    in their stop event's wait, then the pool asks them to stop. Neither side may hang."""
    import threading
    import time

    worker = WorkerConfig(database_url=db.url, lease_seconds=10, poll_seconds=1.0, transcriber_factory=FACTORY)
    pool = WorkerPool(PoolConfig(worker=worker, processes=2, fast_path_workers=1, restart_backoff_seconds=0.1,
                                 stop_grace_seconds=5))
    pool.start()
    pids = pool.pids()
    assert len(pids) == 3
    time.sleep(1.0)                      # all idle, waiting on their stop events
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    stopper = threading.Thread(target=pool.stop, daemon=True)
    started = time.monotonic()
    stopper.start()
    stopper.join(20)
    assert not stopper.is_alive(), "pool.stop() hung on a worker that took SIGTERM in its wait"
    assert time.monotonic() - started < 10
    assert pool.pids() == []
