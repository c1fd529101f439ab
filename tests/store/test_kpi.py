"""KPI maths (spec/kpi.md) against numbers worked out by hand, and the SQL path against the pure one.

The fixture day 2026-03-02 (Asia/Shanghai) holds these phone calls (w = wait_seconds, t = talk_seconds):

  09:05 A1 人工接通 w10 t120 满意        09:20 A2 人工接通 w15 t60 基本满意    09:40 A3 人工接通 w16 t300 不满意
  10:10 A4 人工接通 w40 t200           10:20 Q1 排队放弃 w3 (short)          10:30 Q2 排队放弃 w5
  10:50 Q3 排队放弃 w70                11:00 T1 排队超时 w120               11:30 V1 留言 w90
  12:00 I1 IVR放弃 (never queued)      23:30 A5 人工接通 w0 t30 满意
plus a 网站 call, one call a second before the day and one at the end instant (all three excluded).

By hand: offered 10, answered 5, short 1, eligible 9, abandoned 2 (Q2, Q3), answered ≤15 s 3 (A1, A2, A5);
wait sum 81 → 16.2 s, talk sum 710 → 142.0 s, longest wait 120; satisfaction 满意 2 / 基本满意 1 / 不满意 1;
callback_required 6 (Q1 Q2 Q3 T1 V1 I1), called back 5 (Q2 +2h, Q3 +25h, T1 +24h exactly, V1 +24h+1µs, I1 +1h),
in time 3 (Q2, T1, I1).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from store.db import Database
from store.kpi import KpiCounts, KpiError, KpiParams, compute, figures, tally
from store.kpi_query import (CallbackNotRequired, kpi_series, list_callbacks, mark_called_back, period_counts,
                             slot_seconds)
from store.models import Call
from store.records import RecordNotFound

SH = ZoneInfo("Asia/Shanghai")
DAY_START = datetime(2026, 3, 2, tzinfo=SH)
DAY_END = datetime(2026, 3, 3, tzinfo=SH)
PARAMS = KpiParams(service_level_seconds=15, short_abandon_seconds=5, callback_deadline_hours=24)


def at(hh: int, mm: int, ss: int = 0, us: int = 0, day: int = 2) -> datetime:
    return datetime(2026, 3, day, hh, mm, ss, us, tzinfo=SH)


def call(record_id: str, start: datetime, outcome: str, wait: int | None = None, talk: int | None = None,
         *, queued: bool = True, satisfaction: str | None = None, callback: bool = False,
         called_back_after: timedelta | None = None, channel: str = "电话") -> dict[str, Any]:
    return {
        "record_id": record_id, "channel": channel, "caller_number": "13800138000", "called_number": "12345",
        "call_start_at": start, "queue_enter_at": start + timedelta(seconds=20) if queued else None,
        "wait_seconds": wait, "talk_seconds": talk, "call_outcome": outcome,
        "answered_at": start + timedelta(seconds=20 + (wait or 0)) if outcome == "人工接通" else None,
        "satisfaction": satisfaction, "callback_required": callback,
        "called_back_at": start + called_back_after if called_back_after is not None else None,
        "agent_id": "1001" if outcome == "人工接通" else None,
    }


FIXTURE: list[dict[str, Any]] = [
    call("A1", at(9, 5), "人工接通", 10, 120, satisfaction="满意"),
    call("A2", at(9, 20), "人工接通", 15, 60, satisfaction="基本满意"),
    call("A3", at(9, 40), "人工接通", 16, 300, satisfaction="不满意"),
    call("A4", at(10, 10), "人工接通", 40, 200),
    call("Q1", at(10, 20), "排队放弃", 3, callback=True),
    call("Q2", at(10, 30), "排队放弃", 5, callback=True, called_back_after=timedelta(hours=2)),
    call("Q3", at(10, 50), "排队放弃", 70, callback=True, called_back_after=timedelta(hours=25)),
    call("T1", at(11, 0, 0, 250_000), "排队超时", 120, callback=True, called_back_after=timedelta(hours=24)),
    call("V1", at(11, 30, 0, 500_000), "留言", 90, callback=True,
         called_back_after=timedelta(hours=24, microseconds=1)),
    call("I1", at(12, 0), "IVR放弃", None, queued=False, callback=True, called_back_after=timedelta(hours=1)),
    call("A5", at(23, 30), "人工接通", 0, 30, satisfaction="满意"),
    call("W1", at(12, 10), "人工接通", 5, 50, channel="网站"),
    call("B1", at(23, 59, 59, day=1), "人工接通", 1, 10),
    call("E1", at(0, 0, day=3), "人工接通", 1, 10),
]
IN_DAY = [r for r in FIXTURE if r["record_id"] not in ("B1", "E1")]


def test_counts_by_hand() -> None:
    c = tally(IN_DAY, PARAMS)
    assert (c.calls, c.offered, c.answered, c.short_abandons, c.abandoned) == (11, 10, 5, 1, 2)
    assert (c.answered_in_threshold, c.timed_out, c.voicemail, c.ivr_abandoned) == (3, 1, 1, 1)
    assert (c.answered_wait_sum, c.answered_wait_n, c.answered_talk_sum, c.answered_talk_n) == (81, 5, 710, 5)
    assert c.max_wait == 120
    assert (c.satisfied, c.basically_satisfied, c.unsatisfied) == (2, 1, 1)
    assert (c.callback_required, c.called_back, c.called_back_in_time) == (6, 5, 3)


def test_figures_by_hand() -> None:
    series = compute(FIXTURE, PARAMS, DAY_START, DAY_END, bucket="day")
    f = {x.key: x for x in series.total.figures}
    assert (f["connection_rate"].numerator, f["connection_rate"].denominator) == (5, 9)
    assert f["connection_rate"].display == "55.6%"
    assert (f["service_level"].numerator, f["service_level"].denominator, f["service_level"].display) == (3, 9, "33.3%")
    assert f["service_level"].label == "15秒接通率"
    assert (f["answer_timeliness"].numerator, f["answer_timeliness"].denominator) == (3, 5)
    assert f["answer_timeliness"].display == "60.0%"
    assert (f["abandon_rate"].numerator, f["abandon_rate"].denominator, f["abandon_rate"].display) == (2, 9, "22.2%")
    assert f["avg_wait"].value == pytest.approx(16.2) and f["avg_wait"].display == "16.2 秒"
    assert f["avg_talk"].value == pytest.approx(142.0)
    assert f["max_wait"].value == 120 and f["max_wait"].display == "120 秒"
    assert (f["satisfaction_rate"].numerator, f["satisfaction_rate"].denominator) == (2, 4)
    assert f["satisfaction_response_rate"].display == "80.0%"
    assert [f[k].numerator for k in ("satisfied_share", "basically_satisfied_share", "unsatisfied_share")] == [2, 1, 1]
    assert (f["callback_completion"].numerator, f["callback_completion"].denominator) == (3, 6)
    # timed-out, voicemail and IVR-abandoned stand on their own lines, not in 放弃率
    assert (f["timed_out"].value, f["voicemail"].value, f["ivr_abandoned"].value) == (1, 1, 1)
    assert "人工接通数" in f["connection_rate"].definition and "短时放弃" in f["connection_rate"].definition
    assert len(series.buckets) == 1 and series.buckets[0].counts == series.total.counts


def test_hour_buckets_and_totals_not_averaged() -> None:
    series = compute(FIXTURE, PARAMS, DAY_START, DAY_END, bucket="hour")
    assert len(series.buckets) == 24
    by_hour = {b.start.astimezone(SH).hour: b for b in series.buckets}
    h9, h10, h11, h23 = (by_hour[h].figure("connection_rate") for h in (9, 10, 11, 23))
    assert (h9.numerator, h9.denominator) == (3, 3)
    assert (h10.numerator, h10.denominator) == (1, 3)      # A4 answered; Q1 short; Q2, Q3 abandoned
    assert (h11.numerator, h11.denominator) == (0, 2)      # T1, V1
    assert (h23.numerator, h23.denominator) == (1, 1)
    assert by_hour[10].figure("abandon_rate").display == "66.7%"
    assert by_hour[12].figure("connection_rate").display == "—"   # only an IVR abandon: nothing offered
    assert by_hour[12].figure("ivr_abandoned").value == 1
    assert by_hour[3].figure("avg_wait").display == "—"
    # the total is 5/9 = 55.6 %, not the mean of the hourly rates (1 + 1/3 + 0 + 1) / 4 = 58.3 %
    assert series.total.figure("connection_rate").display == "55.6%"
    assert by_hour[0].start == DAY_START and by_hour[23].end == DAY_END


def test_no_offered_calls_shows_dash() -> None:
    empty = figures(KpiCounts(), PARAMS)
    for f in empty:
        if f.kind != "count":
            assert f.value is None and f.display == "—", f.key
    only_ivr = tally([call("I9", at(12, 0), "IVR放弃", queued=False)], PARAMS)
    shown = {f.key: f.display for f in figures(only_ivr, PARAMS)}
    assert shown["connection_rate"] == shown["abandon_rate"] == shown["max_wait"] == "—"
    assert shown["ivr_abandoned"] == "1 通"


def test_thresholds_are_settings() -> None:
    c = tally(IN_DAY, KpiParams(service_level_seconds=20, short_abandon_seconds=6, callback_deadline_hours=26))
    assert (c.short_abandons, c.abandoned, c.eligible) == (2, 1, 8)   # Q2 (5 s) is now a short abandon
    assert c.answered_in_threshold == 4                              # A3 (16 s) now within 20 s
    assert c.called_back_in_time == 5                                # Q3 (+25 h) and V1 now in time
    assert figures(c, KpiParams(service_level_seconds=20))[1].label == "20秒接通率"


def test_bad_requests() -> None:
    with pytest.raises(KpiError):
        compute(FIXTURE, PARAMS, DAY_END, DAY_START)
    with pytest.raises(KpiError):
        compute(FIXTURE, PARAMS, DAY_START, DAY_END, bucket="week")
    with pytest.raises(KpiError):
        compute(FIXTURE, PARAMS, DAY_START, DAY_START + timedelta(days=3650), bucket="hour")


def _insert(db: Database, rows: list[dict[str, Any]]) -> None:
    with db.write() as s:
        for r in rows:
            s.add(Call(**r, ivr_path=[], problems=[], state="complete"))


def test_sql_agrees_with_pure(db: Database) -> None:
    _insert(db, FIXTURE)
    with db.session() as s:
        sql_day = kpi_series(s, DAY_START, DAY_END, PARAMS, bucket="hour", tz="Asia/Shanghai")
        whole = period_counts(s, DAY_START, DAY_END, PARAMS)
        stored = list(s.scalars(select(Call)))   # Call rows (called_back_at is bookkeeping, not Appendix C)
    pure = compute(stored, PARAMS, DAY_START, DAY_END, bucket="hour", tz="Asia/Shanghai")
    assert sql_day.total.counts == pure.total.counts == whole == tally(IN_DAY, PARAMS)
    assert [b.counts for b in sql_day.buckets] == [b.counts for b in pure.buckets]
    assert [f.display for f in sql_day.total.figures] == [f.display for f in pure.total.figures]
    # a period starting off a slot boundary: the same calls on both paths
    start = at(10, 25)
    with db.session() as s:
        sql_part = kpi_series(s, start, DAY_END, PARAMS, bucket="hour")
    pure_part = compute(stored, PARAMS, start, DAY_END, bucket="hour")
    assert sql_part.total.counts == pure_part.total.counts
    assert sql_part.total.counts.offered == 5      # Q2 Q3 T1 V1 A5
    assert [b.counts for b in sql_part.buckets] == [b.counts for b in pure_part.buckets]
    # a zone with a half-hour offset: 15-minute slots, local hours start at :30 UTC
    assert slot_seconds("Asia/Shanghai", DAY_START, DAY_END) == 3600
    assert slot_seconds("Asia/Kolkata", DAY_START, DAY_END) == 900
    with db.session() as s:
        sql_in = kpi_series(s, DAY_START, DAY_END, PARAMS, bucket="hour", tz="Asia/Kolkata")
    pure_in = compute(stored, PARAMS, DAY_START, DAY_END, bucket="hour", tz="Asia/Kolkata")
    assert len(sql_in.buckets) == 25 and sql_in.buckets[1].start.astimezone(timezone.utc).minute == 30
    assert [b.counts for b in sql_in.buckets] == [b.counts for b in pure_in.buckets]
    assert sql_in.total.counts == sql_day.total.counts


def test_callbacks_list_and_mark(db: Database) -> None:
    _insert(db, FIXTURE)
    with db.session() as s:
        page = list_callbacks(s, DAY_START, DAY_END, pending_only=True)
        assert [c.record_id for c in page.calls] == ["Q1"]
        all_ = list_callbacks(s, DAY_START, DAY_END, limit=4)
        assert [c.record_id for c in all_.calls] == ["I1", "V1", "T1", "Q3"] and all_.next_cursor is not None
        rest = list_callbacks(s, DAY_START, DAY_END, limit=4, before=all_.next_cursor)
        assert [c.record_id for c in rest.calls] == ["Q2", "Q1"] and rest.next_cursor is None
    when = at(11, 0)
    with db.write() as s:
        marked = mark_called_back(s, "Q1", "sup1", when)
        assert marked.called_back_by == "sup1"
    with db.write() as s:
        again = mark_called_back(s, "Q1", "other", when + timedelta(hours=1))
        assert again.called_back_by == "sup1" and again.called_back_at == when.astimezone(timezone.utc)
        with pytest.raises(CallbackNotRequired):
            mark_called_back(s, "A1", "sup1")
        with pytest.raises(RecordNotFound):
            mark_called_back(s, "nope", "sup1")
    with db.session() as s:
        assert list_callbacks(s, DAY_START, DAY_END, pending_only=True).calls == []
        assert period_counts(s, DAY_START, DAY_END, PARAMS).called_back_in_time == 4
