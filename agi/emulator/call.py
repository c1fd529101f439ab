"""One emulated call: Asterisk's side of a FastAGI session, answering commands the way res_agi does.

Call time (``now``) advances by what each command would take on a real channel (prompt lengths, timeouts,
the caller's keys). With ``time_scale`` 0 nothing sleeps and results are fully deterministic; with
``time_scale`` > 0 the emulator sleeps the scaled durations and idle time between commands counts too
(the caller's hangup can then arrive while the server is idle, as an unsolicited ``HANGUP``).
"""

from __future__ import annotations

import asyncio
import re
import time
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
from agi.emulator.wire import DEAD, HANGUP, INVALID, TRYING, USAGE_HEAD, USAGE_TAIL, env_lines, find_command, parse_args
from config.log import get_logger

log = get_logger(__name__)

AgentConnector = Callable[[CallSpec], Awaitable[CallReport]]

_VAR_REF = re.compile(r"\$\{([^{}]*)\}")
_STATE_NAMES = {4: "Ring", 6: "Up"}


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
        self.now = 0.0
        self.dead = False
        self._hangup_sent = False
        self.hangup_at: float | None = self.script.hangup_after_s
        self._keys: list[TimedKey] = sorted(self.script.keys, key=lambda k: k.at_s)
        self._responses = list(self.script.responses)
        self._clips = list(self.script.say)
        self._commands_seen = 0
        self._busy = False
        self._t0 = 0.0
        self._moh_since: float | None = None
        self.segments: list[audio.Segment] = []
        self.mixmonitors: list[audio.MixMonitorJob] = []
        self.bridge: tuple[float, float] | None = None
        self.report = CallReport(uniqueid=self.uniqueid, linkedid=self.linkedid, channel=self.channel)
        self._failed = False
        self._idle_handle: asyncio.TimerHandle | None = None
        if spec.mixmonitor and config.spool_dir is not None:
            lid = self.linkedid
            self.mixmonitors.append(audio.MixMonitorJob(
                mix=config.spool_dir / f"{lid}.wav", receive=config.spool_dir / f"{lid}-in.wav",
                transmit=config.spool_dir / f"{lid}-out.wav", bridged_only=False, start_s=0.0))

    # ------------------------------------------------------------------ clock
    def _clock(self) -> float:
        if self.config.time_scale > 0 and self.config.count_idle_time:
            wall = (asyncio.get_running_loop().time() - self._t0) / self.config.time_scale
            return max(self.now, wall)
        return self.now

    async def _advance_to(self, t: float) -> None:
        if t > self.now:
            if self.config.time_scale > 0:
                await asyncio.sleep((t - self.now) * self.config.time_scale)
            self.now = t

    def _hangup_before(self, t: float) -> bool:
        return self.hangup_at is not None and self.hangup_at <= t

    def _take_key(self, deadline: float) -> TimedKey | None:
        """The first key at or after ``now`` and no later than ``deadline``; earlier keys are lost."""
        while self._keys and self._keys[0].at_s < self.now:
            self._keys.pop(0)
        if self._keys and self._keys[0].at_s <= deadline:
            return self._keys.pop(0)
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

    # ------------------------------------------------------------------ session
    async def run(self) -> CallReport:
        loop = asyncio.get_running_loop()
        self._t0 = loop.time()
        self._write_lines(env_lines(self.spec, self.channel, self.uniqueid, self.threadid))
        if self.config.time_scale > 0 and self.config.count_idle_time and self.hangup_at is not None:
            self._idle_handle = loop.call_later(self.hangup_at * self.config.time_scale, self._idle_hangup)
        last_reply = time.perf_counter()
        try:
            while True:
                try:
                    raw = await asyncio.wait_for(self.reader.readline(), self.config.idle_timeout_s)
                except asyncio.TimeoutError:
                    self.report.closed_by = "emulator"
                    self.report.error = "server idle past idle_timeout_s"
                    break
                if not raw or not raw.endswith(b"\n"):
                    break
                received = time.perf_counter()
                if self._commands_seen == 0:
                    self.report.first_command_s = received - last_reply
                else:
                    self.report.turnarounds_s.append(received - last_reply)
                line = raw[:-1].decode("utf-8", errors="replace")
                self._busy = True
                start = self.now = self._clock()
                replies = await self.handle(line)
                self._busy = False
                if self.dead and not self._hangup_sent:
                    replies = [*replies, HANGUP]  # written at once after the reply, as Asterisk does
                    self._hangup_sent = True
                self._write_lines(replies)
                await self.writer.drain()
                last_reply = time.perf_counter()
                self.report.commands.append(CommandRecord(line, tuple(replies), start, self.now))
        except (ConnectionError, OSError) as exc:
            self.report.error = f"connection lost: {exc}"
        finally:
            if self._idle_handle is not None:
                self._idle_handle.cancel()
            self._finish()
            try:
                self.writer.close()
            except (ConnectionError, OSError, RuntimeError):
                pass
        return self.report

    def _write_lines(self, lines: list[str]) -> None:
        if lines:
            self.writer.write("".join(f"{line}\n" for line in lines).encode("utf-8"))

    def _idle_hangup(self) -> None:
        """Wall-clock mode: the caller hung up while the server was idle; Asterisk says so at once."""
        if self._busy or self.dead:
            return
        self.now = max(self.now, self.hangup_at or self.now)
        self._go_dead()
        if not self._hangup_sent and not self.writer.is_closing():
            self._write_lines([HANGUP])
            self._hangup_sent = True

    def _go_dead(self) -> None:
        if not self.dead:
            self.dead = True
            self.report.hung_up = True
            self.report.hangup_at_s = self.now
            if self._moh_since is not None:
                self._stop_moh()

    def _finish(self) -> None:
        end = max(self.now, self.hangup_at or 0.0) if self.dead else self.now
        self._stop_moh()
        self.report.duration_s = end
        self.report.agistatus = "HANGUP" if self.dead else ("FAILURE" if self._failed else "SUCCESS")
        self.report.variables = dict(self.vars)
        for job in self.mixmonitors:
            try:
                self.report.mixmonitor_files += audio.write_mixmonitor(job, self.segments, end, self.bridge)
            except OSError as exc:
                log.warning("emulator_mixmonitor_write_failed", path=str(job.mix), error=str(exc))

    # ------------------------------------------------------------------ dispatch
    async def handle(self, line: str) -> list[str]:
        self._commands_seen += 1
        if self.script.hangup_at_command == self._commands_seen and self.hangup_at is None:
            self.hangup_at = self.now + self.script.hangup_into_command_s
        if not self.dead and self._hangup_before(self.now):
            self.now = max(self.now, self.hangup_at or self.now)
            self._go_dead()
        prefix: list[str] = []
        if self.dead and not self._hangup_sent:
            prefix, self._hangup_sent = [HANGUP], True
        argv = parse_args(line)
        cmd = find_command(argv)
        if cmd is None:
            return prefix + [INVALID]
        if self.dead and not cmd.dead_ok:
            return prefix + [DEAD]
        handler = getattr(self, "_cmd_" + cmd.key.replace(" ", "_"))
        try:
            return prefix + await handler(argv)
        except _Usage:
            return prefix + [USAGE_HEAD, *usage_lines(cmd.key), USAGE_TAIL]

    # ------------------------------------------------------------------ media
    async def _play(self, samples: int, escape: str, kind: str = "prompt", source: Path | None = None
                    ) -> tuple[str, int, int]:
        """Play ``samples``; returns (outcome, result, endpos) with outcome done | digit | hangup."""
        t0 = self.now
        end = t0 + samples / SAMPLE_RATE
        limit = min(end, self.hangup_at) if self.hangup_at is not None else end
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
        self._segment(t0, end - t0, "out", kind, source)
        return "done", 0, samples

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

    async def _cmd_channel_status(self, argv: list[str]) -> list[str]:
        if len(argv) == 2 or (len(argv) == 3 and argv[2] == self.channel):
            return [f"200 result={self.state}"]
        if len(argv) == 3:
            return ["200 result=-1"]
        raise _Usage

    async def _cmd_stream_file(self, argv: list[str]) -> list[str]:
        if len(argv) < 4 or len(argv) > 5:
            raise _Usage
        name, escape = argv[2], argv[3]
        samples = audio.sound_samples(self.config, name)
        if samples is None:
            self._failed = True
            return ["200 result=-1 endpos=0"]
        offset = int(argv[4]) if len(argv) == 5 and argv[4].isdigit() else 0
        outcome, result, endpos = await self._play(max(samples - offset, 0), escape, "prompt",
                                                   audio.find_sound(self.config, name))
        self.vars["PLAYBACKSTATUS"] = "SUCCESS" if outcome == "done" else "FAILED"
        return [f"200 result={result} endpos={endpos + offset if outcome != 'hangup' else endpos}"]

    async def _cmd_get_data(self, argv: list[str]) -> list[str]:
        if len(argv) < 3:
            raise _Usage
        timeout_ms = int(argv[3]) if len(argv) >= 4 and argv[3].lstrip("-").isdigit() else 0
        max_digits = int(argv[4]) if len(argv) >= 5 and argv[4].isdigit() else 1024
        timeout = (timeout_ms if timeout_ms > 0 else 5000) / 1000.0
        if timeout_ms < 0:
            timeout = self.config.forever_wait_s
        prompt = audio.sound_samples(self.config, argv[2]) or 0
        prompt_end = self.now + prompt / SAMPLE_RATE
        self._schedule_response(prompt_end)
        digits = ""
        deadline = prompt_end + timeout
        t0 = self.now
        while True:
            limit = min(deadline, self.hangup_at) if self.hangup_at is not None else deadline
            key = self._take_key(limit)
            if key is None:
                if self._hangup_before(deadline):
                    await self._advance_to(self.hangup_at or deadline)
                    self._segment(t0, min(self.now, prompt_end) - t0, "out", "prompt")
                    self._go_dead()
                    return ["200 result=-1"]
                await self._advance_to(deadline)
                self._segment(t0, prompt_end - t0, "out", "prompt")
                return [f"200 result={digits} (timeout)"]
            await self._advance_to(key.at_s)
            if key.key == "#":
                break
            digits += key.key
            if len(digits) >= max_digits:
                break
            deadline = max(self.now, prompt_end) + timeout
        self._segment(t0, min(self.now, prompt_end) - t0, "out", "prompt")
        return [f"200 result={digits}"]

    async def _cmd_wait_for_digit(self, argv: list[str]) -> list[str]:
        if len(argv) != 4 or not argv[3].lstrip("-").isdigit():
            raise _Usage
        timeout_ms = int(argv[3])
        self._schedule_response(self.now)
        deadline = self._wait_limit() if timeout_ms < 0 else self.now + timeout_ms / 1000.0
        limit = min(deadline, self.hangup_at) if self.hangup_at is not None else deadline
        key = self._take_key(limit)
        if key is not None:
            await self._advance_to(key.at_s)
            return [f"200 result={ord(key.key)}"]
        if self._hangup_before(deadline) or timeout_ms < 0:
            await self._advance_to(self.hangup_at if self.hangup_at is not None else deadline)
            self._go_dead()
            return ["200 result=-1"]
        await self._advance_to(deadline)
        return ["200 result=0"]

    async def _say(self, seconds: float, escape: str) -> list[str]:
        outcome, result, _ = await self._play(int(round(seconds * SAMPLE_RATE)), escape)
        return [f"200 result={result}"]

    async def _cmd_say_digits(self, argv: list[str]) -> list[str]:
        if len(argv) != 4:
            raise _Usage
        return await self._say(len(argv[2]) * self.config.say_digit_s, argv[3])

    async def _cmd_say_number(self, argv: list[str]) -> list[str]:
        if len(argv) < 4 or len(argv) > 5 or not re.fullmatch(r"-?\d+", argv[2]):
            raise _Usage
        words = max(len(argv[2].lstrip("-")), 1)
        return await self._say(words * self.config.say_number_word_s, argv[3])

    async def _cmd_record_file(self, argv: list[str]) -> list[str]:
        if len(argv) < 6 or not argv[5].lstrip("-").isdigit():
            raise _Usage
        path, fmt, escape, timeout_ms = argv[2], argv[3].lower(), argv[4], int(argv[5])
        beep = silence = False
        silence_s = 0
        for extra in argv[6:]:
            if extra.startswith("s="):
                silence, silence_s = True, int(extra[2:] or 0)
            elif not extra.isdigit():
                beep = True
        if fmt not in ("wav", "sln", "raw"):
            return ["200 result=-1 (writefile)"]
        base = Path(path) if Path(path).is_absolute() else (self.config.record_dir or self.config.sounds_dir or Path.cwd()) / path
        target = base.with_name(base.name + "." + fmt)
        if beep:
            outcome, _, _ = await self._play(audio.BEEP_SAMPLES, "")
            if outcome == "hangup":
                return ["200 result=-1 (hangup) endpos=0"]
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
        elif silence and silence_s > 0 and end_mode != "hangup":
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
            return ["200 result=-1 (writefile)"]
        self.report.recordings.append(target)
        self._segment(start + speech_start, len(piece) / SAMPLE_RATE, "in", "caller", clip_path)
        if reason == "hangup":
            self._go_dead()
            return [f"200 result=-1 (hangup) endpos={len(samples)}"]
        return [f"200 result={result} ({reason}) endpos={len(samples)}"]

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
            "CHANNEL": self.channel, "UNIQUEID": self.uniqueid, "EXTEN": self.spec.extension,
            "CONTEXT": self.spec.context, "PRIORITY": str(self.spec.priority), "EPOCH": str(int(time.time())),
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

    async def _cmd_set_music(self, argv: list[str]) -> list[str]:
        if len(argv) < 3:
            raise _Usage
        if argv[2].lower() == "on":
            if self._moh_since is None:
                self._moh_since = self.now
        else:
            self._stop_moh()
        return ["200 result=0"]

    def _stop_moh(self) -> None:
        if self._moh_since is not None:
            self._segment(self._moh_since, self.now - self._moh_since, "out", "moh")
            self._moh_since = None

    async def _cmd_hangup(self, argv: list[str]) -> list[str]:
        if len(argv) > 3:
            raise _Usage
        if len(argv) == 3 and argv[2] != self.channel:
            return ["200 result=-1"]
        self.hangup_at = self.now
        self._go_dead()
        return ["200 result=1"]

    async def _cmd_gosub(self, argv: list[str]) -> list[str]:
        if len(argv) < 4 or len(argv) > 5:
            raise _Usage
        context, exten, priority = argv[1], argv[2], argv[3]
        target = self.config.subroutines.get(context)
        if target is None or exten != "s" or priority not in ("1", "n"):
            self._failed = True
            return ["200 result=-1 Gosub label not found"]
        args = argv[4].split(",") if len(argv) == 5 else []
        self._write_lines([TRYING])
        await self.writer.drain()
        outcome, _, _ = await self._play(int(round(target.duration_s * SAMPLE_RATE)), "")
        if outcome == "hangup":
            return ["200 result=-1 Gosub failed"]
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
