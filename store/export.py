"""`hotline records export`: Appendix C records keyed by field id as JSON lines or CSV.

Confidential claimants (``confidential: true``) are masked unless an admin asks for unmasked output;
every export is an audit event.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.appendix_c import FIELD_IDS
from store.audit import audit
from store.masking import mask_identity
from store.models import Call, QaReview, Transcript
from store.records import record_dict
from store.users import get_user

FORMATS = ("jsonl", "csv")


class ExportNotAllowed(PermissionError):
    pass


@dataclass(frozen=True)
class ExportRequest:
    start: datetime
    end: datetime
    fmt: str = "jsonl"
    unmasked: bool = False
    actor: str = "cli"
    tz: str = "Asia/Shanghai"


def _records(session: Session, req: ExportRequest) -> Iterator[dict[str, Any]]:
    stmt = (select(Call).where(Call.call_start_at >= req.start, Call.call_start_at < req.end)
            .order_by(Call.call_start_at, Call.id).execution_options(yield_per=500))
    for call in session.scalars(stmt):
        transcripts = session.scalars(select(Transcript).where(Transcript.call_id == call.id)).all()
        review = session.scalars(select(QaReview).where(QaReview.call_id == call.id)
                                 .order_by(QaReview.reviewed_at.desc()).limit(1)).first()
        record = record_dict(call, tz=req.tz, transcripts=transcripts, qa_review=review, as_json=True)
        if record.get("confidential") and not req.unmasked:
            record = mask_identity(record)
        yield record


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def export_records(session: Session, req: ExportRequest, out: io.TextIOBase | Any) -> int:
    """Write the records of ``[start, end)`` to ``out``; returns the count. Audits the export."""
    if req.fmt not in FORMATS:
        raise ValueError(f"unknown format {req.fmt!r} (one of {', '.join(FORMATS)})")
    if req.unmasked:
        user = get_user(session, req.actor)
        if user is None or user.role != "admin" or not user.active:
            raise ExportNotAllowed(f"unmasked export needs an active admin user; {req.actor!r} is not one")
    count = 0
    if req.fmt == "jsonl":
        for record in _records(session, req):
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            count += 1
    else:
        writer = csv.writer(out)
        writer.writerow(FIELD_IDS)
        for record in _records(session, req):
            writer.writerow([_csv_cell(record.get(f)) for f in FIELD_IDS])
            count += 1
    audit(session, req.actor, "export", "calls", "", {
        "from": req.start.isoformat(), "to": req.end.isoformat(), "format": req.fmt,
        "unmasked": req.unmasked, "count": count})
    return count
