"""In-memory doubles for engine tests: a scripted channel, a recording sink, fixed services."""

from __future__ import annotations

import re

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Mapping

from agi.channel import ChannelHungUp, DigitsResult, PlayResult, RecordResult
from agi.engine import Clip, TicketLookupUnavailable

T0 = datetime(2026, 11, 28, 2, 0, 0, tzinfo=timezone.utc)   # 10:00 in Beijing


class Clock:
    def __init__(self) -> None:
        self.t = T0

    def advance(self, seconds: float) -> None:
        self.t += timedelta(seconds=seconds)


@dataclass
class QueuePlan:
    status: str = ""            # QUEUESTATUS after return ("" when bridged)
    member: str = ""            # MEMBERNAME when bridged
    hold: int = 5               # QEHOLDTIME
    wait: float = 5.0           # seconds spent in Queue (incl. talk)
    hangup: bool = False        # caller hangs up during Queue


class FakeChannel:
    """Scripted caller. ``inputs``: one string per GET DATA ("" + timed_out when None). ``hangup_at``: the
    N-th media command (1-based) finds the caller gone; variable commands keep working (dead mode)."""

    def __init__(self, clock: Clock, inputs: list[str | None] | None = None, queue: list[QueuePlan] | None = None,
                 hangup_at: int | None = None, callerid: str = "13800138000", linkedid: str = "1795900000.1",
                 record_seconds: float = 4.0, variables: Mapping[str, str] | None = None,
                 channel_name: str = "PJSIP/trunk-00000001", version: str = "22.10.1") -> None:
        self.clock = clock
        self.inputs = list(inputs or [])
        self.queue = list(queue or [])
        self.hangup_at = hangup_at
        self.record_seconds = record_seconds
        self.vars: dict[str, str] = {"CHANNEL(linkedid)": linkedid, **(variables or {})}
        self.env = {"agi_uniqueid": linkedid, "agi_callerid": callerid, "agi_dnid": "12345",
                    "agi_extension": "12345", "agi_channel": channel_name, "agi_version": version}
        self.media = 0
        self.dead = False
        self.log: list[str] = []
        self.hangup_called = False

    @property
    def hung_up(self) -> bool:
        return self.dead

    def _media(self, what: str) -> None:
        if self.dead:
            raise ChannelHungUp("dead")
        self.media += 1
        self.log.append(what)
        if self.hangup_at is not None and self.media >= self.hangup_at:
            self.dead = True
            raise ChannelHungUp(f"hangup during {what}")
        self.clock.advance(1)

    def answer(self) -> None:
        self._media("ANSWER")

    def channel_status(self) -> int:
        return 6

    def stream_file(self, sound: str, escape_digits: str = "") -> PlayResult:
        self._media(f"STREAM {sound}")
        return PlayResult(None, 8000)

    def get_data(self, sound: str, timeout_ms: int, max_digits: int) -> DigitsResult:
        self._media(f"GET DATA {sound}")
        value = self.inputs.pop(0) if self.inputs else None
        return DigitsResult(value or "", value is None)

    def wait_for_digit(self, timeout_ms: int) -> str | None:
        self._media("WAIT")
        return None

    def record_file(self, path: str, fmt: str = "wav", escape_digits: str = "#", timeout_ms: int = 30000,
                    beep: bool = True, silence_seconds: int | None = None) -> RecordResult:
        self._media(f"RECORD {path}")
        self.clock.advance(self.record_seconds)
        return RecordResult("#", int(self.record_seconds * 8000), "dtmf")

    def say_digits(self, digits: str, escape_digits: str = "") -> str | None:
        self._media(f"SAY DIGITS {digits}")
        return None

    def say_number(self, number: int, escape_digits: str = "") -> str | None:
        self._media(f"SAY NUMBER {number}")
        return None

    def exec_app(self, application: str, options: str = "") -> int:
        self._media(f"EXEC {application} {options}")
        if application.lower() != "queue":
            return 0
        plan = self.queue.pop(0) if self.queue else QueuePlan(status="TIMEOUT")
        self.clock.advance(plan.wait)
        if plan.member:
            self.vars.update(MEMBERNAME=plan.member, QEHOLDTIME=str(plan.hold))
        if plan.status:
            self.vars["QUEUESTATUS"] = plan.status
        if plan.hangup:
            self.dead = True
            raise ChannelHungUp("caller hung up in queue")
        return 0

    def gosub(self, context: str, extension: str, priority: str | int, args: str = "") -> int:
        return 0

    def get_variable(self, name: str) -> str | None:
        return self.vars.get(name) or None

    def get_full_variable(self, expression: str) -> str:
        """``${NAME}`` substituted from the channel's variables; functions such as QUEUE_WAITING_COUNT → 0."""
        if "(" in expression:
            return "0"
        return re.sub(r"\$\{([^}]*)\}", lambda m: self.vars.get(m.group(1), ""), expression)

    def set_variable(self, name: str, value: str) -> None:
        self.vars[name] = value

    def set_music(self, on: bool, moh_class: str = "default") -> None:
        pass

    def verbose(self, message: str, level: int = 1) -> None:
        pass

    def hangup(self) -> None:
        self._media("HANGUP")
        self.hangup_called = True
        self.dead = True


