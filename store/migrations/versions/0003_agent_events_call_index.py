"""agent_events: index on (call_id, kind)

The journal applier checks a call's screen pops before adding one (idempotent replay). Without this index
that check walked every event of the agent (``ix_agent_events_agent_id``), which grows without bound.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_agent_events_call_kind", "agent_events", ["call_id", "kind"])


def downgrade() -> None:
    op.drop_index("ix_agent_events_call_kind", table_name="agent_events")
