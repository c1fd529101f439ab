"""The 12345 service KPIs of ``spec/kpi.md`` as pure functions over call records (no I/O).

Every KPI is a ratio, mean or maximum over a few *sets* of calls. The sets are counted once into additive
:class:`KpiCounts` (:func:`tally` in Python; :mod:`store.kpi_query` counts the very same sets in SQL), and
:func:`figures` turns counts into :class:`Figure` objects carrying numerator, denominator, value and the
Chinese definition. Buckets (hour/day in the hotline's time zone) use the same functions on each bucket's
counts; totals are counted from the calls (sum of disjoint counts), never averaged over buckets.

Sets (calls with ``channel`` = 电话, ``call_start_at`` in [from, to)):

* offered        – ``queue_enter_at`` set
* answered       – offered and ``call_outcome`` = 人工接通
* short_abandons – offered, not answered, ``wait_seconds`` < ``short_abandon_seconds``
* abandoned      – offered, ``call_outcome`` = 排队放弃, not a short abandon
* timed_out / voicemail – ``call_outcome`` = 排队超时 / 留言; ivr_abandoned – IVR放弃 and not offered
* satisfaction set – answered calls with a ``satisfaction`` value
* callback_required – ``callback_required`` true; called back in time – ``called_back_at`` no later than
  ``call_start_at`` + ``callback_deadline_hours``
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Iterable, Mapping
from zoneinfo import ZoneInfo

from config.settings import KpiSettings
from store.appendix_c import (OUTCOME_ANSWERED, OUTCOME_IVR_ABANDONED, OUTCOME_QUEUE_ABANDONED,
                              OUTCOME_QUEUE_TIMEOUT, OUTCOME_VOICEMAIL)

PHONE_CHANNEL = "电话"
SATISFIED, BASICALLY_SATISFIED, UNSATISFIED = "满意", "基本满意", "不满意"
BUCKETS = ("hour", "day")
MAX_BUCKETS = 10_000
NO_VALUE = "—"


class KpiError(ValueError):
    """A KPI request that cannot be answered (bad bucket, empty or too large range)."""


@dataclass(frozen=True)
class KpiParams:
    """The thresholds of spec/kpi.md (settings ``[kpi]``)."""

    service_level_seconds: int = 15
    short_abandon_seconds: int = 5
    callback_deadline_hours: int = 24

    @classmethod
    def from_settings(cls, kpi: KpiSettings) -> "KpiParams":
        return cls(kpi.service_level_seconds, kpi.short_abandon_seconds, kpi.callback_deadline_hours)


@dataclass
class KpiCounts:
    """Additive tallies of one set of calls; every KPI is computed from these and nothing else."""

    calls: int = 0                      # phone calls in the period
    offered: int = 0
    answered: int = 0
    short_abandons: int = 0
    abandoned: int = 0
    answered_in_threshold: int = 0      # answered with wait_seconds <= service_level_seconds
    timed_out: int = 0
    voicemail: int = 0
    ivr_abandoned: int = 0
    answered_wait_sum: int = 0
    answered_wait_n: int = 0
    answered_talk_sum: int = 0
    answered_talk_n: int = 0
    max_wait: int | None = None         # over offered calls
    satisfied: int = 0                  # satisfaction values of answered calls
    basically_satisfied: int = 0
    unsatisfied: int = 0
    callback_required: int = 0
    called_back: int = 0
    called_back_in_time: int = 0

    def add(self, other: "KpiCounts") -> None:
        """Merge the counts of a disjoint set of calls into this one."""
        mine, theirs = self.__dict__, other.__dict__
        for name in _ADDITIVE:
            mine[name] += theirs[name]
        if other.max_wait is not None and (self.max_wait is None or other.max_wait > self.max_wait):
            self.max_wait = other.max_wait

    @property
    def eligible(self) -> int:
        """offered − short_abandons: the denominator of 人工接通率, 15秒接通率 and 放弃率."""
        return self.offered - self.short_abandons

    @property
    def satisfaction_responses(self) -> int:
        return self.satisfied + self.basically_satisfied + self.unsatisfied


COUNT_FIELDS: list[str] = [f.name for f in fields(KpiCounts)]
_ADDITIVE = tuple(n for n in COUNT_FIELDS if n != "max_wait")


@dataclass(frozen=True)
class Figure:
    """One KPI as shown to a supervisor: value with the numerator/denominator it came from."""

    key: str
    label: str              # 中文名
    definition: str         # 中文定义 (formula in words)
    kind: str               # rate | mean | max | count
    numerator: int | None
    denominator: int | None
    value: float | None     # None: not defined for this period (shown as "—")
    unit: str = ""

    @property
    def display(self) -> str:
        if self.value is None:
            return NO_VALUE
        if self.kind == "rate":
            return f"{self.value * 100:.1f}%"
        if self.kind == "mean":
            return f"{self.value:.1f} {self.unit}".strip()
        return f"{int(self.value)} {self.unit}".strip()

    def to_dict(self) -> dict[str, Any]:
        return {"key": self.key, "label": self.label, "definition": self.definition, "kind": self.kind,
                "numerator": self.numerator, "denominator": self.denominator, "value": self.value,
                "unit": self.unit, "display": self.display}


def _get(row: Any, name: str) -> Any:
    return row.get(name) if isinstance(row, Mapping) else getattr(row, name, None)


def _as_datetime(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise KpiError(f"not a time: {value!r}")
    if value.tzinfo is None:
        raise KpiError(f"time without offset: {value!r}")
    return value


def tally(rows: Iterable[Any], params: KpiParams) -> KpiCounts:
    """Count the spec's sets over call records (dicts keyed by Appendix C ids, or ``Call`` rows)."""
    c = KpiCounts()
    for row in rows:
        _tally_one(c, row, params)
    return c


