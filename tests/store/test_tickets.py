"""Ticket numbers: 14 digits, YYYYMMDD + daily sequence, distinct under 1,000 parallel allocations."""

from __future__ import annotations

import multiprocessing
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

from store.db import Database, open_database
from store.tickets import allocate_ticket_no, ticket_day

N = 1000


def _allocate_one(db: Database) -> str:
    with db.write() as s:
        return allocate_ticket_no(s)


def test_format_and_daily_restart(db: Database) -> None:
    late = datetime(2026, 11, 28, 15, 59, 59, tzinfo=timezone.utc)   # 23:59:59 in Beijing
    early = datetime(2026, 11, 28, 16, 0, 0, tzinfo=timezone.utc)    # 00:00:00 next day in Beijing
    with db.write() as s:
        a = allocate_ticket_no(s, now=late)
        b = allocate_ticket_no(s, now=late)
        c = allocate_ticket_no(s, now=early)
    assert (a, b, c) == ("20261128000001", "20261128000002", "20261129000001")
    assert ticket_day(early, "UTC") == "20261128"


def test_thousand_parallel_allocations_are_distinct(db: Database) -> None:
    with ThreadPoolExecutor(max_workers=32) as pool:
        numbers = list(pool.map(lambda _: _allocate_one(db), range(N)))
    assert len(set(numbers)) == N
    assert all(re.fullmatch(r"\d{14}", n) for n in numbers)
    assert sorted(int(n[-6:]) for n in numbers) == list(range(1, N + 1))


def _worker(url: str, count: int, out: "multiprocessing.Queue[list[str]]") -> None:
    db = open_database(url)
    out.put([_allocate_one(db) for _ in range(count)])
    db.dispose()


def test_parallel_processes_on_one_store(db: Database) -> None:
    """Separate processes (as the AGI server, web app and workers are) never share a number."""
    ctx = multiprocessing.get_context("spawn")
    out: multiprocessing.Queue = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(db.url, 50, out)) for _ in range(4)]
    for p in procs:
        p.start()
    numbers = [n for _ in procs for n in out.get(timeout=120)]
    for p in procs:
        p.join(30)
    assert len(numbers) == 200 and len(set(numbers)) == 200
