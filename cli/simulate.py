"""`hotline simulate-call`: drive a running FastAGI server with one emulated Asterisk call."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from agi.emulator import CallerScript, CallSpec, EmulatorConfig, QueueOutcome, TimedKey, run_call
from agi.emulator.model import CallReport
from config import Settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("simulate-call", help="place one emulated Asterisk call against a running FastAGI server")
    p.add_argument("--host", default=None, help="FastAGI host (default: agi.host)")
    p.add_argument("--port", type=int, default=None, help="FastAGI port (default: agi.port)")
    p.add_argument("--flow", default="main", help="script path, query allowed (main?lang=zh)")
    p.add_argument("--arg", action="append", default=[], help="AGI argument (repeatable)")
    p.add_argument("--caller", default="13800138000", help="caller number ('' = unknown)")
    p.add_argument("--digits", action="append", default=[],
                   help="what the caller keys at each input prompt, in order (repeatable; '' = silence)")
    p.add_argument("--key-at", action="append", default=[], metavar="SECONDS:KEY", help="a key at a fixed call time")
    p.add_argument("--say", action="append", default=[], type=Path, help="WAV clip spoken into each RECORD FILE")
    p.add_argument("--hangup-after", type=float, default=None, help="caller hangs up after N call seconds")
    p.add_argument("--hangup-at-command", type=int, default=None, help="caller hangs up during the N-th command")
    p.add_argument("--queue-outcome", default="answered:agent=1001,after=3,talk=20",
                   help="answered:agent=1001,after=3,talk=20 | timeout | leaveempty | joinempty | abandon:after=10")
    p.add_argument("--time-scale", type=float, default=0.0, help="real seconds per call second (0 = no waiting)")
    p.add_argument("--sounds-dir", type=Path, default=None, help="prompts that exist (default: agi.sounds_dir)")
    p.add_argument("--spool-dir", type=Path, default=None, help="write MixMonitor files here (<linkedid>-in/-out.wav)")
    p.add_argument("--json", action="store_true", help="print the call report as JSON")
    p.set_defaults(func=simulate_call)


def _keys(specs: list[str]) -> tuple[TimedKey, ...]:
    keys = []
    for item in specs:
        at, sep, key = item.partition(":")
        if not sep or len(key) != 1:
            raise ValueError(f"--key-at expects SECONDS:KEY, got {item!r}")
        keys.append(TimedKey(float(at), key))
    return tuple(keys)


def simulate_call(args: argparse.Namespace, settings: Settings) -> int:
    try:
        caller = CallerScript(
            keys=_keys(args.key_at), responses=tuple(args.digits), say=tuple(args.say),
            hangup_after_s=args.hangup_after, hangup_at_command=args.hangup_at_command,
            queue=QueueOutcome.parse(args.queue_outcome),
        )
    except ValueError as exc:
        sys.stderr.write(f"simulate-call: {exc}\n")
        return 2
    sounds = args.sounds_dir or Path(settings.agi.sounds_dir)
    config = EmulatorConfig(time_scale=args.time_scale, sounds_dir=sounds if sounds.is_dir() else None,
                            spool_dir=args.spool_dir)
    spec = CallSpec(script=args.flow, args=tuple(args.arg), callerid=args.caller or None,
                    mixmonitor=args.spool_dir is not None, caller=caller)
    host, port = args.host or settings.agi.host, args.port or settings.agi.port
    try:
        report = asyncio.run(run_call(host, port, spec, config))
    except OSError as exc:
        sys.stderr.write(f"simulate-call: cannot reach {host}:{port}: {exc}\n")
        return 1
    sys.stdout.write(_render(report, as_json=args.json))
    return 0 if report.error is None else 1


def _report_dict(report: CallReport) -> dict:
    queue = None
    if report.queue is not None:
        queue = {"queue": report.queue.queue, "outcome": report.queue.outcome, "agent": report.queue.agent,
                 "wait_s": report.queue.wait_s, "talk_s": report.queue.talk_s,
                 "agent_session": _report_dict(report.queue.agent_session) if report.queue.agent_session else None}
    return {
        "uniqueid": report.uniqueid, "linkedid": report.linkedid, "channel": report.channel,
        "agistatus": report.agistatus, "hung_up": report.hung_up, "hangup_at_s": report.hangup_at_s,
        "duration_s": report.duration_s, "closed_by": report.closed_by, "error": report.error,
        "commands": [{"t": round(c.start_s, 3), "command": c.line, "replies": list(c.replies)} for c in report.commands],
        "recordings": [str(p) for p in report.recordings],
        "mixmonitor_files": [str(p) for p in report.mixmonitor_files], "queue": queue,
    }


def _render(report: CallReport, as_json: bool) -> str:
    if as_json:
        return json.dumps(_report_dict(report), ensure_ascii=False, indent=2) + "\n"
    lines = [f"call {report.uniqueid} on {report.channel}"]
    for c in report.commands:
        lines.append(f"  +{c.start_s:7.2f}s  S> {c.line}")
        lines += [f"             A> {r}" for r in c.replies]
    if report.queue is not None:
        lines.append(f"queue {report.queue.queue}: {report.queue.outcome} agent={report.queue.agent} "
                     f"wait={report.queue.wait_s:.1f}s talk={report.queue.talk_s:.1f}s")
    lines.append(f"AGISTATUS={report.agistatus} hung_up={report.hung_up} duration={report.duration_s:.2f}s"
                 + (f" error={report.error}" if report.error else ""))
    return "\n".join(lines) + "\n"