def _tally_one(c: KpiCounts, row: Any, params: KpiParams) -> None:
    if _get(row, "channel") != PHONE_CHANNEL:
        return
    c.calls += 1
    outcome = _get(row, "call_outcome")
    wait = _get(row, "wait_seconds")
    offered = _get(row, "queue_enter_at") is not None
    answered = offered and outcome == OUTCOME_ANSWERED
    if outcome == OUTCOME_QUEUE_TIMEOUT:
        c.timed_out += 1
    elif outcome == OUTCOME_VOICEMAIL:
        c.voicemail += 1
    elif outcome == OUTCOME_IVR_ABANDONED and not offered:
        c.ivr_abandoned += 1
    if offered:
        c.offered += 1
        short = not answered and wait is not None and wait < params.short_abandon_seconds
        if short:
            c.short_abandons += 1
        elif outcome == OUTCOME_QUEUE_ABANDONED:
            c.abandoned += 1
        if wait is not None and (c.max_wait is None or wait > c.max_wait):
            c.max_wait = wait
    if answered:
        c.answered += 1
        if wait is not None:
            c.answered_wait_sum += wait
            c.answered_wait_n += 1
            if wait <= params.service_level_seconds:
                c.answered_in_threshold += 1
        talk = _get(row, "talk_seconds")
        if talk is not None:
            c.answered_talk_sum += talk
            c.answered_talk_n += 1
        satisfaction = _get(row, "satisfaction")
        if satisfaction == SATISFIED:
            c.satisfied += 1
        elif satisfaction == BASICALLY_SATISFIED:
            c.basically_satisfied += 1
        elif satisfaction == UNSATISFIED:
            c.unsatisfied += 1
    if _get(row, "callback_required"):
        c.callback_required += 1
        called_back_at = _as_datetime(_get(row, "called_back_at"))
        if called_back_at is not None:
            c.called_back += 1
            start = _as_datetime(_get(row, "call_start_at"))
            if start is not None and called_back_at <= start + timedelta(hours=params.callback_deadline_hours):
                c.called_back_in_time += 1


def _rate(key: str, label: str, definition: str, num: int, den: int) -> Figure:
    return Figure(key, label, definition, "rate", num, den, (num / den) if den > 0 else None, "%")


def _mean(key: str, label: str, definition: str, total: int, n: int) -> Figure:
    return Figure(key, label, definition, "mean", total, n, (total / n) if n > 0 else None, "秒")


def _count(key: str, label: str, definition: str, n: int) -> Figure:
    return Figure(key, label, definition, "count", n, None, float(n), "通")


