"""Fast path for IVR description clips: they jump the queue, and workers wake up for them at once.

A clip is enqueued with :data:`FAST_PATH_PRIORITY` so every worker takes it before any call recording,
and the pool keeps a worker reserved for priorities at or above it, so long recordings never block it.
Waiting for work is a :class:`Waker`: on PostgreSQL it ``LISTEN``s to the queue's ``NOTIFY`` (woken
within milliseconds of the enqueue's commit) with a poll as fall-back; on SQLite it is a short poll
(a cheap read in WAL mode, no write lock is taken until there is something to claim).
"""

from __future__ import annotations

import threading
from typing import Any, Protocol

from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from config.log import get_logger
from store import jobs
from store.models import Job, Recording

log = get_logger(__name__)

FAST_PATH_PRIORITY = jobs.FAST_PATH_PRIORITY   # defined in store so recorder/agi can enqueue without asr


class Waker(Protocol):
    def wait(self, timeout: float) -> None:
        """Return after ``timeout`` seconds, or earlier when new work may be there."""

    def close(self) -> None: ...


def enqueue_transcription(session: Session, recording: Recording, *, max_attempts: int = 3,
                          priority: int | None = None) -> Job:
    """Queue a recording for transcription in the caller's transaction; IVR clips get the fast path."""
    if priority is None:
        priority = FAST_PATH_PRIORITY if recording.kind == "ivr_clip" else 0
    return jobs.enqueue(session, kind=jobs.TRANSCRIBE, recording_id=recording.id, call_id=recording.call_id,
                        priority=priority, max_attempts=max_attempts)


class SleepWaker:
    """Polling: sleep ``timeout`` unless ``stop`` is set meanwhile."""

    def __init__(self, stop: Any | None = None) -> None:
        self._stop = stop if stop is not None else threading.Event()

    def wait(self, timeout: float) -> None:
        self._stop.wait(timeout)

    def close(self) -> None:
        return None


class PgNotifyWaker:
    """``LISTEN hotline_jobs`` on a dedicated autocommit connection; any notification wakes the waiter.

    If the connection breaks it degrades to sleeping and reconnects on the next wait."""

    def __init__(self, database_url: str, min_priority: int | None = None) -> None:
        self._dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._min_priority = min_priority
        self._conn: Any = None

    def _connect(self) -> Any:
        import psycopg

        conn = psycopg.connect(self._dsn, autocommit=True)
        conn.execute(f"LISTEN {jobs.NOTIFY_CHANNEL}")
        return conn

    def wait(self, timeout: float) -> None:
        try:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            for note in self._conn.notifies(timeout=timeout):
                if self._wanted(note.payload):
                    return
        except Exception as exc:  # a broken listener must not stop the worker: poll instead
            log.warning("asr.waker.listen_failed", error=str(exc))
            self.close()
            threading.Event().wait(timeout)

    def _wanted(self, payload: str) -> bool:
        if self._min_priority is None:
            return True
        try:
            return int(payload) >= self._min_priority
        except ValueError:
            return True

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


def make_waker(database_url: str, stop: Any | None = None, min_priority: int | None = None) -> Waker:
    if make_url(database_url).get_backend_name() == "postgresql":
        return PgNotifyWaker(database_url, min_priority)
    return SleepWaker(stop)
