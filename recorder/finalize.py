"""Finalize recordings after hangup: check the spool files, archive one file, record it, enqueue transcription.

Order (crash-safe, idempotent):

1. read and check the spool audio (:mod:`recorder.audio_check`); a bad set is quarantined instead;
2. encode the archive copy under a temporary name, fsync, decode it back, sha256;
3. one transaction, with the call (or clip) row locked: rename the copy into place + fsync the directory,
   insert the ``recordings`` row (status ``archived``), the ``transcribe`` job, ``Call.recording`` and the
   re-validated verdict — commit;
4. remove the spool files and fsync the spool directory.

A crash before 3 leaves the spool untouched (the next run writes the copy again); a crash after 3 is
finished by the next run, which finds the archived row, checks the archive hash and removes what is left
of the spool. Running twice returns the same :class:`FinalizeResult` and changes nothing.

Call recordings are stereo: channel 0 (left) = caller (MixMonitor ``r()``, ``-in``), channel 1 (right) =
agent (``t()``, ``-out``). IVR description clips and voicemail clips are mono.

Duration check: Asterisk's legs run from MixMonitor's start (anywhere between answer and queue entry,
depending on the dialplan) to hangup, so a call's audio must be at least its talk time and at most the
whole call (``ended_at − call_start_at``), each within ``talk_time_tolerance_seconds``. Too short means
lost audio; too long means the file is not this call's.

A quarantined call recording: ``Call.recording`` stays empty, the ``recordings`` row (status
``quarantined``, ``quarantine_reason``) is linked by ``call_id``, and the call's ``problems`` gets an entry
``{"field": "recording", "code": "quarantined", "message": ...}`` after the validator's own (re-added each
time the recorder touches the record; the row is the durable evidence).
"""

from __future__ import annotations

import dataclasses
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import structlog
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from config import Settings
from config.log import bind_call, get_logger
from recorder import quarantine
from recorder.archive import (archive_uri, check_readback, fsync_dir, publish, resolve_uri, sha256_file,
                              write_temp)
from recorder.audio_check import AudioInfo, read_audio
from recorder.errors import ArchiveMismatch, CallNotComplete, RecordingNotFound, RecordingRejected
from recorder.spool import SpoolSet, discover, newest_mtime, spool_linkedids
from store.appendix_c import OUTCOME_ANSWERED
from store.db import Database
from store.jobs import FAST_PATH_PRIORITY, enqueue
from store.models import Call, Job, Recording, utcnow
from store.records import get_call, revalidate
from store.sweep import is_swept

log = get_logger(__name__)

CLIP_KINDS: tuple[str, ...] = ("ivr_clip", "voicemail")
# Status a flow sets on a clip row it creates with a spool uri (an "archived" row without sha256 counts too).
PENDING = "pending"
# Legs may differ by a frame or two at hangup; more than this is a broken recording.
LEG_LENGTH_TOLERANCE_SECONDS = 0.1
# Job priority, higher first: an IVR description clip is needed while the agent is on the call.
# IVR description clips take the workers' fast path: the agent is waiting for their transcript.
TRANSCRIBE_PRIORITY: dict[str, int] = {"call": 0, "voicemail": 0, "ivr_clip": FAST_PATH_PRIORITY}
DEFAULT_SETTLE_SECONDS = 30.0


@dataclass(frozen=True)
class FinalizeResult:
    record_id: str
    kind: str                         # call | ivr_clip | voicemail
    status: str                       # archived | quarantined | absent (no recording and none expected)
    recording_id: int | None = None
    uri: str | None = None            # archived: relative to archive_dir; quarantined: relative to quarantine_dir
    sha256: str | None = None
    duration_seconds: float | None = None
    channels: int | None = None
    sample_rate: int | None = None
    format: str | None = None
    reason: str | None = None         # quarantine reason
    job_id: int | None = None         # the transcribe job enqueued with the archived row
    changed: bool = field(default=False, compare=False)   # whether this run changed anything


