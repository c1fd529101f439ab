"""Retention: purge archived recordings older than their keep time, never under QA review or legal hold.

Keep time per recording: ``--older-than DAYS`` when given, else ``[retention]`` by record type —
``voicemail_days`` for a voicemail clip or a call whose outcome is 留言, ``answered_days`` for a call
answered by an agent (人工接通), ``default_days`` otherwise. Age counts from the call's start
(the row's ``created_at`` for a recording without a call).

A purge deletes the archive file first, then (in one transaction) marks the row ``purged`` with
``purged_at`` and writes an audit event — a crash between the two is finished by the next run, which
finds the file gone and marks the row. ``Call.recording`` is kept as the record of what was archived;
the row's status tells that the audio is gone. Quarantined files are never purged (they await a person).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config import Settings
from config.log import get_logger
from recorder.archive import fsync_dir, resolve_uri
from store.appendix_c import OUTCOME_ANSWERED, OUTCOME_VOICEMAIL
from store.audit import audit
from store.db import Database
from store.models import Call, QaReview, Recording, utcnow

log = get_logger(__name__)


@dataclass(frozen=True)
class PurgeResult:
    recording_id: int
    record_id: str
    kind: str
    uri: str | None
    age_days: float
    keep_days: int
    action: str              # purged | would_purge | kept_qa_review | kept_legal_hold | skipped (changed meanwhile)
    file_existed: bool | None = None


def keep_days(settings: Settings, recording: Recording, call: Call | None) -> int:
    r = settings.retention
    if recording.kind == "voicemail" or (call is not None and call.call_outcome == OUTCOME_VOICEMAIL):
        return r.voicemail_days
    if call is not None and call.call_outcome == OUTCOME_ANSWERED:
        return r.answered_days
    return r.default_days


def _reference_time(recording: Recording, call: Call | None) -> datetime:
    return call.call_start_at if call is not None else recording.created_at


def _in_review(s: Session, call_id: int | None) -> bool:
    if call_id is None:
        return False
    return s.scalar(select(QaReview.id).where(QaReview.call_id == call_id, QaReview.status == "in_review").limit(1)) is not None


def purge(db: Database, settings: Settings, *, older_than_days: int | None = None, dry_run: bool = False,
          now: datetime | None = None, actor: str = "system:retention") -> list[PurgeResult]:
    """Purge every archived recording past its keep time; returns one result per expired recording."""
    now = now or utcnow()
    with db.session() as s:
        stmt = select(Recording, Call).outerjoin(Call, Recording.call_id == Call.id).where(Recording.status == "archived")
        # Nothing younger than the shortest keep time can expire: let the database skip it.
        shortest = older_than_days if older_than_days is not None else min(
            settings.retention.default_days, settings.retention.answered_days, settings.retention.voicemail_days)
        stmt = stmt.where(func.coalesce(Call.call_start_at, Recording.created_at) <= now - timedelta(days=shortest))
        rows = list(s.execute(stmt.order_by(Recording.id)))
        candidates: list[PurgeResult] = []
        for rec, call in rows:
            days = older_than_days if older_than_days is not None else keep_days(settings, rec, call)
            age = now - _reference_time(rec, call)
            if age < timedelta(days=days):
                continue
            base = dict(recording_id=rec.id, record_id=rec.record_id, kind=rec.kind, uri=rec.uri,
                        age_days=round(age.total_seconds() / 86400, 2), keep_days=days)
            if rec.legal_hold or (call is not None and call.legal_hold):
                candidates.append(PurgeResult(**base, action="kept_legal_hold"))
            elif _in_review(s, rec.call_id):
                candidates.append(PurgeResult(**base, action="kept_qa_review"))
            else:
                candidates.append(PurgeResult(**base, action="would_purge"))
    if dry_run:
        return candidates
    return [_purge_one(db, settings, c, actor, now) if c.action == "would_purge" else c for c in candidates]


def _purge_one(db: Database, settings: Settings, c: PurgeResult, actor: str, now: datetime) -> PurgeResult:
    with db.write() as s:
        rec = s.get(Recording, c.recording_id, with_for_update=True)
        call = s.get(Call, rec.call_id) if rec is not None and rec.call_id else None
        # Re-check under the lock: a hold or a review may have started since the scan.
        if rec is None or rec.status != "archived":
            return dataclasses.replace(c, action="skipped")
        if rec.legal_hold or (call is not None and call.legal_hold):
            return dataclasses.replace(c, action="kept_legal_hold")
        if _in_review(s, rec.call_id):
            return dataclasses.replace(c, action="kept_qa_review")
        existed = False
        if rec.uri:
            path = resolve_uri(settings, rec.uri)
            if path.exists():
                path.unlink()
                fsync_dir(path.parent)
                existed = True
        rec.status = "purged"
        rec.purged_at = now
        audit(s, actor, "purge", "recording", str(rec.id), {
            "record_id": rec.record_id, "kind": rec.kind, "uri": rec.uri, "sha256": rec.sha256,
            "age_days": c.age_days, "keep_days": c.keep_days, "file_existed": existed})
    log.info("recording_purged", recording_id=c.recording_id, linkedid=c.record_id, uri=c.uri, file_existed=existed)
    return dataclasses.replace(c, action="purged", file_existed=existed)
