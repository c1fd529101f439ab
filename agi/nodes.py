"""Node implementations of the flow engine, one function per node type (registered in engine.NODE_HANDLERS)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from agi.channel import ChannelHungUp, RecordResult
from agi.flowdef import Node
from config.log import get_logger
from store.appendix_c import LOCATION_APPEALS  # need an address a voicemail cannot know
from store.validation import TICKET_NO_RE

if TYPE_CHECKING:
    from agi.engine import CallContext, FlowRun, NodeResult

log = get_logger(__name__)

SAMPLE_RATE = 8000
SURVEY_KEYS = {"1": "满意", "2": "基本满意", "3": "不满意"}
DEFAULT_VOICEMAIL_TICKET: dict[str, Any] = {
    "claimant_type": "自然人",
    "claimant_name": "语音留言来电人（待回拨核实）",
    "is_anonymous": False,
    "confidential": False,
    "category_code": "IVR-VOICEMAIL",
    "title": "语音留言",
    "content": "市民通过语音留言提出诉求，内容见留言录音及其转写，待回拨核实。",
    "urgency": "一般",
    "accepted": True,
    "disposition": "派单",
    "handler_unit": "12345热线回拨组",
    "status": "已派单",
}


def _reg(node_type: str):  # type: ignore[no-untyped-def]
    from agi.engine import node_handler
    return node_handler(node_type)


def _get_digits(run: "FlowRun", node: Node, max_digits: int) -> tuple[str, bool]:
    timeout = int(node.opts.get("timeout_ms", 5000))
    sound = node.prompt.sound if node.prompt else "silence/1"
    result = run.channel.get_data(sound, timeout, max_digits)
    return result.digits, result.timed_out


@_reg("play")
def play(run: "FlowRun", ctx: "CallContext", node: Node) -> "NodeResult":
    ctx.step(node.id)
    run.play(node.prompt)
    return node.next


@_reg("menu")
def menu(run: "FlowRun", ctx: "CallContext", node: Node) -> "NodeResult":
    choices: dict[str, str] = node.opts["choices"]
    attempts = int(node.opts.get("retries", 2)) + 1
    for attempt in range(attempts):
        digits, _timed_out = _get_digits(run, node, 1)
        key = digits[:1]
        if key in choices:
            ctx.step(f"{node.id}:{key}")
            return choices[key]
        if attempt + 1 < attempts:
            run.play(node.opts.get("timeout_prompt") if not key else node.opts.get("invalid_prompt"))
    ctx.step(f"{node.id}:-")
    return node.opts["on_fail"]


@_reg("collect")
def collect(run: "FlowRun", ctx: "CallContext", node: Node) -> "NodeResult":
    pattern = re.compile(node.opts["pattern"])
    attempts = int(node.opts.get("retries", 2)) + 1
    sensitive = bool(node.opts.get("sensitive", node.opts.get("field") == "contact_phone"))
    for attempt in range(attempts):
        digits, timed_out = _get_digits(run, node, int(node.opts["max_digits"]))
        value = digits
        if not digits and not timed_out and node.opts.get("empty_means") == "caller_number":
            value = ctx.caller_number if ctx.caller_number != "anonymous" else ""
        if value and pattern.fullmatch(value):
            shown = "#" if not digits else (f"<{len(value)}位>" if sensitive else value)
            ctx.step(f"{node.id}:{shown}")
            if node.opts.get("field"):
                ctx.set(**{node.opts["field"]: value})
            if node.opts.get("variable"):
                run.set_var(node.opts["variable"], value)
            return node.next
        if attempt + 1 < attempts:
            run.play(node.opts.get("invalid_prompt"))
    ctx.step(f"{node.id}:-")
    return node.opts.get("on_fail") or node.next


def _record(run: "FlowRun", ctx: "CallContext", node: Node, kind: str) -> tuple[RecordResult | None, str]:
    """Prompt, beep, RECORD FILE; returns the result (None if the caller hung up before) and the file path."""
    run.play(node.prompt)
    ctx.clips += 1
    base = run.services.clip_path(ctx.record_id, kind, ctx.clips)
    max_ms = int(node.opts.get("max_seconds", 60)) * 1000
    silence = node.opts.get("silence_seconds", 5)
    try:
        result = run.channel.record_file(base, "wav", "#", max_ms, beep=bool(node.opts.get("beep", True)),
                                         silence_seconds=silence)
    except ChannelHungUp:
        return None, base + ".wav"
    return result, base + ".wav"


def _keep_clip(run: "FlowRun", ctx: "CallContext", node: Node, kind: str, result: RecordResult | None,
               path: str) -> bool:
    from agi.engine import Clip
    if result is None:
        return False
    seconds = result.endpos / SAMPLE_RATE
    if seconds < float(node.opts.get("min_seconds", 1)):
        return False
    run.sink.add_clip(ctx.record_id, Clip(kind=kind, uri=path, duration_seconds=round(seconds, 3)))
    return True


@_reg("record")
def record(run: "FlowRun", ctx: "CallContext", node: Node) -> "NodeResult":
    kind = str(node.opts.get("kind", "ivr_clip"))
    result, path = _record(run, ctx, node, kind)
    kept = _keep_clip(run, ctx, node, kind, result, path)
    ctx.step(f"{node.id}:{'ok' if kept else 'empty'}")
    if result is None or result.reason == "hangup":
        raise ChannelHungUp("caller hung up while recording")
    run.play(node.opts.get("done_prompt"))
    return node.next


@_reg("set")
def set_fields(run: "FlowRun", ctx: "CallContext", node: Node) -> "NodeResult":
    ctx.set(**dict(node.opts["fields"]))
    ctx.step(node.id)
    return node.next


@_reg("hours")
def hours(run: "FlowRun", ctx: "CallContext", node: Node) -> "NodeResult":
    is_open = run.services.is_open(run.now())
    ctx.step(f"{node.id}:{'open' if is_open else 'closed'}")
    if not is_open:
        ctx.after_hours = True
    return node.opts["open"] if is_open else node.opts["closed"]


def _queue_args(run: "FlowRun", queue: str, options: str, timeout: int | None, gosub: str) -> str:
    """Queue(queuename,options,URL,announceoverride,timeout,AGI,[macro,]gosub): the macro argument exists up
    to Asterisk 20 and was removed in 21, so the gosub's position depends on the version AGI reports."""
    parts = [queue, options, "", "", str(timeout) if timeout else "", ""]
    if gosub:
        version = run.channel.env.get("agi_version", "")
        major = int(version.split(".")[0]) if version.split(".")[0].isdigit() else 20
        if major <= 20:
            parts.append("")      # macro
        parts.append(gosub)
    return ",".join(parts).rstrip(",")


