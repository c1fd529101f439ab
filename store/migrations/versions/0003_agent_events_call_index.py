"""agent_events (call_id, kind) index; partial index of open call records

* The journal applier checks a call's screen pops before adding one (idempotent replay). Without this index
  that check walked every event of the agent (``ix_agent_events_agent_id``), which grows without bound.
* The stale-record sweep (store/sweep.py) looks for ``state = 'open'`` records every few minutes; a partial
  index holds only those (a handful), instead of a scan of every call.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_agent_events_call_kind", "agent_events", ["call_id", "kind"])
    op.create_index("ix_calls_open_start", "calls", ["call_start_at"], postgresql_where=sa.text("state = 'open'"),
                    sqlite_where=sa.text("state = 'open'"))


def downgrade() -> None:
    op.drop_index("ix_calls_open_start", table_name="calls")
    op.drop_index("ix_agent_events_call_kind", table_name="agent_events")
