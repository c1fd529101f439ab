"""`hotline` console script: one argparse tree, one module per command group.

Each module in COMMAND_MODULES exposes ``register(subparsers)``, adding its subcommands; each
subcommand sets ``func(args, settings) -> int`` as its handler.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from config import SettingsError, load_settings
from config.log import configure_logging

COMMAND_MODULES: tuple[str, ...] = (
    "cli.config_cmd",
    "cli.serve",
    "cli.simulate",
    "cli.users",
    "cli.recordings",
    "cli.db_cmd",
    "cli.records_cmd",
    "cli.worker",
    "cli.flows",
    "cli.prompts",
    "cli.transcribe",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hotline", description="12345 市民服务热线 telephony core")
    parser.add_argument("--config", help="site settings file (default: $HOTLINE_CONFIG)")
    parser.add_argument("--log-level", default="INFO")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(level=args.log_level)
    try:
        settings = load_settings(site_file=args.config)
    except SettingsError as exc:
        sys.stderr.write(f"hotline: bad settings: {exc}\n")
        return 2
    return int(args.func(args, settings) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
