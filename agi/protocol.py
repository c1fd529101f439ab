"""`HotlineAGI`: pyst2's `AGI` command layer, corrected against a real Asterisk (res_agi.c).

What pyst2 gets wrong and this class fixes (see tests/fixtures/asterisk/README.md):

* ``AGI.__init__`` installs a SIGHUP handler (fails off the main thread) and writes debug text to
  stderr: we override ``__init__`` and never call it; logging goes through structlog.
* an unsolicited ``HANGUP`` line where a reply is expected crashes its parser: we record the hangup
  and keep reading for the reply; from then on media commands raise :class:`ChannelHungUp`.
* ``511 Command Not Permitted on a dead channel…`` is a hangup, not an unknown error.
* the multi-line ``520-…`` usage block is consumed whole (only ``520 `` with a space ends it).
* ``GET DATA`` ``result=12 (timeout)`` versus ``result=12`` (ended by ``#``) is kept apart.
* ``100 result=0 Trying...`` (GOSUB) is provisional and skipped.
* ``STREAM FILE`` ``result=-1 endpos=0`` on a live channel is a missing sound, not a hangup.
* EOF on the stream is a hangup; arguments are quoted the way res_agi's ``parse_args`` reads them.

The class works over any pair of binary line streams: a socket file (FastAGI) or
``sys.stdin.buffer``/``sys.stdout.buffer`` (process AGI).
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass, field
from typing import BinaryIO, Mapping

from asterisk.agi import AGI

from agi.channel import (
    ChannelHungUp,
    CommandFailed,
    DigitsResult,
    PlayResult,
    ProtocolError,
    RecordResult,
)
from config.log import get_logger

log = get_logger(__name__)

MAX_LINE_BYTES = 64 * 1024
ENV_MAX_LINES = 256
DEAD_CHANNEL_CODE = 511

_REPLY_RE = re.compile(r"^(?P<code>\d{3})(?P<sep>[ -])(?P<rest>.*)$", re.DOTALL)
_PAREN_RE = re.compile(r"^\((?P<data>.*)\)(?P<tail>(?: [A-Za-z_]+=\S*)*)$", re.DOTALL)
_KV_RE = re.compile(r"([A-Za-z_]+)=(\S*)")
_NEEDS_QUOTES = re.compile(r'[\s"\\]')


@dataclass(frozen=True)
class AgiReply:
    """One final reply line from Asterisk, parsed.

    ``200 result=1 (含空格 的值)`` → code 200, result "1", data "含空格 的值".
    ``200 result=50 endpos=14560`` → result "50", extra {"endpos": "14560"}.
    ``200 result=0 Gosub complete`` → result "0", text "Gosub complete".
    """

    code: int
    result: str
    data: str | None = None
    extra: Mapping[str, str] = field(default_factory=dict)
    text: str = ""
    raw: str = ""

    @property
    def result_int(self) -> int:
        try:
            return int(self.result)
        except ValueError as exc:
            raise ProtocolError(f"non-numeric result in {self.raw!r}") from exc

    @property
    def endpos(self) -> int:
        try:
            return int(self.extra.get("endpos", "0"))
        except ValueError as exc:
            raise ProtocolError(f"bad endpos in {self.raw!r}") from exc


def parse_reply_line(line: str) -> AgiReply:
    """Parse one ``200 result=...`` line (pure; no I/O). Raises :class:`ProtocolError` on anything else."""
    if not line.startswith("200 result="):
        raise ProtocolError(f"not a 200 reply: {line!r}")
    rest = line[len("200 result="):]
    value, _, tail = rest.partition(" ")
    data: str | None = None
    extra: dict[str, str] = {}
    text = ""
    if tail:
        m = _PAREN_RE.match(tail)
        if m:
            data = m.group("data")
            extra.update(_KV_RE.findall(m.group("tail")))
        else:
            kvs = _KV_RE.findall(tail)
            if kvs and _KV_RE.sub("", tail).strip() == "":
                extra.update(kvs)
            else:
                text = tail
    return AgiReply(code=200, result=value, data=data, extra=extra, text=text, raw=line)


def quote_arg(value: str | int) -> str:
    """Quote one argument for res_agi's ``parse_args``: bare when safe, else ``"..."`` with ``\\`` escapes."""
    text = str(value)
    if "\n" in text or "\r" in text:
        raise ValueError(f"AGI arguments cannot contain line breaks: {text!r}")
    if text and not _NEEDS_QUOTES.search(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_always(value: str) -> str:
    """Escape digits and similar arguments are always sent quoted (``""`` when empty), as Asterisk expects."""
    text = str(value)
    if "\n" in text or "\r" in text:
        raise ValueError(f"AGI arguments cannot contain line breaks: {text!r}")
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_env_line(line: str) -> tuple[str, str]:
    """``agi_request: agi://h/main?x=1`` → (key, value). Raises :class:`ProtocolError` for non-AGI lines."""
    key, sep, value = line.partition(":")
    if not sep or not key.startswith("agi_") or not key.replace("_", "").isalnum():
        raise ProtocolError(f"not an AGI environment line: {line[:80]!r}")
    if value.startswith(" "):
        value = value[1:]
    return key, value


def read_env_block(stream: BinaryIO) -> dict[str, str]:
    """Read ``agi_*: value`` lines up to the blank line. EOF or garbage → :class:`ProtocolError`."""
    env: dict[str, str] = {}
    for _ in range(ENV_MAX_LINES):
        raw = stream.readline(MAX_LINE_BYTES)
        if not raw:
            raise ProtocolError(f"EOF inside the AGI environment after {len(env)} lines")
        if not raw.endswith(b"\n"):
            raise ProtocolError("over-long or unterminated line in the AGI environment")
        line = raw[:-1].decode("utf-8", errors="replace").rstrip("\r")
        if line == "":
            if not env:
                raise ProtocolError("empty AGI environment")
            return env
        key, value = parse_env_line(line)
        env[key] = value
    raise ProtocolError("AGI environment too long")


class HotlineAGI(AGI):
    """pyst2's AGI, fixed for real Asterisk replies, implementing :class:`agi.channel.Channel`.

    ``HotlineAGI(reader, writer)`` reads the environment block itself; pass ``env=`` when the
    caller (the FastAGI server) has already read it.
    """

    def __init__(self, reader: BinaryIO, writer: BinaryIO, env: Mapping[str, str] | None = None) -> None:
        # Deliberately not calling AGI.__init__: it installs a SIGHUP handler and writes to stderr.
        self.stdin = reader
        self.stdout = writer
        self.stderr = None
        self._got_sighup = False
        self._hangup_seen = False      # HANGUP line, 511, result=-1 from a media command
        self._eof = False              # the peer closed the stream
        self.commands_sent = 0
        self.env = dict(env) if env is not None else read_env_block(reader)

    # ------------------------------------------------------------------ state
    @property
    def hung_up(self) -> bool:
        return self._hangup_seen or self._eof

    @property
    def closed(self) -> bool:
        """The stream to Asterisk is gone: not even dead-channel commands can be sent."""
        return self._eof

    def mark_hung_up(self) -> None:
        self._hangup_seen = True

    def _handle_sighup(self, signum: int, frame: object) -> None:  # process AGI installs it on the main thread
        self._got_sighup = True
        self._hangup_seen = True

    def test_hangup(self) -> None:
        if self._got_sighup:
            raise ChannelHungUp("SIGHUP from Asterisk")

    # ------------------------------------------------------------------ wire
    def send_command(self, command: str, *args: object) -> None:  # type: ignore[override]
        parts = [command.strip(), *(str(a) for a in args)]
        line = " ".join(p for p in parts if p != "").rstrip() if args else command
        self.send_line(line)

    def send_line(self, line: str) -> None:
        if "\n" in line or "\r" in line:
            raise ValueError(f"AGI command cannot contain line breaks: {line!r}")
        if self._eof:
            raise ChannelHungUp("connection to Asterisk closed")
        try:
            self.stdout.write(line.encode("utf-8") + b"\n")
            self.stdout.flush()
        except (BrokenPipeError, ConnectionError, OSError) as exc:
            self._eof = True
            raise ChannelHungUp(f"cannot write to Asterisk: {exc}") from exc
        self.commands_sent += 1

    def _readline(self) -> str:
        try:
            raw = self.stdin.readline(MAX_LINE_BYTES)
        except socket.timeout as exc:
            raise ProtocolError("no reply from Asterisk within the read timeout") from exc
        except (ConnectionError, OSError, ValueError) as exc:
            self._eof = True
            raise ChannelHungUp(f"connection to Asterisk lost: {exc}") from exc
        if not raw:
            self._eof = True
            raise ChannelHungUp("EOF from Asterisk")
        if not raw.endswith(b"\n"):
            if len(raw) >= MAX_LINE_BYTES:
                raise ProtocolError("over-long line from Asterisk")
            self._eof = True
            raise ChannelHungUp("EOF from Asterisk inside a line")
        return raw[:-1].decode("utf-8", errors="replace").rstrip("\r")

    def get_result(self, stdin: object = None) -> AgiReply:  # type: ignore[override]
        """Read lines up to the final reply of the command just sent."""
        return self.read_reply("")

    def read_reply(self, command: str) -> AgiReply:
        while True:
            line = self._readline()
            if line == "HANGUP":
                if not self._hangup_seen:
                    log.info("agi_hangup_line", command=command)
                self._hangup_seen = True
                continue
            m = _REPLY_RE.match(line)
            if not m:
                raise ProtocolError(f"unexpected line from Asterisk after {command!r}: {line[:120]!r}")
            code, sep, rest = int(m.group("code")), m.group("sep"), m.group("rest")
            if code == 100:
                continue  # "100 result=0 Trying..." precedes GOSUB's real reply
            if code == 200 and sep == " ":
                return parse_reply_line(line)
            if code == 510:
                raise CommandFailed(command, 510, rest)
            if code == DEAD_CHANNEL_CODE:
                self._hangup_seen = True
                raise ChannelHungUp(f"{command!r}: {rest}")
            if code == 520:
                if sep == " ":
                    raise CommandFailed(command, 520, rest)
                usage = [rest]
                while True:
                    inner = self._readline()
                    if inner.startswith("520 "):
                        break
                    usage.append(inner)
                raise CommandFailed(command, 520, "\n".join(usage))
            raise ProtocolError(f"unhandled reply code {code} after {command!r}: {line[:120]!r}")

    def command(self, line: str) -> AgiReply:
        """Send one raw command line and return its parsed final reply (no dead-channel short cut)."""
        self.test_hangup()
        self.send_line(line)
        return self.read_reply(line)

    def execute(self, command: str, *args: object) -> AgiReply:  # type: ignore[override]
        line = " ".join([command, *(str(a) for a in args)]) if args else command
        return self.command(line)

    def _media(self, line: str) -> AgiReply:
        """A command that needs a live channel: refused locally once the caller is gone."""
        if self.hung_up:
            raise ChannelHungUp(f"{line.split(' ', 2)[0]}: caller already hung up")
        return self.command(line)

    def _hung_up_by_result(self, line: str, reply: AgiReply) -> ChannelHungUp:
        self._hangup_seen = True
        return ChannelHungUp(f"{line!r} → {reply.raw!r}")

    @staticmethod
    def _digit(result: int) -> str | None:
        return chr(result) if result > 0 else None

    def close(self) -> None:
        """Close both streams (for FastAGI this ends the session: Asterisk's AGI() returns)."""
        for stream in (self.stdout, self.stdin):
            try:
                stream.close()
            except (OSError, ValueError):
                pass
        self._eof = True

    # ------------------------------------------------------------------ Channel
    def answer(self) -> None:
        line = "ANSWER"
        reply = self._media(line)
        if reply.result_int < 0:
            raise self._hung_up_by_result(line, reply)

    def channel_status(self, channel: str = "") -> int:  # type: ignore[override]
        line = "CHANNEL STATUS" + (f" {quote_arg(channel)}" if channel else "")
        reply = self._media(line)
        return reply.result_int

    def stream_file(self, sound: str, escape_digits: str = "", sample_offset: int = 0) -> PlayResult:  # type: ignore[override]
        line = f"STREAM FILE {quote_arg(sound)} {quote_always(escape_digits)}"
        if sample_offset:
            line += f" {int(sample_offset)}"
        reply = self._media(line)
        return self._play_result(line, reply)

    def _play_result(self, line: str, reply: AgiReply) -> PlayResult:
        result = reply.result_int
        if result < 0:
            if reply.endpos == 0 and not self.hung_up:
                log.warning("agi_sound_missing", command=line)
                return PlayResult(digit=None, endpos=0, missing=True)
            raise self._hung_up_by_result(line, reply)
        return PlayResult(digit=self._digit(result), endpos=reply.endpos)

    def get_data(self, sound: str, timeout_ms: int = 2000, max_digits: int = 255) -> DigitsResult:  # type: ignore[override]
        line = f"GET DATA {quote_arg(sound)} {int(timeout_ms)} {int(max_digits)}"
        reply = self._media(line)
        if reply.result == "-1":
            raise self._hung_up_by_result(line, reply)
        if reply.result and not reply.result.isdigit() and not set(reply.result) <= set("0123456789*#ABCD"):
            raise ProtocolError(f"GET DATA: unexpected result {reply.raw!r}")
        return DigitsResult(digits=reply.result, timed_out=(reply.data == "timeout"))

    def wait_for_digit(self, timeout_ms: int = 2000) -> str | None:  # type: ignore[override]
        line = f"WAIT FOR DIGIT {int(timeout_ms)}"
        reply = self._media(line)
        result = reply.result_int
        if result < 0:
            raise self._hung_up_by_result(line, reply)
        return self._digit(result)

    def record_file(self, path: str, fmt: str = "wav", escape_digits: str = "#", timeout_ms: int = 30000,  # type: ignore[override]
                    beep: bool = True, silence_seconds: int | None = None) -> RecordResult:
        line = f"RECORD FILE {quote_arg(path)} {quote_arg(fmt)} {quote_always(escape_digits)} {int(timeout_ms)}"
        if beep or silence_seconds:
            line += " 0"
        if beep:
            line += " beep"
        if silence_seconds:
            line += f" s={int(silence_seconds)}"
        reply = self._media(line)
        result = reply.result_int
        reason = reply.data or ""
        if result < 0 and reason == "writefile":
            raise CommandFailed(line, 200, f"Asterisk cannot write the file: {reply.raw}")
        if result < 0 or reason == "hangup":
            self._hangup_seen = True
            return RecordResult(digit=None, endpos=reply.endpos, reason="hangup")
        if reason == "dtmf":
            return RecordResult(digit=self._digit(result), endpos=reply.endpos, reason="dtmf")
        return RecordResult(digit=None, endpos=reply.endpos, reason="timeout")

    def _say(self, line: str) -> str | None:
        reply = self._media(line)
        result = reply.result_int
        if result < 0:
            raise self._hung_up_by_result(line, reply)
        return self._digit(result)

    def say_digits(self, digits: str, escape_digits: str = "") -> str | None:  # type: ignore[override]
        return self._say(f"SAY DIGITS {quote_arg(digits)} {quote_always(escape_digits)}")

    def say_number(self, number: int, escape_digits: str = "") -> str | None:  # type: ignore[override]
        return self._say(f"SAY NUMBER {int(number)} {quote_always(escape_digits)}")

    def exec_app(self, application: str, options: str = "") -> int:
        line = f"EXEC {quote_arg(application)}" + (f" {quote_always(options)}" if options else "")
        reply = self._media(line)
        result = reply.result_int
        if result == -2:
            raise CommandFailed(line, 200, f"application not found: {reply.raw}")
        if result < 0:
            raise self._hung_up_by_result(line, reply)
        return result

    def appexec(self, application: str, options: str = "") -> int:  # type: ignore[override]
        return self.exec_app(application, options)

    def gosub(self, context: str, extension: str, priority: str | int, args: str = "") -> int:
        line = f"GOSUB {quote_arg(context)} {quote_arg(extension)} {quote_arg(str(priority))}"
        if args:
            line += f" {quote_arg(args)}"
        reply = self._media(line)
        result = reply.result_int
        if result < 0 and "not found" not in reply.text and self.hung_up:
            raise self._hung_up_by_result(line, reply)
        if result < 0:
            log.warning("agi_gosub_failed", command=line, reply=reply.raw)
        return result

    def get_variable(self, name: str) -> str | None:  # type: ignore[override]
        reply = self.command(f"GET VARIABLE {quote_arg(name)}")
        return reply.data if reply.result == "1" else None

    def get_full_variable(self, expression: str, channel: str | None = None) -> str:  # type: ignore[override]
        line = f"GET FULL VARIABLE {quote_arg(expression)}" + (f" {quote_arg(channel)}" if channel else "")
        reply = self.command(line)
        return (reply.data or "") if reply.result == "1" else ""

    def set_variable(self, name: str, value: str) -> None:  # type: ignore[override]
        self.command(f"SET VARIABLE {quote_arg(name)} {quote_arg(value)}")

    def set_music(self, on: bool, moh_class: str = "default") -> None:
        line = f"SET MUSIC on {quote_arg(moh_class)}" if on else "SET MUSIC off"
        self._media(line)

    def verbose(self, message: str, level: int = 1) -> None:  # type: ignore[override]
        flat = " ".join(message.splitlines())
        self.command(f"VERBOSE {quote_always(flat)} {int(level)}")

    def noop(self) -> None:  # type: ignore[override]
        self.command("NOOP")

    def hangup(self, channel: str = "") -> None:  # type: ignore[override]
        """Hang the channel up. Idempotent: on an already dead channel the ``511`` is expected, not an error."""
        if self._eof:
            return
        line = "HANGUP" + (f" {quote_arg(channel)}" if channel else "")
        try:
            self.command(line)
        except ChannelHungUp:
            pass
        self._hangup_seen = True