@dataclass(frozen=True)
class DurationWindow:
    min_seconds: float
    max_seconds: float | None

    def check(self, info: AudioInfo, what: str) -> None:
        d = info.duration_seconds
        if d < self.min_seconds:
            raise RecordingRejected(f"too short: {d:.2f} s of audio, the {what} needs at least {self.min_seconds:.2f} s "
                                    f"(talk time minus tolerance)", info.path)
        if self.max_seconds is not None and d > self.max_seconds:
            raise RecordingRejected(f"too long: {d:.2f} s of audio, the call lasted at most {self.max_seconds:.2f} s "
                                    f"(with tolerance)", info.path)


@dataclass(frozen=True)
class _Audio:
    data: np.ndarray                  # int16 frames × channels
    sample_rate: int
    source_files: list[dict[str, Any]]
    spool_paths: tuple[Path, ...]     # removed after the commit

    @property
    def duration_seconds(self) -> float:
        return round(self.data.shape[0] / self.sample_rate, 3)


# ---------------------------------------------------------------- checks

def call_window(call: Call, tolerance: float) -> DurationWindow:
    talk = call.talk_seconds
    if talk is None and call.answered_at and call.ended_at:
        talk = int((call.ended_at - call.answered_at).total_seconds())
    whole = (call.ended_at - call.call_start_at).total_seconds() if call.ended_at else None
    if is_swept({"ivr_path": call.ivr_path}):
        whole = None        # a swept record's ended_at is a lower bound (store.sweep): no upper limit
    return DurationWindow(max(0.0, float(talk or 0) - tolerance), None if whole is None else whole + tolerance)


def _source_entry(path: Path, role: str, info: AudioInfo | None) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": path.name, "spool_path": str(path), "role": role, "sha256": sha256_file(path)}
    if info is not None:
        entry.update(format=info.format, sample_rate=info.sample_rate, channels=info.channels, frames=info.frames)
    return entry


def load_call_audio(spool_set: SpoolSet, window: DurationWindow) -> _Audio:
    """The call's audio as one stereo array (caller | agent); :class:`RecordingRejected` says why not."""
    if spool_set.layout == "legs":
        legs: list[tuple[np.ndarray, AudioInfo]] = []
        for path, role in zip(spool_set.files, ("caller", "agent")):
            if not path.exists():
                raise RecordingRejected(f"missing leg: the {role} leg {path.name} is not in the spool", str(path))
            data, info = read_audio(path, raw_channels=1)
            if info.channels != 1:
                raise RecordingRejected(f"wrong channels: a leg must be mono, got {info.channels}", str(path))
            legs.append((data, info))
        (a, ia), (b, ib) = legs
        if ia.sample_rate != ib.sample_rate:
            raise RecordingRejected(f"wrong rate: legs differ ({ia.sample_rate} Hz vs {ib.sample_rate} Hz)", ib.path)
        if abs(ia.frames - ib.frames) > LEG_LENGTH_TOLERANCE_SECONDS * ia.sample_rate:
            raise RecordingRejected(f"legs differ in length: {ia.duration_seconds:.2f} s vs {ib.duration_seconds:.2f} s", ib.path)
        n = max(ia.frames, ib.frames)
        stereo = np.zeros((n, 2), dtype=np.int16)
        stereo[: ia.frames, 0] = a[:, 0]
        stereo[: ib.frames, 1] = b[:, 0]
        longest = ia if ia.frames >= ib.frames else ib
        window.check(longest, "call")
        sources = [_source_entry(spool_set.files[0], "caller", ia), _source_entry(spool_set.files[1], "agent", ib)]
        rate = ia.sample_rate
    else:
        path = spool_set.files[0]
        stereo, info = read_audio(path, raw_channels=2)
        if info.channels != 2:
            raise RecordingRejected(f"wrong channels: expected 2 (caller | agent), got {info.channels}; "
                                    f"a mono mix cannot be split by speaker", str(path))
        window.check(info, "call")
        sources = [_source_entry(path, "stereo", info)]
        rate = info.sample_rate
    sources += [_source_entry(p, "redundant", None) for p in spool_set.redundant if p.exists()]
    return _Audio(stereo, rate, sources, tuple(p for p in (*spool_set.files, *spool_set.redundant)))


