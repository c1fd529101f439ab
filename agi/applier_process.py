"""The journal applier in a child process, so store writes never hold the AGI sessions' GIL.

The FastAGI server runs every call in a thread of one Python process. Applying the journal to the store
(ORM work, validation, JSON) is CPU work too; in a thread of the same process it competes with the calls
for the interpreter lock and shows up as per-command latency. :class:`ApplierProcess` runs the same
:class:`agi.journal.JournalApplier` in a ``spawn``-ed child that reads the journal files the parent writes:

* the parent's :class:`~agi.journal.Journal` wakes the child after each group commit (a byte on a
  non-blocking pipe: nothing the child does or suffers can block the parent's journal writer);
* the child treats the newest ``journal-N.jsonl`` as the one being written (its torn last line is not
  read; older files are compacted only once wholly applied, exactly as in thread mode);
* ``store_up``/``applied``/``deferred`` are shared values the parent reads (StoreServices uses
  ``store_up`` to skip a ticket allocation while the database is away);
* the child exits when asked (after the parent drained the journal), ignores SIGTERM/SIGINT sent to the
  whole process group, and exits on its own when the parent is gone (it polls its parent's pid).

The checkpoint file (``applied.json``) is the only state that matters across restarts, as in thread mode.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import select
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agi.journal import Journal, JournalApplier, journal_files, read_checkpoint, read_entries
from config.log import get_logger

log = get_logger(__name__)

_CTX = mp.get_context("spawn")
PARENT_POLL_SECONDS = 1.0


class ApplierProcessError(RuntimeError):
    """The applier child could not start (e.g. its database URL cannot be opened from another process)."""


class JournalView:
    """What the applier needs of a journal it does not write: the directory and the file being written."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @property
    def current_index(self) -> int | None:
        files = journal_files(self.directory)
        return files[-1][0] if files else None

    def on_append(self, callback: Any) -> None:  # the parent's journal wakes us through an event instead
        pass


@dataclass(frozen=True)
class _ChildArgs:
    directory: str
    database_url: str
    timezone: str
    log_json: bool | None          # None: JSON unless stderr is a terminal, as in the parent
    log_level: str
    parent_pid: int


class _ChildApplier(JournalApplier):
    """:class:`JournalApplier`'s loop in the child: woken through the parent's pipe, stopped by a shared flag
    or by the parent's death, publishing ``store_up``/``applied``/``deferred`` to shared values."""

    def __init__(self, directory: Path, apply_batch: Any, wake_fd: int, stop: Any, parent_pid: int,
                 store_up: Any, applied: Any, deferred: Any) -> None:
        super().__init__(JournalView(directory), apply_batch)  # type: ignore[arg-type]
        self._fd = wake_fd
        self._stop_flag = stop
        self._parent_pid = parent_pid
        self._shared = (store_up, applied, deferred)

    def _stopping(self) -> bool:
        if os.getppid() != self._parent_pid:
            log.warning("journal_applier_orphaned")
            return True
        return bool(self._stop_flag.value)

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stop_flag.value and time.monotonic() < deadline:
            time.sleep(min(0.1, max(deadline - time.monotonic(), 0.0)))

    def _wait_for_work(self, timeout: float) -> None:
        """Sleep until the parent pokes the pipe (or ``timeout``, at most a parent check's interval), then
        swallow every poke waiting in it."""
        ready, _, _ = select.select([self._fd], [], [], max(min(timeout, PARENT_POLL_SECONDS), 0.0))
        if ready:
            try:
                while os.read(self._fd, 4096):
                    pass
            except BlockingIOError:
                pass

    def _after_attempt(self) -> None:
        store_up, applied, deferred = self._shared
        store_up.value = int(self.store_up)
        applied.value = self.applied
        deferred.value = self.deferred


