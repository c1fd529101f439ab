"""Parser for the recorded FastAGI transcripts in tests/fixtures/asterisk/*.log (format: README.md there).

Each session's header gives the byte count and a SHA-256 prefix of both directions; :func:`parse_log`
rebuilds the byte streams from the lines and refuses a file whose streams do not match.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

FIXTURE_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk"

_EVENT = re.compile(r"^(?P<side>[AS])(?P<kind>[>!]) \+(?P<ms>\d+)ms (?P<text>.*)$", re.DOTALL)
_BYTES = re.compile(r"^# bytes Asterisk->server (?P<a_n>\d+) sha256=(?P<a_h>[0-9a-f]{16})\s+"
                    r"server->Asterisk (?P<s_n>\d+) sha256=(?P<s_h>[0-9a-f]{16})$")
_CALL = re.compile(r"^# call (?P<i>\d+)/(?P<n>\d+): (?P<name>\S+) -- (?P<title>.*)$")
_CHANNEL = re.compile(r"^# channel (?P<channel>\S+); after AGI\(\) returned: AGISTATUS=(?P<status>\w+)$")


class FixtureError(ValueError):
    """The transcript is malformed or its byte counts / hashes do not match its lines."""


@dataclass(frozen=True)
class Event:
    side: str          # "A" (Asterisk -> server) or "S" (server -> Asterisk)
    kind: str          # ">" a line, "!" a connection event (EOF, CLOSE, SHUT_WR)
    ms: int
    text: str


@dataclass
class Session:
    file: str
    name: str
    title: str
    channel: str = ""
    agistatus: str = ""
    header_bytes: dict[str, tuple[int, str]] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)

    def lines(self, side: str) -> list[str]:
        return [e.text for e in self.events if e.side == side and e.kind == ">"]

    def stream(self, side: str) -> bytes:
        return "".join(t + "\n" for t in self.lines(side)).encode("utf-8")

    @property
    def env_lines(self) -> list[str]:
        """Asterisk's lines up to and including the blank line ending the environment."""
        out: list[str] = []
        for text in self.lines("A"):
            out.append(text)
            if text == "":
                return out
        raise FixtureError(f"{self.file}/{self.name}: no end of environment")

    @property
    def env(self) -> dict[str, str]:
        return dict(line.split(": ", 1) if ": " in line else (line.rstrip(":"), "") for line in self.env_lines[:-1])

    def exchanges(self) -> list[tuple[str, list[str]]]:
        """(server command, Asterisk lines that followed it before the next command), in order."""
        result: list[tuple[str, list[str]]] = []
        seen_env_end = False
        for e in self.events:
            if e.kind != ">":
                continue
            if e.side == "A" and not seen_env_end:
                seen_env_end = e.text == ""
                continue
            if e.side == "S":
                result.append((e.text, []))
            elif result:
                result[-1][1].append(e.text)
            else:
                raise FixtureError(f"{self.file}/{self.name}: Asterisk line before any command: {e.text!r}")
        return result

    def verify(self) -> None:
        for side, key in (("A", "a"), ("S", "s")):
            data = self.stream(side)
            n, prefix = self.header_bytes[key]
            digest = hashlib.sha256(data).hexdigest()[:16]
            if len(data) != n or digest != prefix:
                raise FixtureError(f"{self.file}/{self.name} {side}: {len(data)} bytes sha {digest}, "
                                   f"header says {n} sha {prefix}")


def parse_log(path: Path) -> list[Session]:
    text = path.read_text(encoding="utf-8")
    sessions: list[Session] = []
    current: Session | None = None
    for raw in text.split("\n"):
        if raw.startswith("#"):
            m = _CALL.match(raw)
            if m:
                current = Session(file=path.name, name=m.group("name"), title=m.group("title"))
                sessions.append(current)
                continue
            if current is None:
                continue
            m = _CHANNEL.match(raw)
            if m:
                current.channel, current.agistatus = m.group("channel"), m.group("status")
                continue
            m = _BYTES.match(raw)
            if m:
                current.header_bytes = {"a": (int(m.group("a_n")), m.group("a_h")),
                                        "s": (int(m.group("s_n")), m.group("s_h"))}
            continue
        if raw == "":
            continue
        m = _EVENT.match(raw)
        if not m or current is None:
            raise FixtureError(f"{path.name}: unparseable line {raw!r}")
        current.events.append(Event(m.group("side"), m.group("kind"), int(m.group("ms")), m.group("text")))
    for s in sessions:
        if not s.header_bytes:
            raise FixtureError(f"{path.name}/{s.name}: no bytes header")
        s.verify()
    return sessions


def all_sessions() -> list[Session]:
    return [s for p in sorted(FIXTURE_DIR.glob("*.log")) for s in parse_log(p)]
