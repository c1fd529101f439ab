"""Durable job queue on the ``jobs`` table: enqueue, claim with a lease, heartbeat, complete, fail, reclaim.

A job moves ``queued → running → done``, or back to ``queued`` with a back-off after a failed attempt,
or to ``failed`` (with ``last_error``) once it is poisoned (``attempts == max_attempts``) or failed
permanently (a corrupt input is not worth retrying).

Claiming is safe with many workers on many machines:

* PostgreSQL: ``SELECT … FOR UPDATE SKIP LOCKED`` picks a row no other claimer holds, then the lease
  is written in the same transaction;
* SQLite: the claim runs in a single-writer transaction (``Database.write()`` is ``BEGIN IMMEDIATE``),
  so claims are serialized and ``FOR UPDATE`` is not needed (SQLAlchemy does not render it there).

A lease is ``lease_owner`` + ``lease_expires_at``. A worker extends it with :func:`heartbeat` while it
works; a crashed worker stops extending it, the lease runs out, and the next claim (or
:func:`reclaim_expired`) puts the job back in the queue, counting the lost run as an attempt, so an input
that kills its worker every time ends ``failed`` too. :func:`complete` checks the lease in the caller's
transaction: results stored in that transaction commit only if this worker still owns the job, which
makes every job's result land exactly once.

Times are the application's clock (UTC); worker machines sharing a database are expected to run NTP.
On PostgreSQL every enqueue sends ``NOTIFY hotline_jobs, '<priority>'`` on commit so idle workers
(and the fast-path worker) wake up at once instead of waiting for their next poll.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

from sqlalchemy import and_, exists, func, or_, select, text, update
from sqlalchemy.orm import Session

from store.db import Database
from store.models import Job, utcnow

NOTIFY_CHANNEL = "hotline_jobs"
TRANSCRIBE = "transcribe"
# Jobs at or above this priority take the fast path (IVR description clips): a reserved worker takes them.
FAST_PATH_PRIORITY = 100
MAX_ERROR_CHARS = 4000
# Back-off never grows beyond this, whatever the attempt count.
MAX_BACKOFF_SECONDS = 3600.0

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


class JobError(Exception):
    """Base of job queue errors."""


class LeaseLost(JobError):
    """This worker no longer holds the job's lease (it expired and another worker took the job)."""

    def __init__(self, job_id: int, owner: str) -> None:
        super().__init__(f"job {job_id}: lease not held by {owner!r} any more")
        self.job_id = job_id
        self.owner = owner


@dataclass(frozen=True)
class ClaimedJob:
    """A snapshot of a job as claimed: what the worker needs, detached from any session."""

    id: int
    kind: str
    recording_id: int | None
    call_id: int | None
    payload: dict[str, Any]
    priority: int
    attempts: int            # including this run
    max_attempts: int
    lease_owner: str
    lease_expires_at: datetime
    created_at: datetime


@dataclass(frozen=True)
class FailOutcome:
    """What :func:`fail` did: ``state`` is ``queued`` (will be retried at ``run_after``) or ``failed``."""

    state: str
    attempts: int
    run_after: datetime | None


@dataclass(frozen=True)
class JobStats:
    counts: dict[str, int] = field(default_factory=dict)     # state -> number of jobs
    due: int = 0                                             # queued and runnable now
    expired_leases: int = 0                                  # running with a lease in the past
    oldest_due_age_seconds: float | None = None              # how long the oldest runnable job has waited


def backoff_seconds(base: float, attempts: int) -> float:
    """``base * 2**(attempts-1)`` capped at :data:`MAX_BACKOFF_SECONDS` (attempt 1 failed → ``base``)."""
    return min(float(base) * (2 ** max(attempts - 1, 0)), MAX_BACKOFF_SECONDS)


def _clip(message: str) -> str:
    return message if len(message) <= MAX_ERROR_CHARS else message[: MAX_ERROR_CHARS - 1] + "…"


# --- enqueue ---------------------------------------------------------------------------------------

