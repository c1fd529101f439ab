"""The channel interface the flow engine drives, and its result types.

:class:`agi.protocol.HotlineAGI` implements it over the AGI wire protocol (pyst2 underneath); tests may use the
peer emulator behind a real socket. The engine only sees these types, never AGI lines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol


class ChannelError(Exception):
    """Base of every error the channel layer raises."""


class ChannelHungUp(ChannelError):
    """The caller hung up (``HANGUP`` line, ``511`` on a dead channel, ``result=-1`` from a media command, EOF)."""


class CommandFailed(ChannelError):
    """Asterisk answered 510 (unknown command) or 520 (usage) — a bug on our side, never the caller's."""

    def __init__(self, command: str, code: int, text: str) -> None:
        super().__init__(f"{command!r} failed: {code} {text}")
        self.command = command
        self.code = code
        self.text = text


class ProtocolError(ChannelError):
    """The peer sent something that is not AGI (garbage, half an environment, silence past the timeout)."""


@dataclass(frozen=True)
class PlayResult:
    digit: str | None          # escape digit that stopped playback, or None
    endpos: int                # sample offset where playback stopped
    missing: bool = False      # the sound file does not exist (result=-1 endpos=0 on a live channel)


@dataclass(frozen=True)
class DigitsResult:
    digits: str                # may be empty
    timed_out: bool            # ``200 result= (timeout)`` / ``result=<digits> (timeout)``: no terminating key


@dataclass(frozen=True)
class RecordResult:
    digit: str | None          # DTMF that ended the recording, or None
    endpos: int                # samples recorded
    reason: str                # "dtmf" | "timeout" | "hangup"


class Channel(Protocol):
    """What a flow can do with a call. Every method raises :class:`ChannelHungUp` once the caller is gone."""

    env: Mapping[str, str]

    @property
    def hung_up(self) -> bool: ...

    def answer(self) -> None: ...
    def channel_status(self) -> int: ...
    def stream_file(self, sound: str, escape_digits: str = "") -> PlayResult: ...
    def get_data(self, sound: str, timeout_ms: int, max_digits: int) -> DigitsResult: ...
    def wait_for_digit(self, timeout_ms: int) -> str | None: ...
    def record_file(self, path: str, fmt: str = "wav", escape_digits: str = "#", timeout_ms: int = 30000,
                    beep: bool = True, silence_seconds: int | None = None) -> RecordResult: ...
    def say_digits(self, digits: str, escape_digits: str = "") -> str | None: ...
    def say_number(self, number: int, escape_digits: str = "") -> str | None: ...
    def exec_app(self, application: str, options: str = "") -> int: ...
    def gosub(self, context: str, extension: str, priority: str | int, args: str = "") -> int: ...
    def get_variable(self, name: str) -> str | None: ...
    def get_full_variable(self, expression: str) -> str: ...
    def set_variable(self, name: str, value: str) -> None: ...
    def set_music(self, on: bool, moh_class: str = "default") -> None: ...
    def verbose(self, message: str, level: int = 1) -> None: ...
    def hangup(self) -> None: ...
