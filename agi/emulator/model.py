"""What an emulated call is made of: the call's identity, the caller's script, queue outcomes, settings, report."""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Mapping

SAMPLE_RATE = 8000

QueueKind = Literal["answered", "timeout", "leaveempty", "joinempty", "abandon"]
RecordEnd = Literal["dtmf", "silence", "hangup", "timeout"]

_seq = itertools.count(1)
_epoch = int(time.time())


def next_sequence() -> int:
    """Asterisk-like channel sequence number, unique in this process."""
    return next(_seq)


@dataclass(frozen=True)
class TimedKey:
    """The caller presses ``key`` at ``at_s`` seconds after the AGI connection (call time)."""

    at_s: float
    key: str


@dataclass(frozen=True)
class QueueOutcome:
    """What ``EXEC Queue`` does for this call.

    * ``answered``: agent ``agent`` answers after ``after_s``; talk lasts ``talk_s``; then the agent hangs up
      (``caller_ends_talk=False``: QUEUESTATUS=CONTINUE with option ``c``, else the call ends) or the caller does.
    * ``timeout``: after the Queue timeout argument (or ``after_s`` when none): QUEUESTATUS=TIMEOUT.
    * ``leaveempty``: QUEUESTATUS=LEAVEEMPTY after ``after_s``. ``joinempty``: QUEUESTATUS=JOINEMPTY at once.
    * ``abandon``: the caller hangs up after ``after_s`` in the queue (result -1, ``HANGUP``).
    """

    kind: QueueKind = "answered"
    agent: str = "1001"
    after_s: float = 3.0
    talk_s: float = 20.0
    caller_ends_talk: bool = False
    agent_audio: Path | None = None

    @classmethod
    def parse(cls, text: str) -> "QueueOutcome":
        """``answered:agent=1001,after=3,talk=20`` / ``timeout`` / ``abandon:after=10`` / ``joinempty``."""
        kind, _, rest = text.strip().partition(":")
        kind = kind.strip().lower()
        if kind not in ("answered", "timeout", "leaveempty", "joinempty", "abandon"):
            raise ValueError(f"unknown queue outcome {kind!r}")
        values: dict[str, str] = {}
        for part in filter(None, (p.strip() for p in rest.split(","))):
            key, sep, value = part.partition("=")
            if not sep:
                raise ValueError(f"queue outcome option without '=': {part!r}")
            values[key.strip().lower()] = value.strip()
        unknown = set(values) - {"agent", "after", "talk", "caller_ends", "agent_audio"}
        if unknown:
            raise ValueError(f"unknown queue outcome options: {sorted(unknown)}")
        return cls(
            kind=kind,  # type: ignore[arg-type]
            agent=values.get("agent", "1001"),
            after_s=float(values.get("after", 3.0)),
            talk_s=float(values.get("talk", 20.0)),
            caller_ends_talk=values.get("caller_ends", "no").lower() in ("1", "yes", "true"),
            agent_audio=Path(values["agent_audio"]) if "agent_audio" in values else None,
        )


@dataclass(frozen=True)
class CallerScript:
    """How the emulated caller behaves.

    * ``keys``: DTMF at fixed call times. Keys that arrive while no command listens are lost, as in Asterisk.
    * ``responses``: one string per input command (GET DATA, WAIT FOR DIGIT), keyed ``response_delay_s`` after
      the prompt ends, ``key_gap_s`` apart (``"12#"``; ``""`` = stay silent).
    * ``say``: WAV clips (8 kHz mono) the caller speaks into successive RECORD FILEs, ending as ``record_end``.
    * ``hangup_after_s``: the caller hangs up at this call time; ``hangup_at_command``: during the N-th command
      (1-based), ``hangup_into_command_s`` after it starts.
    * ``queue``: the outcome of ``EXEC Queue``; ``talk_audio``: what the caller says to the agent (MixMonitor).
    """

    keys: tuple[TimedKey, ...] = ()
    responses: tuple[str, ...] = ()
    response_delay_s: float = 0.5
    key_gap_s: float = 0.35
    say: tuple[Path, ...] = ()
    speech_delay_s: float = 0.3
    record_end: RecordEnd = "dtmf"
    hangup_after_s: float | None = None
    hangup_at_command: int | None = None
    hangup_into_command_s: float = 0.5
    queue: QueueOutcome | None = None
    talk_audio: Path | None = None


