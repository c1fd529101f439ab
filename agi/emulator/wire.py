"""Asterisk's side of the AGI wire: argument splitting (res_agi ``parse_args``), command lookup, reply texts."""

from __future__ import annotations

import re
from dataclasses import dataclass

from agi.emulator.model import CallSpec

INVALID = "510 Invalid or unknown command"
DEAD = "511 Command Not Permitted on a dead channel or intercept routine"
USAGE_NONE = "520 Invalid command syntax.  Proper usage not available."
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
    watches_socket: bool = False    # res_agi passes agi->ctrl to the media wait: new input or EOF cuts it short

    @property
    def key(self) -> str:
        return " ".join(self.words)


def _c(words: str, dead_ok: int, watches_socket: bool = False) -> CommandDef:
    return CommandDef(tuple(words.split()), bool(dead_ok), watches_socket)


# Every AGI command Asterisk 22 registers, in registration order: res_agi.c ``commands[]`` with its "runs on a
# dead channel" flag, then app_stack.c's ``gosub`` (dead flag 0). ``watches_socket``: the handler waits with
# ``agi->ctrl`` (ast_waitstream_full / ast_waitfordigit_full / ast_app_getdata_full / ast_say_*_full), so
# anything readable on the AGI socket (a new command, or EOF) stops it early. EXEC (pbx_exec), GOSUB, RECORD
# FILE, CONTROL STREAM FILE, SAY DATE/TIME/DATETIME, ANSWER and SPEECH RECOGNIZE do not watch the socket.
COMMANDS: tuple[CommandDef, ...] = (
    _c("answer", 0),
    _c("asyncagi break", 1),
    _c("channel status", 0),
    _c("database del", 1),
    _c("database deltree", 1),
    _c("database get", 1),
    _c("database put", 1),
    _c("exec", 1),
    _c("get data", 0, True),
    _c("get full variable", 1),
    _c("get option", 0, True),
    _c("get variable", 1),
    _c("hangup", 0),
    _c("noop", 1),
    _c("receive char", 0),
    _c("receive text", 0),
    _c("record file", 0),
    _c("say alpha", 0, True),
    _c("say digits", 0, True),
    _c("say number", 0, True),
    _c("say phonetic", 0, True),
    _c("say date", 0),
    _c("say time", 0),
    _c("say datetime", 0),
    _c("send image", 0),
    _c("send text", 0),
    _c("set autohangup", 0),
    _c("set callerid", 0),
    _c("set context", 0),
    _c("set extension", 0),
    _c("set music", 0),
    _c("set priority", 0),
    _c("set variable", 1),
    _c("stream file", 0, True),
    _c("control stream file", 0),
    _c("tdd mode", 0),
    _c("verbose", 1),
    _c("wait for digit", 0, True),
    _c("speech create", 0),
    _c("speech set", 0),
    _c("speech destroy", 1),
    _c("speech load grammar", 0),
    _c("speech unload grammar", 1),
    _c("speech activate grammar", 0),
    _c("speech deactivate grammar", 0),
    _c("speech recognize", 0),
    _c("gosub", 0),
)

_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def find_command(argv: list[str]) -> CommandDef | None:
    """res_agi's ``find_command(argv, 0)``: the first registered command whose words all match (strcasecmp).

    Extra words after the command are its arguments; a line with fewer words than the command (``GET``) does
    not match it.
    """
    lowered = [a.translate(_ASCII_LOWER) for a in argv]
    for cmd in COMMANDS:
        n = len(cmd.words)
        if len(lowered) >= n and tuple(lowered[:n]) == cmd.words:
            return cmd
    return None


# ---------------------------------------------------------------------------- C parsing, as the handlers do it
_C_SPACE = " \t\n\v\f\r"
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf(?:inity)?|nan)", re.IGNORECASE)


def scan_int(text: str | None, width: int = 30) -> int | None:
    """``sscanf(text, "%30d", &n) == 1``: leading blanks, a sign, digits, and anything after them; else None."""
    if text is None:
        return None
    m = _INT.match(text.lstrip(_C_SPACE)[:width])
    return int(m.group()) if m else None


def c_atoi(text: str | None) -> int:
    """``atoi``: the leading integer of ``text``, 0 when there is none."""
    value = scan_int(text, width=64)
    return 0 if value is None else value


def scan_float(text: str | None) -> float | None:
    """``sscanf(text, "%30lf", &x) == 1``."""
    if text is None:
        return None
    m = _FLOAT.match(text.lstrip(_C_SPACE)[:30])
    return float(m.group()) if m else None


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
