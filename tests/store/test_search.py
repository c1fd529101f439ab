"""Call search on both back-ends: filters, caller/transcript substrings (incl. 2-character Chinese words),
keyset pagination, the FTS triggers (SQLite) and the few/many-matches strategies."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, select, update

import store.search as search_mod
from store.db import Database
from store.models import Call, Recording, Transcript
from store.search import BadCursor, CallSearch, SearchError, search_calls

SH = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 5, 1, 8, 0, tzinfo=SH)

# record_id, minutes after T0, caller, agent, outcome, appeal, ticket, caller text, agent text
ROWS: list[tuple[Any, ...]] = [
    ("c1", 0, "13800138000", "1001", "人工接通", "投诉", "20260501000001", "楼上装修噪音很大", "您好请讲"),
    ("c2", 10, "13912345678", "1002", "人工接通", "咨询", "20260501000002", "我想问社保卡怎么补办", "您好"),
    ("c3", 20, "01062345678", "1001", "人工接通", "求助", "20260501000003", "小区停水三天了", "我们马上派单"),
    ("c4", 30, "13800990000", None, "排队放弃", None, None, None, None),
    ("c5", 40, "anonymous", "1002", "人工接通", "投诉", "20260501000004", "夜里施工Noise", "已记录，噪音"),
    ("c6", 50, "15000001234", "1003", "人工接通", "建议", "20260502000001", "建议增加公交线路", "好的"),
]


def _seed(db: Database) -> None:
    with db.write() as s:
        for rid, minutes, caller, agent, outcome, appeal, ticket, t_caller, t_agent in ROWS:
            start = T0 + timedelta(minutes=minutes)
            call = Call(record_id=rid, channel="电话", caller_number=caller, called_number="12345",
                        call_start_at=start, queue_enter_at=start, call_outcome=outcome, agent_id=agent,
                        appeal_type=appeal, ticket_no=ticket, ivr_path=[], problems=[])
            s.add(call)
            s.flush()
            if t_caller is None:
                continue
            rec = Recording(call_id=call.id, record_id=rid, kind="call", uri=f"/a/{rid}.flac", source_files=[])
            s.add(rec)
            s.flush()
            for ch, (speaker, txt) in enumerate((("诉求人", t_caller), ("坐席", t_agent))):
                s.add(Transcript(recording_id=rec.id, call_id=call.id, channel=ch, speaker=speaker, model="m",
                                 segments=[], text=txt))


def ids(db: Database, **kw: Any) -> list[str]:
    with db.session() as s:
        return [c.record_id for c in search_calls(s, CallSearch(**kw)).calls]


@pytest.fixture
def seeded(db: Database) -> Database:
    _seed(db)
    return db


def test_filters(seeded: Database) -> None:
    assert ids(seeded) == ["c6", "c5", "c4", "c3", "c2", "c1"]
    assert ids(seeded, agent_id="1001") == ["c3", "c1"]
    assert ids(seeded, outcome="排队放弃") == ["c4"]
    assert ids(seeded, appeal_type="投诉") == ["c5", "c1"]
    assert ids(seeded, ticket_no="20260501000003") == ["c3"]
    assert ids(seeded, ticket_no="20260501") == ["c5", "c3", "c2", "c1"]        # prefix
    assert ids(seeded, start=T0 + timedelta(minutes=10), end=T0 + timedelta(minutes=40)) == ["c4", "c3", "c2"]
    assert ids(seeded, agent_id="1002", appeal_type="投诉") == ["c5"]
    with pytest.raises(SearchError):
        ids(seeded, outcome="没有这种结果")
    with pytest.raises(SearchError):
        ids(seeded, start=T0, end=T0)


def test_caller_substring(seeded: Database) -> None:
    assert ids(seeded, caller="8000") == ["c1"]              # last four digits
    assert ids(seeded, caller="138") == ["c4", "c1"]         # prefix
    assert ids(seeded, caller="2345678") == ["c3", "c2"]     # middle/end of two numbers
    assert ids(seeded, caller="34") == ["c6", "c3", "c2"]    # 2 characters
    assert ids(seeded, caller="7") == ["c3", "c2"]           # 1 character: scan
    assert ids(seeded, caller="ANONY") == ["c5"]             # ASCII case folded on both back-ends
    assert ids(seeded, caller="99999") == []
    assert ids(seeded, caller="%") == []                     # LIKE wildcards are literal
    assert ids(seeded, caller="138", agent_id="1001") == ["c1"]


def test_transcript_substring(seeded: Database) -> None:
    assert ids(seeded, text="噪音很大") == ["c1"]
    assert ids(seeded, text="噪音") == ["c5", "c1"]          # 2-character word, incl. at the very end of a text
    assert ids(seeded, text="派单") == ["c3"]                # end of the agent channel
    assert ids(seeded, text="您好") == ["c2", "c1"]
    assert ids(seeded, text="停") == ["c3"]                  # 1 character
    assert ids(seeded, text="了") == ["c3"]                  # 1 character, last of its text
    assert ids(seeded, text="好") == ["c6", "c2", "c1"]   # 您好, 您好, 好的
    assert ids(seeded, text="noise") == ["c5"]
    assert ids(seeded, text="停水 三天") == []               # whitespace is part of the term
    assert ids(seeded, text="水三天") == ["c3"]
    assert ids(seeded, text="没有的词语") == []
    assert ids(seeded, text="噪音", caller="8000") == ["c1"]


def test_dense_matches_walk_the_time_index(seeded: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search_mod, "DENSE_MATCHES", 1)
    assert ids(seeded, text="噪音") == ["c5", "c1"]
    assert ids(seeded, caller="138") == ["c4", "c1"]
    monkeypatch.setattr(search_mod, "MAX_VOCAB_TERMS", 0)
    assert ids(seeded, text="您好") == ["c2", "c1"]


def test_keyset_pagination(db: Database) -> None:
    with db.write() as s:
        for i in range(23):   # pairs of calls share a start time: the id breaks the tie
            start = T0 + timedelta(minutes=i // 2)
            s.add(Call(record_id=f"p{i:02d}", channel="电话", caller_number="13800000000", called_number="12345",
                       call_start_at=start, ivr_path=[], problems=[]))
    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        with db.session() as s:
            page = search_calls(s, CallSearch(limit=5, cursor=cursor))
        seen += [c.record_id for c in page.calls]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 5
    assert seen == [f"p{i:02d}" for i in range(22, -1, -1)]
    with db.session() as s, pytest.raises(BadCursor):
        search_calls(s, CallSearch(cursor="not-a-cursor!"))


def test_scope_restricts(seeded: Database) -> None:
    with seeded.session() as s:
        page = search_calls(s, CallSearch(text="噪音"), scope=Call.agent_id == "1001")
    assert [c.record_id for c in page.calls] == ["c1"]


def test_index_follows_transcript_changes(seeded: Database) -> None:
    with seeded.write() as s:
        s.execute(update(Transcript).where(Transcript.text == "小区停水三天了").values(text="小区停电了"))
    assert ids(seeded, text="停水") == []
    assert ids(seeded, text="停电") == ["c3"]
    with seeded.write() as s:
        s.execute(delete(Transcript).where(Transcript.text == "小区停电了"))
    assert ids(seeded, text="停电") == []
    with seeded.write() as s:
        s.execute(update(Call).where(Call.record_id == "c6").values(caller_number="13700001111"))
        c6 = s.scalar(select(Call).where(Call.record_id == "c6"))
        assert c6 is not None
    assert ids(seeded, caller="1234") == ["c2"]
    assert ids(seeded, caller="0001111") == ["c6"]
