"""The migrations build exactly the schema the models describe (tables, columns, indexes), on both back-ends."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from store.models import Base


SEARCH_INDEXES = {"ix_transcripts_text_trgm", "ix_calls_caller_trgm", "ix_transcripts_text_short"}


def _model_diffs(db) -> list:
    with db.engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    # search support lives outside the models (FTS5 tables and triggers on SQLite, pg_trgm/GIN indexes on
    # PostgreSQL, migration 0002); alembic's own version table too
    def ours(diff) -> bool:
        op = diff[0] if isinstance(diff, tuple) else diff[0][0]
        item = diff[1] if isinstance(diff, tuple) else diff[0][1]
        name = getattr(item, "name", "") or ""
        if op == "remove_table":
            return False
        if op == "remove_index" and name in SEARCH_INDEXES:
            return False
        return True
    return [d for d in diffs if ours(d)]


def test_migrated_schema_matches_the_models(db):
    assert _model_diffs(db) == []