@_reg("queue")
def queue(run: "FlowRun", ctx: "CallContext", node: Node) -> "NodeResult":
    cfg = run.config
    name = str(node.opts.get("queue") or cfg.default_queue)
    timeout_opt = node.opts.get("timeout")
    timeout = cfg.long_wait_seconds if timeout_opt == "long_wait" else (int(timeout_opt) if timeout_opt else None)
    options = str(node.opts.get("options", "c"))
    run.play(node.prompt)
    if node.opts.get("announce_waiting"):
        waiting = run.channel.get_full_variable(f"${{QUEUE_WAITING_COUNT({name})}}").strip()
        if waiting.isdigit() and int(waiting) > 0:
            run.play(node.opts["ahead_prompt"])
            run.channel.say_number(int(waiting))
            run.play(node.opts["ahead_suffix_prompt"])
    if node.opts.get("priority"):
        run.channel.set_variable("QUEUE_PRIO", str(node.opts["priority"]))
    now = run.now()
    if ctx.queue_enter_at is None:
        ctx.queue_enter_at = now
        ctx.set(queue_id=name, queue_enter_at=now.isoformat())
        run.set_var("HL_QUEUE_ENTER", f"{now.timestamp():.3f}")
    ctx.step(node.id)
    run.checkpoint(ctx)     # journaled before Queue() starts: a crash from here on still knows the caller was queued
    run.channel.set_variable("QUEUESTATUS", "")
    round_start = now
    gosub = str(node.opts.get("gosub", "hotline-agent-connect"))
    try:
        run.channel.exec_app("Queue", _queue_args(run, name, options, timeout, gosub))
    except ChannelHungUp:
        ctx.hung_up = True
        _note_answer(run, ctx, round_start, ended_by=None, values=run.vars(*QUEUE_RESULT_VARS))
        raise
    values = run.vars(*QUEUE_RESULT_VARS)
    status = values["QUEUESTATUS"]
    ctx.last_queue_status = status
    if _note_answer(run, ctx, round_start, ended_by="坐席", values=values):
        ctx.step(f"{node.id}:answered")
        return node.opts["answered"]
    if run.channel.hung_up:
        ctx.hung_up = True
        raise ChannelHungUp("caller left the queue")
    ctx.step(f"{node.id}:{status or 'NONE'}")
    if status in NOT_QUEUED and ctx.path.count(node.id) == 1 and ctx.queue_enter_at == round_start:
        # never entered: JOINEMPTY / JOINUNAVAIL / FULL leave no queue entry (no queue_log line either)
        ctx.queue_enter_at = None
        ctx.fields.pop("queue_enter_at", None)
        ctx.fields.pop("queue_id", None)
        ctx.set(queue_enter_at=None, queue_id=None)
        run.set_var("HL_QUEUE_ENTER", "")
    statuses: dict[str, str] = node.opts.get("statuses") or {}
    return statuses.get(status) or node.opts.get("default") or node.opts["answered"]


