"""`hotline config show`: the effective settings, secrets redacted."""

from __future__ import annotations

import argparse
import json
import sys

from config import Settings


def register(sub: argparse._SubParsersAction) -> None:
    config = sub.add_parser("config", help="settings").add_subparsers(dest="config_command", required=True)
    show = config.add_parser("show", help="print the effective settings (secrets redacted)")
    show.add_argument("--unredacted", action="store_true", help="show secrets too")
    show.set_defaults(func=show_config)


def show_config(args: argparse.Namespace, settings: Settings) -> int:
    sys.stdout.write(json.dumps(settings.as_dict(redact=not args.unredacted), ensure_ascii=False, indent=2) + "\n")
    return 0
