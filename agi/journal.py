"""Local append-only journal of call-record changes, replayed into the store by a background applier.

Why: every call must leave a record even while the database is down. A session appends its changes here
(JSON lines, ``fsync``-ed) and goes on with the call; :class:`JournalApplier` applies them to the store in
order, idempotently, and retries with back-off while the database is unreachable.

* **Group commit**: appends from all sessions are queued to one writer thread, which writes whatever is
  pending, ``fsync``-s once and then wakes every waiter — one fsync covers many calls.
* **Files**: ``journal-<n>.jsonl`` in ``settings.agi.journal_dir``; a new file per start and when the current
  one passes ``max_file_bytes``. ``applied.json`` holds the applier's position (file, byte offset), written
  atomically. Files wholly before that position are deleted (compaction: their content is in the store).
* **Lock**: one process per journal directory (``flock`` on ``LOCK``).

Entry ops (see :mod:`agi.calls` for who writes them): ``upsert`` (record fields, ``complete``,
``allocate_ticket``), ``fill`` (set only fields still empty; waits for the row), ``clip`` (recordings row +
transcription job), ``screen_pop`` (agent_events row).
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from config.log import get_logger

log = get_logger(__name__)

FILE_RE = re.compile(r"^journal-(\d{8})\.jsonl$")
CHECKPOINT = "applied.json"
REJECTED = "rejected.jsonl"


class JournalError(Exception):
    """The journal cannot be written (disk full, directory locked by another process…)."""


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def journal_files(directory: Path) -> list[tuple[int, Path]]:
    out = []
    for p in directory.iterdir():
        m = FILE_RE.match(p.name)
        if m:
            out.append((int(m.group(1)), p))
    return sorted(out)


@dataclass(frozen=True)
class Position:
    index: int       # file number
    offset: int      # bytes consumed in that file


class Journal:
    """The writing side. ``append(entry)`` returns once the entry is on disk (``wait=False``: once queued)."""

    def __init__(self, directory: str | Path, max_file_bytes: int = 64 * 1024 * 1024) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.max_file_bytes = max_file_bytes
        self._lock_fd = os.open(self.directory / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            os.close(self._lock_fd)
            raise JournalError(f"journal directory {self.directory} is in use by another process") from exc
        existing = journal_files(self.directory)
        self._index = (existing[-1][0] + 1) if existing else 1
        self._file = self._open_file(self._index)
        self._cond = threading.Condition()       # appenders → writer: something to write
        self._queue: list[bytes] = []
        self._queued = 0                          # sequence number of the last entry queued
        self._synced = 0                          # ... of the last entry on disk (written and fsync-ed)
        self._failed: list[tuple[int, int, BaseException]] = []   # (first, last, error) of failed group commits
        self._durable = threading.Condition()     # writer → waiting appenders: _synced moved
        self._closed = False
        self._listeners: list[Callable[[], None]] = []
        self.fsyncs = 0
        self.entries = 0
        self._thread = threading.Thread(target=self._writer, name="journal-writer", daemon=True)
        self._thread.start()

    def _open_file(self, index: int) -> Any:
        path = self.directory / f"journal-{index:08d}.jsonl"
        fh = open(path, "ab", buffering=0)
        _fsync_dir(self.directory)
        return fh

    @property
    def current_index(self) -> int:
        return self._index

    def on_append(self, callback: Callable[[], None]) -> None:
        """Called (from the writer thread) after each group commit: the applier wakes up."""
        self._listeners.append(callback)

    def append(self, entry: dict[str, Any], wait: bool = True) -> None:
        data = (json.dumps(entry, ensure_ascii=False, separators=(",", ":"), default=str) + "\n").encode("utf-8")
        with self._cond:
            if self._closed:
                raise JournalError("journal is closed")
            self._queue.append(data)
            self._queued += 1
            seq = self._queued
            self._cond.notify()
        if wait:
            with self._durable:
                while self._synced < seq:
                    self._durable.wait()
                error = next((e for first, last, e in self._failed if first <= seq <= last), None)
            if error is not None:
                raise JournalError(f"journal write failed: {error}") from error

    def _writer(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                batch, self._queue = self._queue, []
                last = self._queued
                closing = self._closed
            if batch:
                error: BaseException | None = None
                try:
                    self._file.write(b"".join(batch))
                    os.fsync(self._file.fileno())
                    self.fsyncs += 1
                    self.entries += len(batch)
                    if self._file.tell() >= self.max_file_bytes:
                        self._file.close()
                        self._index += 1
                        self._file = self._open_file(self._index)
                except OSError as exc:
                    error = exc
                    log.error("journal_write_failed", error=str(exc))
                with self._durable:
                    if error is not None:
                        self._failed = self._failed[-1023:] + [(last - len(batch) + 1, last, error)]
                    self._synced = last
                    self._durable.notify_all()
                for cb in self._listeners:
                    cb()
            if closing and not batch:
                return

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout=10)
        self._file.close()
        fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        os.close(self._lock_fd)


# --------------------------------------------------------------------------- reading side
def read_checkpoint(directory: Path) -> Position:
    try:
        data = json.loads((directory / CHECKPOINT).read_text())
        return Position(int(data["index"]), int(data["offset"]))
    except (OSError, ValueError, KeyError):
        return Position(0, 0)


def write_checkpoint(directory: Path, pos: Position) -> None:
    tmp = directory / (CHECKPOINT + ".tmp")
    with open(tmp, "w") as fh:
        json.dump({"index": pos.index, "offset": pos.offset}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, directory / CHECKPOINT)
    _fsync_dir(directory)


def read_entries(directory: Path, start: Position, limit: int, active_index: int | None) -> tuple[list[dict[str, Any]], Position]:
    """Up to ``limit`` complete entries after ``start``; returns them and the position after the last one.

    Each entry carries its own start position as ``_pos`` (in memory only). A torn last line (crash mid-write)
    in a file that is no longer written is skipped: it was never acknowledged, since acknowledgement follows
    the fsync of whole lines.
    """
    entries: list[dict[str, Any]] = []
    pos = start
    for index, path in journal_files(directory):
        if index < pos.index:
            continue
        offset = pos.offset if index == pos.index else 0
        with open(path, "rb") as fh:
            fh.seek(offset)
            while len(entries) < limit:
                line = fh.readline()
                if not line:
                    break
                if not line.endswith(b"\n"):
                    if active_index is not None and index >= active_index:
                        break           # still being written
                    log.warning("journal_torn_line_skipped", file=path.name, offset=offset)
                    offset += len(line)
                    continue
                try:
                    entry = json.loads(line)
                    entry["_pos"] = Position(index, offset)
                    entries.append(entry)
                except json.JSONDecodeError:
                    log.error("journal_bad_line", file=path.name, offset=offset)
                offset += len(line)
        pos = Position(index, offset)
        if len(entries) >= limit:
            break
    return entries, pos


def compact(directory: Path, pos: Position, active_index: int | None) -> int:
    """Delete journal files wholly before the applied position (never the active one). Returns files removed."""
    removed = 0
    for index, path in journal_files(directory):
        if index < pos.index and (active_index is None or index < active_index):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


Applier = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]


class JournalApplier:
    """Background thread: read entries after the checkpoint, apply them, advance the checkpoint.

    ``apply_batch(entries) -> deferred`` (see :func:`agi.calls.apply_entries`) raises while the store is
    unreachable; the same entries are then retried after a back-off (0.2 s doubling to ``max_backoff``).
    Entries it returns as deferred (a ``fill`` whose record has not arrived yet) are retried every
    ``defer_retry`` seconds for up to ``max_defer`` seconds; the checkpoint never passes the oldest deferred
    entry, so they survive a restart (replaying the entries after it again is harmless: applying is idempotent).
    After a part batch the thread lingers ``linger`` seconds before the next one, so under load each
    transaction carries many calls' entries instead of one call's.
    """

    def __init__(self, journal: Journal, apply_batch: Applier, batch_size: int = 500,
                 max_backoff: float = 5.0, idle_wait: float = 0.5, defer_retry: float = 1.0,
                 max_defer: float = 3600.0, linger: float = 0.05) -> None:
        self.journal = journal
        self.directory = journal.directory
        self.apply_batch = apply_batch
        self.batch_size = batch_size
        self.max_backoff = max_backoff
        self.idle_wait = idle_wait
        self.defer_retry = defer_retry
        self.max_defer = max_defer
        self.linger = linger
        self._deferred: list[dict[str, Any]] = []
        self.read_position = read_checkpoint(self.directory)
        self.position = read_checkpoint(self.directory)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._paused = threading.Event()
        self._step_lock = threading.Lock()
        self._idle = threading.Condition()
        self._thread: threading.Thread | None = None
        self.applied = 0
        self.batches = 0
        self.failures = 0
        self.last_error: str | None = None
        self.store_up = True
        journal.on_append(self._wake.set)

    def start(self) -> "JournalApplier":
        self._thread = threading.Thread(target=self.run_loop, name="journal-applier", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=30)

    def pause(self) -> None:
        """Stop applying (tests, maintenance); entries keep accumulating in the journal. Returns once any
        batch in progress has finished."""
        self._paused.set()
        with self._step_lock:
            pass

    def resume(self) -> None:
        self._paused.clear()
        self._wake.set()

    def pending(self) -> bool:
        entries, _ = read_entries(self.directory, self.read_position, 1, self.journal.current_index)
        return bool(entries)

    @property
    def deferred(self) -> int:
        return len(self._deferred)

    def drain(self, timeout: float = 30.0) -> bool:
        """Wait until everything written so far is applied; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.pending():
                return True
            self._wake.set()
            time.sleep(0.02)
        return not self.pending()

    def step(self) -> int:
        """Apply one batch now (the thread's body; tests may call it directly). Returns entries applied."""
        entries, new_pos = read_entries(self.directory, self.read_position, self.batch_size, self.journal.current_index)
        now = time.monotonic()
        due = [e for e in self._deferred if e["_retry_at"] <= now]
        if not entries and not due:
            return 0
        waiting = [e for e in self._deferred if e["_retry_at"] > now]
        deferred = self.apply_batch(due + entries)
        still: list[dict[str, Any]] = []
        for entry in deferred:
            first = entry.setdefault("_first_deferred", now)
            if now - first > self.max_defer:
                log.error("journal_entry_dropped", op=entry.get("op"), record_id=entry.get("record_id"))
                self._reject(entry, "record never arrived")
                continue
            entry["_retry_at"] = now + self.defer_retry
            still.append(entry)
        self._deferred = waiting + still
        self.read_position = new_pos
        if self._deferred:
            oldest = min((e["_pos"] for e in self._deferred), key=lambda p: (p.index, p.offset))
            checkpoint = min(oldest, new_pos, key=lambda p: (p.index, p.offset))
        else:
            checkpoint = new_pos
        if checkpoint != self.position:
            write_checkpoint(self.directory, checkpoint)
            self.position = checkpoint
            compact(self.directory, checkpoint, self.journal.current_index)
        self.applied += len(due) + len(entries) - len(deferred)
        self.batches += 1
        return len(due) + len(entries) - len(deferred)

    def _reject(self, entry: dict[str, Any], reason: str) -> None:
        clean = {k: v for k, v in entry.items() if not k.startswith("_")}
        with open(self.directory / REJECTED, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"reason": reason, "entry": clean}, ensure_ascii=False, default=str) + "\n")

    # ------------------------------------------------------------------ the loop and its waits
    # A subclass may wait on something else (agi.applier_process: a pipe from the parent, a shared stop flag).
    def _stopping(self) -> bool:
        return self._stop.is_set()

    def _sleep(self, seconds: float) -> None:
        """Back-off and linger: only a stop cuts them short, not a wake-up (no retry storm at call rate)."""
        self._stop.wait(seconds)

    def _wait_for_work(self, timeout: float) -> None:
        self._wake.wait(timeout)
        self._wake.clear()

    def _after_attempt(self) -> None:
        """Called after every attempt to apply, successful or not."""

    def run_loop(self) -> None:
        """Apply batches until stopped, backing off while the store is unreachable (the thread's body)."""
        backoff = 0.2
        while not self._stopping():
            if self._paused.is_set():
                self._wait_for_work(self.idle_wait)
                continue
            try:
                with self._step_lock:
                    n = 0 if self._paused.is_set() else self.step()
            except Exception as exc:  # noqa: BLE001 - store down: keep the entries, retry later
                self.failures += 1
                self.store_up = False
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("journal_apply_failed", error=self.last_error, retry_in=backoff)
                self._after_attempt()
                self._sleep(backoff)
                backoff = min(backoff * 2, self.max_backoff)
                continue
            if not self.store_up:
                log.info("journal_apply_recovered")
            self.store_up = True
            backoff = 0.2
            self._after_attempt()
            if n == 0:
                self._wait_for_work(self.defer_retry if self._deferred else self.idle_wait)
            elif n < self.batch_size and self.linger:
                # a part batch: let a few more calls' entries gather, so one transaction (and one checkpoint
                # fsync) covers many of them; records reach the store at most `linger` later
                self._sleep(self.linger)


def iter_all(directory: Path) -> Iterator[dict[str, Any]]:
    """Every entry still in the journal (diagnostics)."""
    entries, _ = read_entries(directory, Position(0, 0), 10**9, None)
    yield from entries


__all__ = ["Journal", "JournalApplier", "JournalError", "Position", "read_checkpoint", "read_entries", "compact"]
