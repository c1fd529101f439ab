"""A transcription worker: one process, the model loaded once, a loop claim → transcribe → store → complete.

The worker leases one job at a time and extends the lease from a heartbeat thread while it transcribes.
A corrupt input (:class:`asr.audio.AudioError`) or a recording that is gone fails the job for good; any
other error is retried with an exponential back-off until ``max_attempts``. The process ends, to be
restarted by the pool, after ``max_jobs`` jobs or once its RSS passes ``max_rss_mb`` (Kaldi's memory
does not always come back), and on SIGTERM: a job in progress is then given back to the queue untouched.
"""

from __future__ import annotations

import importlib
import os
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote, urlparse

from asr.audio import AudioError
from asr.fastpath import Waker, make_waker
from asr.results import StoredResult, store_transcript
from asr.transcript import Transcript
from config.log import bind_call, get_logger, unbind_call
from store import jobs
from store.db import Database, open_database
from store.models import Recording

log = get_logger(__name__)

Transcriber = Callable[[Path], Transcript]
# "module:callable" (importable in a fresh process) returning a Transcriber; called once per process.
DEFAULT_TRANSCRIBER_FACTORY = "asr.worker:engine_transcriber"


class ExitCode(IntEnum):
    STOPPED = 0           # asked to stop
    RECYCLE_JOBS = 75     # done max_jobs: restart me
    RECYCLE_RSS = 76      # above max_rss_mb: restart me
    ORPHANED = 77         # the supervisor is gone


RECYCLE_CODES = frozenset({ExitCode.RECYCLE_JOBS, ExitCode.RECYCLE_RSS})


class WorkerError(Exception):
    """Base of worker errors."""


