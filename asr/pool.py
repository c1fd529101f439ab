"""The worker pool: a supervisor keeping one worker process per slot alive.

Slots are *bulk* workers (every job, urgent ones first; run niced) and *fast-path* workers (only jobs
with priority ≥ :data:`asr.fastpath.FAST_PATH_PRIORITY`, normal CPU priority), so an IVR clip never waits
behind a 30-minute recording. A worker that exits to be recycled (max jobs, RSS) is restarted at once;
one that crashed is restarted after a back-off that doubles up to ``restart_backoff_max`` (a crash-looping
model does not spin the CPU). Its job's lease runs out and another worker takes the job over.

Processes are started with ``spawn`` (no fork of a process holding threads, an event loop or a model).
The supervisor is a thread, so the pool embeds in an asyncio app::

    pool = WorkerPool(PoolConfig.from_settings(settings, processes=settings.asr.embedded_workers))
    await pool.astart()      # on start-up
    ...
    await pool.astop()       # on clean-up: workers give their jobs back, then exit
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from asr.fastpath import FAST_PATH_PRIORITY
from asr.worker import DEFAULT_TRANSCRIBER_FACTORY, RECYCLE_CODES, ExitCode, WorkerConfig, process_target
from config import Settings
from config.log import get_logger

log = get_logger(__name__)

BULK_NICE = 10
SUPERVISE_INTERVAL_SECONDS = 0.2


class PoolError(Exception):
    """The pool cannot start (bad configuration) or is used in the wrong state."""


@dataclass(frozen=True)
class PoolConfig:
    worker: WorkerConfig                      # template for every slot
    processes: int                            # bulk workers
    fast_path_workers: int = 1                # extra workers reserved for the fast path
    fast_path_poll_seconds: float = 0.05      # their idle poll (SQLite; PostgreSQL also LISTENs)
    bulk_nice: int = BULK_NICE
    restart_backoff_seconds: float = 1.0
    restart_backoff_max: float = 30.0
    stop_grace_seconds: float = 10.0          # then SIGTERM (job released), then SIGKILL

    @classmethod
    def from_settings(cls, settings: Settings, *, processes: int | None = None, fast_path_workers: int = 1,
                      settings_file: str | None = None, log_level: str = "INFO",
                      transcriber_factory: str = DEFAULT_TRANSCRIBER_FACTORY) -> "PoolConfig":
        """``processes`` None → ``asr.workers`` (0 → one per core)."""
        asr = settings.asr
        n = asr.workers if processes is None else processes
        if n <= 0:
            n = os.cpu_count() or 1
        worker = WorkerConfig(database_url=settings.database.url, archive_dir=settings.recordings.archive_dir,
                              lease_seconds=float(asr.lease_seconds), retry_backoff_seconds=float(asr.retry_backoff_seconds),
                              max_jobs=asr.max_jobs_per_worker, max_rss_mb=asr.max_rss_mb,
                              transcriber_factory=transcriber_factory, settings_file=settings_file,
                              log_level=log_level)
        return cls(worker=worker, processes=n, fast_path_workers=fast_path_workers)

    def slot_configs(self) -> list[WorkerConfig]:
        bulk = [dataclasses.replace(self.worker, name=f"asr-bulk-{i}", nice=self.bulk_nice)
                for i in range(self.processes)]
        fast = [dataclasses.replace(self.worker, name=f"asr-fast-{i}", nice=0, min_priority=FAST_PATH_PRIORITY,
                                    poll_seconds=self.fast_path_poll_seconds)
                for i in range(self.fast_path_workers)]
        return bulk + fast


@dataclass
class Slot:
    config: WorkerConfig
    process: Any = None
    ready: Any = None         # set by the worker once its model is loaded
    # One stop event per process: a multiprocessing.Event whose waiter was SIGKILLed blocks the next set()
    # forever (its condition waits for the dead sleeper to acknowledge), so a crashed worker's event is dropped.
    stop: Any = None
    starts: int = 0
    crashes: int = 0          # consecutive crashes (reset by a clean recycle)
    recycles: int = 0
    next_start: float = 0.0


@dataclass(frozen=True)
class SlotStatus:
    name: str
    pid: int | None
    alive: bool
    ready: bool
    starts: int
    recycles: int
    crashes: int


@dataclass
class WorkerPool:
    config: PoolConfig
    _slots: list[Slot] = field(default_factory=list)
    _stopping: bool = False
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        if self.config.processes + self.config.fast_path_workers < 1:
            raise PoolError("the pool needs at least one worker")
        self._ctx = multiprocessing.get_context("spawn")
        self._wake = threading.Event()
        self._lock = threading.Lock()

    # -- lifecycle ----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start every worker and the supervisor thread; returns at once (models load in the workers)."""
        if self._thread is not None:
            raise PoolError("pool already started")
        self._slots = [Slot(config=c) for c in self.config.slot_configs()]
        with self._lock:
            for slot in self._slots:
                self._spawn(slot)
        self._thread = threading.Thread(target=self._supervise, name="asr-pool", daemon=True)
        self._thread.start()
        log.info("asr.pool.started", bulk=self.config.processes, fast_path=self.config.fast_path_workers)

    def stop(self, timeout: float | None = None) -> None:
        """Ask workers to stop after their job; after the grace time SIGTERM (they give their job back),
        then SIGKILL whatever is left. Blocks until every process is gone."""
        grace = self.config.stop_grace_seconds if timeout is None else timeout
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        for slot in self._slots:
            if slot.process is not None and slot.process.is_alive() and slot.stop is not None:
                slot.stop.set()
        procs = [s.process for s in self._slots if s.process is not None]
        _join_all(procs, grace)
        for p in procs:
            if p.is_alive():
                p.terminate()
        _join_all(procs, 5.0)
        for p in procs:
            if p.is_alive():
                log.warning("asr.pool.kill", pid=p.pid)
                p.kill()
        _join_all(procs, 5.0)
        log.info("asr.pool.stopped")

    async def astart(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.start)

    async def astop(self, timeout: float | None = None) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.stop, timeout)

    def run_forever(self) -> None:
        """Foreground use (`hotline worker`): start, then stop cleanly on SIGINT/SIGTERM."""
        done = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: done.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self.start()
            while not done.wait(1.0):
                pass
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    # -- inspection ---------------------------------------------------------------------------------

    def status(self) -> list[SlotStatus]:
        with self._lock:
            return [SlotStatus(name=s.config.name, pid=s.process.pid if s.process else None,
                               alive=bool(s.process and s.process.is_alive()),
                               ready=bool(s.ready is not None and s.ready.is_set()), starts=s.starts,
                               recycles=s.recycles, crashes=s.crashes) for s in self._slots]

    def wait_ready(self, timeout: float) -> bool:
        """Block until every worker has loaded its model (``False`` on timeout)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            states = self.status()
            if states and all(s.alive and s.ready for s in states):
                return True
            time.sleep(0.05)
        return False

    def pids(self) -> list[int]:
        return [s.pid for s in self.status() if s.pid is not None and s.alive]

    # -- supervision --------------------------------------------------------------------------------

    def _spawn(self, slot: Slot) -> None:
        slot.ready = self._ctx.Event()
        slot.stop = self._ctx.Event()
        proc = self._ctx.Process(target=process_target, args=(slot.config, slot.stop, slot.ready),
                                 name=slot.config.name, daemon=False)
        proc.start()
        slot.process = proc
        slot.starts += 1
        log.info("asr.pool.worker_started", worker=slot.config.name, pid=proc.pid, start=slot.starts)

    def _supervise(self) -> None:
        while not self._stopping:
            self._wake.wait(SUPERVISE_INTERVAL_SECONDS)
            if self._stopping:
                return
            with self._lock:
                for slot in self._slots:
                    self._check(slot)

    def _check(self, slot: Slot) -> None:
        proc = slot.process
        now = time.monotonic()
        if proc is not None and proc.is_alive():
            return
        if proc is not None:
            code = proc.exitcode
            proc.join(0)
            proc.close()
            slot.process = None
            if code in RECYCLE_CODES:
                slot.recycles += 1
                slot.crashes = 0
                slot.next_start = now
                log.info("asr.pool.worker_recycled", worker=slot.config.name, code=code)
            else:
                slot.crashes += 1
                delay = min(self.config.restart_backoff_seconds * 2 ** (slot.crashes - 1), self.config.restart_backoff_max)
                slot.next_start = now + delay
                log.warning("asr.pool.worker_died", worker=slot.config.name, code=code,
                            restart_in_seconds=delay, exited_cleanly=code == ExitCode.STOPPED)
        if now >= slot.next_start:
            self._spawn(slot)


def _join_all(procs: list[Any], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for p in procs:
        p.join(max(deadline - time.monotonic(), 0.0))
