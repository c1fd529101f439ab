"""Search and KPI queries over N generated calls (default 1,000,000) on SQLite and PostgreSQL.

    .venv/bin/python -m bench.web_queries                         # both back-ends, 1,000,000 calls
    .venv/bin/python -m bench.web_queries --calls 100000 --backend sqlite
    .venv/bin/python -m bench.web_queries --pg-url postgresql://postgres@127.0.0.1:5432/test

Generates calls over 90 days (85 % answered with a two-channel transcript, the rest abandoned, timed out,
voicemail or IVR-abandoned), loads them fast (executemany on SQLite with the FTS triggers of migration 0002
live; COPY on PostgreSQL into a fresh database), then times each query kind ``--runs`` times with varied
parameters through the real services (store.search.search_calls, store.kpi_query.kpi_series) and prints
p50 / p95 in milliseconds. The target is p95 < 300 ms for the first page of any search.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator
from zoneinfo import ZoneInfo

from sqlalchemy import create_engine, text

from store.db import Database, normalize_url, open_database
from store.kpi import KpiParams
from store.kpi_query import kpi_series, list_callbacks
from store.migrate import upgrade
from store.search import CallSearch, search_calls

TZ = ZoneInfo("Asia/Shanghai")
DAYS = 90
END = datetime(2026, 11, 1, tzinfo=TZ)
START = END - timedelta(days=DAYS)
CALLER_PHRASES = ("楼上装修噪音很大", "小区停水三天了", "我想问社保卡怎么补办", "建议增加公交线路", "道路积水严重",
                  "暖气温度不够", "物业乱收费", "路边违章停车堵路", "夜里施工扰民", "孩子入学咨询", "医保报销比例",
                  "垃圾清运不及时", "路灯坏了好几天", "外卖电动车占道", "公园健身器材损坏")
AGENT_PHRASES = ("您好，这里是市民服务热线", "请问您的具体地址", "我们会尽快派单处理", "已为您登记工单",
                 "请问还有其他问题吗", "感谢您的来电")
RARE_WORDS = ("锅炉房爆裂", "古树被砍伐", "电梯困人")         # ~1 in 5,000 calls each
OUTCOMES = (("人工接通", 0.85), ("排队放弃", 0.07), ("排队超时", 0.02), ("留言", 0.02), ("IVR放弃", 0.04))
APPEALS = ("咨询", "求助", "投诉", "举报", "建议", "表扬", "其他")
SQLITE_TS = "%Y-%m-%d %H:%M:%S.%f"


def out(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


@dataclass
class Generated:
    calls: list[tuple[Any, ...]]
    recordings: list[tuple[Any, ...]]
    transcripts: list[tuple[Any, ...]]
    numbers: list[str]
    tickets: list[str]


CALL_COLS = ("id", "record_id", "ticket_no", "channel", "caller_number", "called_number", "call_start_at", "ivr_path",
             "queue_id", "queue_enter_at", "answered_at", "ended_at", "wait_seconds", "talk_seconds", "call_outcome",
             "hangup_party", "agent_id", "language", "transfer_type", "callback_required", "appeal_type",
             "satisfaction", "uniqueid", "state", "valid", "problems", "legal_hold", "created_at", "updated_at",
             "called_back_at", "called_back_by")
REC_COLS = ("id", "call_id", "record_id", "kind", "status", "uri", "format", "source_files", "legal_hold", "created_at")
TR_COLS = ("id", "recording_id", "call_id", "channel", "speaker", "model", "segments", "text", "created_at")


def generate(n: int, seed: int = 12345) -> Generated:
    rnd = random.Random(seed)
    step = DAYS * 86400 / n
    base = START.astimezone(timezone.utc)
    calls, recs, trs, numbers, tickets = [], [], [], [], []
    day_seq: dict[str, int] = {}
    weights = [w for _, w in OUTCOMES]
    names = [o for o, _ in OUTCOMES]
    rec_id = tr_id = 0
    for i in range(1, n + 1):
        start = base + timedelta(seconds=i * step + rnd.random() * step)
        number = f"1{rnd.choice('3456789')}{rnd.randrange(10**9):09d}"
        numbers.append(number)
        outcome = rnd.choices(names, weights)[0]
        queued = outcome != "IVR放弃"
        enter = start + timedelta(seconds=rnd.randint(3, 20)) if queued else None
        wait = rnd.choice((rnd.randint(0, 15), rnd.randint(0, 15), rnd.randint(5, 120))) if queued else None
        answered = outcome == "人工接通"
        talk = rnd.randint(30, 600) if answered else None
        answered_at = enter + timedelta(seconds=wait) if answered and enter and wait is not None else None
        ended = (answered_at + timedelta(seconds=talk or 0)) if answered_at else (enter or start) + timedelta(seconds=wait or 5)
        ticket = None
        appeal = None
        if answered:
            day = start.astimezone(TZ).strftime("%Y%m%d")
            day_seq[day] = day_seq.get(day, 0) + 1
            ticket = f"{day}{day_seq[day]:06d}"
            tickets.append(ticket)
            appeal = rnd.choice(APPEALS)
        callback = not answered
        called_back = start + timedelta(hours=rnd.randint(1, 30)) if callback and rnd.random() < 0.7 else None
        calls.append((i, f"{int(start.timestamp())}.{i}", ticket, "电话", number, "12345", start, "[]",
                      "hotline" if queued else None, enter, answered_at, ended, wait, talk, outcome, "诉求人",
                      f"{1001 + rnd.randrange(200)}" if answered else None, "普通话", "无", callback, appeal,
                      rnd.choice(("满意", "满意", "基本满意", "不满意", None)) if answered else None,
                      f"{int(start.timestamp())}.{i}", "complete", True, "[]", False, start, start,
                      called_back, "agent" if called_back else None))
        if answered:
            rec_id += 1
            recs.append((rec_id, i, f"{int(start.timestamp())}.{i}", "call", "archived", f"a/{i}.flac", "flac", "[]",
                         False, ended))
            said = rnd.choice(CALLER_PHRASES) + "，" + rnd.choice(CALLER_PHRASES)
            if rnd.random() < 0.0002 * len(RARE_WORDS):
                said += "，" + rnd.choice(RARE_WORDS)
            for ch, speaker, words in ((0, "诉求人", said),
                                       (1, "坐席", rnd.choice(AGENT_PHRASES) + "，" + rnd.choice(AGENT_PHRASES))):
                tr_id += 1
                trs.append((tr_id, rec_id, i, ch, speaker, "bench", "[]", words, ended))
    return Generated(calls, recs, trs, numbers, tickets)


def _sqlite_value(v: Any) -> Any:
    if isinstance(v, datetime):
        return v.astimezone(timezone.utc).replace(tzinfo=None).strftime(SQLITE_TS)
    return v


def load_sqlite(db: Database, g: Generated) -> None:
    raw = db.write_engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("PRAGMA synchronous=OFF")
        cur.execute("BEGIN")
        for table, cols, rows in (("calls", CALL_COLS, g.calls), ("recordings", REC_COLS, g.recordings),
                                  ("transcripts", TR_COLS, g.transcripts)):
            sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
            for i in range(0, len(rows), 50_000):
                cur.executemany(sql, [tuple(_sqlite_value(v) for v in r) for r in rows[i:i + 50_000]])
        cur.execute("COMMIT")
        cur.execute("ANALYZE")
        cur.execute("PRAGMA synchronous=FULL")
    finally:
        raw.close()


def load_postgres(db: Database, g: Generated) -> None:
    raw = db.write_engine.raw_connection()
    try:
        cur = raw.cursor()
        for table, cols, rows in (("calls", CALL_COLS, g.calls), ("recordings", REC_COLS, g.recordings),
                                  ("transcripts", TR_COLS, g.transcripts)):
            with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
                for r in rows:
                    copy.write_row(r)
        for table in ("calls", "recordings", "transcripts"):
            cur.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
        raw.commit()
        driver = raw.driver_connection
        driver.autocommit = True          # VACUUM cannot run inside a transaction
        try:
            driver.execute("VACUUM ANALYZE")
        finally:
            driver.autocommit = False     # the pooled connection goes back transactional
    finally:
        raw.close()


def timed(fn: Callable[[], Any], runs: int) -> list[float]:
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    return samples


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, max(0, int(round(p / 100 * len(s) + 0.5)) - 1))]


def query_kinds(g: Generated, rnd: random.Random) -> Iterator[tuple[str, Callable[[], CallSearch]]]:
    def day() -> datetime:
        return START + timedelta(days=rnd.randrange(DAYS - 7))

    yield "latest (no filter)", lambda: CallSearch()
    yield "one day range", lambda: (lambda d: CallSearch(start=d, end=d + timedelta(days=1)))(day())
    yield "caller exact", lambda: CallSearch(caller=rnd.choice(g.numbers))
    yield "caller last 4 digits", lambda: CallSearch(caller=rnd.choice(g.numbers)[-4:])
    yield "caller 7-digit middle", lambda: CallSearch(caller=rnd.choice(g.numbers)[2:9])
    yield "caller 3-digit prefix", lambda: CallSearch(caller=rnd.choice(g.numbers)[:3])
    yield "agent", lambda: CallSearch(agent_id=str(1001 + rnd.randrange(200)))
    yield "ticket exact", lambda: CallSearch(ticket_no=rnd.choice(g.tickets))
    yield "appeal + outcome", lambda: CallSearch(appeal_type=rnd.choice(APPEALS), outcome="人工接通")
    yield "text common 2-char (噪音)", lambda: CallSearch(text=rnd.choice(("噪音", "停水", "公交", "物业")))
    yield "text common phrase", lambda: CallSearch(text=rnd.choice(CALLER_PHRASES)[:4])
    yield "text rare phrase", lambda: CallSearch(text=rnd.choice(RARE_WORDS))
    yield "text rare 2-char (爆裂)", lambda: CallSearch(text=rnd.choice(("爆裂", "砍伐", "困人")))
    yield "text 1-char", lambda: CallSearch(text=rnd.choice(("噪", "水", "树")))
    yield "text + one week", lambda: (lambda d: CallSearch(start=d, end=d + timedelta(days=7), text="积水"))(day())
    yield "caller 4 + text", lambda: CallSearch(caller=rnd.choice(g.numbers)[-4:], text="噪音")


class Results(list[tuple[str, float, float, int]]):
    """Timing rows, each printed as soon as it is measured."""

    def append(self, row: tuple[str, float, float, int]) -> None:
        super().append(row)
        name, p50, p95, rows = row
        flag = "  > 300 ms" if name.startswith("search") and p95 > 300 else ""
        out(f"{name:38s} {p50:8.1f} {p95:8.1f} {rows:6d}{flag}")


def bench(db: Database, g: Generated, runs: int) -> list[tuple[str, float, float, int]]:
    rnd = random.Random(7)
    results = Results()
    out(f"{'query':38s} {'p50 ms':>8s} {'p95 ms':>8s} {'rows':>6s}")
    params = KpiParams()
    with db.session() as s:
        for name, make in query_kinds(g, rnd):
            rows = [0]

            def run() -> None:
                rows[0] = len(search_calls(s, make()).calls)

            run()   # warm the cache once
            samples = timed(run, runs)
            results.append((f"search: {name}", pct(samples, 50), pct(samples, 95), rows[0]))
        first = search_calls(s, CallSearch(text="噪音"))
        cursor = first.next_cursor or ""
        samples = timed(lambda: search_calls(s, CallSearch(text="噪音", cursor=cursor)), runs)
        results.append(("search: page 2 (keyset)", pct(samples, 50), pct(samples, 95), 50))
        for name, days, bucket in (("kpi: 1 day by hour", 1, "hour"), ("kpi: 7 days by day", 7, "day"),
                                   ("kpi: 30 days by day", 30, "day"), ("kpi: 90 days by day", 90, "day")):
            kruns = max(3, runs // (5 if days > 7 else 1))

            def kpi() -> None:
                d = START + timedelta(days=rnd.randrange(DAYS - days + 1))
                kpi_series(s, d, d + timedelta(days=days), params, bucket=bucket, tz="Asia/Shanghai")

            kpi()
            samples = timed(kpi, kruns)
            results.append((name, pct(samples, 50), pct(samples, 95), kruns))
        samples = timed(lambda: list_callbacks(s, START, END, pending_only=True, limit=100), runs)
        results.append(("callbacks: pending, 90 days", pct(samples, 50), pct(samples, 95), 100))
    return results


def report(backend: str, n: int, load_s: float, results: list[tuple[str, float, float, int]]) -> None:
    searches = [p95 for name, _p50, p95, _rows in results if name.startswith("search")]
    out(f"worst search p95 {max(searches):.1f} ms ({'meets' if max(searches) < 300 else 'MISSES'} the 300 ms target)")


def run_sqlite(g: Generated, n: int, runs: int, workdir: Path) -> None:
    db = open_database(f"sqlite:///{workdir / 'bench.sqlite3'}")
    upgrade(db)
    t0 = time.perf_counter()
    load_sqlite(db, g)
    load_s = time.perf_counter() - t0
    out(f"\n## SQLite {db.engine.dialect.dbapi.sqlite_version}: {n:,} calls (load {load_s:.0f} s)")  # type: ignore[union-attr]
    report("SQLite", n, load_s, bench(db, g, runs))
    db.dispose()


def run_postgres(g: Generated, n: int, runs: int, admin_url: str) -> None:
    name = f"hotline_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = create_engine(normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        db = open_database(normalize_url(admin_url).rsplit("/", 1)[0] + f"/{name}")
        upgrade(db)
        t0 = time.perf_counter()
        load_postgres(db, g)
        load_s = time.perf_counter() - t0
        with db.engine.connect() as conn:
            version = conn.execute(text("SHOW server_version")).scalar_one()
        out(f"\n## PostgreSQL {version}: {n:,} calls (load {load_s:.0f} s)")
        report("PostgreSQL", n, load_s, bench(db, g, runs))
        db.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--calls", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--backend", choices=("sqlite", "postgresql", "both"), default="both")
    ap.add_argument("--pg-url", default=os.environ.get("HOTLINE_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    g = generate(args.calls)
    out(f"generated {len(g.calls):,} calls, {len(g.transcripts):,} transcript rows in {time.perf_counter() - t0:.0f} s")
    if args.backend in ("sqlite", "both"):
        with tempfile.TemporaryDirectory(prefix="hotline-bench-") as tmp:
            run_sqlite(g, args.calls, args.runs, Path(tmp))
    if args.backend in ("postgresql", "both"):
        run_postgres(g, args.calls, args.runs, args.pg_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