def _child_main(args: _ChildArgs, wake: Any, stop: Any, ready: Any, store_up: Any, applied: Any,
                deferred: Any) -> None:
    from agi.calls import apply_entries
    from config.log import configure_logging
    from store.db import open_database

    # The parent decides when we stop (it drains the journal first); a signal to the whole process group
    # (systemd, Ctrl-C) must not cut a batch short. A parent that dies is noticed by _stopping().
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    configure_logging(json=args.log_json, level=args.log_level)
    fd = wake.fileno()
    os.set_blocking(fd, False)
    db = open_database(args.database_url)
    applier = _ChildApplier(Path(args.directory), lambda entries: apply_entries(db, entries, args.timezone),
                            fd, stop, args.parent_pid, store_up, applied, deferred)
    ready.set()
    try:
        applier.run_loop()
    finally:
        db.dispose()


class ApplierProcess:
    """Same surface as :class:`JournalApplier` for :class:`agi.flows.FlowRuntime`: start, stop, drain,
    ``store_up``, ``deferred``, ``applied``, ``last_error``."""

    def __init__(self, journal: Journal, database_url: str, timezone: str, log_json: bool | None = None,
                 log_level: str | None = None) -> None:
        if database_url.startswith("sqlite") and (":memory:" in database_url or database_url.rstrip("/") == "sqlite:"):
            raise ApplierProcessError("an in-memory SQLite database cannot be shared with the applier process")
        self.journal = journal
        self.directory = journal.directory
        level = log_level or logging.getLevelName(logging.getLogger().getEffectiveLevel())
        self._args = _ChildArgs(str(journal.directory), database_url, timezone, log_json, level, os.getpid())
        # Wake-ups and stop requests never block the parent, whatever state the child is in: a
        # multiprocessing Event's set() waits for its sleepers to wake, and a child killed in its sleep
        # would then freeze the journal writer (and with it every call). A poke is one byte written to a
        # non-blocking pipe; a full pipe means the child has wake-ups pending anyway.
        self._wake_r, self._wake_w = _CTX.Pipe(duplex=False)
        os.set_blocking(self._wake_w.fileno(), False)
        self._stop = _CTX.Value("b", 0, lock=False)
        self._ready = _CTX.Event()
        self._store_up = _CTX.Value("b", 1, lock=False)
        self._applied = _CTX.Value("q", 0, lock=False)
        self._deferred = _CTX.Value("q", 0, lock=False)
        self._process: Any = None
        journal.on_append(self._poke)

    def start(self, timeout: float = 60.0) -> "ApplierProcess":
        self._process = _CTX.Process(
            target=_child_main, name="journal-applier", daemon=True,
            args=(self._args, self._wake_r, self._stop, self._ready, self._store_up, self._applied, self._deferred))
        self._process.start()
        if not self._ready.wait(timeout):
            self._process.kill()
            raise ApplierProcessError(f"the journal applier process did not start within {timeout:.0f} s")
        log.info("journal_applier_process_started", pid=self._process.pid)
        return self

    def _poke(self) -> None:
        try:
            os.write(self._wake_w.fileno(), b"\0")
        except (BlockingIOError, OSError):
            pass

    @property
    def store_up(self) -> bool:
        return bool(self._store_up.value)

    @property
    def applied(self) -> int:
        return int(self._applied.value)

    @property
    def deferred(self) -> int:
        return int(self._deferred.value)

    @property
    def last_error(self) -> str | None:
        return None if self.store_up else "the store is unreachable (see the applier's log)"

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def pending(self) -> bool:
        """Journal entries after the checkpoint (what the child has not applied yet, deferred ones included)."""
        entries, _ = read_entries(self.directory, read_checkpoint(self.directory), 1, self.journal.current_index)
        return bool(entries)

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until everything written so far is applied (False on timeout or if the child died)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.pending():
                return True
            if not self.alive:
                return False
            self._poke()
            time.sleep(0.02)
        return not self.pending()

    def stop(self, timeout: float = 30.0) -> None:
        if self._process is None:
            return
        self._stop.value = 1
        self._poke()
        self._process.join(timeout)
        if self._process.is_alive():
            log.warning("journal_applier_process_killed", pid=self._process.pid)
            self._process.kill()
            self._process.join(5)


__all__ = ["ApplierProcess", "ApplierProcessError", "JournalView"]
