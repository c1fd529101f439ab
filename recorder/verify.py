"""Verify the archive: every archived recording's file exists and still hashes to its stored sha256."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from config import Settings
from config.log import get_logger
from recorder.archive import resolve_uri, sha256_file
from store.db import Database
from store.models import Recording

log = get_logger(__name__)


@dataclass(frozen=True)
class VerifyIssue:
    recording_id: int
    record_id: str
    uri: str | None
    problem: str            # missing | mismatch
    expected_sha256: str | None
    actual_sha256: str | None = None


@dataclass(frozen=True)
class VerifyReport:
    checked: int
    issues: tuple[VerifyIssue, ...]

    @property
    def ok(self) -> bool:
        return not self.issues


def verify_archive(db: Database, settings: Settings, record_id: str | None = None) -> VerifyReport:
    """Re-hash every archived file (or those of one record); list the missing and the altered ones."""
    stmt = select(Recording.id, Recording.record_id, Recording.uri, Recording.sha256).where(
        Recording.status == "archived", Recording.sha256.is_not(None)).order_by(Recording.id)
    if record_id is not None:
        stmt = stmt.where(Recording.record_id == record_id)
    with db.session() as s:
        rows = list(s.execute(stmt))
    issues: list[VerifyIssue] = []
    for rid, rec_id, uri, expected in rows:
        path = resolve_uri(settings, uri) if uri else None
        if path is None or not path.is_file():
            issues.append(VerifyIssue(rid, rec_id, uri, "missing", expected))
            log.error("recording_verify_missing", recording_id=rid, linkedid=rec_id, uri=uri)
            continue
        actual = sha256_file(path)
        if actual != expected:
            issues.append(VerifyIssue(rid, rec_id, uri, "mismatch", expected, actual))
            log.error("recording_verify_mismatch", recording_id=rid, linkedid=rec_id, uri=uri)
    return VerifyReport(len(rows), tuple(issues))