@dataclass(frozen=True)
class CallSpec:
    """The channel Asterisk would run ``AGI(agi://host:port/<script>,<args>)`` on. ``None`` ids are generated."""

    script: str = "main"
    args: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 4573
    request: str | None = None          # agi_request as Asterisk would print it (default: agi://host:port/script)
    channel: str | None = None
    uniqueid: str | None = None
    linkedid: str | None = None
    threadid: str | None = None
    callerid: str | None = None
    calleridname: str | None = None
    dnid: str = "unknown"
    rdnis: str = "unknown"
    context: str = "from-pstn"
    extension: str = "12345"
    priority: int = 2
    language: str = "en"
    channel_type: str = "Local"
    accountcode: str = ""
    version: str = "22.10.1"
    answered: bool = True
    network: bool = True                # False: process AGI (no agi_network / agi_network_script lines)
    mixmonitor: bool = False
    variables: Mapping[str, str] = field(default_factory=dict)
    caller: CallerScript = field(default_factory=CallerScript)


@dataclass(frozen=True)
class GosubTarget:
    """A dialplan subroutine GOSUB can reach: runs ``duration_s``, then ``Return(<returns>)`` (``${ARG1}``… expanded)."""

    duration_s: float = 0.425
    returns: str = ""


@dataclass(frozen=True)
class EmulatorConfig:
    """Emulator-wide settings.

    ``time_scale``: real seconds per call second (0 = no sleeping at all, call time advances only by the
    emulated durations; 1.0 = real time). ``count_idle_time`` (with ``time_scale`` > 0): the wall clock drives
    call time, so a caller's hangup can land while the server is idle (unsolicited ``HANGUP``). ``sounds_dir``: prompts that exist (``<name>.wav|.sln|.gsm|.ulaw|.alaw``);
    ``None`` = every prompt exists and lasts ``default_sound_s``. ``spool_dir``: MixMonitor files.
    ``record_dir``: base of relative RECORD FILE paths (default: sounds_dir or the working directory).
    """

    time_scale: float = 0.0
    count_idle_time: bool = False       # with time_scale > 0: server idle time counts as call time (wall clock)
    sounds_dir: Path | None = None
    default_sound_s: float = 2.0
    sound_seconds: Mapping[str, float] = field(default_factory=dict)
    spool_dir: Path | None = None
    record_dir: Path | None = None
    subroutines: Mapping[str, GosubTarget] = field(default_factory=dict)
    # Defaults follow asterisk-conf/: Queue's gosub context `hotline-agent-connect` runs AGI(.../agent-connect),
    # members are Local/<agent>@hotline-agents/n.
    gosub_scripts: Mapping[str, str] = field(default_factory=lambda: {"hotline-agent-connect": "agent-connect",
                                                                      "agent-connect": "agent-connect"})
    agent_context: str = "hotline-agents"
    answer_delay_s: float = 0.5
    say_digit_s: float = 0.8125
    say_number_word_s: float = 0.85
    forever_wait_s: float = 600.0
    idle_timeout_s: float = 300.0
    tcp_nodelay: bool = True          # real Asterisk leaves Nagle on; off here so timings show the server's cost
    default_queue: QueueOutcome = field(default_factory=QueueOutcome)


@dataclass
class CommandRecord:
    line: str
    replies: tuple[str, ...]
    start_s: float
    end_s: float
    interrupted: bool = False       # cut short by input on the AGI socket (a new command or the server's EOF)


@dataclass
class QueueResult:
    queue: str
    outcome: str                    # QUEUESTATUS value, or ANSWERED / ABANDON
    agent: str | None = None
    wait_s: float = 0.0
    talk_s: float = 0.0
    agent_session: "CallReport | None" = None


@dataclass
class CallReport:
    """What happened on one emulated call, for tests, the simulate command and the benchmark."""

    uniqueid: str
    linkedid: str
    channel: str
    commands: list[CommandRecord] = field(default_factory=list)
    hung_up: bool = False
    hangup_at_s: float | None = None
    agistatus: str = "SUCCESS"
    duration_s: float = 0.0
    variables: dict[str, str] = field(default_factory=dict)
    recordings: list[Path] = field(default_factory=list)
    mixmonitor_files: list[Path] = field(default_factory=list)
    queue: QueueResult | None = None
    turnarounds_s: list[float] = field(default_factory=list)
    first_command_s: float | None = None
    closed_by: str = "server"
    error: str | None = None
    # How the AGI session ended: "eof" (the server closed or half-closed its side), "idle_timeout" (the
    # emulator gave up on a silent server), "connection_lost" (a read or write failed).
    close_reason: str | None = None
    closed_during: str | None = None    # the command in progress when the server's EOF was seen, if any
    closed_at_s: float | None = None    # call time at which the emulator saw the server's EOF
    sighup_sent: bool = False           # the final "HANGUP" res_agi writes to a FastAGI socket after EOF

    @property
    def command_lines(self) -> list[str]:
        return [c.line for c in self.commands]
