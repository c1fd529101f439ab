"""Call-record life-cycle over the journal: the engine's :class:`~agi.engine.RecordSink`, and the replay into the store.

Every entry is fsync-ed by the journal's next group commit (within milliseconds). A session *waits* for
that fsync (``durable``) only where its next AGI command tells someone something that relies on the entry
being kept: the caller (a ticket number, "thank you" for a survey answer) or the dialplan (``HL_CLOSED``
set after the completed record, ``HL_ERROR`` after the record left for ``h``). Elsewhere waiting adds
latency to the call and no safety: the entry reaches the disk just as soon either way.

Writers (all keyed by ``record_id`` = the inbound channel's linkedid, so the caller's session, the agent's
session and the ``h`` extension all write the same record):

* the caller's flow session (``open``): ``upsert`` at first contact, partial ``upsert`` per step,
  ``upsert`` when queued, ``upsert complete=true`` (durable) on every exit;
* agent-connect (``agent``): ``fill`` answered_at/agent_id (only where still empty) and ``screen_pop``;
* the description clip / voicemail: ``clip`` (a ``recordings`` row + a ``transcribe`` job);
* call-end in ``h`` (``end``): ``upsert complete=true`` for records no session completed.

:class:`CallRecords` also keeps the state of open calls in memory (merged from every session in this process)
so a session can see what another wrote (the main flow sees agent-connect's answered_at).

``recording`` (Appendix C, required when answered) is attached later by the recorder, which re-validates the
record (``store.records.revalidate``). Until then a completed answered record is stored with ``valid = false``
and the single problem ``recording missing``; :func:`pending_recording_only` tells that state apart.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping

from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session

from agi.engine import Clip, TicketLookupUnavailable
from agi.hours import BusinessHours
from agi.journal import Journal
from config.log import get_logger
from store.db import Database
from store.masking import mask_number
from store.models import AgentEvent, Call, Job, Recording, Transcript
from store.records import apply_changes, judge, lock_calls, save_snapshots
from store.tickets import allocate_ticket_no
from store.validation import Problem

log = get_logger(__name__)

CLIP_JOB_PRIORITY = {"ivr_clip": 100, "voicemail": 50}
CLOSED_KEEP_SECONDS = 600.0


def pending_recording_only(problems: Iterable[Problem | Mapping[str, str]]) -> bool:
    """True when the only problem is the not-yet-attached recording of an answered call."""
    items = [p.to_dict() if isinstance(p, Problem) else dict(p) for p in problems]
    return len(items) == 1 and items[0]["field"] == "recording" and items[0]["code"] == "missing"


class CallRecords:
    """The engine's record sink: journal entries plus an in-memory view of the calls this process handles."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self._lock = threading.Lock()
        self._state: dict[str, dict[str, Any]] = {}
        self._closed_at: OrderedDict[str, float] = OrderedDict()     # oldest closing first

    def _append(self, entry: dict[str, Any], durable: bool) -> None:
        entry.setdefault("at", datetime.now(timezone.utc).isoformat())
        self.journal.append(entry, wait=durable)

    def _merge(self, record_id: str, fields: Mapping[str, Any], only_missing: bool = False) -> dict[str, Any]:
        state = self._state.setdefault(record_id, {})
        for k, v in fields.items():
            if not only_missing or state.get(k) in (None, ""):
                state[k] = v
        return state

    def open(self, record_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        with self._lock:
            existing = self._state.get(record_id)
            if existing and existing.get("caller_number"):
                return dict(existing)       # a second flow session of the same call
            state = self._merge(record_id, fields, only_missing=bool(existing))
            snapshot = dict(state)
        self._append({"op": "upsert", "record_id": record_id, "fields": snapshot, "complete": False}, durable=False)
        return snapshot

    def update(self, record_id: str, changes: Mapping[str, Any], durable: bool = False) -> None:
        with self._lock:
            self._merge(record_id, changes)
        self._append({"op": "upsert", "record_id": record_id, "fields": dict(changes), "complete": False}, durable)

    def complete(self, record_id: str, changes: Mapping[str, Any], allocate_ticket: bool = False) -> None:
        with self._lock:
            self._merge(record_id, changes)
            self._state[record_id]["_complete"] = True
            self._closed_at[record_id] = time.monotonic()
            self._closed_at.move_to_end(record_id)
            self._prune()
        self._append({"op": "upsert", "record_id": record_id, "fields": dict(changes), "complete": True,
                      "allocate_ticket": allocate_ticket}, durable=True)

    def fill(self, record_id: str, changes: Mapping[str, Any]) -> None:
        with self._lock:
            if record_id in self._state:
                self._merge(record_id, changes, only_missing=True)
        self._append({"op": "fill", "record_id": record_id, "fields": dict(changes)}, durable=False)

    def add_clip(self, record_id: str, clip: Clip) -> None:
        self._append({"op": "clip", "record_id": record_id, "kind": clip.kind, "uri": clip.uri,
                      "duration_seconds": clip.duration_seconds, "sample_rate": clip.sample_rate,
                      "channels": clip.channels, "format": clip.format}, durable=True)

    def screen_pop(self, record_id: str, agent_id: str) -> None:
        self._append({"op": "screen_pop", "record_id": record_id, "agent_id": agent_id,
                      "event_id": uuid.uuid4().hex}, durable=False)

    def known(self, record_id: str) -> dict[str, Any] | None:
        with self._lock:
            state = self._state.get(record_id)
            return {k: v for k, v in state.items() if not k.startswith("_")} if state else None

    def open_calls(self) -> int:
        with self._lock:
            return sum(1 for s in self._state.values() if not s.get("_complete"))

    def _prune(self) -> None:
        cutoff = time.monotonic() - CLOSED_KEEP_SECONDS
        while self._closed_at:
            rid, closed = next(iter(self._closed_at.items()))
            if closed >= cutoff:
                break
            del self._closed_at[rid]
            self._state.pop(rid, None)


# --------------------------------------------------------------------------- replay into the store
class _Batch:
    def __init__(self) -> None:
        self.upserts: dict[str, dict[str, Any]] = {}
        self.complete: set[str] = set()
        self.allocate: set[str] = set()
        self.others: list[dict[str, Any]] = []


def _merge_batch(entries: list[dict[str, Any]]) -> _Batch:
    """Collapse one batch: every upsert of a record merged in order (one save per record), other ops after."""
    batch = _Batch()
    for e in entries:
        op = e.get("op")
        if op == "upsert":
            batch.upserts.setdefault(e["record_id"], {}).update(e.get("fields") or {})
            if e.get("complete"):
                batch.complete.add(e["record_id"])
            if e.get("allocate_ticket"):
                batch.allocate.add(e["record_id"])
        else:
            batch.others.append(e)
    return batch


def _find_call(session: Session, record_id: str) -> Call | None:
    """The batch's row of ``record_id``: :func:`apply_entries` locked every record its entries name and added
    the ones it created, so a miss means the record is not in the store (yet)."""
    calls: dict[str, Call] = session.info["hl_calls"]
    return calls.get(record_id)


def _apply_fill(session: Session, entry: dict[str, Any]) -> bool:
    call = _find_call(session, entry["record_id"])
    if call is None:
        return False
    missing = {k: v for k, v in (entry.get("fields") or {}).items() if getattr(call, k, None) in (None, "")}
    if missing:
        apply_changes(call, missing)
        if call.state == "complete":
            judge(call)
    return True


def _apply_clip(session: Session, entry: dict[str, Any]) -> bool:
    call = _find_call(session, entry["record_id"])
    if call is None:
        return False
    kind, uri = entry["kind"], entry["uri"]
    rec = session.scalar(select(Recording).where(Recording.record_id == call.record_id, Recording.kind == kind,
                                                 Recording.uri == uri))
    if rec is None:
        rec = Recording(call_id=call.id, record_id=call.record_id, kind=kind, status="archived", uri=uri,
                        duration_seconds=entry.get("duration_seconds"), channels=entry.get("channels", 1),
                        sample_rate=entry.get("sample_rate", 8000), format=entry.get("format", "wav"),
                        source_files=[uri])
        session.add(rec)
        session.flush()
    job = session.scalar(select(Job).where(Job.recording_id == rec.id, Job.kind == "transcribe"))
    if job is None:
        session.add(Job(kind="transcribe", recording_id=rec.id, call_id=call.id,
                        priority=CLIP_JOB_PRIORITY.get(kind, 0),
                        payload={"record_id": call.record_id, "kind": kind, "uri": uri}))
    return True


def screen_pop_payload(call: Call, clip: Recording | None, transcripts: Iterable[Transcript]) -> dict[str, Any]:
    """What the agent's console shows when the call reaches them (the record as the IVR left it)."""
    rows = sorted(transcripts, key=lambda t: t.channel)
    text = " ".join(t.text for t in rows if t.text) if rows else None
    return {
        "record_id": call.record_id,
        "caller_number": call.caller_number,
        "caller_number_masked": mask_number(call.caller_number) if call.caller_number != "anonymous" else "anonymous",
        "ivr_path": list(call.ivr_path or []),
        "appeal_type": call.appeal_type,
        "description_recording_id": clip.id if clip is not None else None,
        "transcript": text,
    }


def _apply_screen_pops(session: Session, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every screen pop of the batch with three look-ups in all (events, clips, transcripts); returns the
    entries whose record is not there yet."""
    deferred: list[dict[str, Any]] = []
    ready: list[tuple[dict[str, Any], Call]] = []
    for entry in entries:
        call = _find_call(session, entry["record_id"])
        if call is None:
            deferred.append(entry)
        else:
            ready.append((entry, call))
    if not ready:
        return deferred
    session.flush()
    call_ids = sorted({call.id for _, call in ready})
    record_ids = sorted({call.record_id for _, call in ready})
    seen = {(ev.call_id, ev.agent_id, (ev.payload or {}).get("event_id")) for ev in session.scalars(
        select(AgentEvent).where(AgentEvent.call_id.in_(call_ids), AgentEvent.kind == "screen_pop"))}
    clips: dict[str, Recording] = {}
    for rec in session.scalars(select(Recording).where(Recording.record_id.in_(record_ids),
                                                       Recording.kind == "ivr_clip").order_by(Recording.id)):
        clips[rec.record_id] = rec          # the latest clip of each call wins
    texts: dict[int, list[Transcript]] = {}
    if clips:
        for t in session.scalars(select(Transcript).where(Transcript.recording_id.in_([c.id for c in clips.values()]))):
            texts.setdefault(t.recording_id, []).append(t)
    for entry, call in ready:
        key = (call.id, entry["agent_id"], entry["event_id"])
        if key in seen:
            continue
        seen.add(key)
        clip = clips.get(call.record_id)
        payload = screen_pop_payload(call, clip, texts.get(clip.id, []) if clip is not None else [])
        payload["event_id"] = entry["event_id"]
        session.add(AgentEvent(agent_id=entry["agent_id"], call_id=call.id, kind="screen_pop", payload=payload))
    return deferred


_OTHER_OPS: dict[str, Callable[[Session, dict[str, Any]], bool]] = {"fill": _apply_fill, "clip": _apply_clip}


def apply_entries(db: Database, entries: list[dict[str, Any]], tz: str = "Asia/Shanghai") -> list[dict[str, Any]]:
    """Apply journal entries in one transaction; returns those to retry later (their record is not there yet).

    Idempotent: upserts are whole-field writes (``save_snapshot``), clips are unique on (record, kind, uri),
    screen pops carry an event id, a deferred ticket number is allocated only while the record has none.
    """
    batch = _merge_batch(entries)
    deferred: list[dict[str, Any]] = []
    with db.write() as session:
        cache: dict[str, Call] = lock_calls(session, [e["record_id"] for e in entries if "record_id" in e])
        session.info["hl_calls"] = cache
        snapshots: list[dict[str, Any]] = []
        for record_id, fields in batch.upserts.items():
            clean = {k: v for k, v in fields.items() if not k.startswith("_")}
            if record_id not in cache and "caller_number" not in clean:
                # a partial upsert for a record whose opening entry is in another process's journal
                deferred.append({"op": "upsert", "record_id": record_id, "fields": clean,
                                 "complete": record_id in batch.complete,
                                 "allocate_ticket": record_id in batch.allocate,
                                 "_pos": min((e["_pos"] for e in entries if e.get("record_id") == record_id and "_pos" in e),
                                             key=lambda p: (p.index, p.offset), default=None)})
                continue
            snapshots.append({"record_id": record_id, **clean})
        save_snapshots(session, snapshots, locked=cache)
        judged = False
        for snap in snapshots:
            record_id = snap["record_id"]
            call = cache[record_id]
            if record_id in batch.allocate and not call.ticket_no:
                call.ticket_no = allocate_ticket_no(session, tz)
            if record_id in batch.complete or call.state == "complete":
                problems = judge(call)
                judged = True
                if problems and not pending_recording_only(problems):
                    log.warning("call_record_invalid", record_id=record_id, problems=[p.message for p in problems])
        if judged:
            session.flush()
        screen_pops: list[dict[str, Any]] = []
        for entry in batch.others:
            if entry.get("op") == "screen_pop":
                screen_pops.append(entry)   # after the batch's fills and clips: the pop shows the latest state
                continue
            fn = _OTHER_OPS.get(entry.get("op", ""))
            if fn is None:
                log.error("journal_unknown_op", op=entry.get("op"))
                continue
            if not fn(session, entry):
                deferred.append(entry)
        deferred.extend(_apply_screen_pops(session, screen_pops))
    return deferred


def is_store_outage(exc: BaseException) -> bool:
    return isinstance(exc, (OperationalError, DBAPIError, OSError))


# --------------------------------------------------------------------------- services backed by the store
class StoreServices:
    """Clock, business hours, ticket numbers and look-ups for the engine, with the store possibly down.

    Ticket allocation runs with a deadline (``ticket_timeout``): when the store does not answer in time the
    voicemail still completes and the number is allocated when the journal is replayed (the caller is then
    told "we will call you back" without a number).
    """

    def __init__(self, db_factory: Callable[[], Database], hours: BusinessHours, clip_dir: str, timezone_name: str,
                 store_up: Callable[[], bool] = lambda: True, ticket_timeout: float = 2.0) -> None:
        self._db_factory = db_factory
        self.hours = hours
        self.clip_dir = clip_dir.rstrip("/")
        self.tz = timezone_name
        self.store_up = store_up
        self.ticket_timeout = ticket_timeout
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="store-call")

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def is_open(self, now: datetime) -> bool:
        return self.hours.is_open(now)

    def _call(self, fn: Callable[[Database], Any]) -> Any:
        future = self._pool.submit(fn, self._db_factory())
        return future.result(timeout=self.ticket_timeout)

    def allocate_ticket(self) -> str | None:
        if not self.store_up():
            return None

        def work(db: Database) -> str:
            with db.write() as session:
                return allocate_ticket_no(session, self.tz)
        try:
            return str(self._call(work))
        except (FutureTimeout, Exception) as exc:  # noqa: BLE001 - any store failure defers the number
            log.warning("ticket_allocation_failed", error=f"{type(exc).__name__}: {exc}")
            return None

    def ticket_status(self, ticket_no: str) -> str | None:
        def work(db: Database) -> str | None:
            with db.session() as session:
                call = session.scalar(select(Call).where(Call.ticket_no == ticket_no))
                return None if call is None else (call.status or "已受理")
        if not self.store_up():
            raise TicketLookupUnavailable("store unreachable")
        try:
            return self._call(work)
        except (FutureTimeout, Exception) as exc:  # noqa: BLE001
            raise TicketLookupUnavailable(str(exc)) from exc

    def clip_path(self, record_id: str, kind: str, n: int) -> str:
        safe = "".join(c if c.isalnum() or c in ".-_" else "_" for c in record_id)
        return f"{self.clip_dir}/{safe}-{kind}-{n}"

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


__all__ = ["CallRecords", "StoreServices", "apply_entries", "pending_recording_only", "screen_pop_payload",
           "CLIP_JOB_PRIORITY"]