class InputUnavailable(WorkerError):
    """The job's audio cannot be found; ``permanent`` when it will not come back (purged, quarantined)."""

    def __init__(self, message: str, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class WorkerShutdown(BaseException):
    """Raised in the main thread by SIGTERM while a job is being transcribed (not an ``Exception``:
    nothing on the way may swallow it)."""


@dataclass(frozen=True)
class WorkerConfig:
    database_url: str
    archive_dir: str = "var/archive"
    lease_seconds: float = 300.0
    heartbeat_seconds: float | None = None      # default: a third of the lease
    retry_backoff_seconds: float = 10.0
    max_jobs: int = 500                         # recycle after this many jobs (0: never)
    max_rss_mb: int = 2048                      # recycle above this resident size (0: never)
    poll_seconds: float = 1.0                   # idle poll (PostgreSQL: fall-back to LISTEN/NOTIFY)
    min_priority: int | None = None             # the fast-path worker only takes urgent jobs
    nice: int = 0                               # bulk workers run niced so the fast path gets the CPU first
    name: str = "asr"
    transcriber_factory: str = DEFAULT_TRANSCRIBER_FACTORY
    settings_file: str | None = None            # for the default factory: the site settings file
    log_level: str = "INFO"

    @property
    def heartbeat_interval(self) -> float:
        return self.heartbeat_seconds if self.heartbeat_seconds is not None else max(self.lease_seconds / 3.0, 0.05)


def engine_transcriber(config: WorkerConfig) -> Transcriber:
    """The production transcriber: the Vosk engine, its model loaded now (once per process).

    The recognizer is reused between channels and jobs (no 1-2 s graph re-expansion per channel) and
    warmed up on a synthetic burst, so the first IVR clip is as fast as the next ones."""
    from asr.engine import EngineOptions, TranscriptionEngine  # noqa: PLC0415 - vosk only in workers
    from config import load_settings

    engine = TranscriptionEngine.from_settings(load_settings(site_file=config.settings_file),
                                               EngineOptions(reuse_recognizer=True))
    engine.transcribe_samples(_warmup_burst(engine.sample_rate), engine.sample_rate, source="warm-up")
    return engine.transcribe_file


def _warmup_burst(rate: int) -> Any:
    """0.5 s silence, 1 s of noise (the silence gate passes it), 0.5 s silence."""
    import numpy as np

    rng = np.random.default_rng(0)
    quiet = np.zeros(rate // 2, dtype=np.float32)
    return np.concatenate([quiet, (rng.standard_normal(rate) * 0.2).astype(np.float32), quiet])


def load_factory(spec: str) -> Callable[[WorkerConfig], Transcriber]:
    module, sep, attr = spec.partition(":")
    if not sep:
        raise WorkerError(f"transcriber factory {spec!r}: expected 'module:callable'")
    return getattr(importlib.import_module(module), attr)


def rss_mb() -> float:
    """Current resident set size of this process in MiB (Linux /proc; peak RSS elsewhere)."""
    try:
        with open("/proc/self/statm", "rb") as fh:
            pages = int(fh.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 1048576.0
    except (OSError, ValueError, IndexError):  # pragma: no cover - non-Linux
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def resolve_input(recording: Recording | None, payload: dict[str, Any], archive_dir: str) -> Path:
    """The audio file of a job: ``payload["path"]`` if given, else the recording's ``uri``
    (``file://`` URI, absolute path, or a path relative to the archive directory)."""
    if recording is not None and recording.status in ("purged", "quarantined"):
        raise InputUnavailable(f"recording {recording.id} is {recording.status}", permanent=True)
    raw = payload.get("path") or (recording.uri if recording is not None else None)
    if not raw:
        raise InputUnavailable("job names no audio (no recording uri, no payload path)", permanent=True)
    if raw.startswith("file://"):
        path = Path(unquote(urlparse(raw).path))
    else:
        path = Path(raw)
        if not path.is_absolute():
            path = Path(archive_dir) / path
    if not path.is_file():
        # Maybe a slow shared mount or a file still being moved: retried, then failed.
        raise InputUnavailable(f"{path}: audio file not found", permanent=False)
    return path


class _Heartbeat:
    """Extends a job's lease every ``interval`` seconds until stopped; remembers a lost lease."""

    def __init__(self, db: Database, job: jobs.ClaimedJob, lease_seconds: float, interval: float) -> None:
        self._db, self._job, self._lease, self._interval = db, job, lease_seconds, interval
        self._stop = threading.Event()
        self.lost = False
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job.id}", daemon=True)

    def __enter__(self) -> "_Heartbeat":
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if not jobs.heartbeat(self._db, self._job.id, self._job.lease_owner, self._lease):
                    self.lost = True
                    log.warning("asr.job.lease_lost", job_id=self._job.id)
                    return
            except Exception as exc:  # database hiccup: try again next beat; the lease may still hold
                log.warning("asr.job.heartbeat_failed", job_id=self._job.id, error=str(exc))


class Worker:
    """The claim loop of one worker process (also usable in-process, e.g. by tests and benchmarks)."""

    def __init__(self, config: WorkerConfig, transcriber: Transcriber, db: Database | None = None,
                 stop: Any | None = None, waker: Waker | None = None) -> None:
        self.config = config
        self.transcribe = transcriber
        self.db = db or open_database(config.database_url)
        self.stop = stop if stop is not None else threading.Event()
        self.waker = waker or make_waker(config.database_url, self.stop, config.min_priority)
        self.owner = f"{config.name}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.jobs_done = 0
        self._parent = os.getppid()
        self._current: jobs.ClaimedJob | None = None
        self._interruptible = False
        self._terminating = False       # set by SIGTERM (a plain flag: see on_sigterm)

    # -- loop ---------------------------------------------------------------------------------------

    def run(self) -> ExitCode:
        log.info("asr.worker.started", owner=self.owner, min_priority=self.config.min_priority, pid=os.getpid())
        try:
            while not self._terminating and not self.stop.is_set():
                if self.config.max_jobs and self.jobs_done >= self.config.max_jobs:
                    log.info("asr.worker.recycle", owner=self.owner, reason="max_jobs", jobs=self.jobs_done)
                    return ExitCode.RECYCLE_JOBS
                if self.config.max_rss_mb and rss_mb() > self.config.max_rss_mb:
                    log.info("asr.worker.recycle", owner=self.owner, reason="rss", rss_mb=round(rss_mb()))
                    return ExitCode.RECYCLE_RSS
                if os.getppid() != self._parent:
                    log.warning("asr.worker.orphaned", owner=self.owner)
                    return ExitCode.ORPHANED
                if not self.run_once():
                    self.waker.wait(self.config.poll_seconds)
            return ExitCode.STOPPED
        finally:
            self.waker.close()

    def run_once(self) -> bool:
        """Claim and process one job; ``False`` when there was nothing to do."""
        kw = {"min_priority": self.config.min_priority}
        if not jobs.has_runnable(self.db, **kw):
            return False
        job = jobs.claim(self.db, self.owner, self.config.lease_seconds, **kw)
        if job is None:
            return False
        self.process(job)
        self.jobs_done += 1
        return True

    # -- one job ------------------------------------------------------------------------------------

    def process(self, job: jobs.ClaimedJob) -> StoredResult | None:
        self._current = job
        bind_call(job_id=job.id)
        started = time.monotonic()
        try:
            with _Heartbeat(self.db, job, self.config.lease_seconds, self.config.heartbeat_interval) as beat:
                try:
                    recording = self._recording(job)
                    path = resolve_input(recording, job.payload, self.config.archive_dir)
                    self._interruptible = True
                    try:
                        transcript = self.transcribe(path)
                    finally:
                        self._interruptible = False
                except AudioError as exc:
                    self._fail(job, f"corrupt audio: {exc.reason}", permanent=True)
                    return None
                except InputUnavailable as exc:
                    self._fail(job, str(exc), permanent=exc.permanent)
                    return None
                except Exception as exc:
                    self._fail(job, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}", permanent=False)
                    return None
                if beat.lost:
                    log.warning("asr.job.discarded", job_id=job.id, reason="lease lost while transcribing")
                    return None
            assert recording is not None
            try:
                with self.db.write() as s:
                    rec = s.get(Recording, recording.id)
                    assert rec is not None
                    result = store_transcript(s, job, rec, transcript)
            except jobs.LeaseLost:
                log.warning("asr.job.discarded", job_id=job.id, reason="lease lost before storing")
                return None
            log.info("asr.job.done", job_id=job.id, recording_id=rec.id, kind=rec.kind, priority=job.priority,
                     seconds=round(time.monotonic() - started, 3), wait_seconds=self._waited(job))
            return result
        except WorkerShutdown:
            if jobs.release(self.db, job.id, self.owner):
                log.info("asr.job.released", job_id=job.id)
            raise
        finally:
            self._current = None
            unbind_call()

    def _waited(self, job: jobs.ClaimedJob) -> float:
        return round((jobs.utcnow() - job.created_at).total_seconds(), 3)

    def _recording(self, job: jobs.ClaimedJob) -> Recording:
        if job.recording_id is None:
            raise InputUnavailable("job has no recording", permanent=True)
        with self.db.session() as s:
            rec = s.get(Recording, job.recording_id)
        if rec is None:
            raise InputUnavailable(f"recording {job.recording_id} does not exist", permanent=True)
        return rec

    def _fail(self, job: jobs.ClaimedJob, error: str, permanent: bool) -> None:
        try:
            out = jobs.fail(self.db, job.id, job.lease_owner, error, permanent=permanent,
                            backoff_base_seconds=self.config.retry_backoff_seconds)
        except jobs.LeaseLost:
            log.warning("asr.job.discarded", job_id=job.id, reason="lease lost before recording the failure")
            return
        log.warning("asr.job.failed", job_id=job.id, state=out.state, attempts=out.attempts,
                    permanent=permanent, error=error.splitlines()[0])

    # -- signals ------------------------------------------------------------------------------------

    def on_sigterm(self, _signum: int, _frame: Any) -> None:
        """Stop after the current job, or at once while transcribing (the job is given back).

        Only a flag: the signal usually arrives while this thread sleeps in ``self.stop.wait()`` (a
        ``multiprocessing`` event when the pool runs us), and setting that event from here deadlocks:
        its ``notify`` waits for the sleeper, which is this very thread, to wake up. The wait returns after
        ``poll_seconds`` and the loop sees the flag."""
        self._terminating = True
        if self._interruptible:
            raise WorkerShutdown()


def worker_main(config: WorkerConfig, stop: Any | None = None, ready: Any | None = None) -> int:
    """Entry point of a worker process (the pool's target): returns the exit code (see :class:`ExitCode`).

    ``ready`` (an event) is set once the model is loaded and warmed up."""
    from config.log import configure_logging

    configure_logging(level=config.log_level)
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the supervisor decides; Ctrl-C reaches the whole group
    if config.nice:
        try:
            os.nice(config.nice)
        except OSError:  # pragma: no cover - not allowed: run at normal priority
            pass
    transcriber = load_factory(config.transcriber_factory)(config)
    worker = Worker(config, transcriber, stop=stop)
    signal.signal(signal.SIGTERM, worker.on_sigterm)
    if ready is not None:
        ready.set()
    try:
        code = worker.run()
    except WorkerShutdown:
        code = ExitCode.STOPPED
    finally:
        worker.db.dispose()
    log.info("asr.worker.exit", owner=worker.owner, code=int(code), jobs=worker.jobs_done)
    return int(code)


def process_target(config: WorkerConfig, stop: Any | None = None, ready: Any | None = None) -> None:
    """``multiprocessing`` target: exits with :func:`worker_main`'s code.

    The exit skips interpreter finalization (``os._exit``): the database is disposed and the logs are
    flushed by then, and tearing down a loaded Kaldi model can take seconds for nothing."""
    code = worker_main(config, stop, ready)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
