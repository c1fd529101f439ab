"""`hotline recordings finalize | purge | verify`: the recording life-cycle from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from typing import Any

from config import Settings
from recorder.errors import RecorderError
from recorder.finalize import FinalizeResult, finalize_pending, finalize_record
from recorder.retention import purge
from recorder.verify import verify_archive
from store.db import Database, open_database
from store.records import RecordNotFound


def register(sub: argparse._SubParsersAction) -> None:
    rec = sub.add_parser("recordings", help="recordings: finalize, purge, verify").add_subparsers(
        dest="recordings_command", required=True)

    fin = rec.add_parser("finalize", help="archive a call's recording (checked, stereo, sha256) and enqueue transcription")
    which = fin.add_mutually_exclusive_group(required=True)
    which.add_argument("--record-id", help="the call's record id (linkedid)")
    which.add_argument("--all", action="store_true", help="every completed call with spool files, and every pending clip")
    fin.add_argument("--settle-seconds", type=float, default=0.0,
                     help="with --all: skip calls ended / files written less than this many seconds ago (default 0)")
    fin.set_defaults(func=cmd_finalize)

    pur = rec.add_parser("purge", help="delete archived recordings past their retention (never under QA review or legal hold)")
    pur.add_argument("--older-than", type=int, metavar="DAYS",
                     help="purge recordings older than DAYS (default: [retention] days per call outcome)")
    pur.add_argument("--dry-run", action="store_true", help="list what would be purged, change nothing")
    pur.add_argument("--actor", default="system:retention", help="name written to the audit log")
    pur.set_defaults(func=cmd_purge)

    ver = rec.add_parser("verify", help="re-hash the archive; exit 1 if a file is missing or altered")
    ver.add_argument("--record-id", help="only this record's recordings")
    ver.set_defaults(func=cmd_verify)


def _open(settings: Settings) -> Database:
    return open_database(settings.database.url, echo=settings.database.echo)


def _line(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=False, default=str) + "\n")


def _finalize_line(r: FinalizeResult) -> None:
    _line({**asdict(r), "changed": r.changed})


def cmd_finalize(args: argparse.Namespace, settings: Settings) -> int:
    db = _open(settings)
    try:
        if args.all:
            results = finalize_pending(db, settings, settle_seconds=args.settle_seconds)
        else:
            try:
                results = finalize_record(db, settings, args.record_id)
            except RecordNotFound:
                sys.stderr.write(f"hotline: no call record {args.record_id!r}\n")
                return 2
            except RecorderError as exc:
                sys.stderr.write(f"hotline: {exc}\n")
                return 1
        for r in results:
            _finalize_line(r)
        archived = sum(r.status == "archived" for r in results)
        quarantined = sum(r.status == "quarantined" for r in results)
        sys.stdout.write(f"finalized {len(results)}: {archived} archived, {quarantined} quarantined\n")
        return 1 if quarantined and not args.all else 0
    finally:
        db.dispose()


def cmd_purge(args: argparse.Namespace, settings: Settings) -> int:
    db = _open(settings)
    try:
        results = purge(db, settings, older_than_days=args.older_than, dry_run=args.dry_run, actor=args.actor)
    finally:
        db.dispose()
    for r in results:
        _line(asdict(r))
    counts: dict[str, int] = {}
    for r in results:
        counts[r.action] = counts.get(r.action, 0) + 1
    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "nothing expired"
    sys.stdout.write(f"{'dry run: ' if args.dry_run else ''}{summary}\n")
    return 0


def cmd_verify(args: argparse.Namespace, settings: Settings) -> int:
    db = _open(settings)
    try:
        report = verify_archive(db, settings, record_id=args.record_id)
    finally:
        db.dispose()
    for issue in report.issues:
        _line(asdict(issue))
    sys.stdout.write(f"verified {report.checked} archived recordings: {len(report.issues)} bad\n")
    return 0 if report.ok else 1
