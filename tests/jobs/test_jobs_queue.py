"""The job queue on SQLite and PostgreSQL: claim order, leases, expiry take-over, back-off, poison, release."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from store import jobs
from store.db import Database
from store.models import Job, utcnow


def _add(db: Database, priority: int = 0, run_after_delta: float = 0.0, max_attempts: int = 3) -> int:
    with db.write() as s:
        return jobs.enqueue(s, priority=priority, max_attempts=max_attempts,
                            run_after=utcnow() + timedelta(seconds=run_after_delta)).id


def _job(db: Database, job_id: int) -> Job:
    job = jobs.get_job(db, job_id)
    assert job is not None
    return job


def test_claim_order_priority_then_run_after_then_id(db: Database) -> None:
    low_old = _add(db, 0, run_after_delta=-30)
    low_new = _add(db, 0, run_after_delta=-10)
    low_same = _add(db, 0, run_after_delta=-10)
    urgent = _add(db, 100, run_after_delta=-1)
    mid = _add(db, 5)
    future_urgent = _add(db, 200, run_after_delta=3600)
    order = []
    while (job := jobs.claim(db, "w1", 60)) is not None:
        order.append(job.id)
    # Ties on run_after: the second-level key makes `low_new`/`low_same` order by run_after, then id.
    assert order[:3] == [urgent, mid, low_old]
    assert sorted(order[3:]) == sorted([low_new, low_same]) and len(order) == 5
    assert future_urgent not in order, "a job whose run_after is in the future must wait"
    assert _job(db, future_urgent).state == jobs.QUEUED


def test_claim_sets_lease_and_counts_attempt(db: Database) -> None:
    jid = _add(db)
    before = utcnow()
    job = jobs.claim(db, "worker-a", 42)
    assert job is not None and job.id == jid and job.attempts == 1 and job.lease_owner == "worker-a"
    row = _job(db, jid)
    assert row.state == jobs.RUNNING and row.lease_owner == "worker-a"
    assert row.lease_expires_at is not None
    assert before + timedelta(seconds=41) <= row.lease_expires_at <= utcnow() + timedelta(seconds=43)
    assert jobs.claim(db, "worker-b", 42) is None, "a leased job is not claimable by another worker"


def test_min_priority_claims_only_urgent_jobs(db: Database) -> None:
    _add(db, 0)
    assert jobs.claim(db, "fast", 10, min_priority=100) is None
    clip = _add(db, 100)
    job = jobs.claim(db, "fast", 10, min_priority=100)
    assert job is not None and job.id == clip
    assert jobs.has_runnable(db, min_priority=100) is False
    assert jobs.has_runnable(db) is True


def test_expired_lease_is_taken_over_and_old_owner_cannot_complete(db: Database) -> None:
    jid = _add(db)
    first = jobs.claim(db, "crashed", 5)
    assert first is not None
    assert jobs.claim(db, "rescuer", 5) is None
    later = utcnow() + timedelta(seconds=6)
    assert jobs.has_runnable(db, now=later)
    second = jobs.claim(db, "rescuer", 5, now=later)
    assert second is not None and second.id == jid and second.attempts == 2
    assert _job(db, jid).last_error == "lease expired: the worker died or hung"
    # The first worker wakes up: its heartbeat and completion are refused, nothing it stores commits.
    assert jobs.heartbeat(db, jid, "crashed", 5) is False
    with pytest.raises(jobs.LeaseLost):
        with db.write() as s:
            jobs.complete(s, jid, "crashed")
    with db.write() as s:
        jobs.complete(s, jid, "rescuer")
    row = _job(db, jid)
    assert row.state == jobs.DONE and row.lease_owner is None and row.finished_at is not None and row.last_error is None


def test_heartbeat_keeps_the_lease(db: Database) -> None:
    jid = _add(db)
    assert jobs.claim(db, "w", 5) is not None
    assert jobs.heartbeat(db, jid, "w", 60) is True
    assert jobs.claim(db, "other", 5, now=utcnow() + timedelta(seconds=30)) is None
    assert _job(db, jid).lease_owner == "w"


def test_reclaim_expired_out_of_attempts_fails(db: Database) -> None:
    jid = _add(db, max_attempts=1)
    assert jobs.claim(db, "w", 1) is not None
    assert jobs.reclaim_expired(db, now=utcnow() + timedelta(seconds=2)) == 1
    row = _job(db, jid)
    assert row.state == jobs.FAILED and "out of attempts" in (row.last_error or "") and row.lease_owner is None


def test_fail_backs_off_exponentially_then_poisons(db: Database) -> None:
    jid = _add(db, max_attempts=3)
    now = utcnow()
    delays = []
    for attempt in (1, 2):
        job = jobs.claim(db, "w", 30, now=now)
        assert job is not None and job.attempts == attempt
        out = jobs.fail(db, jid, "w", f"boom {attempt}", backoff_base_seconds=10, now=now)
        assert out.state == jobs.QUEUED and out.run_after is not None
        delays.append((out.run_after - now).total_seconds())
        assert jobs.claim(db, "w", 30, now=now) is None, "not before its back-off is over"
        now = out.run_after
    assert delays == [10.0, 20.0]
    job = jobs.claim(db, "w", 30, now=now)
    assert job is not None and job.attempts == 3
    out = jobs.fail(db, jid, "w", "boom 3", backoff_base_seconds=10, now=now)
    assert out.state == jobs.FAILED
    row = _job(db, jid)
    assert row.state == jobs.FAILED and row.last_error == "boom 3" and row.finished_at is not None
    assert jobs.claim(db, "w", 30, now=now + timedelta(days=1)) is None


def test_permanent_failure_is_not_retried(db: Database) -> None:
    jid = _add(db, max_attempts=5)
    assert jobs.claim(db, "w", 30) is not None
    out = jobs.fail(db, jid, "w", "corrupt audio: not readable", backoff_base_seconds=10, permanent=True)
    assert out.state == jobs.FAILED and out.attempts == 1
    assert _job(db, jid).last_error == "corrupt audio: not readable"


def test_fail_by_a_worker_that_lost_the_lease_is_refused(db: Database) -> None:
    jid = _add(db)
    assert jobs.claim(db, "old", 1) is not None
    assert jobs.claim(db, "new", 30, now=utcnow() + timedelta(seconds=2)) is not None
    with pytest.raises(jobs.LeaseLost):
        jobs.fail(db, jid, "old", "late failure", backoff_base_seconds=1)
    assert _job(db, jid).lease_owner == "new"


def test_release_gives_the_job_back_without_counting(db: Database) -> None:
    jid = _add(db)
    assert jobs.claim(db, "w", 30) is not None
    assert jobs.release(db, jid, "w") is True
    row = _job(db, jid)
    assert row.state == jobs.QUEUED and row.attempts == 0 and row.lease_owner is None
    assert jobs.release(db, jid, "w") is False


def test_backoff_is_capped() -> None:
    assert jobs.backoff_seconds(10, 1) == 10
    assert jobs.backoff_seconds(10, 4) == 80
    assert jobs.backoff_seconds(10, 40) == jobs.MAX_BACKOFF_SECONDS


def test_stats(db: Database) -> None:
    _add(db)
    _add(db, run_after_delta=600)
    running = _add(db, priority=9)
    assert jobs.claim(db, "w", 1) is not None
    st = jobs.stats(db, now=utcnow() + timedelta(seconds=2))
    assert st.counts == {jobs.QUEUED: 2, jobs.RUNNING: 1}
    assert st.due == 1 and st.expired_leases == 1
    assert st.oldest_due_age_seconds is not None and st.oldest_due_age_seconds >= 2
    with db.session() as s:
        assert s.scalar(select(Job.lease_owner).where(Job.id == running)) == "w"