def load_clip_audio(path: Path, window: DurationWindow) -> _Audio:
    data, info = read_audio(path, raw_channels=1)
    if info.channels != 1:
        raise RecordingRejected(f"wrong channels: a clip must be mono, got {info.channels}", str(path))
    window.check(info, "clip")
    return _Audio(data, info.sample_rate, [_source_entry(path, "clip", info)], (path,))


# ---------------------------------------------------------------- rows and results

def _result(row: Recording, job_id: int | None, changed: bool) -> FinalizeResult:
    return FinalizeResult(
        record_id=row.record_id, kind=row.kind, status=row.status, recording_id=row.id, uri=row.uri,
        sha256=row.sha256, duration_seconds=row.duration_seconds, channels=row.channels, sample_rate=row.sample_rate,
        format=row.format, reason=row.quarantine_reason, job_id=job_id, changed=changed)


def _job_id(s: Session, recording_id: int) -> int | None:
    return s.scalar(select(Job.id).where(Job.recording_id == recording_id, Job.kind == "transcribe").order_by(Job.id).limit(1))


def _latest(s: Session, record_id: str, kind: str, status: str) -> Recording | None:
    return s.scalar(select(Recording).where(Recording.record_id == record_id, Recording.kind == kind,
                                            Recording.status == status).order_by(Recording.id.desc()).limit(1))


def _remove_spool(paths: Sequence[Path]) -> None:
    dirs = set()
    for p in paths:
        if p.exists():
            p.unlink()
            dirs.add(p.parent)
    for d in dirs:
        fsync_dir(d)


def _finish_archived(settings: Settings, row: Recording) -> bool:
    """After a crash between commit and spool removal: remove what is left, once the archive hash checks."""
    left = [Path(e["spool_path"]) for e in row.source_files or [] if e.get("spool_path") and Path(e["spool_path"]).exists()]
    if not left:
        return False
    path = resolve_uri(settings, row.uri or "")
    if not path.is_file() or sha256_file(path) != row.sha256:
        raise ArchiveMismatch(f"recording {row.id}: archive {row.uri} is missing or altered; spool files kept: "
                              f"{', '.join(p.name for p in left)}")
    _remove_spool(left)
    log.info("recording_spool_cleanup_finished", recording_id=row.id, files=[p.name for p in left])
    return True


def _reason_text(exc: RecordingRejected) -> str:
    return f"{Path(exc.path).name}: {exc.reason}" if exc.path else exc.reason


def _quarantine_problem(reason: str, uri: str | None) -> dict[str, str]:
    where = f"，文件已移至隔离区 {uri}" if uri else ""
    return {"field": "recording", "code": "quarantined", "message": f"录音文件(recording)：录音已隔离（{reason}）{where}"}


def _mark_call_quarantined(s: Session, call: Call, reason: str, uri: str | None) -> None:
    revalidate(s, call)
    call.problems = [*call.problems, _quarantine_problem(reason, uri)]
    call.valid = False
    s.flush()


# ---------------------------------------------------------------- call recording

def finalize_call_recording(db: Database, settings: Settings, record_id: str) -> FinalizeResult:
    """Finalize the two-channel recording of one completed call (idempotent, crash-safe)."""
    bind_call(linkedid=record_id)
    try:
        return _finalize_call(db, settings, record_id)
    finally:
        structlog.contextvars.unbind_contextvars("linkedid")