NOT_QUEUED = frozenset({"JOINEMPTY", "JOINUNAVAIL", "FULL"})


# What Queue() leaves on the caller's channel, asked in one round trip after it returns.
QUEUE_RESULT_VARS = ("QUEUESTATUS", "MEMBERNAME", "QEHOLDTIME")


def _note_answer(run: "FlowRun", ctx: "CallContext", round_start: datetime, ended_by: str | None,
                 values: dict[str, str]) -> bool:
    """After Queue returned: was the caller bridged to an agent? (MEMBERNAME is set by setinterfacevar)."""
    member = values.get("MEMBERNAME", "")
    if not member:
        return False
    known = run.sink.known(ctx.record_id) or {}
    hold = values.get("QEHOLDTIME", "")
    if known.get("answered_at"):
        answered = known["answered_at"]
        ctx.answered_at = datetime.fromisoformat(answered) if isinstance(answered, str) else answered
    elif hold.isdigit():
        ctx.answered_at = round_start + timedelta(seconds=int(hold))
    else:
        ctx.answered_at = round_start
    now = run.now()
    if ctx.queue_enter_at and ctx.answered_at < ctx.queue_enter_at:
        ctx.answered_at = ctx.queue_enter_at
    if ctx.answered_at > now:
        ctx.answered_at = now
    ctx.agent_id = known.get("agent_id") or member
    ctx.talk_end_at = now
    ctx.hangup_party = ended_by or "诉求人"
    return True


