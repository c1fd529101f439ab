"""The flow engine: walks a flow's nodes over a :class:`agi.channel.Channel`, no sockets, no database.

Everything with I/O is injected:

* the **channel** (``agi.protocol.HotlineAGI`` in production, the emulator or a fake in tests);
* a :class:`RecordSink` receiving call-record changes (``agi.calls.CallRecords`` writes them to the journal);
* :class:`Services` for the clock, business hours, ticket numbers and ticket look-ups.

A flow's ``record`` mode says what its session does with the Appendix C record:

* ``open``  (main, menu): opens the record at first contact, appends every step to ``ivr_path``, completes it on
  every exit with the outcome, hangup party, wait/talk seconds and callback flag;
* ``join``  (survey run on its own from the dialplan): adds the satisfaction to an existing record only;
* ``agent`` (agent-connect, on the agent's channel): sets answered_at/agent_id, publishes the screen pop;
* ``end``   (call-end, the ``h`` extension, dead channel): completes a record that no session completed.

Cross-session facts travel as channel variables on the caller's channel (they survive into the ``h``
extension, where AGI runs in dead mode and only GET/SET VARIABLE work): ``HL_CALL_START``, ``HL_QUEUE_ENTER``,
``HL_CLOSED``, ``HL_FLOW_DONE``, ``HL_ERROR``; Queue itself leaves ``QUEUESTATUS``, ``MEMBERNAME`` and
``QEHOLDTIME`` (queues.conf ``setinterfacevar``/``setqueueentryvar``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Mapping, Protocol

from agi.channel import Channel, ChannelError, ChannelHungUp
from agi.flowdef import Flow, Node, Prompt
from config.log import bind_call, get_logger
from store.appendix_c import CALLBACK_OUTCOMES, LOCATION_APPEALS

log = get_logger(__name__)

ANSWERED = "人工接通"
IVR_ABANDON = "IVR放弃"
QUEUE_ABANDON = "排队放弃"
QUEUE_TIMEOUT = "排队超时"
VOICEMAIL = "留言"
AFTER_HOURS = "非工作时段"
SYSTEM_FAILURE = "系统失败"
CALLER, AGENT, SYSTEM = "诉求人", "坐席", "系统"
NOT_QUEUED_STATUSES = frozenset({"JOINEMPTY", "JOINUNAVAIL", "FULL"})
WITHHELD = frozenset({"", "unknown", "anonymous", "restricted", "private", "withheld"})


class EngineError(Exception):
    """The engine was asked something impossible (unknown flow, node handler missing)."""


class TicketLookupUnavailable(Exception):
    """The store cannot be asked right now (database down): the caller hears "try later"."""


@dataclass(frozen=True)
class Clip:
    """An audio file recorded by RECORD FILE: a description clip (ivr_clip) or a voicemail."""

    kind: str                # ivr_clip | voicemail
    uri: str                 # path of the file Asterisk wrote (with extension)
    duration_seconds: float
    sample_rate: int = 8000
    channels: int = 1
    format: str = "wav"


class RecordSink(Protocol):
    """Where the engine sends record changes (``agi.calls.CallRecords`` → journal → store)."""

    def open(self, record_id: str, fields: Mapping[str, Any]) -> dict[str, Any]: ...
    def update(self, record_id: str, changes: Mapping[str, Any], durable: bool = False) -> None: ...
    def complete(self, record_id: str, changes: Mapping[str, Any], allocate_ticket: bool = False) -> None: ...
    def fill(self, record_id: str, changes: Mapping[str, Any]) -> None: ...
    def add_clip(self, record_id: str, clip: Clip) -> None: ...
    def screen_pop(self, record_id: str, agent_id: str) -> None: ...
    def known(self, record_id: str) -> dict[str, Any] | None: ...


class Services(Protocol):
    def now(self) -> datetime: ...
    def is_open(self, now: datetime) -> bool: ...
    def allocate_ticket(self) -> str | None: ...            # None: store unreachable → allocated at replay
    def ticket_status(self, ticket_no: str) -> str | None: ...  # None: no such ticket; may raise TicketLookupUnavailable
    def clip_path(self, record_id: str, kind: str, n: int) -> str: ...  # absolute, without extension


@dataclass(frozen=True)
class EngineConfig:
    access_number: str = "12345"
    default_queue: str = "hotline"
    long_wait_seconds: int = 60
    timezone: str = "Asia/Shanghai"
    callback_deadline_hours: int = 24


@dataclass
class CallContext:
    """What one AGI session knows about its call while the flow runs."""

    record_id: str
    uniqueid: str
    mode: str
    caller_number: str = "unknown"
    fields: dict[str, Any] = field(default_factory=dict)      # record fields set by this session
    path: list[str] = field(default_factory=list)
    queue_enter_at: datetime | None = None                    # first entry (wait is measured from here)
    last_queue_status: str = ""
    answered_at: datetime | None = None
    talk_end_at: datetime | None = None
    agent_id: str | None = None
    after_hours: bool = False
    outcome: str | None = None                                # set explicitly by hangup/voicemail/callback
    callback_required: bool | None = None
    hangup_party: str | None = None
    allocate_ticket: bool = False
    hung_up: bool = False
    hangup_requested: bool = False
    error: str | None = None
    clips: int = 0
    dirty: set[str] = field(default_factory=set)
    completed: bool = False

    def set(self, **changes: Any) -> None:
        self.fields.update(changes)
        self.dirty.update(changes)

    def step(self, entry: str) -> None:
        self.path.append(entry)
        self.dirty.add("ivr_path")


@dataclass(frozen=True)
class FlowJump:
    flow: str


NodeResult = str | FlowJump | None
NodeHandler = Callable[["FlowRun", CallContext, Node], NodeResult]


def to_iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).isoformat()


def seconds_between(later: datetime, earlier: datetime) -> int:
    """Whole seconds, computed the same way the validator checks them."""
    return max(int((later - earlier).total_seconds()), 0)


def from_epoch(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromtimestamp(float(value), tz=timezone.utc)
    except (ValueError, OverflowError, OSError):
        return None


def normalize_caller(callerid: str | None) -> str:
    """agi_callerid as received; withheld / unknown numbers are stored as ``anonymous``."""
    value = (callerid or "").strip()
    return "anonymous" if value.lower() in WITHHELD else value


def initial_fields(env: Mapping[str, str], record_id: str, start: datetime, access_number: str) -> dict[str, Any]:
    """The fields a record gets at first contact (Appendix C 呼叫信息)."""
    called = ""
    for key in ("agi_dnid", "agi_extension"):
        value = (env.get(key) or "").strip()
        if value and value.lower() != "unknown" and value not in ("s", "h") and value.isdigit():
            called = value
            break
    return {
        "record_id": record_id,
        "channel": "电话",
        "caller_number": normalize_caller(env.get("agi_callerid")),
        "called_number": called or access_number,
        "call_start_at": to_iso(start),
        "ivr_path": [],
        "language": "普通话",
        "transfer_type": "无",
        "callback_required": False,
        "uniqueid": env.get("agi_uniqueid") or None,
    }


def decide_outcome(ctx: CallContext) -> str:
    if ctx.answered_at is not None:
        return ANSWERED
    if ctx.outcome:
        return ctx.outcome
    if ctx.queue_enter_at is not None:
        if ctx.last_queue_status == "TIMEOUT" and not ctx.hung_up:
            return QUEUE_TIMEOUT
        return QUEUE_ABANDON
    if ctx.error:
        return SYSTEM_FAILURE
    if ctx.after_hours:
        return AFTER_HOURS
    return IVR_ABANDON


def close_fields(ctx: CallContext, now: datetime) -> dict[str, Any]:
    """The fields every exit sets: outcome, hangup party, end time, wait/talk seconds, callback flag."""
    outcome = decide_outcome(ctx)
    ended = ctx.talk_end_at if (outcome == ANSWERED and ctx.talk_end_at) else now
    out: dict[str, Any] = {"call_outcome": outcome, "ended_at": to_iso(ended), "ivr_path": list(ctx.path)}
    if ctx.hangup_party:
        party = ctx.hangup_party
    elif ctx.hung_up:
        party = CALLER
    else:
        party = SYSTEM
    out["hangup_party"] = party
    if ctx.queue_enter_at is not None:
        out["queue_enter_at"] = to_iso(ctx.queue_enter_at)
        out["wait_seconds"] = seconds_between(ctx.answered_at or ended, ctx.queue_enter_at)
    if outcome == ANSWERED and ctx.answered_at is not None:
        out["answered_at"] = to_iso(ctx.answered_at)
        out["talk_seconds"] = seconds_between(ended, ctx.answered_at)
        if ctx.agent_id:
            out["agent_id"] = ctx.agent_id
    if ctx.callback_required is not None:
        out["callback_required"] = ctx.callback_required
    else:
        out["callback_required"] = outcome in CALLBACK_OUTCOMES
    return out


class FlowRun:
    """One AGI session running a flow (and the flows it jumps to) over one channel."""

    def __init__(self, flows: Mapping[str, Flow], channel: Channel, sink: RecordSink, services: Services,
                 config: EngineConfig, args: tuple[str, ...] = (), linkedid: str | None = None) -> None:
        self.flows = flows
        self.channel = channel
        self.sink = sink
        self.services = services
        self.config = config
        self.args = args
        self.linkedid = linkedid        # already asked by the server (saves a round trip), else asked here

    # ------------------------------------------------------------------ helpers used by nodes
    def now(self) -> datetime:
        return self.services.now()

    def play(self, prompt: Prompt | None, escape: str = "") -> str | None:
        """Play a prompt; a missing sound is logged and skipped (the caller must not be stuck on it)."""
        if prompt is None:
            return None
        result = self.channel.stream_file(prompt.sound, escape)
        if result.missing:
            log.warning("prompt_missing", sound=prompt.sound)
        return result.digit

    def var(self, name: str) -> str:
        """GET VARIABLE that works in dead mode too; unset → ''."""
        try:
            return self.channel.get_variable(name) or ""
        except ChannelHungUp:
            return ""

    def vars(self, *names: str) -> dict[str, str]:
        """Several plain channel variables in one round trip (``GET FULL VARIABLE ${A}|${B}|…``, which works
        in dead mode too); unset → ''. When a value holds the separator the parts do not add up and each
        variable is asked on its own."""
        try:
            joined: str | None = self.channel.get_full_variable("|".join(f"${{{n}}}" for n in names))
        except ChannelHungUp:
            joined = None
        parts = joined.split("|") if joined is not None else []
        if len(parts) == len(names):
            return dict(zip(names, parts))
        return {n: self.var(n) for n in names}

    def set_var(self, name: str, value: str) -> None:
        try:
            self.channel.set_variable(name, value)
        except ChannelError as exc:      # the socket may already be gone: the h extension copes
            log.info("set_variable_failed", name=name, error=str(exc))

    def checkpoint(self, ctx: CallContext, durable: bool = False) -> None:
        if ctx.mode != "open" or not ctx.dirty or ctx.completed:
            return
        changes = {k: ctx.fields[k] for k in ctx.dirty if k in ctx.fields}
        if "ivr_path" in ctx.dirty:
            changes["ivr_path"] = list(ctx.path)
        ctx.dirty.clear()
        self.sink.update(ctx.record_id, changes, durable=durable)

    # ------------------------------------------------------------------ the session
    def _record_id(self) -> str:
        env = self.channel.env
        linkedid = self.linkedid or ""
        if not linkedid:
            try:
                linkedid = self.channel.get_variable("CHANNEL(linkedid)") or ""
            except ChannelHungUp:
                linkedid = ""
        return linkedid or env.get("agi_uniqueid", "") or f"unknown-{self.now().timestamp():.6f}"

    def begin(self, flow: Flow) -> CallContext:
        record_id = self._record_id()
        env = self.channel.env
        bind_call(uniqueid=env.get("agi_uniqueid"), linkedid=record_id, flow=flow.name)
        ctx = CallContext(record_id=record_id, uniqueid=env.get("agi_uniqueid", ""), mode=flow.record,
                          caller_number=normalize_caller(env.get("agi_callerid")))
        if flow.record == "open":
            start = from_epoch(self.var("HL_CALL_START")) or self.now()
            state = self.sink.open(record_id, initial_fields(env, record_id, start, self.config.access_number))
            ctx.path = list(state.get("ivr_path") or [])
            ctx.caller_number = state.get("caller_number") or ctx.caller_number
            enter = state.get("queue_enter_at")
            if enter:
                ctx.queue_enter_at = datetime.fromisoformat(enter) if isinstance(enter, str) else enter
        return ctx

    def run(self, flow_name: str) -> CallContext:
        if flow_name not in self.flows:
            raise EngineError(f"no flow named {flow_name!r}")
        flow = self.flows[flow_name]
        ctx = self.begin(flow)
        log.info("flow_start", record_id=ctx.record_id)
        node_id: str | None = flow.start
        try:
            while node_id is not None:
                node = flow.nodes[node_id]
                handler = NODE_HANDLERS.get(node.type)
                if handler is None:
                    raise EngineError(f"no handler for node type {node.type!r}")
                result = handler(self, ctx, node)
                if isinstance(result, FlowJump):
                    flow = self.flows[result.flow]
                    ctx.step(f"->{flow.name}")
                    node_id = flow.start
                    continue
                node_id = result
                if node.type not in SILENT_NODES:
                    self.checkpoint(ctx)
        except ChannelHungUp:
            ctx.hung_up = True
            log.info("caller_hung_up", node=node_id)
        except Exception as exc:  # noqa: BLE001 - every exit must leave a record; the error is logged
            ctx.error = f"{type(exc).__name__}: {exc}"
            log.error("flow_failed", node=node_id, error=ctx.error, exc_info=True)
        finally:
            self.finish(ctx)
        return ctx

    def finish(self, ctx: CallContext) -> None:
        if ctx.mode == "open":
            self._finish_open(ctx)
        elif ctx.mode == "join":
            if ctx.dirty and ctx.fields:
                self.sink.fill(ctx.record_id, dict(ctx.fields))
        if ctx.hangup_requested and not ctx.hung_up:
            try:
                self.channel.hangup()
            except ChannelError:
                pass

    def _finish_open(self, ctx: CallContext) -> None:
        alive = not ctx.hung_up and not self.channel.hung_up
        if ctx.error and ctx.answered_at is None and alive:
            # Leave the record open: the dialplan's fallback queues the caller, `h` (call-end) completes it.
            ctx.step("error")
            self.checkpoint(ctx, durable=True)
            self.set_var("HL_ERROR", "1")
            return
        if ctx.error and not alive:
            ctx.hung_up = True
        known = self.sink.known(ctx.record_id) or {}
        if ctx.answered_at is None and known.get("answered_at") and ctx.queue_enter_at is not None:
            # agent-connect saw the bridge although Queue's variables did not (defensive)
            ctx.answered_at = _as_dt(known["answered_at"])
            ctx.agent_id = ctx.agent_id or known.get("agent_id")
            ctx.talk_end_at = ctx.talk_end_at or self.now()
        changes = {k: ctx.fields[k] for k in ctx.fields}
        changes.update(close_fields(ctx, self.now()))
        drop_unlocated_appeal(changes, known)
        self.sink.complete(ctx.record_id, changes, allocate_ticket=ctx.allocate_ticket)
        ctx.completed = True
        log.info("call_record_completed", record_id=ctx.record_id, outcome=changes["call_outcome"])
        self.set_var("HL_CLOSED", "1")
        self.set_var("HL_FLOW_DONE", "1")


# Nodes that do not talk to the caller: their steps ride with the next checkpoint (before the caller next
# waits on us, or with the record's completion) instead of one journal entry each.
SILENT_NODES = frozenset({"set", "hours", "goto"})

def drop_unlocated_appeal(changes: dict[str, Any], known: Mapping[str, Any]) -> None:
    """An IVR menu choice of 求助/投诉/举报 makes incident_address and district required (Appendix C), which only
    the agent's form can give. The choice stays in ivr_path (and reached the screen pop while the call was up);
    the completed record keeps appeal_type only once the address is there."""
    appeal = changes.get("appeal_type", known.get("appeal_type"))
    if appeal in LOCATION_APPEALS and not (changes.get("incident_address") or known.get("incident_address")):
        changes["appeal_type"] = None


def _as_dt(value: Any) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def add_hours(dt: datetime, hours: int) -> datetime:
    return dt + timedelta(hours=hours)


NODE_HANDLERS: dict[str, NodeHandler] = {}


def node_handler(node_type: str) -> Callable[[NodeHandler], NodeHandler]:
    def register(fn: NodeHandler) -> NodeHandler:
        NODE_HANDLERS[node_type] = fn
        return fn
    return register


# Node implementations register themselves here.
from agi import nodes as _nodes  # noqa: E402,F401  (import for its side effect)

__all__ = ["Clip", "CallContext", "EngineConfig", "EngineError", "FlowJump", "FlowRun", "RecordSink", "Services",
           "TicketLookupUnavailable", "close_fields", "decide_outcome", "initial_fields", "normalize_caller",
           "NODE_HANDLERS"]
