"""search indexes: substring search on transcripts.text and calls.caller_number

SQLite: two contentless FTS5 tables with the ``trigram`` tokenizer (``transcripts_fts`` keyed by
transcripts.id, ``calls_caller_fts`` keyed by calls.id), kept in sync by triggers. The indexed text is the
column value plus two trailing spaces, so every 1- or 2-character substring starts some trigram; store.search
finds 1- and 2-character terms (most Chinese words are 2 characters) through the trigram vocabulary
(``*_fts_vocab``).

Note for later migrations: an Alembic batch (copy-and-move) migration of ``calls`` or ``transcripts`` on
SQLite drops the table's triggers with the old table; such a migration must create the ``*_fts_*`` triggers
again (the statements are in :func:`_sqlite_upgrade`).

PostgreSQL: ``pg_trgm`` GIN indexes on transcripts.text and calls.caller_number (ILIKE '%…%', 3+ characters),
and a GIN index on ``hotline_short_grams(text)`` (its distinct 1- and 2-character substrings) for shorter terms.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None

# PostgreSQL: pg_trgm cannot serve a 1- or 2-character term (most Chinese words: 噪音, 停水), so transcripts
# also get a GIN index over their distinct lower-cased 1- and 2-character substrings; store.search uses it.
PG_SHORT_GRAMS = """
CREATE OR REPLACE FUNCTION hotline_short_grams(t text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS
$$ SELECT coalesce(array_agg(DISTINCT g), '{}'::text[]) FROM (
     SELECT lower(substr(t, i, 1)) AS g FROM generate_series(1, char_length(t)) AS i
     UNION ALL
     SELECT lower(substr(t, i, 2)) FROM generate_series(1, char_length(t) - 1) AS i) AS grams $$
"""
# What the FTS index holds for a value: the value and two spaces (see the module docstring).
PAD = "'  '"

# (fts table, source table, source column)
SQLITE_FTS = (("transcripts_fts", "transcripts", "text"), ("calls_caller_fts", "calls", "caller_number"))


def _sqlite_upgrade() -> None:
    for fts, table, column in SQLITE_FTS:
        op.execute(f"CREATE VIRTUAL TABLE {fts} USING fts5({column}, content='', tokenize='trigram')")
        op.execute(f"CREATE VIRTUAL TABLE {fts}_vocab USING fts5vocab({fts}, 'row')")
        insert = f"INSERT INTO {fts}(rowid, {column}) VALUES (new.id, new.{column} || {PAD});"
        delete = f"INSERT INTO {fts}({fts}, rowid, {column}) VALUES ('delete', old.id, old.{column} || {PAD});"
        op.execute(f"CREATE TRIGGER {fts}_ai AFTER INSERT ON {table} BEGIN {insert} END")
        op.execute(f"CREATE TRIGGER {fts}_ad AFTER DELETE ON {table} BEGIN {delete} END")
        op.execute(f"CREATE TRIGGER {fts}_au AFTER UPDATE OF {column} ON {table} BEGIN {delete} {insert} END")
        op.execute(f"INSERT INTO {fts}(rowid, {column}) SELECT id, {column} || {PAD} FROM {table}")


def _sqlite_downgrade() -> None:
    for fts, _table, _column in SQLITE_FTS:
        for suffix in ("ai", "ad", "au"):
            op.execute(f"DROP TRIGGER IF EXISTS {fts}_{suffix}")
        op.execute(f"DROP TABLE IF EXISTS {fts}_vocab")
        op.execute(f"DROP TABLE IF EXISTS {fts}")


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_upgrade()
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute("CREATE INDEX IF NOT EXISTS ix_transcripts_text_trgm ON transcripts USING gin (text gin_trgm_ops)")
    op.execute("CREATE INDEX IF NOT EXISTS ix_calls_caller_trgm ON calls USING gin (caller_number gin_trgm_ops)")
    op.execute(PG_SHORT_GRAMS)
    op.execute("CREATE INDEX IF NOT EXISTS ix_transcripts_text_short ON transcripts USING gin (hotline_short_grams(text))")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _sqlite_downgrade()
        return
    op.execute("DROP INDEX IF EXISTS ix_transcripts_text_short")
    op.execute("DROP FUNCTION IF EXISTS hotline_short_grams(text)")
    op.execute("DROP INDEX IF EXISTS ix_calls_caller_trgm")
    op.execute("DROP INDEX IF EXISTS ix_transcripts_text_trgm")