@_reg("voicemail")
def voicemail(run: "FlowRun", ctx: "CallContext", node: Node) -> "NodeResult":
    result, path = _record(run, ctx, node, "voicemail")
    kept = _keep_clip(run, ctx, node, "voicemail", result, path)
    ctx.step(f"{node.id}:{'ok' if kept else 'empty'}")
    if not kept:
        if result is None or result.reason == "hangup":
            raise ChannelHungUp("caller hung up before leaving a message")
        return node.opts.get("on_empty") or node.next
    now = run.now()
    ticket = dict(DEFAULT_VOICEMAIL_TICKET)
    ticket.update(node.opts.get("ticket") or {})
    appeal = ctx.fields.get("appeal_type") or "其他"
    if appeal in LOCATION_APPEALS:
        # the location a 求助/投诉/举报 ticket needs is unknown until the callback: keep the choice in the title
        ticket["title"] = f"{ticket['title']}（{appeal}）"
        appeal = "其他"
    ticket["appeal_type"] = appeal
    ticket["contact_phone"] = ctx.fields.get("contact_phone") or (
        ctx.caller_number if ctx.caller_number != "anonymous" else "未知")
    if ticket.get("disposition") == "派单" and "due_at" not in ticket:
        ticket["due_at"] = (now + timedelta(hours=run.config.callback_deadline_hours)).isoformat()
    ctx.outcome = "留言"
    ctx.callback_required = True
    ticket_no = None
    try:
        ticket_no = run.services.allocate_ticket()
    except Exception as exc:  # noqa: BLE001 - the store being down must not cost the caller the message
        log.warning("ticket_allocation_deferred", error=str(exc))
    if ticket_no:
        ticket["ticket_no"] = ticket_no
    else:
        ctx.allocate_ticket = True
    ctx.set(**ticket)
    run.checkpoint(ctx, durable=True)
    if ticket_no:
        run.play(node.opts.get("ticket_prompt"))
        run.channel.say_digits(ticket_no)
    run.play(node.opts.get("done_prompt"))
    return node.next


@_reg("survey")
def survey(run: "FlowRun", ctx: "CallContext", node: Node) -> "NodeResult":
    attempts = int(node.opts.get("retries", 1)) + 1
    for attempt in range(attempts):
        digits, _ = _get_digits(run, node, 1)
        if digits[:1] in SURVEY_KEYS:
            ctx.set(satisfaction=SURVEY_KEYS[digits[:1]], satisfaction_source="IVR评价")
            ctx.step(f"{node.id}:{digits[:1]}")
            run.checkpoint(ctx, durable=True)
            run.play(node.opts.get("thanks_prompt"))
            return node.next
        if attempt + 1 < attempts:
            run.play(node.opts.get("invalid_prompt"))
    ctx.step(f"{node.id}:-")
    return node.next


@_reg("ticket_status")
def ticket_status(run: "FlowRun", ctx: "CallContext", node: Node) -> "NodeResult":
    from agi.engine import TicketLookupUnavailable
    attempts = int(node.opts.get("retries", 2)) + 1
    for attempt in range(attempts):
        digits, _ = _get_digits(run, node, 14)
        if TICKET_NO_RE.fullmatch(digits or ""):
            try:
                status = run.services.ticket_status(digits)
            except TicketLookupUnavailable:
                ctx.step(f"{node.id}:unavailable")
                run.play(node.opts.get("unavailable_prompt"))
                return node.next
            if status is None:
                ctx.step(f"{node.id}:{digits}:notfound")
                run.play(node.opts.get("not_found_prompt"))
            else:
                ctx.step(f"{node.id}:{digits}")
                run.play(node.opts.get("intro_prompt"))
                run.channel.say_digits(digits)
                run.play(node.opts["statuses"].get(status))
            return node.next
        if attempt + 1 < attempts:
            run.play(node.opts.get("invalid_prompt"))
    ctx.step(f"{node.id}:-")
    return node.next


@_reg("transfer")
def transfer(run: "FlowRun", ctx: "CallContext", node: Node) -> "NodeResult":
    run.play(node.prompt)
    ctx.set(transfer_type=node.opts["transfer_type"],
            transfer_target=str(node.opts.get("transfer_target") or node.opts["target"]))
    ctx.step(node.id)
    run.checkpoint(ctx, durable=True)
    run.channel.exec_app("Dial", f"{node.opts['target']},60")
    return node.next


@_reg("hangup")
def hangup(run: "FlowRun", ctx: "CallContext", node: Node) -> "NodeResult":
    ctx.step(node.id)
    if "outcome" in node.opts:
        ctx.outcome = node.opts["outcome"]
    if "callback_required" in node.opts:
        ctx.callback_required = bool(node.opts["callback_required"])
    ctx.hangup_requested = True
    run.play(node.prompt)
    return None