def enqueue(session: Session, *, kind: str = TRANSCRIBE, recording_id: int | None = None,
            call_id: int | None = None, payload: Mapping[str, Any] | None = None, priority: int = 0,
            max_attempts: int = 3, run_after: datetime | None = None) -> Job:
    """Add a job in the caller's transaction (so a recording and its job commit together).

    On PostgreSQL the notification is sent when that transaction commits."""
    job = Job(kind=kind, recording_id=recording_id, call_id=call_id, payload=dict(payload or {}),
              priority=priority, max_attempts=max_attempts, state=QUEUED, attempts=0,
              run_after=run_after or utcnow())
    session.add(job)
    session.flush()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_notify(:channel, :message)"),
                        {"channel": NOTIFY_CHANNEL, "message": str(priority)})
    return job


# --- claim -----------------------------------------------------------------------------------------

def _requeue_expired(session: Session, now: datetime) -> int:
    """Expired leases: back to ``queued`` (the lost run counted), or ``failed`` once out of attempts."""
    expired = (select(Job.id)
               .where(Job.state == RUNNING, Job.lease_expires_at < now)
               .with_for_update(skip_locked=True))
    ids = list(session.scalars(expired))
    if not ids:
        return 0
    session.execute(
        update(Job).where(Job.id.in_(ids), Job.attempts >= Job.max_attempts)
        .values(state=FAILED, lease_owner=None, lease_expires_at=None, finished_at=now, updated_at=now,
                last_error=func.coalesce(Job.last_error, "") + "lease expired: the worker died or hung; out of attempts"),
    )
    session.execute(
        update(Job).where(Job.id.in_(ids), Job.attempts < Job.max_attempts)
        .values(state=QUEUED, lease_owner=None, lease_expires_at=None, run_after=now, updated_at=now,
                last_error="lease expired: the worker died or hung"),
    )
    return len(ids)


def reclaim_expired(db: Database, now: datetime | None = None) -> int:
    """Put jobs whose lease ran out back in the queue (or fail them when out of attempts); returns how many."""
    with db.write() as s:
        return _requeue_expired(s, now or utcnow())


def has_runnable(db: Database, *, kinds: Iterable[str] = (TRANSCRIBE,), min_priority: int | None = None,
                 now: datetime | None = None) -> bool:
    """Is there a job to claim (or an expired lease to take over)? A plain read: an idle worker polls with
    this and only opens a write transaction (:func:`claim`) when the answer is yes."""
    now = now or utcnow()
    due = and_(Job.state == QUEUED, Job.run_after <= now, Job.kind.in_(list(kinds)))
    if min_priority is not None:
        due = and_(due, Job.priority >= min_priority)
    expired = and_(Job.state == RUNNING, Job.lease_expires_at < now)
    with db.session() as s:
        return bool(s.scalar(select(exists().where(or_(due, expired)))))


def claim(db: Database, owner: str, lease_seconds: float, *, kinds: Iterable[str] = (TRANSCRIBE,),
          min_priority: int | None = None, now: datetime | None = None) -> ClaimedJob | None:
    """Take the next runnable job (priority desc, then run_after, then id) and lease it to ``owner``.

    ``min_priority`` restricts the claim to urgent jobs (the fast-path worker). Returns ``None`` when
    nothing is runnable."""
    now = now or utcnow()
    with db.write() as s:
        _requeue_expired(s, now)
        q = (select(Job)
             .where(Job.state == QUEUED, Job.run_after <= now, Job.kind.in_(list(kinds)))
             .order_by(Job.priority.desc(), Job.run_after, Job.id)
             .limit(1)
             .with_for_update(skip_locked=True))
        if min_priority is not None:
            q = q.where(Job.priority >= min_priority)
        job = s.scalars(q).first()
        if job is None:
            return None
        expires = now + timedelta(seconds=lease_seconds)
        job.state = RUNNING
        job.attempts += 1
        job.lease_owner = owner
        job.lease_expires_at = expires
        job.updated_at = now
        return ClaimedJob(id=job.id, kind=job.kind, recording_id=job.recording_id, call_id=job.call_id,
                          payload=dict(job.payload or {}), priority=job.priority, attempts=job.attempts,
                          max_attempts=job.max_attempts, lease_owner=owner, lease_expires_at=expires,
                          created_at=job.created_at)


# --- while running ---------------------------------------------------------------------------------

def _owned(job_id: int, owner: str) -> Any:
    return and_(Job.id == job_id, Job.state == RUNNING, Job.lease_owner == owner)


