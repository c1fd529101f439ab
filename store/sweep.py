"""Close call records that stayed ``open``: the stale-record sweep.

A record is completed by the caller's flow session or, failing that, by the ``call-end`` flow of Asterisk's ``h``
extension. If our process died mid-call *and* the ``h`` extension could not reach it, nothing ever completes the
record: it stays ``open`` and KPIs, QA and the callback list never see it. The sweep closes every record still
open ``max_open_seconds`` after its ``call_start_at``.

What a swept record says (decided by :func:`closing_fields` from the row alone, no I/O):

* ``call_outcome`` from the evidence the row holds, first match wins:

  1. ``answered_at`` set                                  → 人工接通 (an agent took the call)
  2. a voicemail ticket (``ticket_no`` or ``disposition``) → 留言 (the voicemail node stores its ticket only
     once a message was kept)
  3. a flow failure step in ``ivr_path`` (``error``, ``call-end:fallback``) → 系统失败 (the dialplan's
     fallback took the caller over; what happened after is unknown)
  4. an after-hours step in ``ivr_path`` (``<hours node>:closed``) → 非工作时段
  5. anything else                                        → 系统失败

  Rule 5 covers a record left in the queue or in the IVR. Such a record stays open when our process died
  mid-call, and Asterisk carries on without us: a caller in ``Queue()`` can still be answered (the agent's
  ``agent-connect`` AGI cannot reach us, so ``answered_at`` never arrives), and a caller in the IVR is queued
  by the dialplan's fallback. 排队放弃 or IVR放弃 would be guesses that move the abandonment KPIs, so the
  record says what is known: we lost track of the call. The MixMonitor recording, if any, still tells QA.

* ``hangup_party`` = 系统 (the spec's value for "not the caller, not the agent") unless the row already has one;
* ``ended_at`` = the latest time the row proves the call was alive (``answered_at`` / ``queue_enter_at`` /
  ``call_start_at``), never the sweep time, so durations are lower bounds and not inflated by the delay;
* ``wait_seconds`` / ``talk_seconds`` computed from those times as Appendix C defines them;
* ``callback_required`` true for every outcome the normal close flags (all but 人工接通 and 非工作时段);
* ``ivr_path`` gets the step ``swept``, so QA and KPI queries can tell a swept record from a closed call.

The record is then judged like any completed record (:func:`store.records.judge`): ``valid`` / ``problems``
are the validator's verdict on what was stored. A voicemail ticket whose number was never allocated gets one,
as the journal replay would have done.

Rows are taken in chunks (``limit``, keyset on ``calls.id``) with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so
the sweep never waits for, nor blocks, a live writer; :func:`sweep` commits each chunk on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from config.log import get_logger
from store.appendix_c import (CALLBACK_OUTCOMES, HANGUP_PARTIES, LOCATION_APPEALS, OUTCOME_AFTER_HOURS,
                              OUTCOME_ANSWERED, OUTCOME_SYSTEM_FAILURE, OUTCOME_VOICEMAIL)
from store.db import Database
from store.models import Call
from store.records import apply_changes, judge, record_dict
from store.tickets import allocate_ticket_no
from store.validation import has_ticket, is_present

log = get_logger(__name__)

SWEPT_STEP = "swept"
# Steps the engine writes when a flow failed and the dialplan's fallback took the caller over.
FAILURE_STEPS = frozenset({"error", "call-end:fallback"})
# An ``hours`` node writes ``<node id>:open`` / ``<node id>:closed``; no other node writes ``:closed``.
AFTER_HOURS_SUFFIX = ":closed"
HANGUP_SYSTEM = "系统"
DEFAULT_CHUNK = 500
DEFAULT_TIMEZONE = "Asia/Shanghai"


def _as_datetime(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _seconds_between(later: datetime, earlier: datetime) -> int:
    """Whole seconds, as the normal close (agi.engine.seconds_between) and the validator compute them."""
    return max(int((later - earlier).total_seconds()), 0)


def _path(record: Mapping[str, Any]) -> list[str]:
    return [str(step) for step in (record.get("ivr_path") or [])]


def is_swept(record: Mapping[str, Any]) -> bool:
    """True when the record was closed by the sweep, not by the call."""
    return SWEPT_STEP in _path(record)


def has_voicemail_ticket(record: Mapping[str, Any]) -> bool:
    """The voicemail node stored its ticket (it does so only after keeping a message)."""
    return has_ticket(record) or is_present(record.get("disposition"))


def decide_outcome(record: Mapping[str, Any]) -> str:
    """The ``call_outcome`` of a stale open record, from what the row holds (see the module doc)."""
    path = _path(record)
    if _as_datetime(record.get("answered_at")) is not None:
        return OUTCOME_ANSWERED
    if has_voicemail_ticket(record):
        return OUTCOME_VOICEMAIL
    if any(step in FAILURE_STEPS for step in path):
        return OUTCOME_SYSTEM_FAILURE
    if _as_datetime(record.get("queue_enter_at")) is None and any(step.endswith(AFTER_HOURS_SUFFIX) for step in path):
        return OUTCOME_AFTER_HOURS
    return OUTCOME_SYSTEM_FAILURE


def closing_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    """The fields that close a stale open record (Appendix C ids; datetimes as aware datetimes). Pure."""
    start = _as_datetime(record.get("call_start_at"))
    enter = _as_datetime(record.get("queue_enter_at"))
    answered = _as_datetime(record.get("answered_at"))
    outcome = decide_outcome(record)
    known = [t for t in (start, enter, answered, _as_datetime(record.get("ended_at"))) if t is not None]
    ended = max(known) if known else None
    path = _path(record)
    out: dict[str, Any] = {
        "call_outcome": outcome,
        "ended_at": ended,
        "ivr_path": path if SWEPT_STEP in path else [*path, SWEPT_STEP],
    }
    party = record.get("hangup_party")
    out["hangup_party"] = party if party in HANGUP_PARTIES else HANGUP_SYSTEM
    if enter is not None and ended is not None:
        out["wait_seconds"] = _seconds_between(answered or ended, enter)
    if outcome == OUTCOME_ANSWERED and answered is not None and ended is not None:
        out["talk_seconds"] = _seconds_between(ended, answered)
    out["callback_required"] = record.get("callback_required") is True or outcome in CALLBACK_OUTCOMES
    if record.get("appeal_type") in LOCATION_APPEALS and not is_present(record.get("incident_address")):
        out["appeal_type"] = None
    return out


def stale_cutoff(now: datetime, max_open_seconds: float) -> datetime:
    if now.tzinfo is None:
        raise ValueError(f"naive datetime {now!r}: pass an aware time")
    if max_open_seconds <= 0:
        raise ValueError(f"max_open_seconds must be positive, got {max_open_seconds}")
    return now - timedelta(seconds=max_open_seconds)


@dataclass(frozen=True)
class SweptRecord:
    record_id: str
    call_start_at: datetime
    call_outcome: str
    ended_at: datetime | None
    valid: bool | None                  # None on a dry run (not judged)
    problems: int | None = None


@dataclass
class SweepResult:
    dry_run: bool = False
    records: list[SweptRecord] = field(default_factory=list)
    examined: int = 0                   # rows read by the last chunk (a full chunk means: maybe more)
    last_id: int = 0                    # keyset position after the last chunk

    @property
    def record_ids(self) -> list[str]:
        return [r.record_id for r in self.records]

    @property
    def count(self) -> int:
        return len(self.records)


def sweep_stale_calls(session: Session, now: datetime, max_open_seconds: float, *, limit: int = DEFAULT_CHUNK,
                      after_id: int = 0, dry_run: bool = False, tz: str = DEFAULT_TIMEZONE) -> SweepResult:
    """Close at most ``limit`` open records whose ``call_start_at`` is older than ``now - max_open_seconds``
    (rows with ``calls.id > after_id``), in the caller's transaction. ``dry_run`` reads without locking and
    changes nothing. PostgreSQL skips rows another transaction holds (they are taken by a later sweep)."""
    cutoff = stale_cutoff(now, max_open_seconds)
    stmt = (select(Call).where(Call.state == "open", Call.call_start_at < cutoff, Call.id > after_id)
            .order_by(Call.id).limit(limit))
    if not dry_run:
        stmt = stmt.with_for_update(skip_locked=True)
    result = SweepResult(dry_run=dry_run, last_id=after_id)
    for call in session.scalars(stmt):
        result.examined += 1
        result.last_id = call.id
        changes = closing_fields(record_dict(call))
        if dry_run:
            result.records.append(SweptRecord(call.record_id, call.call_start_at, changes["call_outcome"],
                                              changes["ended_at"], None))
            continue
        apply_changes(call, changes)
        if changes["call_outcome"] == OUTCOME_VOICEMAIL and not call.ticket_no and call.disposition:
            # the replay allocates a deferred voicemail ticket number on completion; so does the sweep
            call.ticket_no = allocate_ticket_no(session, tz)
        problems = judge(call)
        swept = SweptRecord(call.record_id, call.call_start_at, changes["call_outcome"], call.ended_at,
                            call.valid, len(problems))
        result.records.append(swept)
        log.info("call_record_swept", record_id=call.record_id, call_outcome=swept.call_outcome,
                 call_start_at=call.call_start_at.isoformat(),
                 ended_at=call.ended_at.isoformat() if call.ended_at else None,
                 valid=call.valid, problems=[p.field for p in problems])
    if not dry_run:
        session.flush()
    return result


def sweep(db: Database, now: datetime, max_open_seconds: float, *, chunk: int = DEFAULT_CHUNK,
          dry_run: bool = False, tz: str = DEFAULT_TIMEZONE) -> SweepResult:
    """Every stale open record, one transaction per chunk of ``chunk`` rows (``hotline records sweep`` and the
    periodic sweep of ``hotline serve``)."""
    stale_cutoff(now, max_open_seconds)
    total = SweepResult(dry_run=dry_run)
    while True:
        if dry_run:
            with db.session() as session:
                part = sweep_stale_calls(session, now, max_open_seconds, limit=chunk, after_id=total.last_id,
                                         dry_run=True, tz=tz)
        else:
            with db.write() as session:
                part = sweep_stale_calls(session, now, max_open_seconds, limit=chunk, after_id=total.last_id, tz=tz)
        total.records.extend(part.records)
        total.examined += part.examined
        total.last_id = part.last_id
        if part.examined < chunk:
            return total


__all__ = ["SWEPT_STEP", "SweepResult", "SweptRecord", "closing_fields", "decide_outcome", "has_voicemail_ticket",
           "is_swept", "stale_cutoff", "sweep", "sweep_stale_calls"]