@_reg("end")
def end(run: "FlowRun", ctx: "CallContext", node: Node) -> "NodeResult":
    ctx.step(node.id)
    run.play(node.prompt)
    return None


@_reg("goto")
def goto(run: "FlowRun", ctx: "CallContext", node: Node) -> "NodeResult":
    from agi.engine import FlowJump
    if node.opts.get("flow"):
        return FlowJump(node.opts["flow"])
    return node.opts["target"]


def agent_id_from_channel(name: str) -> str:
    """``Local/1001@hotline-agents-0000001a;1`` / ``PJSIP/1001-00000012`` → ``1001``."""
    _, _, rest = name.partition("/")
    rest = rest.split("@", 1)[0]
    if "@" not in name:
        rest = rest.rsplit("-", 1)[0]
    return rest


@_reg("agent_connect")
def agent_connect(run: "FlowRun", ctx: "CallContext", node: Node) -> "NodeResult":
    """On the agent's channel when the queue bridges it: answered_at/agent_id, then the screen pop."""
    agent = (run.args[0] if run.args and run.args[0] else "") or run.var("MEMBERNAME") or run.var("HL_AGENT_ID")
    if not agent:
        agent = agent_id_from_channel(run.channel.env.get("agi_channel", ""))
    now = run.now()
    run.sink.fill(ctx.record_id, {"answered_at": now.isoformat(), "agent_id": agent})
    run.sink.screen_pop(ctx.record_id, agent)
    log.info("agent_connected", record_id=ctx.record_id, agent_id=agent)
    return node.next


@_reg("call_end")
def call_end(run: "FlowRun", ctx: "CallContext", node: Node) -> "NodeResult":
    """The ``h`` extension (dead channel): complete the record when no flow session did."""
    from agi.engine import close_fields, from_epoch, initial_fields
    if run.var("HL_CLOSED") == "1":
        return node.next
    now = run.now()
    known = run.sink.known(ctx.record_id) or {}
    start = from_epoch(run.var("HL_CALL_START")) or now
    fields: dict[str, Any] = {}
    if not known:
        fields.update(initial_fields(run.channel.env, ctx.record_id, start, run.config.access_number))
    ctx.path = list(known.get("ivr_path") or fields.get("ivr_path") or [])
    ctx.caller_number = known.get("caller_number") or fields.get("caller_number") or "anonymous"
    enter = from_epoch(run.var("HL_QUEUE_ENTER"))
    status = run.var("QUEUESTATUS")
    ctx.last_queue_status = status
    if enter is not None and status not in NOT_QUEUED:
        ctx.queue_enter_at = enter
        ctx.set(queue_id=known.get("queue_id") or run.var("QUEUENAME") or run.config.default_queue)
    member = run.var("MEMBERNAME")
    if member and enter is not None:
        hold = run.var("QEHOLDTIME")
        ctx.answered_at = _as_dt(known.get("answered_at")) or (
            enter + timedelta(seconds=int(hold)) if hold.isdigit() else enter)
        ctx.agent_id = known.get("agent_id") or member
        ctx.talk_end_at = from_epoch(run.var("HL_TALK_END")) or now
        ctx.hangup_party = "坐席" if run.var("HL_TALK_END") else "诉求人"
    ctx.hung_up = status != "TIMEOUT"
    if run.var("HL_ERROR") == "1" or run.var("HL_FALLBACK") == "1":
        ctx.error = "flow did not complete (FastAGI failed or unreachable)"
        ctx.step("call-end:fallback")
    fields.update(close_fields(ctx, now))
    if ctx.fields:
        fields.update(ctx.fields)
    run.sink.complete(ctx.record_id, fields)
    run.set_var("HL_CLOSED", "1")
    return node.next


def _as_dt(value: Any) -> datetime | None:
    if not value:
        return None
    return datetime.fromisoformat(value) if isinstance(value, str) else value
