"""KPIs in SQL for big periods, and the missed-call callback list (漏接回拨).

:func:`kpi_series` counts the sets of :mod:`store.kpi` with one ``GROUP BY`` over 15-minute UTC slots
(hour slots when the zone's offset stays a whole hour, as in Asia/Shanghai; else 15 minutes, a divisor of every
real offset), so a slot never straddles a local hour; then
hands the slot counts to :func:`store.kpi.series_from_counts`. The set definitions below mirror
``store.kpi._tally_one`` line by line; ``tests/store/test_kpi.py`` checks both give the same counts on the
same calls on SQLite and PostgreSQL.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (ColumnElement, Integer, and_, case, cast, extract, func, literal, not_, or_, select,
                        tuple_)
from sqlalchemy.orm import Session

from store.appendix_c import (OUTCOME_ANSWERED, OUTCOME_IVR_ABANDONED, OUTCOME_QUEUE_ABANDONED,
                              OUTCOME_QUEUE_TIMEOUT, OUTCOME_VOICEMAIL)
from store.kpi import (BASICALLY_SATISFIED, PHONE_CHANNEL, SATISFIED, UNSATISFIED, KpiCounts, KpiParams,
                       KpiSeries, series_from_counts)
from store.models import Call
from store.records import RecordNotFound

SLOT_SECONDS = 900


class CallbackNotRequired(ValueError):
    """The call is not marked 漏接回拨; there is nothing to call back."""


def slot_seconds(tz: str, start: datetime, end: datetime) -> int:
    """3600 when the zone's offset is a whole hour throughout [start, end] (Asia/Shanghai), else 900."""
    zone = ZoneInfo(tz)
    day = start
    while True:
        offset = zone.utcoffset(day.astimezone(zone).replace(tzinfo=None))
        if offset is None or offset.total_seconds() % 3600:
            return SLOT_SECONDS
        if day >= end:
            return 3600
        day = min(day + timedelta(hours=12), end)


def _slot(dialect: str, seconds: int) -> ColumnElement[Any]:
    if dialect == "sqlite":
        # stored as 'YYYY-MM-DD HH:MM:SS.ffffff' UTC text; strftime('%s') is exact whole seconds.
        # Explicit "/": SQLAlchemy 2 renders Python's "/" as true division; SQLite's "/" on integers truncates.
        return cast(func.strftime("%s", Call.call_start_at), Integer).op("/")(seconds)
    return cast(func.floor(extract("epoch", Call.call_start_at) / seconds), Integer)


def _deadline(dialect: str, hours: int) -> ColumnElement[Any]:
    """``call_start_at + hours`` as a value comparable with ``called_back_at`` (microsecond exact)."""
    if dialect == "sqlite":
        # datetime() drops the fraction: put the stored '.ffffff' back behind the shifted seconds
        return func.datetime(Call.call_start_at, f"+{int(hours)} hours").op("||")(
            func.substr(Call.call_start_at, 20))
    return Call.call_start_at + func.make_interval(0, 0, 0, 0, int(hours))


def _sum(cond: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((cond, 1), else_=0)), 0)


def count_columns(dialect: str, params: KpiParams) -> dict[str, ColumnElement[Any]]:
    """One aggregate per :class:`KpiCounts` field: the SQL twin of ``store.kpi._tally_one``."""
    offered = Call.queue_enter_at.is_not(None)
    answered = and_(offered, Call.call_outcome == OUTCOME_ANSWERED)
    not_answered = or_(Call.call_outcome.is_(None), Call.call_outcome != OUTCOME_ANSWERED)
    short = and_(offered, not_answered, Call.wait_seconds.is_not(None),
                 Call.wait_seconds < params.short_abandon_seconds)
    not_short = or_(Call.wait_seconds.is_(None), Call.wait_seconds >= params.short_abandon_seconds)
    cb = Call.callback_required.is_(True)
    return {
        "calls": func.count(),
        "offered": _sum(offered),
        "answered": _sum(answered),
        "short_abandons": _sum(short),
        "abandoned": _sum(and_(offered, Call.call_outcome == OUTCOME_QUEUE_ABANDONED, not_short)),
        "answered_in_threshold": _sum(and_(answered, Call.wait_seconds <= params.service_level_seconds)),
        "timed_out": _sum(Call.call_outcome == OUTCOME_QUEUE_TIMEOUT),
        "voicemail": _sum(Call.call_outcome == OUTCOME_VOICEMAIL),
        "ivr_abandoned": _sum(and_(Call.call_outcome == OUTCOME_IVR_ABANDONED, not_(offered))),
        "answered_wait_sum": func.coalesce(func.sum(case((answered, Call.wait_seconds))), 0),
        "answered_wait_n": func.count(case((answered, Call.wait_seconds))),
        "answered_talk_sum": func.coalesce(func.sum(case((answered, Call.talk_seconds))), 0),
        "answered_talk_n": func.count(case((answered, Call.talk_seconds))),
        "max_wait": func.max(case((offered, Call.wait_seconds))),
        "satisfied": _sum(and_(answered, Call.satisfaction == SATISFIED)),
        "basically_satisfied": _sum(and_(answered, Call.satisfaction == BASICALLY_SATISFIED)),
        "unsatisfied": _sum(and_(answered, Call.satisfaction == UNSATISFIED)),
        "callback_required": _sum(cb),
        "called_back": _sum(and_(cb, Call.called_back_at.is_not(None))),
        "called_back_in_time": _sum(and_(cb, Call.called_back_at.is_not(None),
                                         Call.called_back_at <= _deadline(dialect, params.callback_deadline_hours))),
    }