class MemorySink:
    """RecordSink keeping merged records in memory (like CallRecords without the journal)."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.completed: dict[str, int] = {}
        self.clips: list[tuple[str, Clip]] = []
        self.pops: list[tuple[str, str]] = []
        self.allocate: set[str] = set()

    def open(self, record_id: str, fields: Mapping[str, Any]) -> dict[str, Any]:
        rec = self.records.setdefault(record_id, {})
        for k, v in fields.items():
            rec.setdefault(k, v)
        return dict(rec)

    def update(self, record_id: str, changes: Mapping[str, Any], durable: bool = False) -> None:
        self.records.setdefault(record_id, {}).update(changes)

    def complete(self, record_id: str, changes: Mapping[str, Any], allocate_ticket: bool = False) -> None:
        self.records.setdefault(record_id, {}).update(changes)
        self.completed[record_id] = self.completed.get(record_id, 0) + 1
        if allocate_ticket:
            self.allocate.add(record_id)

    def fill(self, record_id: str, changes: Mapping[str, Any]) -> None:
        rec = self.records.setdefault(record_id, {})
        for k, v in changes.items():
            if rec.get(k) in (None, ""):
                rec[k] = v

    def add_clip(self, record_id: str, clip: Clip) -> None:
        self.clips.append((record_id, clip))

    def screen_pop(self, record_id: str, agent_id: str) -> None:
        self.pops.append((record_id, agent_id))

    def known(self, record_id: str) -> dict[str, Any] | None:
        return dict(self.records[record_id]) if record_id in self.records else None


@dataclass
class FakeServices:
    clock: Clock
    open_now: bool = True
    tickets: list[str] = field(default_factory=lambda: ["20261128000001", "20261128000002"])
    store_down: bool = False
    statuses: dict[str, str] = field(default_factory=dict)

    def now(self) -> datetime:
        return self.clock.t

    def is_open(self, now: datetime) -> bool:
        return self.open_now

    def allocate_ticket(self) -> str | None:
        if self.store_down:
            return None
        return self.tickets.pop(0)

    def ticket_status(self, ticket_no: str) -> str | None:
        if self.store_down:
            raise TicketLookupUnavailable("down")
        return self.statuses.get(ticket_no)

    def clip_path(self, record_id: str, kind: str, n: int) -> str:
        return f"/spool/ivr/{record_id}-{kind}-{n}"


def run_fake_call(flows: Mapping[str, Any], cfg: Any, records: Any, linkedid: str, flow: str = "main",
                  services_kw: Mapping[str, Any] | None = None, **channel_kw: Any) -> Any:
    """One call of ``flow`` over a :class:`FakeChannel` into ``records`` (a real CallRecords, say)."""
    from agi.engine import FlowRun
    clock = Clock()
    chan = FakeChannel(clock, linkedid=linkedid, **channel_kw)
    return FlowRun(flows, chan, records, FakeServices(clock, **(services_kw or {})), cfg).run(flow)
