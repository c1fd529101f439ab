"""`hotline records export --from --to --format jsonl|csv [--unmasked --actor ADMIN]` and
`hotline records sweep [--max-open-seconds N] [--dry-run]`."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from config import Settings
from store.db import SchemaOutOfDate, open_database
from store.export import FORMATS, ExportNotAllowed, ExportRequest, export_records
from store.migrate import check_schema
from store.models import utcnow
from store.sweep import sweep


def register(sub: argparse._SubParsersAction) -> None:
    records = sub.add_parser("records", help="call records").add_subparsers(dest="records_command", required=True)
    export = records.add_parser("export", help="export Appendix C records of [from, to)")
    export.add_argument("--from", dest="start", required=True, help="date or ISO time (hotline time zone if no offset)")
    export.add_argument("--to", dest="end", required=True, help="date or ISO time, exclusive")
    export.add_argument("--format", choices=FORMATS, default="jsonl")
    export.add_argument("--output", "-o", help="file (default: stdout)")
    export.add_argument("--unmasked", action="store_true", help="do not mask confidential claimants (admins only)")
    export.add_argument("--actor", default=None, help="user name recorded in the audit log (default: cli:<login>)")
    export.set_defaults(func=run_export)
    swp = records.add_parser("sweep", help="close records still open long after the call started (crash + no h extension)")
    swp.add_argument("--max-open-seconds", type=int, default=None, metavar="N",
                     help="close records open longer than N seconds after call_start_at (default: records.max_open_seconds)")
    swp.add_argument("--dry-run", action="store_true", help="list what would be closed, change nothing")
    swp.set_defaults(func=run_sweep)


def parse_when(text: str, tz: str) -> datetime:
    zone = ZoneInfo(tz)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise SystemExit(f"hotline: not a date or ISO time: {text!r}") from None
    if len(text) == 10:  # a bare date
        value = datetime.combine(date.fromisoformat(text), time(0))
    return value if value.tzinfo else value.replace(tzinfo=zone)


def run_export(args: argparse.Namespace, settings: Settings) -> int:
    tz = settings.general.timezone
    actor = args.actor or f"cli:{getpass.getuser()}"
    req = ExportRequest(parse_when(args.start, tz), parse_when(args.end, tz), args.format, args.unmasked, actor, tz)
    database = open_database(settings.database.url)
    check_schema(database)
    out = open(args.output, "w", encoding="utf-8", newline="") if args.output else sys.stdout
    try:
        with database.write() as session:
            count = export_records(session, req, out)
    except ExportNotAllowed as exc:
        sys.stderr.write(f"hotline: {exc}\n")
        return 3
    finally:
        if args.output:
            out.close()
        database.dispose()
    sys.stderr.write(f"exported {count} records\n")
    return 0


def run_sweep(args: argparse.Namespace, settings: Settings) -> int:
    max_open = settings.records.max_open_seconds if args.max_open_seconds is None else args.max_open_seconds
    if max_open <= 0:
        sys.stderr.write(f"hotline: --max-open-seconds must be positive, got {max_open}\n")
        return 2
    database = open_database(settings.database.url, settings.database.echo)
    try:
        check_schema(database)
        result = sweep(database, utcnow(), max_open, dry_run=args.dry_run, tz=settings.general.timezone)
    except SchemaOutOfDate as exc:
        sys.stderr.write(f"hotline: {exc}\n")
        return 2
    finally:
        database.dispose()
    for r in result.records:
        sys.stdout.write(json.dumps({"record_id": r.record_id, "call_start_at": r.call_start_at.isoformat(),
                                     "call_outcome": r.call_outcome,
                                     "ended_at": r.ended_at.isoformat() if r.ended_at else None,
                                     "valid": r.valid}, ensure_ascii=False) + "\n")
    if args.dry_run:
        sys.stdout.write(f"dry run: would close {result.count} records open longer than {max_open} s\n")
    else:
        sys.stdout.write(f"closed {result.count} records open longer than {max_open} s\n")
    return 0
