"""Call search: filters, substring search on caller numbers and transcripts, keyset pagination.

Results are calls newest first (``call_start_at`` desc, ``id`` desc); the cursor of a page is the
(call_start_at, id) of its last row, so page N costs what page 1 costs.

Substring terms use the indexes of migration 0002:

* SQLite: contentless FTS5 ``trigram`` tables. A term of 3+ characters is a phrase MATCH (exact
  substring, ASCII case folded). A 1- or 2-character term (most Chinese words have 2) is an OR of the
  trigram vocabulary entries starting with it (the indexed text ends in two spaces, so every short
  substring starts some trigram); when that OR would be too long (a very common character), the term
  matches so many rows that ``LIKE`` in time order finds a page at once.
* PostgreSQL: ``ILIKE '%term%'`` served by the ``pg_trgm`` GIN indexes (3+ characters); a 1- or
  2-character transcript term uses the ``hotline_short_grams(text)`` GIN index; 1–2 digit caller
  fragments match most numbers and scan in time order, stopping at the page size.

When a substring matches few rows, the query starts from the matching ids and sorts them; when it matches
many, it walks the time index and probes membership (stopping after one page). The choice is made by a
bounded count of the matches (:data:`DENSE_MATCHES`) on SQLite, whose planner has no statistics for it;
PostgreSQL's planner decides from its own statistics.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import (ColumnElement, Select, Text, and_, cast, exists, func, literal, literal_column, select, text,
                        tuple_)
from sqlalchemy.dialects.postgresql import ARRAY as PG_ARRAY
from sqlalchemy.dialects.postgresql import array as pg_array
from sqlalchemy.orm import Session

from store.appendix_c import APPEAL_TYPES, CALL_OUTCOMES
from store.models import Call, Transcript

MAX_LIMIT = 200
DEFAULT_LIMIT = 50
DENSE_MATCHES = 5_000          # more matches than this: walk the time index instead of sorting the matches
MAX_VOCAB_TERMS = 2_000        # 1-2 character terms: at most this many trigrams in the OR
_MAX_CHAR = "\U0010ffff"


class SearchError(ValueError):
    """A search request that cannot be run (bad filter value or cursor)."""


class BadCursor(SearchError):
    pass


@dataclass(frozen=True)
class CallSearch:
    """A call search. Empty strings mean "no filter"; times are aware, [start, end)."""

    start: datetime | None = None
    end: datetime | None = None
    caller: str = ""          # substring of caller_number
    agent_id: str = ""        # exact
    ticket_no: str = ""       # exact, or a prefix when shorter than 14 digits
    appeal_type: str = ""     # exact (Appendix C enum)
    outcome: str = ""         # exact (Appendix C enum)
    text: str = ""            # substring of any transcript channel
    limit: int = DEFAULT_LIMIT
    cursor: str = ""

    def normalized(self) -> "CallSearch":
        limit = self.limit if 1 <= self.limit <= MAX_LIMIT else (MAX_LIMIT if self.limit > MAX_LIMIT else DEFAULT_LIMIT)
        return replace(self, caller=self.caller.strip(), agent_id=self.agent_id.strip(),
                       ticket_no=self.ticket_no.strip(), appeal_type=self.appeal_type.strip(),
                       outcome=self.outcome.strip(), text=" ".join(self.text.split()), limit=limit)


@dataclass(frozen=True)
class SearchPage:
    calls: list[Call]
    next_cursor: str | None


_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICRO = timedelta(microseconds=1)


def encode_cursor(at: datetime, call_id: int) -> str:
    micros = (at - _EPOCH) // _MICRO
    return base64.urlsafe_b64encode(f"{micros}:{call_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        micros, call_id = raw.split(":")
        return _EPOCH + int(micros) * _MICRO, int(call_id)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadCursor(f"bad cursor {cursor!r}") from exc


def _like_pattern(term: str) -> str:
    escaped = term.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _contains(column: Any, term: str, dialect: str) -> ColumnElement[bool]:
    """Case-insensitive (ASCII) substring test: SQLite's LIKE already folds ASCII case, PostgreSQL's ILIKE."""
    pattern = _like_pattern(term)
    return column.like(pattern, escape="\\") if dialect == "sqlite" else column.ilike(pattern, escape="\\")


def _fts_phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


@dataclass(frozen=True)
class _Substring:
    """A substring condition on calls, and whether its matches are few enough to start from and sort."""

    condition: ColumnElement[bool]
    few: bool = False


_NOTHING = _Substring(literal(False), True)


def _sqlite_match(session: Session, fts: str, term: str) -> str | None:
    """The FTS5 MATCH expression for ``term`` ("" : nothing can match; None: the index cannot answer)."""
    if len(term) >= 3:
        return _fts_phrase(term)
    if len(term) in (1, 2):
        lo = term.lower()
        terms = session.execute(
            text(f"SELECT term FROM {fts}_vocab WHERE term >= :lo AND term <= :hi LIMIT :n"),
            {"lo": lo, "hi": lo + _MAX_CHAR, "n": MAX_VOCAB_TERMS + 1}).scalars().all()
        if len(terms) > MAX_VOCAB_TERMS:
            return None
        return " OR ".join(_fts_phrase(t) for t in terms)
    return None


def _sqlite_substring(session: Session, fts: str, term: str, ids_sql: str, predicate: ColumnElement[bool]) -> _Substring:
    """Few matches: ``calls.id IN (matching ids)``; many (or unindexable): the row predicate in time order."""
    match = _sqlite_match(session, fts, term)
    if match == "":
        return _NOTHING
    if match is None:
        return _Substring(predicate)
    n = session.execute(text(f"SELECT count(*) FROM (SELECT rowid FROM {fts} WHERE {fts} MATCH :q LIMIT :n)"),
                        {"q": match, "n": DENSE_MATCHES + 1}).scalar_one()
    if n == 0:
        return _NOTHING
    if n > DENSE_MATCHES:
        return _Substring(predicate)
    param = f"{fts}_q"   # one bind name per index: caller and text terms may meet in one statement
    ids = text(ids_sql.replace(":q", f":{param}")).bindparams(**{param: match}).columns(cid=Call.id.type)
    return _Substring(Call.id.in_(ids), True)


def _caller_condition(session: Session, dialect: str, term: str) -> _Substring:
    predicate = _contains(Call.caller_number, term, dialect)
    if dialect == "sqlite":
        return _sqlite_substring(session, "calls_caller_fts", term,
                                 "SELECT rowid AS cid FROM calls_caller_fts WHERE calls_caller_fts MATCH :q",
                                 predicate)
    return _Substring(predicate)   # pg_trgm GIN serves ILIKE '%term%' (3+ characters)


def _text_condition(session: Session, dialect: str, term: str) -> _Substring:
    predicate = exists().where(Transcript.call_id == Call.id, _contains(Transcript.text, term, dialect))
    if dialect == "sqlite":
        return _sqlite_substring(
            session, "transcripts_fts", term,
            "SELECT t.call_id AS cid FROM transcripts AS t WHERE t.id IN "
            "(SELECT rowid FROM transcripts_fts WHERE transcripts_fts MATCH :q)", predicate)
    if len(term) <= 2:   # the short-gram GIN index of migration 0002; ILIKE keeps the match exact
        grams = func.hotline_short_grams(Transcript.text).op("@>")(cast(pg_array([term.lower()]), PG_ARRAY(Text)))
        return _Substring(exists().where(Transcript.call_id == Call.id, grams, _contains(Transcript.text, term, dialect)))
    return _Substring(predicate)   # pg_trgm GIN serves ILIKE '%term%' (3+ characters)


def _ticket_condition(ticket: str) -> ColumnElement[bool]:
    if len(ticket) >= 14:
        return Call.ticket_no == ticket
    if not ticket.isdigit():
        raise SearchError("工单编号只能包含数字")
    upper = ticket[:-1] + chr(ord(ticket[-1]) + 1)
    return and_(Call.ticket_no >= ticket, Call.ticket_no < upper)


def build_query(session: Session, q: CallSearch, scope: ColumnElement[bool] | None = None) -> Select[tuple[Call]]:
    """The SELECT for one page of ``q`` (``limit + 1`` rows, to know whether a next page exists)."""
    dialect = session.get_bind().dialect.name
    conds: list[ColumnElement[bool]] = []
    if q.start is not None:
        conds.append(Call.call_start_at >= q.start)
    if q.end is not None:
        conds.append(Call.call_start_at < q.end)
    if q.agent_id:
        conds.append(Call.agent_id == q.agent_id)
    if q.appeal_type:
        if q.appeal_type not in APPEAL_TYPES:
            raise SearchError(f"未知的诉求类型：{q.appeal_type}")
        conds.append(Call.appeal_type == q.appeal_type)
    if q.outcome:
        if q.outcome not in CALL_OUTCOMES:
            raise SearchError(f"未知的呼叫结果：{q.outcome}")
        conds.append(Call.call_outcome == q.outcome)
    if q.ticket_no:
        conds.append(_ticket_condition(q.ticket_no))
    if scope is not None:
        conds.append(scope)
    if q.cursor:
        at, call_id = decode_cursor(q.cursor)
        conds.append(tuple_(Call.call_start_at, Call.id) < tuple_(literal(at, Call.call_start_at.type),
                                                                   literal(call_id)))
    order_key: ColumnElement[Any] = Call.call_start_at
    for term, build in ((q.caller, _caller_condition), (q.text, _text_condition)):
        if term:
            sub = build(session, dialect, term)
            conds.append(sub.condition)
            if sub.few and dialect == "sqlite":
                # few matches: start from them and sort (unary + keeps SQLite off the time index)
                order_key = literal_column("+calls.call_start_at")
    stmt = select(Call).where(*conds).order_by(order_key.desc(), Call.id.desc()).limit(q.limit + 1)
    return stmt


def search_calls(session: Session, q: CallSearch, scope: ColumnElement[bool] | None = None) -> SearchPage:
    """One page of calls matching ``q`` (``scope``: an extra WHERE clause, e.g. the user's visible calls)."""
    q = q.normalized()
    if q.start is not None and q.end is not None and q.end <= q.start:
        raise SearchError("结束时间必须晚于开始时间")
    if session.get_bind().dialect.name == "postgresql":
        # psycopg prepares a statement after 5 runs and PostgreSQL may then reuse a generic plan, blind to the
        # term: a common 2-character word planned as a rare one took 3.5 s instead of 25 ms at 1M calls.
        session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))
    rows = list(session.scalars(build_query(session, q, scope)))
    nxt = None
    if len(rows) > q.limit:
        rows = rows[:q.limit]
        nxt = encode_cursor(rows[-1].call_start_at, rows[-1].id)
    return SearchPage(rows, nxt)


def transcripts_of(session: Session, call_ids: list[int]) -> dict[int, list[Transcript]]:
    """Transcripts of several calls (one query), by call id, channels in order."""
    out: dict[int, list[Transcript]] = {i: [] for i in call_ids}
    if not call_ids:
        return out
    for t in session.scalars(select(Transcript).where(Transcript.call_id.in_(call_ids))
                             .order_by(Transcript.call_id, Transcript.channel)):
        out.setdefault(t.call_id or 0, []).append(t)
    return out


__all__ = ["CallSearch", "SearchPage", "SearchError", "BadCursor", "search_calls", "build_query",
           "encode_cursor", "decode_cursor", "transcripts_of", "DEFAULT_LIMIT", "MAX_LIMIT"]
