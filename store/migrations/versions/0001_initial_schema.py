"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table('audit_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=64), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('target_type', sa.String(length=32), nullable=False),
    sa.Column('target_id', sa.String(length=128), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.Column('remote', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_actor_at', ['actor', 'at'], unique=False)
        batch_op.create_index('ix_audit_at', ['at'], unique=False)

    op.create_table('calls',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('record_id', sa.String(length=64), nullable=False),
    sa.Column('ticket_no', sa.String(length=14), nullable=True),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('caller_number', sa.String(length=32), nullable=False),
    sa.Column('called_number', sa.String(length=32), nullable=False),
    sa.Column('call_start_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ivr_path', sa.JSON(), nullable=False),
    sa.Column('queue_id', sa.String(length=64), nullable=True),
    sa.Column('queue_enter_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('wait_seconds', sa.Integer(), nullable=True),
    sa.Column('talk_seconds', sa.Integer(), nullable=True),
    sa.Column('call_outcome', sa.String(length=16), nullable=True),
    sa.Column('hangup_party', sa.String(length=8), nullable=True),
    sa.Column('agent_id', sa.String(length=32), nullable=True),
    sa.Column('language', sa.String(length=16), nullable=False),
    sa.Column('recording', sa.JSON(), nullable=True),
    sa.Column('transfer_type', sa.String(length=16), nullable=False),
    sa.Column('transfer_target', sa.String(length=64), nullable=True),
    sa.Column('callback_required', sa.Boolean(), nullable=False),
    sa.Column('claimant_type', sa.String(length=16), nullable=True),
    sa.Column('claimant_name', sa.String(length=128), nullable=True),
    sa.Column('gender', sa.String(length=4), nullable=True),
    sa.Column('contact_phone', sa.String(length=32), nullable=True),
    sa.Column('claimant_address', sa.String(length=256), nullable=True),
    sa.Column('org_name', sa.String(length=256), nullable=True),
    sa.Column('is_anonymous', sa.Boolean(), nullable=True),
    sa.Column('confidential', sa.Boolean(), nullable=True),
    sa.Column('followup_pref', sa.String(length=8), nullable=True),
    sa.Column('appeal_type', sa.String(length=8), nullable=True),
    sa.Column('category_code', sa.String(length=32), nullable=True),
    sa.Column('title', sa.String(length=256), nullable=True),
    sa.Column('content', sa.Text(), nullable=True),
    sa.Column('incident_address', sa.String(length=256), nullable=True),
    sa.Column('district', sa.String(length=64), nullable=True),
    sa.Column('subdistrict', sa.String(length=64), nullable=True),
    sa.Column('incident_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('subject_entity', sa.String(length=256), nullable=True),
    sa.Column('urgency', sa.String(length=8), nullable=True),
    sa.Column('related_ticket_no', sa.String(length=14), nullable=True),
    sa.Column('accepted', sa.Boolean(), nullable=True),
    sa.Column('rejection_reason', sa.Text(), nullable=True),
    sa.Column('disposition', sa.String(length=16), nullable=True),
    sa.Column('answer_text', sa.Text(), nullable=True),
    sa.Column('handler_unit', sa.String(length=128), nullable=True),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=8), nullable=True),
    sa.Column('satisfaction', sa.String(length=8), nullable=True),
    sa.Column('satisfaction_source', sa.String(length=8), nullable=True),
    sa.Column('uniqueid', sa.String(length=64), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('valid', sa.Boolean(), nullable=True),
    sa.Column('problems', sa.JSON(), nullable=False),
    sa.Column('called_back_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('called_back_by', sa.String(length=64), nullable=True),
    sa.Column('legal_hold', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('record_id'),
    sa.UniqueConstraint('ticket_no')
    )
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.create_index('ix_calls_agent_start', ['agent_id', 'call_start_at'], unique=False)
        batch_op.create_index('ix_calls_appeal_start', ['appeal_type', 'call_start_at'], unique=False)
        batch_op.create_index('ix_calls_callback', ['callback_required', 'call_start_at'], unique=False)
        batch_op.create_index('ix_calls_caller_start', ['caller_number', 'call_start_at'], unique=False)
        batch_op.create_index('ix_calls_outcome_start', ['call_outcome', 'call_start_at'], unique=False)
        batch_op.create_index('ix_calls_start', ['call_start_at'], unique=False)
        batch_op.create_index('ix_calls_uniqueid', ['uniqueid'], unique=False)

    op.create_table('ticket_sequences',
    sa.Column('day', sa.String(length=8), nullable=False),
    sa.Column('last_value', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('day')
    )
    op.create_table('users',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('username', sa.String(length=64), nullable=False),
    sa.Column('display_name', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('agent_id', sa.String(length=32), nullable=True),
    sa.Column('password_hash', sa.String(length=256), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('failed_logins', sa.Integer(), nullable=False),
    sa.Column('locked_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('agent_id'),
    sa.UniqueConstraint('username')
    )
    op.create_table('agent_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('agent_id', sa.String(length=32), nullable=False),
    sa.Column('call_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('agent_events', schema=None) as batch_op:
        batch_op.create_index('ix_agent_events_agent_id', ['agent_id', 'id'], unique=False)

    op.create_table('qa_reviews',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('call_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('reviewer', sa.String(length=64), nullable=False),
    sa.Column('items', sa.JSON(), nullable=False),
    sa.Column('total', sa.Float(), nullable=False),
    sa.Column('comment', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reviewed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('qa_reviews', schema=None) as batch_op:
        batch_op.create_index('ix_qa_reviews_call', ['call_id'], unique=False)

    op.create_table('recordings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('call_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('record_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('uri', sa.String(length=512), nullable=True),
    sa.Column('sha256', sa.String(length=64), nullable=True),
    sa.Column('duration_seconds', sa.Float(), nullable=True),
    sa.Column('channels', sa.Integer(), nullable=True),
    sa.Column('sample_rate', sa.Integer(), nullable=True),
    sa.Column('format', sa.String(length=8), nullable=True),
    sa.Column('source_files', sa.JSON(), nullable=False),
    sa.Column('quarantine_reason', sa.Text(), nullable=True),
    sa.Column('legal_hold', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('purged_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('record_id', 'kind', 'uri', name='uq_recordings_record_kind_uri')
    )
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.create_index('ix_recordings_call', ['call_id'], unique=False)
        batch_op.create_index('ix_recordings_record', ['record_id'], unique=False)
        batch_op.create_index('ix_recordings_status_created', ['status', 'created_at'], unique=False)

    op.create_table('jobs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('recording_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('call_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('max_attempts', sa.Integer(), nullable=False),
    sa.Column('run_after', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lease_owner', sa.String(length=128), nullable=True),
    sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], ),
    sa.ForeignKeyConstraint(['recording_id'], ['recordings.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_claim', ['state', 'priority', 'run_after'], unique=False)
        batch_op.create_index('ix_jobs_lease', ['state', 'lease_expires_at'], unique=False)
        batch_op.create_index('ix_jobs_recording', ['recording_id'], unique=False)

    op.create_table('transcripts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('recording_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('call_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('channel', sa.Integer(), nullable=False),
    sa.Column('speaker', sa.String(length=8), nullable=False),
    sa.Column('model', sa.String(length=128), nullable=False),
    sa.Column('segments', sa.JSON(), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['call_id'], ['calls.id'], ),
    sa.ForeignKeyConstraint(['recording_id'], ['recordings.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('recording_id', 'channel', name='uq_transcripts_recording_channel')
    )
    with op.batch_alter_table('transcripts', schema=None) as batch_op:
        batch_op.create_index('ix_transcripts_call', ['call_id'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('transcripts', schema=None) as batch_op:
        batch_op.drop_index('ix_transcripts_call')

    op.drop_table('transcripts')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_recording')
        batch_op.drop_index('ix_jobs_lease')
        batch_op.drop_index('ix_jobs_claim')

    op.drop_table('jobs')
    with op.batch_alter_table('recordings', schema=None) as batch_op:
        batch_op.drop_index('ix_recordings_status_created')
        batch_op.drop_index('ix_recordings_record')
        batch_op.drop_index('ix_recordings_call')

    op.drop_table('recordings')
    with op.batch_alter_table('qa_reviews', schema=None) as batch_op:
        batch_op.drop_index('ix_qa_reviews_call')

    op.drop_table('qa_reviews')
    with op.batch_alter_table('agent_events', schema=None) as batch_op:
        batch_op.drop_index('ix_agent_events_agent_id')

    op.drop_table('agent_events')
    op.drop_table('users')
    op.drop_table('ticket_sequences')
    with op.batch_alter_table('calls', schema=None) as batch_op:
        batch_op.drop_index('ix_calls_uniqueid')
        batch_op.drop_index('ix_calls_start')
        batch_op.drop_index('ix_calls_outcome_start')
        batch_op.drop_index('ix_calls_caller_start')
        batch_op.drop_index('ix_calls_callback')
        batch_op.drop_index('ix_calls_appeal_start')
        batch_op.drop_index('ix_calls_agent_start')

    op.drop_table('calls')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_at')
        batch_op.drop_index('ix_audit_actor_at')

    op.drop_table('audit_events')

