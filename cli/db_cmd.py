"""`hotline db upgrade|current`: schema migrations of the configured store."""

from __future__ import annotations

import argparse
import sys

from config import Settings
from store.db import open_database
from store.migrate import current_revision, head_revision, upgrade


def register(sub: argparse._SubParsersAction) -> None:
    db = sub.add_parser("db", help="database schema").add_subparsers(dest="db_command", required=True)
    db.add_parser("upgrade", help="migrate the schema to the newest revision").set_defaults(func=run_upgrade)
    db.add_parser("current", help="show the schema revision").set_defaults(func=run_current)


def run_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    database = open_database(settings.database.url)
    upgrade(database)
    sys.stdout.write(f"schema at {current_revision(database)}\n")
    database.dispose()
    return 0


def run_current(args: argparse.Namespace, settings: Settings) -> int:
    database = open_database(settings.database.url)
    current, head = current_revision(database), head_revision()
    sys.stdout.write(f"current {current or '-'}, head {head}\n")
    database.dispose()
    return 0 if current == head else 1
