"""SQLAlchemy 2 typed models.

``calls`` holds one Appendix C record per inbound call: every field id of the spec is a column of the same
name, except the three object fields, which are documented JSON members:

* ``recording``  – JSON column (uri, sha256, duration_seconds, channels, sample_rate) mirrored from the
  call's archived ``recordings`` row;
* ``transcript`` – assembled from ``transcripts`` rows (one per channel) at export time;
* ``qa_review``  – assembled from the latest ``qa_reviews`` row at export time.

Datetimes are stored timezone-aware in UTC (``UtcDateTime``) and shown in the hotline's time zone.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text,
                        TypeDecorator, UniqueConstraint, text)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out, on SQLite (no tz support) and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: store aware datetimes only")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


PK = BigInteger().with_variant(Integer, "sqlite")


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Call(Base):
    """One call record (来电记录) conforming to Appendix C, plus bookkeeping columns."""

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    # --- call (呼叫信息)
    record_id: Mapped[str] = mapped_column(String(64), unique=True)
    ticket_no: Mapped[str | None] = mapped_column(String(14), unique=True)
    channel: Mapped[str] = mapped_column(String(16), default="电话")
    caller_number: Mapped[str] = mapped_column(String(32))
    called_number: Mapped[str] = mapped_column(String(32))
    call_start_at: Mapped[datetime]
    ivr_path: Mapped[list[Any]] = mapped_column(JSON, default=list)
    queue_id: Mapped[str | None] = mapped_column(String(64))
    queue_enter_at: Mapped[datetime | None]
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    wait_seconds: Mapped[int | None]
    talk_seconds: Mapped[int | None]
    call_outcome: Mapped[str | None] = mapped_column(String(16))
    hangup_party: Mapped[str | None] = mapped_column(String(8))
    agent_id: Mapped[str | None] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(16), default="普通话")
    recording: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    transfer_type: Mapped[str] = mapped_column(String(16), default="无")
    transfer_target: Mapped[str | None] = mapped_column(String(64))
    callback_required: Mapped[bool] = mapped_column(Boolean, default=False)
    # --- claimant (诉求人)
    claimant_type: Mapped[str | None] = mapped_column(String(16))
    claimant_name: Mapped[str | None] = mapped_column(String(128))
    gender: Mapped[str | None] = mapped_column(String(4))
    contact_phone: Mapped[str | None] = mapped_column(String(32))
    claimant_address: Mapped[str | None] = mapped_column(String(256))
    org_name: Mapped[str | None] = mapped_column(String(256))
    is_anonymous: Mapped[bool | None]
    confidential: Mapped[bool | None]
    followup_pref: Mapped[str | None] = mapped_column(String(8))
    # --- appeal (诉求内容)
    appeal_type: Mapped[str | None] = mapped_column(String(8))
    category_code: Mapped[str | None] = mapped_column(String(32))
    title: Mapped[str | None] = mapped_column(String(256))
    content: Mapped[str | None] = mapped_column(Text)
    incident_address: Mapped[str | None] = mapped_column(String(256))
    district: Mapped[str | None] = mapped_column(String(64))
    subdistrict: Mapped[str | None] = mapped_column(String(64))
    incident_time: Mapped[datetime | None]
    subject_entity: Mapped[str | None] = mapped_column(String(256))
    urgency: Mapped[str | None] = mapped_column(String(8))
    related_ticket_no: Mapped[str | None] = mapped_column(String(14))
    accepted: Mapped[bool | None]
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    # --- handling (处置)
    disposition: Mapped[str | None] = mapped_column(String(16))
    answer_text: Mapped[str | None] = mapped_column(Text)
    handler_unit: Mapped[str | None] = mapped_column(String(128))
    due_at: Mapped[datetime | None]
    status: Mapped[str | None] = mapped_column(String(8))
    satisfaction: Mapped[str | None] = mapped_column(String(8))
    satisfaction_source: Mapped[str | None] = mapped_column(String(8))
    # --- bookkeeping (not Appendix C)
    uniqueid: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="open")      # open | complete
    valid: Mapped[bool | None]                                           # None until completed
    problems: Mapped[list[Any]] = mapped_column(JSON, default=list)      # validator output when completed
    called_back_at: Mapped[datetime | None]
    called_back_by: Mapped[str | None] = mapped_column(String(64))
    legal_hold: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    recordings: Mapped[list["Recording"]] = relationship(back_populates="call")
    qa_reviews: Mapped[list["QaReview"]] = relationship(back_populates="call")

    __table_args__ = (
        Index("ix_calls_start", "call_start_at"),
        Index("ix_calls_caller_start", "caller_number", "call_start_at"),
        Index("ix_calls_agent_start", "agent_id", "call_start_at"),
        Index("ix_calls_outcome_start", "call_outcome", "call_start_at"),
        Index("ix_calls_appeal_start", "appeal_type", "call_start_at"),
        Index("ix_calls_uniqueid", "uniqueid"),
        Index("ix_calls_callback", "callback_required", "call_start_at"),
        Index("ix_calls_open_start", "call_start_at", postgresql_where=text("state = 'open'"),
              sqlite_where=text("state = 'open'")),
    )


class Recording(Base):
    """An audio file of a call: the two-leg call recording, an IVR description clip or a voicemail."""

    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"))
    record_id: Mapped[str] = mapped_column(String(64))                 # linkedid, also for orphans
    kind: Mapped[str] = mapped_column(String(16), default="call")       # call | ivr_clip | voicemail
    status: Mapped[str] = mapped_column(String(16), default="archived")  # archived | quarantined | purged
    uri: Mapped[str | None] = mapped_column(String(512))
    sha256: Mapped[str | None] = mapped_column(String(64))
    duration_seconds: Mapped[float | None] = mapped_column(Float)
    channels: Mapped[int | None]
    sample_rate: Mapped[int | None]
    format: Mapped[str | None] = mapped_column(String(8))
    source_files: Mapped[list[Any]] = mapped_column(JSON, default=list)
    quarantine_reason: Mapped[str | None] = mapped_column(Text)
    legal_hold: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    purged_at: Mapped[datetime | None]

    call: Mapped[Call | None] = relationship(back_populates="recordings")
    transcripts: Mapped[list["Transcript"]] = relationship(back_populates="recording")

    __table_args__ = (
        Index("ix_recordings_record", "record_id"),
        Index("ix_recordings_call", "call_id"),
        Index("ix_recordings_status_created", "status", "created_at"),
        UniqueConstraint("record_id", "kind", "uri", name="uq_recordings_record_kind_uri"),
    )


class Transcript(Base):
    """One channel of a recording transcribed: segments with words (start, end, word, conf)."""

    __tablename__ = "transcripts"

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    recording_id: Mapped[int] = mapped_column(ForeignKey("recordings.id"))
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"))
    channel: Mapped[int]                                                 # 0 caller, 1 agent
    speaker: Mapped[str] = mapped_column(String(8))                      # 诉求人 | 坐席
    model: Mapped[str] = mapped_column(String(128))
    segments: Mapped[list[Any]] = mapped_column(JSON, default=list)      # [{start,end,text,words:[{start,end,word,conf}]}]
    text: Mapped[str] = mapped_column(Text, default="")                  # plain text for search
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    recording: Mapped[Recording] = relationship(back_populates="transcripts")

    __table_args__ = (
        UniqueConstraint("recording_id", "channel", name="uq_transcripts_recording_channel"),
        Index("ix_transcripts_call", "call_id"),
    )


class Job(Base):
    """A durable unit of background work (transcription), claimed with a lease."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))                        # transcribe
    recording_id: Mapped[int | None] = mapped_column(ForeignKey("recordings.id"))
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    priority: Mapped[int] = mapped_column(default=0)                     # higher first (IVR clips: fast path)
    state: Mapped[str] = mapped_column(String(16), default="queued")     # queued | running | done | failed
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=3)
    run_after: Mapped[datetime] = mapped_column(default=utcnow)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None]

    __table_args__ = (
        Index("ix_jobs_claim", "state", "priority", "run_after"),
        Index("ix_jobs_lease", "state", "lease_expires_at"),
        Index("ix_jobs_recording", "recording_id"),
    )