def heartbeat(db: Database, job_id: int, owner: str, lease_seconds: float, now: datetime | None = None) -> bool:
    """Extend the lease; ``False`` when this worker lost it (do not store results, :func:`complete` would refuse)."""
    now = now or utcnow()
    with db.write() as s:
        res = s.execute(update(Job).where(_owned(job_id, owner))
                        .values(lease_expires_at=now + timedelta(seconds=lease_seconds), updated_at=now))
        return bool(res.rowcount)


def complete(session: Session, job_id: int, owner: str, now: datetime | None = None) -> None:
    """Mark the job done in the caller's transaction, which also holds the job's results.

    Raises :class:`LeaseLost` if another worker owns the job now: roll back, the results are not ours to store."""
    now = now or utcnow()
    res = session.execute(update(Job).where(_owned(job_id, owner))
                          .values(state=DONE, lease_owner=None, lease_expires_at=None, finished_at=now,
                                  updated_at=now, last_error=None))
    if not res.rowcount:
        raise LeaseLost(job_id, owner)


def fail(db: Database, job_id: int, owner: str, error: str, *, backoff_base_seconds: float,
         permanent: bool = False, now: datetime | None = None) -> FailOutcome:
    """Record a failed attempt: retry after an exponential back-off, or end ``failed`` with ``error``
    when ``permanent`` or out of attempts. Raises :class:`LeaseLost` if the job is no longer ours."""
    now = now or utcnow()
    with db.write() as s:
        job = s.scalars(select(Job).where(_owned(job_id, owner)).with_for_update()).first()
        if job is None:
            raise LeaseLost(job_id, owner)
        job.last_error = _clip(error)
        job.lease_owner = None
        job.lease_expires_at = None
        job.updated_at = now
        if permanent or job.attempts >= job.max_attempts:
            job.state = FAILED
            job.finished_at = now
            return FailOutcome(state=FAILED, attempts=job.attempts, run_after=None)
        job.state = QUEUED
        job.run_after = now + timedelta(seconds=backoff_seconds(backoff_base_seconds, job.attempts))
        return FailOutcome(state=QUEUED, attempts=job.attempts, run_after=job.run_after)


def release(db: Database, job_id: int, owner: str, now: datetime | None = None) -> bool:
    """Give a job back untouched (worker shutting down): queued again, this run not counted."""
    now = now or utcnow()
    with db.write() as s:
        res = s.execute(update(Job).where(_owned(job_id, owner))
                        .values(state=QUEUED, attempts=Job.attempts - 1, lease_owner=None, lease_expires_at=None,
                                run_after=now, updated_at=now))
        return bool(res.rowcount)


# --- reading ---------------------------------------------------------------------------------------

def stats(db: Database, now: datetime | None = None) -> JobStats:
    now = now or utcnow()
    with db.session() as s:
        counts = {state: n for state, n in s.execute(select(Job.state, func.count()).group_by(Job.state))}
        due_q = select(func.count(), func.min(Job.run_after)).where(Job.state == QUEUED, Job.run_after <= now)
        due, oldest = s.execute(due_q).one()
        expired = s.scalar(select(func.count()).where(Job.state == RUNNING, Job.lease_expires_at < now)) or 0
    oldest_age = (now - oldest).total_seconds() if oldest is not None else None
    if isinstance(oldest, datetime) and oldest.tzinfo is None:  # pragma: no cover - UtcDateTime always aware
        oldest_age = None
    return JobStats(counts=counts, due=int(due or 0), expired_leases=int(expired), oldest_due_age_seconds=oldest_age)


def get_job(db: Database, job_id: int) -> Job | None:
    with db.session() as s:
        return s.get(Job, job_id)


__all__ = [
    "NOTIFY_CHANNEL", "TRANSCRIBE", "FAST_PATH_PRIORITY", "QUEUED", "RUNNING", "DONE", "FAILED",
    "JobError", "LeaseLost", "ClaimedJob", "FailOutcome", "JobStats",
    "backoff_seconds", "enqueue", "has_runnable", "claim", "reclaim_expired", "heartbeat", "complete", "fail", "release",
    "stats", "get_job",
]
