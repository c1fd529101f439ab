"""One emulated call: Asterisk's side of a FastAGI session, answering commands the way res_agi does.

Call time (``now``) advances by what each command would take on a real channel (prompt lengths, timeouts,
the caller's keys). With ``time_scale`` 0 nothing sleeps and results are fully deterministic; with
``time_scale`` > 0 the emulator sleeps the scaled durations and idle time between commands counts too
(the caller's hangup can then arrive while the server is idle, as an unsolicited ``HANGUP``).

The AGI socket is read all the time, as res_agi's ``run_agi`` does with ``agi->ctrl``:

* commands that hand ``agi->ctrl`` to their media wait (``CommandDef.watches_socket``: STREAM FILE, GET DATA,
  GET OPTION, WAIT FOR DIGIT, SAY DIGITS/NUMBER/ALPHA/PHONETIC) stop as soon as something new is readable on
  the socket: a new command line or the server's EOF. STREAM FILE, GET DATA and SAY * then send no reply at
  all ("Stop this command, don't print a result line, as there is a new command"), WAIT FOR DIGIT answers
  ``200 result=1`` (ast_waitfordigit_full returns 1), GET OPTION's digit wait answers ``200 result=0``.
* the other commands (EXEC Queue/Playback/Wait, GOSUB, RECORD FILE, CONTROL STREAM FILE, SAY DATE...) do not
  look at the socket in Asterisk either and run to their end in call time; once the server has closed, the
  emulator no longer sleeps for them (nobody can observe the wait), so the call still ends promptly.
* after EOF res_agi ends the AGI: AGISTATUS stays SUCCESS unless a command failed earlier (FAILURE) or the
  channel hung up (HANGUP), and, for FastAGI with AGISIGHUP not set to no, it writes a last ``HANGUP`` line
  to the socket before closing it (the server sees it only after a half-close).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import deque
from pathlib import Path
from typing import Awaitable, Callable

import numpy as np

from agi.emulator import audio
from agi.emulator.model import (
    SAMPLE_RATE,
    CallerScript,
    CallReport,
    CallSpec,
    CommandRecord,
    EmulatorConfig,
    QueueOutcome,
    QueueResult,
    TimedKey,
    next_sequence,
)
from agi.emulator.usage import usage_lines
from agi.emulator.wire import (
    DEAD,
    HANGUP,
    INVALID,
    TRYING,
    USAGE_HEAD,
    USAGE_NONE,
    USAGE_TAIL,
    c_atoi,
    env_lines,
    find_command,
    parse_args,
    scan_float,
    scan_int,
)
from config.log import get_logger

log = get_logger(__name__)

AgentConnector = Callable[[CallSpec], Awaitable[CallReport]]

_VAR_REF = re.compile(r"\$\{([^{}]*)\}")
_STATE_NAMES = {4: "Ring", 6: "Up"}
_AST_FALSE = {"no", "false", "n", "f", "0", "off"}
_DEFAULT_DTIMEOUT_MS = 5000        # GET OPTION without a timeout: the PBX digit timeout (5 s by default)


def split_app_args(data: str) -> list[str]:
    """Split application data on commas outside parentheses, as Asterisk's ``ast_app_separate_args`` does."""
    out, depth, cur = [], 0, []
    for ch in data:
        if ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        if ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur))
    return out


class _Usage(Exception):
    """The command's arguments are wrong: answer with the 520 usage block."""


class _Interrupted(Exception):
    """Something became readable on the AGI socket while a socket-watching command waited."""