def figures(c: KpiCounts, params: KpiParams) -> tuple[Figure, ...]:
    """Every KPI of spec/kpi.md from one set's counts. Rates of a period without offered calls are "—"."""
    sl = params.service_level_seconds
    short = params.short_abandon_seconds
    eligible = c.eligible if c.offered > 0 else 0
    base = f"（进入排队 − 等待不足{short}秒的短时放弃）"
    return (
        _rate("connection_rate", "人工接通率", f"人工接通数 ÷ {base}；GB/T 33358 要求任意24小时 ≥ 95%",
              c.answered, eligible),
        _rate("service_level", f"{sl}秒接通率", f"等待 ≤ {sl} 秒的人工接通数 ÷ {base}",
              c.answered_in_threshold, eligible),
        _rate("answer_timeliness", "人工应答及时率", f"等待 ≤ {sl} 秒的人工接通数 ÷ 人工接通数",
              c.answered_in_threshold, c.answered),
        _rate("abandon_rate", "放弃率", f"排队放弃数（不含等待不足{short}秒的短时放弃）÷ {base}",
              c.abandoned, eligible),
        _mean("avg_wait", "平均等待时长", "人工接通来电的等待时长之和 ÷ 人工接通数",
              c.answered_wait_sum, c.answered_wait_n),
        _mean("avg_talk", "平均通话时长", "人工接通来电的通话时长之和 ÷ 人工接通数",
              c.answered_talk_sum, c.answered_talk_n),
        Figure("max_wait", "最长等待时长", "进入排队来电中等待时长的最大值", "max", None, c.offered,
               float(c.max_wait) if c.max_wait is not None and c.offered > 0 else None, "秒"),
        _rate("satisfaction_rate", "满意率", "评价为“满意”的数量 ÷ 参与评价的人工接通数",
              c.satisfied, c.satisfaction_responses),
        _rate("satisfaction_response_rate", "评价参与率", "参与满意度评价的数量 ÷ 人工接通数",
              c.satisfaction_responses, c.answered),
        _rate("satisfied_share", "满意", "满意 ÷ 参与评价数", c.satisfied, c.satisfaction_responses),
        _rate("basically_satisfied_share", "基本满意", "基本满意 ÷ 参与评价数",
              c.basically_satisfied, c.satisfaction_responses),
        _rate("unsatisfied_share", "不满意", "不满意 ÷ 参与评价数", c.unsatisfied, c.satisfaction_responses),
        _rate("callback_completion", "回拨完成率",
              f"来电后 {params.callback_deadline_hours} 小时内已回拨数 ÷ 需回拨数（漏接回拨）",
              c.called_back_in_time, c.callback_required),
        _count("offered", "进入排队", "进入人工排队的电话来电数", c.offered),
        _count("answered", "人工接通", "进入排队且呼叫结果为人工接通", c.answered),
        _count("short_abandons", "短时放弃", f"进入排队、未接通且等待不足 {short} 秒（不计入分母）",
               c.short_abandons),
        _count("abandoned", "排队放弃", "呼叫结果为排队放弃（不含短时放弃）", c.abandoned),
        _count("timed_out", "排队超时", "呼叫结果为排队超时（单独列示，不计入放弃率）", c.timed_out),
        _count("voicemail", "留言", "呼叫结果为留言（单独列示，不计入放弃率）", c.voicemail),
        _count("ivr_abandoned", "IVR放弃", "未进入排队、在IVR中挂机（单独列示，不计入放弃率）", c.ivr_abandoned),
        _count("callback_required", "需回拨", "漏接回拨标记为是的来电数", c.callback_required),
    )


@dataclass(frozen=True)
class KpiReport:
    """The KPIs of one period or bucket."""

    start: datetime
    end: datetime
    counts: KpiCounts
    figures: tuple[Figure, ...]

    def figure(self, key: str) -> Figure:
        for f in self.figures:
            if f.key == key:
                return f
        raise KeyError(key)

    def to_dict(self) -> dict[str, Any]:
        return {"from": self.start.isoformat(), "to": self.end.isoformat(),
                "counts": {f.name: getattr(self.counts, f.name) for f in fields(self.counts)},
                "figures": [f.to_dict() for f in self.figures]}


