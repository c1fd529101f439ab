"""`hotline flows check`: validate every IVR flow (and, with --sounds, that every prompt exists)."""

from __future__ import annotations

import argparse
import sys

from agi.flowdef import FlowError, load_flows
from agi.prompts import PromptError, check_prompts, inventory
from config import Settings


def register(sub: argparse._SubParsersAction) -> None:
    flows = sub.add_parser("flows", help="IVR flows").add_subparsers(dest="flows_command", required=True)
    check = flows.add_parser("check", help="validate the flow files (exit 1 with every problem)")
    check.add_argument("--dir", help="flow directory (default: settings agi.flows_dir)")
    check.add_argument("--sounds", action="store_true", help="also check that every prompt's sound file exists")
    check.set_defaults(func=check_flows)


def check_flows(args: argparse.Namespace, settings: Settings) -> int:
    directory = args.dir or settings.agi.flows_dir
    try:
        flows = load_flows(directory)
        prompts = inventory(flows)
    except FlowError as exc:
        for problem in exc.problems:
            sys.stdout.write(f"{problem}\n")
        sys.stdout.write(f"{len(exc.problems)} problem(s) in {directory}\n")
        return 1
    except PromptError as exc:
        sys.stdout.write(f"{exc}\n")
        return 1
    if args.sounds:
        missing = check_prompts(flows, settings.agi.sounds_dir)
        for name in missing:
            sys.stdout.write(f"{settings.agi.sounds_dir}: missing prompt {name!r} (run `hotline prompts build`)\n")
        if missing:
            return 1
    sys.stdout.write(f"{len(flows)} flows OK ({', '.join(sorted(flows))}); {len(prompts)} prompts\n")
    return 0
