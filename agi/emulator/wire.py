"""Asterisk's side of the AGI wire: argument splitting (res_agi ``parse_args``), command lookup, reply texts."""

from __future__ import annotations

from dataclasses import dataclass

from agi.emulator.model import CallSpec

INVALID = "510 Invalid or unknown command"
DEAD = "511 Command Not Permitted on a dead channel or intercept routine"
USAGE_HEAD = "520-Invalid command syntax.  Proper usage follows:"
USAGE_TAIL = "520 End of proper usage."
TRYING = "100 result=0 Trying..."
HANGUP = "HANGUP"
MAX_ARGS = 128


def parse_args(line: str) -> list[str]:
    """Split a command line as res_agi's ``parse_args`` does: ``"`` groups, ``\\`` escapes, blanks separate."""
    argv: list[str] = []
    cur: list[str] | None = None
    quoted = escaped = False
    for ch in line:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and cur is None:
                cur = []
                argv.append("")
            continue
        if ch in " \t" and not quoted and not escaped:
            if cur is not None:
                argv[-1] = "".join(cur)
                cur = None
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        if cur is None:
            if len(argv) >= MAX_ARGS - 1:
                continue
            cur = []
            argv.append("")
        cur.append(ch)
        escaped = False
    if cur is not None:
        argv[-1] = "".join(cur)
    return argv


@dataclass(frozen=True)
class CommandDef:
    words: tuple[str, ...]
    dead_ok: bool

    @property
    def key(self) -> str:
        return " ".join(self.words)


# The commands this emulator knows, with res_agi's "allowed on a dead channel" flag.
COMMANDS: tuple[CommandDef, ...] = (
    CommandDef(("answer",), False),
    CommandDef(("channel", "status"), False),
    CommandDef(("database", "get"), True),
    CommandDef(("database", "put"), True),
    CommandDef(("exec",), True),
    CommandDef(("get", "data"), False),
    CommandDef(("get", "full", "variable"), True),
    CommandDef(("get", "variable"), True),
    CommandDef(("gosub",), False),
    CommandDef(("hangup",), False),
    CommandDef(("noop",), True),
    CommandDef(("record", "file"), False),
    CommandDef(("say", "digits"), False),
    CommandDef(("say", "number"), False),
    CommandDef(("set", "music"), False),
    CommandDef(("set", "variable"), True),
    CommandDef(("stream", "file"), False),
    CommandDef(("verbose",), True),
    CommandDef(("wait", "for", "digit"), False),
)


def find_command(argv: list[str]) -> CommandDef | None:
    """Longest command whose words all match (case-insensitive), like res_agi's ``find_command``."""
    lowered = [a.lower() for a in argv]
    best: CommandDef | None = None
    for cmd in COMMANDS:
        n = len(cmd.words)
        if len(lowered) >= n and tuple(lowered[:n]) == cmd.words and (best is None or n > len(best.words)):
            best = cmd
    return best


ENV_ORDER = (
    "agi_network", "agi_network_script", "agi_request", "agi_channel", "agi_language", "agi_type",
    "agi_uniqueid", "agi_version", "agi_callerid", "agi_calleridname", "agi_callingpres", "agi_callingani2",
    "agi_callington", "agi_callingtns", "agi_dnid", "agi_rdnis", "agi_context", "agi_extension",
    "agi_priority", "agi_enhanced", "agi_accountcode", "agi_threadid",
)


def env_lines(spec: CallSpec, channel: str, uniqueid: str, threadid: str) -> list[str]:
    """The environment block Asterisk 22 sends for FastAGI: 22 keys in the recorded order, args, blank line."""
    values = {
        "agi_network": "yes",
        "agi_network_script": spec.script,
        "agi_request": spec.request or f"agi://{spec.host}:{spec.port}/{spec.script}",
        "agi_channel": channel,
        "agi_language": spec.language,
        "agi_type": spec.channel_type,
        "agi_uniqueid": uniqueid,
        "agi_version": spec.version,
        "agi_callerid": spec.callerid if spec.callerid else "unknown",
        "agi_calleridname": spec.calleridname if spec.calleridname else "unknown",
        "agi_callingpres": "0" if spec.callerid else "67",
        "agi_callingani2": "0",
        "agi_callington": "0",
        "agi_callingtns": "0",
        "agi_dnid": spec.dnid,
        "agi_rdnis": spec.rdnis,
        "agi_context": spec.context,
        "agi_extension": spec.extension,
        "agi_priority": str(spec.priority),
        "agi_enhanced": "0.0",
        "agi_accountcode": spec.accountcode,
        "agi_threadid": threadid,
    }
    keys = ENV_ORDER if spec.network else ENV_ORDER[2:]
    if not spec.network:
        values["agi_request"] = spec.request or spec.script
    lines = [f"{key}: {values[key]}" for key in keys]
    lines += [f"agi_arg_{i}: {arg}" for i, arg in enumerate(spec.args, start=1)]
    lines.append("")
    return lines