@dataclass(frozen=True)
class KpiSeries:
    """A period's total and its hour/day buckets (local time), all from the same definitions."""

    bucket: str
    tz: str
    params: KpiParams
    total: KpiReport
    buckets: tuple[KpiReport, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {"bucket": self.bucket, "tz": self.tz,
                "params": {f.name: getattr(self.params, f.name) for f in fields(self.params)},
                "total": self.total.to_dict(), "buckets": [b.to_dict() for b in self.buckets]}


def report(start: datetime, end: datetime, counts: KpiCounts, params: KpiParams) -> KpiReport:
    return KpiReport(start, end, counts, figures(counts, params))


def bucket_floor(at: datetime, bucket: str, tz: ZoneInfo) -> datetime:
    """The local start of the hour/day bucket holding ``at`` (aware, in ``tz``)."""
    local = at.astimezone(tz)
    if bucket == "hour":
        return local.replace(minute=0, second=0, microsecond=0)
    if bucket == "day":
        return datetime.combine(local.date(), time(0), tz)
    raise KpiError(f"unknown bucket {bucket!r} (one of {', '.join(BUCKETS)})")


def bucket_starts(start: datetime, end: datetime, bucket: str, tz: ZoneInfo) -> list[datetime]:
    """Every bucket start overlapping [start, end), in local time (DST-safe: stepped in UTC, floored locally)."""
    if end <= start:
        raise KpiError("the period is empty: 'to' must be after 'from'")
    out: list[datetime] = []
    current = bucket_floor(start, bucket, tz)
    while current < end:
        out.append(current)
        if len(out) > MAX_BUCKETS:
            raise KpiError(f"more than {MAX_BUCKETS} buckets: choose a shorter period or a coarser bucket")
        if bucket == "hour":
            nxt = bucket_floor(current.astimezone(timezone.utc) + timedelta(hours=1), bucket, tz)
        else:
            nxt = datetime.combine(current.date() + timedelta(days=1), time(0), tz)
        current = nxt
    return out


def _key(dt: datetime) -> tuple[date, int, int]:
    # bucket identity independent of tzinfo object identity / fold
    utc = dt.astimezone(timezone.utc)
    return (utc.date(), utc.hour, utc.minute)


def series_from_counts(start: datetime, end: datetime, bucket: str, tz_name: str, params: KpiParams,
                       parts: Iterable[tuple[datetime, KpiCounts]]) -> KpiSeries:
    """Assemble a series from counts of disjoint slices (``(an instant inside the slice, counts)``).

    The SQL path hands over 15-minute UTC slots; the pure path one slice per call. Each slice is added to
    the bucket holding it and to the total, so totals are counts of the calls themselves.
    """
    tz = ZoneInfo(tz_name)
    starts = bucket_starts(start, end, bucket, tz)
    per_bucket = {_key(s): KpiCounts() for s in starts}
    total = KpiCounts()
    for at, counts in parts:
        per_bucket[_key(bucket_floor(at, bucket, tz))].add(counts)
        total.add(counts)
    reports = []
    for i, s in enumerate(starts):
        e = starts[i + 1] if i + 1 < len(starts) else end
        reports.append(report(max(s, start), min(e, end), per_bucket[_key(s)], params))
    return KpiSeries(bucket, tz_name, params, report(start, end, total, params), tuple(reports))


def compute(rows: Iterable[Any], params: KpiParams, start: datetime, end: datetime, *, bucket: str = "day",
            tz: str = "Asia/Shanghai") -> KpiSeries:
    """KPIs of the calls with ``call_start_at`` in [start, end), total and per ``bucket`` in ``tz``."""
    if start.tzinfo is None or end.tzinfo is None:
        raise KpiError("period bounds must carry a time zone")

    def parts() -> Iterable[tuple[datetime, KpiCounts]]:
        for row in rows:
            at = _as_datetime(_get(row, "call_start_at"))
            if at is None or not (start <= at < end):
                continue
            c = KpiCounts()
            _tally_one(c, row, params)
            if c.calls:
                yield at, c

    return series_from_counts(start, end, bucket, tz, params, parts())


__all__ = [
    "KpiError", "KpiParams", "KpiCounts", "Figure", "KpiReport", "KpiSeries", "BUCKETS", "NO_VALUE",
    "tally", "figures", "report", "compute", "series_from_counts", "bucket_floor", "bucket_starts",
]
