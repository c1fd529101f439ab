"""Database access: engine set-up for SQLite (embedded default, WAL) and PostgreSQL, sessions, schema check.

SQLite write transactions start with ``BEGIN IMMEDIATE`` (a second engine on the same file), so two
writers queue on the busy timeout instead of failing on a lock upgrade; reads use plain ``BEGIN`` and
never block writers in WAL mode. On PostgreSQL both engines are the same.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000


class StoreError(Exception):
    """Base of store errors."""


class SchemaOutOfDate(StoreError):
    """The database schema is older (or newer) than this code; the message names the fixing command."""


def _sqlite_engine(url: str, begin_sql: str, echo: bool) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, echo=echo, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql(begin_sql)

    return engine


@dataclass
class Database:
    """The store's engines and session factories."""

    url: str
    engine: Engine
    write_engine: Engine

    def __post_init__(self) -> None:
        self._read = sessionmaker(self.engine, expire_on_commit=False)
        self._write = sessionmaker(self.write_engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A read session (you may still write; on SQLite prefer :meth:`write` for writes)."""
        with self._read() as s:
            yield s

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A write transaction, committed on success and rolled back on error."""
        with self._write() as s, s.begin():
            yield s

    def dispose(self) -> None:
        self.engine.dispose()
        if self.write_engine is not self.engine:
            self.write_engine.dispose()


def normalize_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` use psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def open_database(url: str, echo: bool = False) -> Database:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        return Database(url, _sqlite_engine(url, "BEGIN", echo), _sqlite_engine(url, "BEGIN IMMEDIATE", echo))
    # psycopg prepares a statement after a few runs and PostgreSQL may then switch to a generic plan that
    # ignores the search term (a 2-character transcript search went from 25 ms to 3.5 s): always plan per query.
    engine = create_engine(url, echo=echo, pool_pre_ping=True, pool_size=10, max_overflow=20,
                           connect_args={"options": "-c plan_cache_mode=force_custom_plan"})
    return Database(url, engine, engine)
