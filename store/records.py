"""Call records: open, update, complete (validated), read back as Appendix C dicts.

A record's wire form (journal, API, export) is a dict keyed by Appendix C field ids with datetimes as
ISO 8601 strings with offset. :func:`save_snapshot` applies such a dict idempotently, so replaying a
journal twice changes nothing.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Iterable, Mapping
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.appendix_c import FIELDS, FIELDS_BY_ID
from store.models import Call, QaReview, Transcript
from store.validation import Problem, validate_record

# Appendix C ids that are columns of `calls` (transcript and qa_review are assembled from their tables).
COLUMN_FIELDS: tuple[str, ...] = tuple(f.id for f in FIELDS if f.id not in ("transcript", "qa_review"))
DATETIME_FIELDS = frozenset(f.id for f in FIELDS if f.type == "datetime")
# Bookkeeping columns a snapshot may carry besides the Appendix C fields.
EXTRA_FIELDS = ("uniqueid",)


class RecordNotFound(LookupError):
    pass


class UnknownField(ValueError):
    pass


def parse_datetime(value: Any, field: str) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"{FIELDS_BY_ID[field].label}: not an ISO 8601 time: {value!r}") from exc
    else:
        raise ValueError(f"{FIELDS_BY_ID[field].label}: not a time: {value!r}")
    if dt.tzinfo is None:
        raise ValueError(f"{FIELDS_BY_ID[field].label}: time without offset: {value!r}")
    return dt


def apply_changes(call: Call, changes: Mapping[str, Any]) -> None:
    """Set Appendix C fields on the row in memory (datetimes parsed from ISO strings); no I/O."""
    for key, value in changes.items():
        if key in DATETIME_FIELDS:
            value = parse_datetime(value, key)
        elif key not in COLUMN_FIELDS and key not in EXTRA_FIELDS:
            raise UnknownField(f"{key!r} is not an Appendix C field of the call record")
        setattr(call, key, value)


def get_call(session: Session, record_id: str, for_update: bool = False) -> Call:
    """The call row; ``for_update`` locks it (PostgreSQL) so concurrent writers see each other's changes."""
    stmt = select(Call).where(Call.record_id == record_id)
    call = session.scalar(stmt.with_for_update() if for_update else stmt)
    if call is None:
        raise RecordNotFound(record_id)
    return call


def open_call(session: Session, fields: Mapping[str, Any]) -> Call:
    """Create the record at first contact; a second open of the same record_id returns the existing row."""
    record_id = fields["record_id"]
    call = session.scalar(select(Call).where(Call.record_id == record_id))
    if call is None:
        call = Call(record_id=record_id, ivr_path=[], problems=[])
        apply_changes(call, {k: v for k, v in fields.items() if k != "record_id"})
        session.add(call)
        session.flush()
    return call


def update_call(session: Session, record_id: str, changes: Mapping[str, Any]) -> Call:
    call = get_call(session, record_id, for_update=True)
    apply_changes(call, changes)
    return call


def complete_call(session: Session, record_id: str, changes: Mapping[str, Any] | None = None) -> list[Problem]:
    """Apply the last changes, mark the record complete and store the validator's verdict (never drops it)."""
    call = get_call(session, record_id, for_update=True)
    if changes:
        apply_changes(call, changes)
    return revalidate(session, call)


def judge(call: Call) -> list[Problem]:
    """Mark the record complete and store the validator's verdict on it (no I/O; the caller flushes)."""
    problems = validate_record(record_dict(call))
    call.state = "complete"
    call.valid = not problems
    call.problems = [p.to_dict() for p in problems]
    return problems


def revalidate(session: Session, call: Call) -> list[Problem]:
    problems = judge(call)
    session.flush()
    return problems


def lock_calls(session: Session, record_ids: Iterable[str], chunk: int = 500) -> dict[str, Call]:
    """The existing rows of ``record_ids``, locked (PostgreSQL ``FOR UPDATE``), in a few queries."""
    ids = sorted(set(record_ids))
    found: dict[str, Call] = {}
    for i in range(0, len(ids), chunk):
        stmt = select(Call).where(Call.record_id.in_(ids[i:i + chunk])).with_for_update()
        for call in session.scalars(stmt):
            found[call.record_id] = call
    return found


def save_snapshots(session: Session, snapshots: Iterable[Mapping[str, Any]],
                   locked: dict[str, Call] | None = None) -> dict[str, Call]:
    """Bulk form of :func:`save_snapshot` (journal replay): changes applied in memory, new rows added, one flush.

    ``locked``: the rows :func:`lock_calls` already returned for every snapshot's record (a record not in it
    does not exist); it is updated with the rows created here. Without it, one locking read is made here.
    Returns every row by record_id."""
    snaps = list(snapshots)
    calls = locked if locked is not None else lock_calls(session, [s["record_id"] for s in snaps])
    for snap in snaps:
        record_id = snap["record_id"]
        call = calls.get(record_id)
        if call is None:
            call = calls[record_id] = Call(record_id=record_id, ivr_path=[], problems=[])
            session.add(call)
        apply_changes(call, {k: v for k, v in snap.items() if k != "record_id"})
    session.flush()
    return calls


def save_snapshot(session: Session, snapshot: Mapping[str, Any], complete: bool) -> Call:
    """Idempotent upsert of a whole record (journal replay): same snapshot twice → same row."""
    call = save_snapshots(session, [snapshot])[snapshot["record_id"]]
    if complete:
        revalidate(session, call)
    return call


def _iso(value: datetime | None, tz: ZoneInfo | None) -> str | None:
    if value is None:
        return None
    return value.astimezone(tz or timezone.utc).isoformat()


def record_dict(call: Call, *, tz: str | None = None, transcripts: Iterable[Transcript] = (),
                qa_review: QaReview | None = None, as_json: bool = False) -> dict[str, Any]:
    """The call as an Appendix C record. ``as_json`` renders datetimes as ISO strings in ``tz``."""
    zone = ZoneInfo(tz) if tz else None
    out: dict[str, Any] = {}
    for field in COLUMN_FIELDS:
        value = getattr(call, field)
        if field in DATETIME_FIELDS and value is not None and (as_json or zone):
            value = _iso(value, zone) if as_json else value.astimezone(zone)
        out[field] = value
    transcripts = list(transcripts)
    if transcripts:
        out["transcript"] = {
            "model": transcripts[0].model,
            "channels": [{"channel": t.channel, "speaker": t.speaker, "segments": t.segments} for t in
                         sorted(transcripts, key=lambda t: t.channel)],
        }
    else:
        out["transcript"] = None
    if qa_review is not None:
        out["qa_review"] = {
            "reviewer": qa_review.reviewer, "items": qa_review.items, "total": qa_review.total,
            "comment": qa_review.comment,
            "reviewed_at": _iso(qa_review.reviewed_at, zone) if as_json else qa_review.reviewed_at,
        }
    else:
        out["qa_review"] = None
    return out