class EmulatedCall:
    """Asterisk's half of one AGI session over an asyncio stream pair."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, spec: CallSpec,
                 config: EmulatorConfig, agent_connector: AgentConnector | None = None) -> None:
        seq = next_sequence()
        self.reader, self.writer, self.spec, self.config = reader, writer, spec, config
        self.agent_connector = agent_connector
        self.channel = spec.channel or f"{spec.channel_type}/{spec.extension}@{spec.context}-{seq:08x};2"
        self.uniqueid = spec.uniqueid or f"{int(time.time())}.{seq}"
        self.linkedid = spec.linkedid or self.uniqueid
        self.threadid = spec.threadid or str(140000000000000 + seq)
        self.script: CallerScript = spec.caller
        self.state = 6 if spec.answered else 4
        self.vars: dict[str, str] = dict(spec.variables)
        self.callerid = {"num": spec.callerid or "", "name": spec.calleridname or ""}
        self.context, self.exten, self.priority = spec.context, spec.extension, spec.priority
        self.now = 0.0
        self.dead = False
        self._hangup_sent = False
        self._hangup_at: float | None = self.script.hangup_after_s    # the caller's (or the dialplan's) hangup
        self._autohangup_at: float | None = None                      # SET AUTOHANGUP
        self._keys: list[TimedKey] = sorted(self.script.keys, key=lambda k: k.at_s)
        self._taken: list[TimedKey] = []
        self._responses = list(self.script.responses)
        self._clips = list(self.script.say)
        self._commands_seen = 0
        self._busy = False
        self._current: str | None = None
        self._t0 = 0.0
        self._moh_since: float | None = None
        self.segments: list[audio.Segment] = []
        self.mixmonitors: list[audio.MixMonitorJob] = []
        self.bridge: tuple[float, float] | None = None
        self.report = CallReport(uniqueid=self.uniqueid, linkedid=self.linkedid, channel=self.channel)
        self._status = "SUCCESS"     # run_agi's returnstatus: FAILURE / HANGUP as res_agi decides them
        # run_agi reads AGISIGHUP once, before the environment: "no" turns off every HANGUP line
        self._sighup = (self.vars.get("AGISIGHUP") or "").strip().lower() not in _AST_FALSE
        self._idle_handle: asyncio.TimerHandle | None = None
        # the AGI socket, read by _read_loop all the time
        self._lines: deque[bytes] = deque()
        self._line_at: deque[float] = deque()     # perf_counter() when each line was read off the socket
        self._line_received = 0.0
        self._partial = bytearray()
        self._eof = False
        self._wake = asyncio.Event()
        self._arrivals = 0            # reads that brought bytes
        self._cmd_arrivals = 0        # ... as counted when the current command was taken
        self._watch = False           # the running command watches the socket (CommandDef.watches_socket)
        self._interrupted = False
        if spec.mixmonitor and config.spool_dir is not None:
            lid = self.linkedid
            self.mixmonitors.append(audio.MixMonitorJob(
                mix=config.spool_dir / f"{lid}.wav", receive=config.spool_dir / f"{lid}-in.wav",
                transmit=config.spool_dir / f"{lid}-out.wav", bridged_only=False, start_s=0.0))

    # ------------------------------------------------------------------ clock
    @property
    def hangup_at(self) -> float | None:
        """When the channel hangs up: the caller's hangup or SET AUTOHANGUP, whichever comes first."""
        a, b = self._hangup_at, self._autohangup_at
        if a is None or b is None:
            return a if b is None else b
        return min(a, b)

    @hangup_at.setter
    def hangup_at(self, value: float | None) -> None:
        self._hangup_at = value

    def _clock(self) -> float:
        if self.config.time_scale > 0 and self.config.count_idle_time:
            wall = (asyncio.get_running_loop().time() - self._t0) / self.config.time_scale
            return max(self.now, wall)
        return self.now

    def _input_pending(self) -> bool:
        """res_agi's view of ``agi->ctrl``: readable once new bytes came after the command, or at EOF."""
        return self._eof or self._arrivals > self._cmd_arrivals

    def _mark_closed(self, call_s: float) -> None:
        if self.report.closed_at_s is None:
            self.report.closed_at_s = call_s

    async def _sleep(self, call_s: float) -> float | None:
        """Let ``call_s`` of call time pass (scaled). Returns the call time that passed when a socket-watching
        command is cut short by input on the socket, else None. After the server's EOF, commands that do not
        watch the socket stop sleeping: their outcome is computed, nobody waits for it."""
        scale = self.config.time_scale
        if scale <= 0 or call_s <= 0:
            return None
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        end = t0 + call_s * scale
        while True:
            elapsed = min((loop.time() - t0) / scale, call_s)
            if self._watch and self._input_pending():
                return elapsed
            if self._eof:
                self._mark_closed(self.now + elapsed)
                return None
            remaining = end - loop.time()
            if remaining <= 0:
                return None
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), remaining)
            except asyncio.TimeoutError:
                return None

    async def _advance_to(self, t: float) -> None:
        if t <= self.now:
            return
        if self._watch and self._input_pending():
            if self._eof:
                self._mark_closed(self.now)
            raise _Interrupted
        cut = await self._sleep(t - self.now)
        if cut is not None:
            self.now += cut
            if self._eof:
                self._mark_closed(self.now)
            raise _Interrupted
        self.now = t

    def _hangup_before(self, t: float) -> bool:
        return self.hangup_at is not None and self.hangup_at <= t

    def _take_key(self, deadline: float) -> TimedKey | None:
        """The first key at or after ``now`` and no later than ``deadline``; earlier keys are lost."""
        while self._keys and self._keys[0].at_s < self.now:
            self._keys.pop(0)
        if self._keys and self._keys[0].at_s <= deadline:
            key = self._keys.pop(0)
            self._taken.append(key)
            return key
        return None

    def _schedule_response(self, start: float) -> None:
        if not self._responses:
            return
        text = self._responses.pop(0)
        t = start + self.script.response_delay_s
        new = [TimedKey(t + i * self.script.key_gap_s, k) for i, k in enumerate(text)]
        self._keys = sorted(self._keys + new, key=lambda k: k.at_s)

    def _wait_limit(self) -> float:
        """When a wait with nothing left to happen ends: the caller's hangup, a key, or the give-up horizon."""
        return self.now + self.config.forever_wait_s

    # ------------------------------------------------------------------ the socket
    async def _read_loop(self) -> None:
        """Read the AGI socket into lines; a partial last line is still a command at EOF (fgets does that)."""
        try:
            while True:
                chunk = await self.reader.read(65536)
                if not chunk:
                    break
                self._arrivals += 1
                self._partial += chunk
                at = time.perf_counter()
                while (cut := self._partial.find(b"\n")) >= 0:
                    self._lines.append(bytes(self._partial[:cut + 1]))
                    self._line_at.append(at)
                    del self._partial[:cut + 1]
                self._wake.set()
        except (ConnectionError, OSError):
            pass
        if self._partial:
            self._lines.append(bytes(self._partial))
            self._line_at.append(time.perf_counter())
            self._partial.clear()
        self._eof = True
        if self._busy:
            self.report.closed_during = self._current
        else:
            self._mark_closed(self._clock())
        self._wake.set()

    async def _next_line(self) -> bytes | None:
        """The next command line, None at EOF; raises TimeoutError past ``idle_timeout_s``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.idle_timeout_s
        while not self._lines:
            if self._eof:
                return None
            self._wake.clear()
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise asyncio.TimeoutError
            async with asyncio.timeout(remaining):     # no extra task per command, unlike wait_for
                await self._wake.wait()
        self._line_received = self._line_at.popleft()
        return self._lines.popleft()

    async def _send(self, lines: list[str]) -> None:
        if not lines or self.writer.is_closing():
            return
        self._write_lines(lines)
        try:
            await self.writer.drain()
        except (ConnectionError, OSError):
            if not self._eof:
                raise   # after the server's EOF a reply may well find the socket gone, as in Asterisk

    # ------------------------------------------------------------------ session
    async def run(self) -> CallReport:
        loop = asyncio.get_running_loop()
        self._t0 = loop.time()
        reader_task = loop.create_task(self._read_loop())
        self._write_lines(env_lines(self.spec, self.channel, self.uniqueid, self.threadid))
        if self.config.time_scale > 0 and self.config.count_idle_time and self.hangup_at is not None:
            self._idle_handle = loop.call_later(self.hangup_at * self.config.time_scale, self._idle_hangup)
        last_reply = time.perf_counter()
        try:
            await self.writer.drain()
            while True:
                try:
                    raw = await self._next_line()
                except asyncio.TimeoutError:
                    self.report.closed_by = "emulator"
                    self.report.close_reason = "idle_timeout"
                    self.report.error = "server idle past idle_timeout_s"
                    break
                if raw is None:
                    self.report.close_reason = "eof"
                    self._mark_closed(self._clock())
                    break
                received = self._line_received   # read off the socket (not when this task got to it)
                if self._commands_seen == 0:
                    self.report.first_command_s = received - last_reply
                else:
                    self.report.turnarounds_s.append(received - last_reply)
                line = (raw[:-1] if raw.endswith(b"\n") else raw).decode("utf-8", errors="replace")
                if self._eof and self.report.closed_during is None:
                    self.report.closed_during = line   # sent before the close, run after it
                self._cmd_arrivals = self._arrivals
                self._busy, self._current, self._interrupted = True, line, False
                start = self.now = self._clock()
                replies = await self.handle(line)
                self._busy, self._current = False, None
                if self.dead and not self._hangup_sent and self._sighup:
                    replies = [*replies, HANGUP]  # written at once after the reply, as Asterisk does
                    self._hangup_sent = True
                await self._send(replies)
                last_reply = time.perf_counter()
                self.report.commands.append(CommandRecord(line, tuple(replies), start, self.now, self._interrupted))
        except (ConnectionError, OSError) as exc:
            self.report.error = f"connection lost: {exc}"
            self.report.close_reason = "connection_lost"
        finally:
            if self._idle_handle is not None:
                self._idle_handle.cancel()
            reader_task.cancel()
            try:
                await reader_task
            except (asyncio.CancelledError, ConnectionError, OSError):
                pass
            self._finish()
            await self._close()
        return self.report

    async def _close(self) -> None:
        """run_agi's end: FastAGI gets a last ``HANGUP`` (unless AGISIGHUP=no), then the socket is closed."""
        if self.report.close_reason == "eof" and self.spec.network and self._sighup and not self.writer.is_closing():
            try:
                self.writer.write(f"{HANGUP}\n".encode())
                await asyncio.wait_for(self.writer.drain(), 1.0)
                self.report.sighup_sent = True
            except (ConnectionError, OSError, RuntimeError, asyncio.TimeoutError):
                pass
        try:
            self.writer.close()
        except (ConnectionError, OSError, RuntimeError):
            pass

    def _write_lines(self, lines: list[str]) -> None:
        if lines and not self.writer.is_closing():
            self.writer.write("".join(f"{line}\n" for line in lines).encode("utf-8"))

    def _idle_hangup(self) -> None:
        """Wall-clock mode: the caller hung up while the server was idle; Asterisk says so at once."""
        if self._busy or self.dead or self._eof:
            return
        self.now = max(self.now, self.hangup_at or self.now)
        self._go_dead()
        if not self._hangup_sent and self._sighup and not self.writer.is_closing():
            self._write_lines([HANGUP])
            self._hangup_sent = True

    def _go_dead(self) -> None:
        if not self.dead:
            self.dead = True
            self.report.hung_up = True
            self.report.hangup_at_s = self.now
            if self._status == "SUCCESS":    # run_agi: "if (!returnstatus) returnstatus = AGI_RESULT_HANGUP"
                self._status = "HANGUP"
            if self._moh_since is not None:
                self._stop_moh()

    def _fail(self) -> None:
        """A handler returned RESULT_FAILURE for a reason other than the hangup: AGISTATUS=FAILURE."""
        self._status = "FAILURE"

    def _finish(self) -> None:
        end = max(self.now, self.hangup_at or 0.0) if self.dead else self.now
        self._stop_moh()
        self.report.duration_s = end
        self.report.agistatus = self._status
        self.report.variables = dict(self.vars)
        for job in self.mixmonitors:
            try:
                self.report.mixmonitor_files += audio.write_mixmonitor(job, self.segments, end, self.bridge)
            except OSError as exc:
                log.warning("emulator_mixmonitor_write_failed", path=str(job.mix), error=str(exc))

    # ------------------------------------------------------------------ dispatch
    async def handle(self, line: str) -> list[str]:
        self._commands_seen += 1
        if self.script.hangup_at_command == self._commands_seen and self._hangup_at is None:
            self.hangup_at = self.now + self.script.hangup_into_command_s
        if not self.dead and self._hangup_before(self.now):
            self.now = max(self.now, self.hangup_at or self.now)
            self._go_dead()
        prefix: list[str] = []
        if self.dead and not self._hangup_sent and self._sighup:
            prefix, self._hangup_sent = [HANGUP], True
        argv = parse_args(line)
        cmd = find_command(argv)
        if cmd is None:
            return prefix + [INVALID]
        if self.dead and not cmd.dead_ok:
            return prefix + [DEAD]
        handler = getattr(self, "_cmd_" + cmd.key.replace(" ", "_"))
        self._watch, self._taken = cmd.watches_socket, []
        try:
            return prefix + await handler(argv)
        except _Usage:
            usage = usage_lines(cmd.key)
            return prefix + ([USAGE_HEAD, *usage, USAGE_TAIL] if usage else [USAGE_NONE])
        except _Interrupted:
            # the keys this command took past the moment it stopped were never heard: give them back
            self._interrupted = True
            self._keys = sorted(self._keys + [k for k in self._taken if k.at_s >= self.now], key=lambda k: k.at_s)
            return prefix + (["200 result=1"] if cmd.key == "wait for digit" else [])
        finally:
            self._watch = False

    # ------------------------------------------------------------------ media
    async def _play(self, samples: int, escape: str, kind: str = "prompt", source: Path | None = None
                    ) -> tuple[str, int, int]:
        """Play ``samples``; returns (outcome, result, samples played) with outcome done | digit | hangup."""
        t0 = self.now
        end = t0 + samples / SAMPLE_RATE
        limit = min(end, self.hangup_at) if self.hangup_at is not None else end
        try:
            while True:
                key = self._take_key(limit)
                if key is None:
                    break
                if key.key in escape:
                    await self._advance_to(key.at_s)
                    self._segment(t0, self.now - t0, "out", kind, source)
                    return "digit", ord(key.key), int(round((key.at_s - t0) * SAMPLE_RATE))
            if self._hangup_before(end):
                await self._advance_to(max(self.hangup_at or t0, t0))
                self._segment(t0, self.now - t0, "out", kind, source)
                self._go_dead()
                return "hangup", -1, int(round((self.now - t0) * SAMPLE_RATE))
            await self._advance_to(end)
        except _Interrupted:
            self._segment(t0, self.now - t0, "out", kind, source)
            raise
        self._segment(t0, end - t0, "out", kind, source)
        return "done", 0, samples

    async def _wait_digit(self, timeout_ms: int) -> int:
        """ast_waitfordigit_full: the digit's code, 0 after ``timeout_ms`` (< 0: no limit), -1 on hangup."""
        if timeout_ms == 0:
            return 0
        self._schedule_response(self.now)
        deadline = self._wait_limit() if timeout_ms < 0 else self.now + timeout_ms / 1000.0
        limit = min(deadline, self.hangup_at) if self.hangup_at is not None else deadline
        key = self._take_key(limit)
        if key is not None:
            await self._advance_to(key.at_s)
            return ord(key.key)
        if self._hangup_before(deadline) or timeout_ms < 0:
            await self._advance_to(self.hangup_at if self.hangup_at is not None else deadline)
            self._go_dead()
            return -1
        await self._advance_to(deadline)
        return 0

    def _segment(self, start: float, duration: float, direction: audio.Direction, kind: str,
                 source: Path | None = None) -> None:
        if self.mixmonitors and duration > 0:
            self.segments.append(audio.Segment(start, duration, direction, kind, source))

    async def _cmd_answer(self, argv: list[str]) -> list[str]:
        if self.state != 6:
            target = self.now + self.config.answer_delay_s
            if self._hangup_before(target):
                await self._advance_to(self.hangup_at or target)
                self._go_dead()
                return ["200 result=-1"]
            await self._advance_to(target)
            self.state = 6
        return ["200 result=0"]

    async def _cmd_asyncagi_break(self, argv: list[str]) -> list[str]:
        return ["200 result=0"]     # ASYNC_AGI_BREAK means nothing outside Async AGI

    async def _cmd_channel_status(self, argv: list[str]) -> list[str]:
        if len(argv) == 2 or (len(argv) == 3 and argv[2] == self.channel):
            return [f"200 result={self.state}"]
        if len(argv) == 3:
            return ["200 result=-1"]
        raise _Usage

    async def _cmd_stream_file(self, argv: list[str]) -> list[str]:
        if len(argv) < 4 or len(argv) > 5:
            raise _Usage
        offset = 0
        if len(argv) > 4:
            scanned = scan_int(argv[4])          # sscanf(argv[4], "%30ld") != 1 -> RESULT_SHOWUSAGE
            if scanned is None:
                raise _Usage
            offset = scanned
        name, escape = argv[2], argv[3]
        samples = audio.sound_samples(self.config, name)
        if samples is None:
            self._fail()
            return [f"200 result=-1 endpos={offset}"]
        outcome, result, played = await self._play(max(samples - max(offset, 0), 0), escape, "prompt",
                                                   audio.find_sound(self.config, name))
        self.vars["PLAYBACKSTATUS"] = "SUCCESS" if outcome == "done" else "FAILED"
        # ast_tellstream: where the stream stopped; the whole file when it played to its end
        endpos = samples if outcome == "done" else max(offset, 0) + played
        return [f"200 result={result} endpos={endpos}"]

    async def _cmd_control_stream_file(self, argv: list[str]) -> list[str]:
        if len(argv) < 5 or len(argv) > 10:
            raise _Usage
        stop = argv[4]
        if len(argv) > 5 and scan_int(argv[5]) is None:      # skipms
            raise _Usage
        offset_ms = 0
        if len(argv) > 9:
            scanned = scan_int(argv[9])
            if scanned is None:
                raise _Usage
            offset_ms = scanned
        # the fast-forward / rewind / pause keys (argv[6..8]) are not emulated: they are swallowed
        samples = audio.sound_samples(self.config, argv[3])
        if samples is None:
            self.vars.update({"CPLAYBACKSTATUS": "ERROR", "CPLAYBACKOFFSET": str(offset_ms)})
            self._fail()
            return [f"200 result=-1 endpos={offset_ms}"]
        first = min(max(offset_ms, 0) * SAMPLE_RATE // 1000, samples)
        outcome, result, played = await self._play(samples - first, stop, "prompt",
                                                   audio.find_sound(self.config, argv[3]))
        if outcome == "digit":
            self.vars.update({"CPLAYBACKSTATUS": "USERSTOPPED", "CPLAYBACKSTOPKEY": chr(result)})
            end_ms = (first + played) * 1000 // SAMPLE_RATE
        elif outcome == "done":
            self.vars["CPLAYBACKSTATUS"] = "SUCCESS"
            end_ms = -1
        else:
            self.vars["CPLAYBACKSTATUS"] = "ERROR"
            end_ms = (first + played) * 1000 // SAMPLE_RATE
        self.vars["CPLAYBACKOFFSET"] = str(end_ms)
        return [f"200 result={result} endpos={end_ms}"]

    async def _cmd_get_option(self, argv: list[str]) -> list[str]:
        if len(argv) < 4 or len(argv) > 5:
            raise _Usage
        escape = argv[3]
        timeout_ms = c_atoi(argv[4]) if len(argv) == 5 else _DEFAULT_DTIMEOUT_MS
        samples = audio.sound_samples(self.config, argv[2])
        if samples is None:
            self._fail()
            return ["200 result=-1 endpos=0"]
        outcome, result, played = await self._play(samples, escape, "prompt", audio.find_sound(self.config, argv[2]))
        endpos = samples if outcome == "done" else played
        if outcome == "done":
            try:
                digit = await self._wait_digit(timeout_ms)
            except _Interrupted:     # ast_waitfordigit_full returned 1: not an escape digit, so 0
                self._interrupted = True
                return [f"200 result=0 endpos={endpos}"]
            # "if (!strchr(edigits, res)) res = 0": a digit outside escape, the timeout and a hangup all give 0
            result = digit if digit > 0 and chr(digit) in escape else 0
        return [f"200 result={result} endpos={endpos}"]

    async def _cmd_get_data(self, argv: list[str]) -> list[str]:
        if len(argv) < 3:
            raise _Usage
        timeout_ms = c_atoi(argv[3]) if len(argv) >= 4 else 0
        max_digits = c_atoi(argv[4]) if len(argv) >= 5 else 1024
        samples = 0
        if argv[2]:
            found = audio.sound_samples(self.config, argv[2])
            if found is None:                # ast_streamfile fails: ast_app_getdata_full returns -1
                return ["200 result=-1"]
            samples = found
        if max_digits == 0:                  # ast_readstring_full: "if (!len) return -1"
            return ["200 result=-1"]
        # ast_app_getdata_full: 6 s for the first digit and 2 s between digits, unless a timeout is given
        if timeout_ms > 0:
            first = between = timeout_ms / 1000.0
        elif timeout_ms < 0:
            first = between = self.config.forever_wait_s
        else:
            first, between = 6.0, 2.0
        t0 = self.now
        prompt_end = t0 + samples / SAMPLE_RATE
        self._schedule_response(prompt_end)
        digits = ""
        deadline = prompt_end + first
        try:
            while True:
                limit = min(deadline, self.hangup_at) if self.hangup_at is not None else deadline
                key = self._take_key(limit)
                if key is None:
                    if self._hangup_before(deadline):
                        await self._advance_to(self.hangup_at or deadline)
                        prompt_end = min(self.now, prompt_end)
                        self._go_dead()
                        return ["200 result=-1"]
                    await self._advance_to(deadline)
                    return [f"200 result={digits} (timeout)"]
                await self._advance_to(key.at_s)
                prompt_end = min(self.now, prompt_end)   # any digit stops the prompt
                if key.key == "#":
                    break
                digits += key.key
                if len(digits) >= max_digits:
                    break
                deadline = self.now + between
        finally:
            self._segment(t0, min(self.now, prompt_end) - t0, "out", "prompt")
        return [f"200 result={digits}"]

    async def _cmd_wait_for_digit(self, argv: list[str]) -> list[str]:
        if len(argv) != 4:
            raise _Usage
        timeout_ms = scan_int(argv[3])       # sscanf(argv[3], "%30d") != 1 -> RESULT_SHOWUSAGE
        if timeout_ms is None:
            raise _Usage
        return [f"200 result={await self._wait_digit(timeout_ms)}"]

    async def _say(self, seconds: float, escape: str) -> list[str]:
        outcome, result, _ = await self._play(int(round(seconds * SAMPLE_RATE)), escape)
        return [f"200 result={result}"]

    async def _cmd_say_digits(self, argv: list[str]) -> list[str]:
        if len(argv) != 4 or scan_int(argv[2]) is None:
            raise _Usage
        return await self._say(len(argv[2]) * self.config.say_digit_s, argv[3])

    async def _cmd_say_number(self, argv: list[str]) -> list[str]:
        if len(argv) < 4 or len(argv) > 5:
            raise _Usage
        number = scan_int(argv[2])
        if number is None:
            raise _Usage
        words = len(str(abs(number)))
        return await self._say(words * self.config.say_number_word_s, argv[3])

    async def _cmd_say_alpha(self, argv: list[str]) -> list[str]:
        if len(argv) < 4 or len(argv) > 5:
            raise _Usage
        if len(argv) > 4 and argv[4][:1] not in ("", "a", "A", "l", "L", "n", "N", "u", "U"):
            raise _Usage                     # the case-sensitivity argument
        return await self._say(len(argv[2]) * self.config.say_digit_s, argv[3])

    async def _cmd_say_phonetic(self, argv: list[str]) -> list[str]:
        if len(argv) != 4:
            raise _Usage
        return await self._say(len(argv[2]) * self.config.say_digit_s, argv[3])

    async def _cmd_say_date(self, argv: list[str]) -> list[str]:
        if len(argv) != 4 or scan_int(argv[2]) is None:
            raise _Usage
        return await self._say(3 * self.config.say_number_word_s, argv[3])     # weekday, month, day

    async def _cmd_say_time(self, argv: list[str]) -> list[str]:
        if len(argv) != 4 or scan_int(argv[2]) is None:
            raise _Usage
        return await self._say(3 * self.config.say_number_word_s, argv[3])     # hour, minutes, a.m./p.m.

    async def _cmd_say_datetime(self, argv: list[str]) -> list[str]:
        if len(argv) < 4 or scan_int(argv[2]) is None:      # ast_get_time_t(argv[2]) fails -> usage
            raise _Usage
        return await self._say(6 * self.config.say_number_word_s, argv[3])

    async def _cmd_record_file(self, argv: list[str]) -> list[str]:
        if len(argv) < 6:
            raise _Usage
        timeout_ms = scan_int(argv[5])       # sscanf(argv[5], "%30d") != 1 -> RESULT_SHOWUSAGE
        if timeout_ms is None:
            raise _Usage
        path, fmt, escape = argv[2], argv[3].lower(), argv[4]
        # res_agi: the first 's' in argv[6], argv[7] or argv[8]; "s=N" there gives the silence in seconds
        silence_s = 0
        for extra in argv[6:9]:
            if "s" in extra:
                found = extra[extra.index("s"):]
                if len(found) > 2 and found.startswith("s="):
                    silence_s = c_atoi(found[2:])
                break
        sample_offset = scan_int(argv[6]) if len(argv) > 6 else None
        beep = ((len(argv) > 6 and sample_offset is None and not argv[6].startswith("s="))
                or (len(argv) > 7 and not argv[7].startswith("s=")))
        sample_offset = sample_offset or 0
        if beep:   # ast_streamfile("beep") + ast_waitstream(chan, escape_digits)
            outcome, result, _ = await self._play(audio.BEEP_SAMPLES, escape)
            if outcome != "done":
                return [f"200 result={result} (randomerror) endpos={sample_offset}"]
        if fmt not in ("wav", "sln", "raw"):
            self._fail()
            return ["200 result=-1 (writefile)"]
        base = Path(path) if Path(path).is_absolute() else (self.config.record_dir or self.config.sounds_dir or Path.cwd()) / path
        target = base.with_name(base.name + "." + fmt)
        start = self.now
        limit_s = timeout_ms / 1000.0 if timeout_ms > 0 else self.config.forever_wait_s
        clip_path = self._clips.pop(0) if self._clips else None
        clip = audio.read_clip(clip_path) if clip_path is not None else np.zeros(0, dtype=np.int16)
        speech_start = self.script.speech_delay_s if clip_path is not None else 0.0
        speech_end = speech_start + len(clip) / SAMPLE_RATE
        end_mode = self.script.record_end
        if end_mode == "dtmf" and "#" in escape and clip_path is not None:
            # '#' 0.3 s after speaking; Asterisk rewinds 200 ms to chop the tone off the file
            stop, length, reason, result = speech_end + 0.3, speech_end + 0.1, "dtmf", ord("#")
        elif silence_s > 0 and end_mode != "hangup":
            # silence detected after s= seconds; Asterisk truncates all but one second of it
            stop, length, reason, result = speech_end + silence_s, speech_end + min(1.0, silence_s), "timeout", 0
        elif end_mode == "hangup" and clip_path is not None:
            stop = length = speech_end + 0.2
            reason, result = "hangup", -1
            self.hangup_at = min(self.hangup_at, start + stop) if self.hangup_at is not None else start + stop
        else:
            stop = length = limit_s
            reason, result = "timeout", 0
        if stop > limit_s:
            stop = length = limit_s
            reason, result = "timeout", 0
        if self._hangup_before(start + stop):
            stop = length = max((self.hangup_at or start) - start, 0.0)
            reason, result = "hangup", -1
        await self._advance_to(start + stop)
        samples = np.zeros(int(round(length * SAMPLE_RATE)), dtype=np.int16)
        s0 = int(round(speech_start * SAMPLE_RATE))
        piece = clip[: max(len(samples) - s0, 0)]
        samples[s0: s0 + len(piece)] = piece
        try:
            audio.write_audio(target, samples, fmt)
        except OSError:
            self._fail()
            return ["200 result=-1 (writefile)"]
        self.report.recordings.append(target)
        self._segment(start + speech_start, len(piece) / SAMPLE_RATE, "in", "caller", clip_path)
        if reason == "hangup":
            self._go_dead()
            return [f"200 result=-1 (hangup) endpos={len(samples)}"]
        return [f"200 result={result} ({reason}) endpos={len(samples)}"]

    async def _text_wait(self, timeout_ms: int) -> bool:
        """ast_recvtext on a channel that never sends text: wait ``timeout_ms`` (< 0: no limit, 0: not at all).
        Returns False when the channel hung up meanwhile."""
        if timeout_ms == 0:
            return True
        deadline = self._wait_limit() if timeout_ms < 0 else self.now + timeout_ms / 1000.0
        if self._hangup_before(deadline) or timeout_ms < 0:
            await self._advance_to(self.hangup_at if self.hangup_at is not None else deadline)
            self._go_dead()
            return False
        await self._advance_to(deadline)
        return True

    async def _cmd_receive_char(self, argv: list[str]) -> list[str]:
        if len(argv) != 3:
            raise _Usage
        if await self._text_wait(c_atoi(argv[2])):
            self._fail()      # ast_recvchar returns -1 on a timeout too: "(hangup)" and RESULT_FAILURE
        return ["200 result=-1 (hangup)"]

    async def _cmd_receive_text(self, argv: list[str]) -> list[str]:
        if len(argv) != 3:
            raise _Usage
        await self._text_wait(c_atoi(argv[2]))
        return ["200 result=-1"]

    async def _cmd_send_text(self, argv: list[str]) -> list[str]:
        if len(argv) != 3:
            raise _Usage
        return ["200 result=0"]

    async def _cmd_send_image(self, argv: list[str]) -> list[str]:
        if len(argv) != 3:
            raise _Usage
        return ["200 result=0"]     # no image support, but "if (!ast_check_hangup(chan)) res = 0"

    async def _cmd_tdd_mode(self, argv: list[str]) -> list[str]:
        if len(argv) != 3:
            raise _Usage
        return ["200 result=0"]     # the channel is not TDD-capable

    # ------------------------------------------------------------------ variables
    def _function(self, expr: str) -> str | None:
        m = re.fullmatch(r"([A-Za-z_]+)\((.*)\)", expr)
        if not m:
            return None
        name, arg = m.group(1).upper(), m.group(2).strip().lower()
        if name == "CALLERID":
            if arg in ("num", "number"):
                return self.callerid["num"]
            if arg == "name":
                return self.callerid["name"]
            if arg == "all":
                return f'"{self.callerid["name"]}" <{self.callerid["num"]}>'
            return None
        if name == "CHANNEL":
            return {
                "state": "Down" if self.dead else _STATE_NAMES.get(self.state, "Unknown"),
                "linkedid": self.linkedid, "uniqueid": self.uniqueid, "name": self.channel,
                "language": self.spec.language, "channeltype": self.spec.channel_type,
            }.get(arg)
        return None

    def _lookup(self, name: str) -> str | None:
        if name.endswith(")"):
            return self._function(name)
        if name in self.vars:
            return self.vars[name]
        return {
            "CHANNEL": self.channel, "UNIQUEID": self.uniqueid, "EXTEN": self.exten,
            "CONTEXT": self.context, "PRIORITY": str(self.priority), "EPOCH": str(int(time.time())),
        }.get(name)

    def _substitute(self, expression: str) -> str:
        for _ in range(16):
            new = _VAR_REF.sub(lambda m: self._lookup(m.group(1)) or "", expression)
            if new == expression:
                break
            expression = new
        return expression

    async def _cmd_get_variable(self, argv: list[str]) -> list[str]:
        if len(argv) != 3:
            raise _Usage
        value = self._lookup(argv[2])
        return ["200 result=0"] if value is None else [f"200 result=1 ({value})"]

    async def _cmd_get_full_variable(self, argv: list[str]) -> list[str]:
        if len(argv) < 4 or len(argv) > 5:
            raise _Usage
        if len(argv) == 5 and argv[4] != self.channel:
            return ["200 result=0"]
        return [f"200 result=1 ({self._substitute(argv[3])})"]

    async def _cmd_set_variable(self, argv: list[str]) -> list[str]:
        if len(argv) != 4:
            raise _Usage
        name, value = argv[2], argv[3]
        m = re.fullmatch(r"CALLERID\((num|name)\)", name, re.IGNORECASE)
        if m:
            self.callerid[m.group(1).lower()] = value
        else:
            self.vars[name] = value
        return ["200 result=1"]

    async def _cmd_verbose(self, argv: list[str]) -> list[str]:
        if len(argv) < 2:
            raise _Usage
        return ["200 result=1"]

    async def _cmd_noop(self, argv: list[str]) -> list[str]:
        return ["200 result=0"]

    async def _cmd_database_get(self, argv: list[str]) -> list[str]:
        if len(argv) != 4:
            raise _Usage
        value = self.vars.get(f"__astdb/{argv[2]}/{argv[3]}")
        return ["200 result=0"] if value is None else [f"200 result=1 ({value})"]

    async def _cmd_database_put(self, argv: list[str]) -> list[str]:
        if len(argv) != 5:
            raise _Usage
        self.vars[f"__astdb/{argv[2]}/{argv[3]}"] = argv[4]
        return ["200 result=1"]

    async def _cmd_database_del(self, argv: list[str]) -> list[str]:
        if len(argv) != 4:
            raise _Usage
        found = self.vars.pop(f"__astdb/{argv[2]}/{argv[3]}", None) is not None
        return [f"200 result={1 if found else 0}"]

    async def _cmd_database_deltree(self, argv: list[str]) -> list[str]:
        if len(argv) < 3 or len(argv) > 4:
            raise _Usage
        prefix = f"__astdb/{argv[2]}" + (f"/{argv[3]}" if len(argv) == 4 else "")
        doomed = [k for k in self.vars if k == prefix or k.startswith(prefix + "/")]
        for k in doomed:
            del self.vars[k]
        # res_agi answers '0' when something was deleted and '1' when nothing was (sic)
        return [f"200 result={0 if doomed else 1}"]

    async def _cmd_set_music(self, argv: list[str]) -> list[str]:
        if len(argv) < 3:
            raise _Usage
        mode = argv[2].lower()
        if mode.startswith("on"):            # strncasecmp(argv[2], "on", 2)
            if self._moh_since is None:
                self._moh_since = self.now
        elif mode.startswith("off"):         # strncasecmp(argv[2], "off", 3); anything else: no change
            self._stop_moh()
        return ["200 result=0"]

    async def _cmd_set_autohangup(self, argv: list[str]) -> list[str]:
        if len(argv) != 3:
            raise _Usage
        seconds = scan_float(argv[2])
        if seconds is None:
            raise _Usage
        self._autohangup_at = self.now + seconds if seconds > 0 else None
        return ["200 result=0"]

    async def _cmd_set_callerid(self, argv: list[str]) -> list[str]:
        if len(argv) > 2:                    # ast_callerid_parse: "Name <number>", a bare number, or a name
            text = argv[2]
            m = re.fullmatch(r'\s*"?([^"<]*?)"?\s*<([^>]*)>.*', text)
            if m:
                name, number = m.group(1).strip(), m.group(2)
            elif re.fullmatch(r"[0-9+*#()\-. ]+", text.strip()):
                name, number = "", text.strip()
            else:
                name, number = text.strip().strip('"'), ""
            self.callerid = {"num": re.sub(r"[()\-. ]", "", number), "name": name}
        return ["200 result=1"]

    async def _cmd_set_context(self, argv: list[str]) -> list[str]:
        if len(argv) != 3:
            raise _Usage
        self.context = argv[2]
        return ["200 result=0"]

    async def _cmd_set_extension(self, argv: list[str]) -> list[str]:
        if len(argv) != 3:
            raise _Usage
        self.exten = argv[2]
        return ["200 result=0"]

    async def _cmd_set_priority(self, argv: list[str]) -> list[str]:
        if len(argv) != 3:
            raise _Usage
        priority = scan_int(argv[2])
        if priority is None:                 # a label: the emulated dialplan has none, so it is not found
            raise _Usage
        self.priority = priority
        return ["200 result=0"]

    # Speech: Asterisk without a speech engine module; SPEECH CREATE fails, so every other command finds no
    # speech object and answers 0 once its arguments are right.
    async def _cmd_speech_create(self, argv: list[str]) -> list[str]:
        return ["200 result=0"]

    async def _cmd_speech_set(self, argv: list[str]) -> list[str]:
        if len(argv) != 4:
            raise _Usage
        return ["200 result=0"]

    async def _cmd_speech_destroy(self, argv: list[str]) -> list[str]:
        return ["200 result=0"]

    async def _cmd_speech_load_grammar(self, argv: list[str]) -> list[str]:
        if len(argv) != 5:
            raise _Usage
        return ["200 result=0"]

    async def _cmd_speech_unload_grammar(self, argv: list[str]) -> list[str]:
        if len(argv) != 4:
            raise _Usage
        return ["200 result=0"]

    async def _cmd_speech_activate_grammar(self, argv: list[str]) -> list[str]:
        if len(argv) != 4:
            raise _Usage
        return ["200 result=0"]

    async def _cmd_speech_deactivate_grammar(self, argv: list[str]) -> list[str]:
        if len(argv) != 4:
            raise _Usage
        return ["200 result=0"]

    async def _cmd_speech_recognize(self, argv: list[str]) -> list[str]:
        if len(argv) < 4:
            raise _Usage
        return ["200 result=0"]

    def _stop_moh(self) -> None:
        if self._moh_since is not None:
            self._segment(self._moh_since, self.now - self._moh_since, "out", "moh")
            self._moh_since = None

    async def _cmd_hangup(self, argv: list[str]) -> list[str]:
        # "HANGUP" is one word: argv[1] is the optional channel name, anything more is a usage error
        if len(argv) > 2:
            raise _Usage
        if len(argv) == 2 and argv[1] != self.channel:
            return ["200 result=-1"]
        self.hangup_at = self.now
        self._go_dead()
        return ["200 result=1"]

    async def _cmd_gosub(self, argv: list[str]) -> list[str]:
        if len(argv) < 4 or len(argv) > 5:
            raise _Usage
        context, exten = argv[1], argv[2]
        target = self.config.subroutines.get(context)
        # the emulated subroutines are <context>,s,1 (a priority label is never found)
        if target is None or exten != "s" or scan_int(argv[3]) != 1:
            self._fail()
            return ["200 result=-1 Gosub label not found"]
        args = argv[4].split(",") if len(argv) == 5 else []
        await self._send([TRYING])
        outcome, _, _ = await self._play(int(round(target.duration_s * SAMPLE_RATE)), "")
        if outcome == "hangup":
            # the subroutine never reached Return(): app_stack pops it and reports an abnormal exit
            self.vars["GOSUB_RETVAL"] = ""
            return ["200 result=0 Gosub complete (abnormal exit)"]
        local = {f"ARG{i}": a for i, a in enumerate(args, start=1)}
        retval = re.sub(r"\$\{(ARG\d+)\}", lambda m: local.get(m.group(1), ""), target.returns)
        self.vars["GOSUB_RETVAL"] = retval
        return ["200 result=0 Gosub complete"]

    # ------------------------------------------------------------------ applications
    async def _cmd_exec(self, argv: list[str]) -> list[str]:
        if len(argv) < 2:
            raise _Usage
        app, data = argv[1].lower(), (argv[2] if len(argv) > 2 else "")
        if self.dead:
            return ["200 result=-1"]
        if app == "queue":
            return [f"200 result={await self._app_queue(data)}"]
        if app == "mixmonitor":
            spool = self.config.spool_dir or Path.cwd()
            self.mixmonitors.append(audio.parse_mixmonitor(data, spool, self.now))
            return ["200 result=0"]
        if app == "stopmixmonitor":
            for job in self.mixmonitors:
                if job.stop_s is None:
                    job.stop_s = self.now
            return ["200 result=0"]
        if app == "playback":
            for name in filter(None, data.split(",")[0].split("&")):
                samples = audio.sound_samples(self.config, name)
                if samples is None:
                    self.vars["PLAYBACKSTATUS"] = "FAILED"
                    continue
                outcome, _, _ = await self._play(samples, "")
                if outcome == "hangup":
                    return ["200 result=-1"]
            self.vars.setdefault("PLAYBACKSTATUS", "SUCCESS")
            return ["200 result=0"]
        if app == "wait":
            outcome, _, _ = await self._play(int(float(data or 0) * SAMPLE_RATE), "", "silence")
            return ["200 result=-1" if outcome == "hangup" else "200 result=0"]
        if app in ("noop", "set", "progress", "ringing", "log", "verbose", "userevent", "celgenuserevent"):
            if app == "set" and "=" in data:
                name, _, value = data.partition("=")
                self.vars[name] = value
            return ["200 result=0"]
        if app == "hangup":
            self.hangup_at = self.now
            self._go_dead()
            return ["200 result=-1"]
        return ["200 result=-2"]

    async def _app_queue(self, data: str) -> int:
        params = split_app_args(data)
        queue = params[0]
        options = params[1] if len(params) > 1 else ""
        q_timeout = float(params[4]) if len(params) > 4 and params[4].strip() else None
        gosub = params[6] if len(params) > 6 else ""
        outcome: QueueOutcome = self.script.queue or self.config.default_queue
        self.vars.update({"QUEUENAME": queue, "QUEUESTRATEGY": "ringall", "QUEUEMAX": "0"})
        result = QueueResult(queue=queue, outcome="")
        self.report.queue = result
        start = self.now
        if outcome.kind == "joinempty":
            self.vars["QUEUESTATUS"] = result.outcome = "JOINEMPTY"
            return 0
        wait = outcome.after_s
        timed_out = q_timeout is not None and (outcome.kind in ("answered", "timeout", "leaveempty")) and wait >= q_timeout
        if outcome.kind == "timeout":
            wait = q_timeout if q_timeout is not None else outcome.after_s
            timed_out = True
        elif timed_out and q_timeout is not None:
            wait = q_timeout
        if outcome.kind == "abandon":
            self.hangup_at = min(self.hangup_at, start + wait) if self.hangup_at is not None else start + wait
        end_wait = start + wait
        if self._hangup_before(end_wait):
            await self._advance_to(self.hangup_at or end_wait)
            self._segment(start, self.now - start, "out", "moh")
            result.outcome, result.wait_s = "ABANDON", self.now - start
            self._go_dead()
            return -1
        await self._advance_to(end_wait)
        self._segment(start, wait, "out", "moh")
        result.wait_s = wait
        if timed_out or outcome.kind == "timeout":
            self.vars["QUEUESTATUS"] = result.outcome = "TIMEOUT"
            return 0
        if outcome.kind == "leaveempty":
            self.vars["QUEUESTATUS"] = result.outcome = "LEAVEEMPTY"
            return 0
        # answered
        agent = outcome.agent
        result.outcome, result.agent = "ANSWERED", agent
        self.vars.update({
            "MEMBERINTERFACE": f"Local/{agent}@{self.config.agent_context}/n", "MEMBERNAME": agent,
            "MEMBERCALLS": "0", "MEMBERPENALTY": "0", "MEMBERDYNAMIC": "1",
            "QEHOLDTIME": str(int(wait)), "QEORIGINALPOS": "1",
        })
        if gosub and self.agent_connector is not None:
            result.agent_session = await self._run_agent_gosub(gosub, agent)
        bridge_start = self.now
        talk_end = bridge_start + outcome.talk_s
        if outcome.caller_ends_talk:
            self.hangup_at = min(self.hangup_at, talk_end) if self.hangup_at is not None else talk_end
        hung = self._hangup_before(talk_end)
        await self._advance_to(self.hangup_at if hung and self.hangup_at is not None else talk_end)
        self.bridge = (bridge_start, self.now)
        result.talk_s = self.now - bridge_start
        self._segment(bridge_start, result.talk_s, "out", "agent", outcome.agent_audio)
        if self.script.talk_audio is not None:
            self._segment(bridge_start, result.talk_s, "in", "caller", self.script.talk_audio)
        if hung:
            self._go_dead()
            return -1
        if "c" in options:
            self.vars["QUEUESTATUS"] = "CONTINUE"
            return 0
        self.hangup_at = self.now
        self._go_dead()
        return -1

    async def _run_agent_gosub(self, gosub: str, agent: str) -> CallReport | None:
        """The Queue gosub runs on the agent's channel; here it is the AGI that dialplan would start there."""
        m = re.fullmatch(r"([^,(]+)(?:,([^,(]+))?(?:,([^,(]+))?(?:\((.*)\))?", gosub)
        context = m.group(1) if m else gosub
        args = tuple(m.group(4).split(",")) if m and m.group(4) else ()
        script = self.config.gosub_scripts.get(context, context)
        seq = next_sequence()
        spec = CallSpec(
            script=script, args=args, host=self.spec.host, port=self.spec.port,
            channel=f"Local/{agent}@{self.config.agent_context}-{seq:08x};1",
            uniqueid=f"{self.uniqueid.split('.')[0]}.{seq}", linkedid=self.linkedid,
            callerid=self.callerid["num"] or None, calleridname=self.callerid["name"] or None,
            context=context, extension="s", priority=1, language=self.spec.language, answered=True,
            caller=CallerScript(),
        )
        if self.agent_connector is None:  # pragma: no cover - guarded by the caller
            return None
        agent_report = await self.agent_connector(spec)
        self.now += agent_report.duration_s
        return agent_report
