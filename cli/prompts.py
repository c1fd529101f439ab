"""`hotline prompts build`: synthesize every missing prompt (espeak-ng, Mandarin) as 8 kHz mono WAV."""

from __future__ import annotations

import argparse
import sys

from agi.flowdef import FlowError, load_flows
from agi.prompts import PromptError, build_prompts, check_prompts, inventory
from config import Settings


def register(sub: argparse._SubParsersAction) -> None:
    prompts = sub.add_parser("prompts", help="IVR prompts").add_subparsers(dest="prompts_command", required=True)
    build = prompts.add_parser("build", help="synthesize missing prompts into settings agi.sounds_dir")
    build.add_argument("--force", action="store_true", help="rebuild every prompt, not only missing ones")
    build.add_argument("--dir", help="flow directory (default: settings agi.flows_dir)")
    build.set_defaults(func=build_cmd)
    listing = prompts.add_parser("list", help="list every prompt with its text and whether its file exists")
    listing.add_argument("--dir", help="flow directory (default: settings agi.flows_dir)")
    listing.set_defaults(func=list_cmd)


def _flows(args: argparse.Namespace, settings: Settings):  # type: ignore[no-untyped-def]
    return load_flows(args.dir or settings.agi.flows_dir)


def build_cmd(args: argparse.Namespace, settings: Settings) -> int:
    try:
        flows = _flows(args, settings)
        written = build_prompts(flows, settings.agi.sounds_dir, force=args.force)
    except (FlowError, PromptError) as exc:
        sys.stderr.write(f"hotline prompts build: {exc}\n")
        return 1
    missing = check_prompts(flows, settings.agi.sounds_dir)
    sys.stdout.write(f"{len(written)} prompt(s) written to {settings.agi.sounds_dir}; {len(missing)} missing\n")
    return 1 if missing else 0


def list_cmd(args: argparse.Namespace, settings: Settings) -> int:
    try:
        flows = _flows(args, settings)
        uses = inventory(flows)
    except (FlowError, PromptError) as exc:
        sys.stderr.write(f"hotline prompts list: {exc}\n")
        return 1
    missing = set(check_prompts(flows, settings.agi.sounds_dir))
    for sound, use in sorted(uses.items()):
        state = "missing" if sound in missing else "ok"
        sys.stdout.write(f"{sound}\t{state}\t{','.join(use.flows)}\t{use.prompt.text}\n")
    return 0
