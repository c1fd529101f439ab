"""Audit trail: one row per playback, download, export, purge, login… (who, what, when)."""

from __future__ import annotations

from typing import Any, Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.models import AuditEvent


def audit(session: Session, actor: str, action: str, target_type: str = "", target_id: str = "",
          detail: Mapping[str, Any] | None = None, remote: str | None = None) -> AuditEvent:
    event = AuditEvent(actor=actor, action=action, target_type=target_type, target_id=str(target_id),
                       detail=dict(detail or {}), remote=remote)
    session.add(event)
    session.flush()
    return event


def list_events(session: Session, limit: int = 100, actor: str | None = None, action: str | None = None) -> list[AuditEvent]:
    stmt = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    if actor:
        stmt = stmt.where(AuditEvent.actor == actor)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    return list(session.scalars(stmt))