class QaReview(Base):
    """A QA score of a call: rubric items and weights from settings."""

    __tablename__ = "qa_reviews"

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id"))
    reviewer: Mapped[str] = mapped_column(String(64))
    items: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)   # {item_id: {score, weight, label}}
    total: Mapped[float] = mapped_column(Float)
    comment: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), default="done")     # in_review | done
    reviewed_at: Mapped[datetime] = mapped_column(default=utcnow)

    call: Mapped[Call] = relationship(back_populates="qa_reviews")

    __table_args__ = (Index("ix_qa_reviews_call", "call_id"),)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(64), default="")
    role: Mapped[str] = mapped_column(String(16))                        # agent | qa | supervisor | admin
    agent_id: Mapped[str | None] = mapped_column(String(32), unique=True)  # 坐席工号 / queue member name
    password_hash: Mapped[str] = mapped_column(String(256))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


ROLES = ("agent", "qa", "supervisor", "admin")


class AuditEvent(Base):
    """Who did what, when: playback, download, export, login, purge…"""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    target_type: Mapped[str] = mapped_column(String(32), default="")
    target_id: Mapped[str] = mapped_column(String(128), default="")
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    remote: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (Index("ix_audit_at", "at"), Index("ix_audit_actor_at", "actor", "at"))


class AgentEvent(Base):
    """Events for an agent's console (screen pop, transcript ready); the web app polls them across processes."""

    __tablename__ = "agent_events"

    id: Mapped[int] = mapped_column(PK, primary_key=True, autoincrement=True)
    agent_id: Mapped[str] = mapped_column(String(32))
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id"))
    kind: Mapped[str] = mapped_column(String(32))                        # screen_pop | transcript_ready
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (Index("ix_agent_events_agent_id", "agent_id", "id"),
                      Index("ix_agent_events_call_kind", "call_id", "kind"))


class TicketSequence(Base):
    """Per-day ticket number counter (YYYYMMDD → last 6-digit sequence used)."""

    __tablename__ = "ticket_sequences"

    day: Mapped[str] = mapped_column(String(8), primary_key=True)
    last_value: Mapped[int] = mapped_column(default=0)