def _finalize_call(db: Database, settings: Settings, record_id: str) -> FinalizeResult:
    with db.session() as s:
        call = get_call(s, record_id)
        if call.state != "complete" or call.ended_at is None:
            raise CallNotComplete(f"call {record_id} is not complete (no hangup recorded)")
        done = _latest(s, record_id, "call", "archived")
        held = _latest(s, record_id, "call", "quarantined")
        result = _result(done, _job_id(s, done.id), False) if done else None
        held_result = _result(held, None, False) if held else None
        window = call_window(call, settings.recordings.talk_time_tolerance_seconds)
        answered = call.call_outcome == OUTCOME_ANSWERED
        started_at = call.call_start_at
    if done is not None and result is not None:
        changed = _finish_archived(settings, done)
        return dataclasses.replace(result, changed=changed)
    if held is not None and held_result is not None and quarantine.finish_moves(settings, held.source_files or []):
        return dataclasses.replace(held_result, changed=True)
    spool_set = discover(Path(settings.recordings.spool_dir), record_id)
    if spool_set is None:
        if held_result is not None:
            return held_result
        if answered:
            return _quarantine_call(db, settings, record_id, "missing: no recording of the answered call in the spool", ())
        return FinalizeResult(record_id, "call", "absent")
    try:
        audio = load_call_audio(spool_set, window)
    except RecordingRejected as exc:
        return _quarantine_call(db, settings, record_id, _reason_text(exc), spool_set.present)
    return _archive_call(db, settings, record_id, started_at, audio)


def _quarantine_call(db: Database, settings: Settings, record_id: str, reason: str,
                     sources: Sequence[Path]) -> FinalizeResult:
    moves = quarantine.plan_moves(settings, record_id, sources)
    uri = moves[0].quarantine_uri if moves else None
    with db.write() as s:
        call = s.scalar(select(Call).where(Call.record_id == record_id).with_for_update())
        assert call is not None
        row = Recording(call_id=call.id, record_id=record_id, kind="call", status="quarantined", uri=uri,
                        source_files=[m.as_json() for m in moves], quarantine_reason=reason)
        s.add(row)
        s.flush()
        _mark_call_quarantined(s, call, reason, uri)
        result = _result(row, None, True)
    quarantine.execute(settings, moves)
    log.warning("recording_quarantined", kind="call", recording_id=result.recording_id, reason=reason, uri=uri)
    return result


@contextmanager
def _staged(audio: _Audio, target: Path, fmt: str) -> Iterator[tuple[Path, str]]:
    """The audio written beside its archive ``target``, read back and hashed: ``(temp file, sha256)``. The temp
    file is gone on exit (published under ``target``, or removed)."""
    tmp = write_temp(audio.data, audio.sample_rate, target, fmt)
    try:
        check_readback(tmp, audio.data, audio.sample_rate)
        yield tmp, sha256_file(tmp)
    finally:
        tmp.unlink(missing_ok=True)


def _archive_call(db: Database, settings: Settings, record_id: str, started_at: datetime, audio: _Audio) -> FinalizeResult:
    fmt = settings.recordings.archive_format
    uri = archive_uri(settings, started_at, record_id)
    target = resolve_uri(settings, uri)
    with _staged(audio, target, fmt) as (tmp, digest):
        with db.write() as s:
            call = s.scalar(select(Call).where(Call.record_id == record_id).with_for_update())
            assert call is not None
            done = _latest(s, record_id, "call", "archived")
            if done is not None:                       # another finalizer won the race
                return _result(done, _job_id(s, done.id), False)
            publish(tmp, target)
            row = Recording(call_id=call.id, record_id=record_id, kind="call", status="archived", uri=uri, sha256=digest,
                            duration_seconds=audio.duration_seconds, channels=int(audio.data.shape[1]),
                            sample_rate=audio.sample_rate, format=fmt, source_files=audio.source_files)
            s.add(row)
            s.flush()
            job = _enqueue(s, settings, row)
            call.recording = {"uri": uri, "sha256": digest, "duration_seconds": audio.duration_seconds,
                              "channels": int(audio.data.shape[1]), "sample_rate": audio.sample_rate}
            revalidate(s, call)
            result = _result(row, job.id, True)
    _remove_spool(audio.spool_paths)
    log.info("recording_archived", kind="call", recording_id=result.recording_id, uri=uri, sha256=digest,
             duration_seconds=result.duration_seconds, sample_rate=result.sample_rate, job_id=result.job_id)
    return result