def _period(start: datetime, end: datetime) -> ColumnElement[bool]:
    return and_(Call.channel == PHONE_CHANNEL, Call.call_start_at >= start, Call.call_start_at < end)


def _counts(row: Any, names: list[str]) -> KpiCounts:
    return KpiCounts(**{n: (int(v) if v is not None else None) for n, v in zip(names, row)})


def slot_counts(session: Session, start: datetime, end: datetime, params: KpiParams,
                seconds: int = SLOT_SECONDS) -> list[tuple[datetime, KpiCounts]]:
    """Counts per UTC slot of ``seconds`` (a divisor of an hour) of the phone calls in [start, end)."""
    dialect = session.get_bind().dialect.name
    cols = count_columns(dialect, params)
    names = list(cols)
    slot = _slot(dialect, seconds).label("slot")
    stmt = select(slot, *(c.label(n) for n, c in cols.items())).where(_period(start, end)).group_by(slot)
    out = []
    for row in session.execute(stmt):
        at = datetime.fromtimestamp(int(row[0]) * seconds, timezone.utc)
        out.append((at, _counts(row[1:], names)))
    return out


def period_counts(session: Session, start: datetime, end: datetime, params: KpiParams) -> KpiCounts:
    """Counts of the whole period in one aggregate (no grouping)."""
    cols = count_columns(session.get_bind().dialect.name, params)
    row = session.execute(select(*cols.values()).where(_period(start, end))).one()
    return _counts(row, list(cols))


def kpi_series(session: Session, start: datetime, end: datetime, params: KpiParams, *, bucket: str = "day",
               tz: str = "Asia/Shanghai") -> KpiSeries:
    """The KPIs of [start, end), total and per hour/day in ``tz``, counted in SQL."""
    parts = slot_counts(session, start, end, params, slot_seconds(tz, start, end))
    # A slot starting before `start` (start not on a slot boundary) belongs to start's bucket.
    parts = [(max(at, start), c) for at, c in parts]
    return series_from_counts(start, end, bucket, tz, params, parts)


# --- 漏接回拨 -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class CallbackPage:
    calls: list[Call]
    next_cursor: tuple[datetime, int] | None


def list_callbacks(session: Session, start: datetime, end: datetime, *, pending_only: bool = False,
                   limit: int = 100, before: tuple[datetime, int] | None = None,
                   scope: ColumnElement[bool] | None = None) -> CallbackPage:
    """Calls marked 漏接回拨 in [start, end), newest first (keyset on call_start_at, id)."""
    stmt = select(Call).where(Call.callback_required.is_(True), Call.call_start_at >= start,
                              Call.call_start_at < end)
    if pending_only:
        stmt = stmt.where(Call.called_back_at.is_(None))
    if scope is not None:
        stmt = stmt.where(scope)
    if before is not None:
        stmt = stmt.where(tuple_(Call.call_start_at, Call.id) < tuple_(literal(before[0], Call.call_start_at.type),
                                                                       literal(before[1])))
    stmt = stmt.order_by(Call.call_start_at.desc(), Call.id.desc()).limit(limit + 1)
    calls = list(session.scalars(stmt))
    nxt = None
    if len(calls) > limit:
        calls = calls[:limit]
        nxt = (calls[-1].call_start_at, calls[-1].id)
    return CallbackPage(calls, nxt)


def mark_called_back(session: Session, record_id: str, by: str, at: datetime | None = None) -> Call:
    """Record that the caller of a missed call was called back; the first mark stands (idempotent)."""
    call = session.scalar(select(Call).where(Call.record_id == record_id))
    if call is None:
        raise RecordNotFound(record_id)
    if not call.callback_required:
        raise CallbackNotRequired(record_id)
    if call.called_back_at is None:
        call.called_back_at = at or datetime.now(timezone.utc)
        call.called_back_by = by
        session.flush()
    return call


def callback_deadline(call: Call, params: KpiParams) -> datetime:
    return call.call_start_at + timedelta(hours=params.callback_deadline_hours)


__all__ = ["CallbackNotRequired", "CallbackPage", "count_columns", "slot_counts", "period_counts", "kpi_series",
           "list_callbacks", "mark_called_back", "callback_deadline"]