def _enqueue(s: Session, settings: Settings, row: Recording) -> Job:
    return enqueue(s, recording_id=row.id, call_id=row.call_id, priority=TRANSCRIBE_PRIORITY.get(row.kind, 0),
                   max_attempts=settings.asr.max_attempts,
                   payload={"record_id": row.record_id, "kind": row.kind, "uri": row.uri, "channels": row.channels})


# ---------------------------------------------------------------- clips (IVR description, voicemail)

def spool_path(settings: Settings, uri: str) -> Path:
    """A clip row's spool uri: absolute, ``file://``-prefixed, or relative to ``spool_dir``."""
    if uri.startswith("file://"):
        uri = uri[len("file://"):]
    p = Path(uri)
    return p if p.is_absolute() else Path(settings.recordings.spool_dir) / p


def _is_pending(row: Recording) -> bool:
    return row.status == PENDING or (row.status == "archived" and row.sha256 is None)


def finalize_clip(db: Database, settings: Settings, recording_id: int) -> FinalizeResult:
    """Finalize a mono clip row (kind ``ivr_clip``/``voicemail``) created by the flow with a spool uri."""
    with db.session() as s:
        row = s.get(Recording, recording_id)
        if row is None:
            raise RecordingNotFound(f"recording {recording_id}")
        bind_call(linkedid=row.record_id)
        try:
            call = s.get(Call, row.call_id) if row.call_id else None
            tol = settings.recordings.talk_time_tolerance_seconds
            whole = (call.ended_at - call.call_start_at).total_seconds() if call and call.ended_at else None
            window = DurationWindow(0.0, None if whole is None else whole + tol)
            started_at = call.call_start_at if call else row.created_at
            pending = _is_pending(row)
            result = _result(row, _job_id(s, row.id), False)
            src = spool_path(settings, row.uri) if pending and row.uri else None
            snapshot = (row.status, list(row.source_files or []))
        finally:
            structlog.contextvars.unbind_contextvars("linkedid")
    if not pending:
        status, sources = snapshot
        changed = False
        if status == "archived":
            changed = _finish_archived(settings, row)
        elif status == "quarantined":
            changed = quarantine.finish_moves(settings, sources)
        return dataclasses.replace(result, changed=changed)
    bind_call(linkedid=result.record_id)
    try:
        if src is None:
            return _quarantine_clip(db, settings, recording_id, "missing: the clip row has no spool uri", ())
        try:
            audio = load_clip_audio(src, window)
        except RecordingRejected as exc:
            return _quarantine_clip(db, settings, recording_id, _reason_text(exc), (src,) if src.exists() else ())
        return _archive_clip(db, settings, recording_id, started_at, audio)
    finally:
        structlog.contextvars.unbind_contextvars("linkedid")


def _quarantine_clip(db: Database, settings: Settings, recording_id: int, reason: str,
                     sources: Sequence[Path]) -> FinalizeResult:
    with db.write() as s:
        row = s.get(Recording, recording_id, with_for_update=True)
        assert row is not None
        if not _is_pending(row):
            return _result(row, _job_id(s, row.id), False)
        moves = quarantine.plan_moves(settings, row.record_id, sources)
        row.status = "quarantined"
        row.quarantine_reason = reason
        if moves:
            row.uri = moves[0].quarantine_uri
        row.source_files = [m.as_json() for m in moves]
        s.flush()
        result = _result(row, None, True)
    quarantine.execute(settings, moves)
    log.warning("recording_quarantined", kind=result.kind, recording_id=recording_id, reason=reason, uri=result.uri)
    return result


def _archive_clip(db: Database, settings: Settings, recording_id: int, started_at: datetime, audio: _Audio) -> FinalizeResult:
    fmt = settings.recordings.archive_format
    with db.session() as s:
        row = s.get(Recording, recording_id)
        assert row is not None
        uri = archive_uri(settings, started_at, f"{row.record_id}-{row.kind}-{row.id}")
    target = resolve_uri(settings, uri)
    with _staged(audio, target, fmt) as (tmp, digest):
        with db.write() as s:
            row = s.get(Recording, recording_id, with_for_update=True)
            assert row is not None
            if not _is_pending(row):
                return _result(row, _job_id(s, row.id), False)
            publish(tmp, target)
            row.status, row.uri, row.sha256, row.format = "archived", uri, digest, fmt
            row.duration_seconds, row.channels, row.sample_rate = audio.duration_seconds, 1, audio.sample_rate
            row.source_files = audio.source_files
            s.flush()
            job = _enqueue(s, settings, row)
            result = _result(row, job.id, True)
    _remove_spool(audio.spool_paths)
    log.info("recording_archived", kind=result.kind, recording_id=recording_id, uri=uri, sha256=digest,
             duration_seconds=result.duration_seconds, job_id=result.job_id)
    return result


# ---------------------------------------------------------------- record and sweeper

def pending_clip_ids(s: Session, record_id: str | None = None) -> list[int]:
    stmt = select(Recording.id).where(Recording.kind.in_(CLIP_KINDS), or_(
        Recording.status == PENDING, (Recording.status == "archived") & Recording.sha256.is_(None)))
    if record_id is not None:
        stmt = stmt.where(Recording.record_id == record_id)
    return list(s.scalars(stmt.order_by(Recording.id)))


def finalize_record(db: Database, settings: Settings, record_id: str) -> list[FinalizeResult]:
    """The call recording and every clip of one record (``hotline recordings finalize --record-id``); clips already
    finalized come back unchanged, so a second run returns the same list."""
    results = [finalize_call_recording(db, settings, record_id)]
    with db.session() as s:
        clip_ids = list(s.scalars(select(Recording.id).where(Recording.record_id == record_id,
                                                             Recording.kind.in_(CLIP_KINDS)).order_by(Recording.id)))
    results += [finalize_clip(db, settings, rid) for rid in clip_ids]
    return results


def finalize_pending(db: Database, settings: Settings, *, settle_seconds: float = DEFAULT_SETTLE_SECONDS,
                     now: datetime | None = None) -> list[FinalizeResult]:
    """Sweeper for ``hotline serve``: finalize every completed call whose spool files are present, and every pending clip.

    A call is taken once its record is complete, it ended at least ``settle_seconds`` ago and its spool
    files have not changed for as long (MixMonitor closes the files just after hangup). One failing item is
    logged and does not stop the sweep.
    """
    now = now or utcnow()
    wall = time.time()
    spool = Path(settings.recordings.spool_dir)
    results: list[FinalizeResult] = []
    for linkedid in spool_linkedids(spool):
        found = discover(spool, linkedid)
        if found is None or wall - newest_mtime(found.present) < settle_seconds:
            continue
        with db.session() as s:
            call = s.scalar(select(Call).where(Call.record_id == linkedid))
            ready = (call is not None and call.state == "complete" and call.ended_at is not None
                     and call.ended_at <= now - timedelta(seconds=settle_seconds))
        if not ready:
            continue
        try:
            results.append(finalize_call_recording(db, settings, linkedid))
        except Exception:  # one bad call must not stop the sweep
            log.exception("recording_finalize_failed", linkedid=linkedid)
    with db.session() as s:
        clips = [(r.id, r.uri, r.created_at) for r in s.scalars(select(Recording).where(Recording.id.in_(pending_clip_ids(s))))]
    for rid, uri, created_at in clips:
        src = spool_path(settings, uri) if uri else None
        if src is not None and src.exists():
            if wall - src.stat().st_mtime < settle_seconds:
                continue
        elif created_at > now - timedelta(seconds=settle_seconds):
            continue
        try:
            results.append(finalize_clip(db, settings, rid))
        except Exception:
            log.exception("recording_finalize_failed", recording_id=rid)
    return results


__all__ = ["FinalizeResult", "DurationWindow", "finalize_call_recording", "finalize_clip", "finalize_record",
           "finalize_pending", "pending_clip_ids", "call_window", "load_call_audio", "load_clip_audio",
           "CLIP_KINDS", "PENDING", "TRANSCRIBE_PRIORITY", "LEG_LENGTH_TOLERANCE_SECONDS", "DEFAULT_SETTLE_SECONDS"]
