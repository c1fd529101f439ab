"""The flow engine over a scripted in-memory channel: outcomes, record fields, Appendix C validity."""

from __future__ import annotations

from datetime import datetime

import pytest

from agi.engine import FlowRun
from agi.nodes import agent_id_from_channel
from store.validation import validate_record
from tests.flows.fakes import Clock, FakeChannel, FakeServices, MemorySink, QueuePlan

RID = "1795900000.1"


def run(flows, cfg, flow="main", services_kw=None, args=(), **channel_kw):
    clock = Clock()
    channel = FakeChannel(clock, **channel_kw)
    sink = MemorySink()
    services = FakeServices(clock, **(services_kw or {}))
    ctx = FlowRun(flows, channel, sink, services, cfg, args).run(flow)
    return ctx, channel, sink, services


def problems(record):
    return [(p.field, p.code) for p in validate_record(record)]


def test_answered_call_goes_to_survey_and_completes(shipped_flows, engine_config):
    ctx, channel, sink, _ = run(shipped_flows, engine_config, inputs=["1"],
                                queue=[QueuePlan(member="1001", hold=7, wait=40)])
    rec = sink.records[RID]
    assert rec["call_outcome"] == "人工接通"
    assert rec["hangup_party"] == "坐席"
    assert rec["agent_id"] == "1001"
    assert rec["satisfaction"] == "满意" and rec["satisfaction_source"] == "IVR评价"
    enter, answered = datetime.fromisoformat(rec["queue_enter_at"]), datetime.fromisoformat(rec["answered_at"])
    assert int((answered - enter).total_seconds()) == 7 == rec["wait_seconds"]
    assert rec["talk_seconds"] == int((datetime.fromisoformat(rec["ended_at"]) - answered).total_seconds()) == 34  # 1 s command + 40 s in Queue - 7 s hold
    assert rec["callback_required"] is False
    assert rec["ivr_path"][:3] == ["greeting", "hours:open", "->queue"]
    assert "survey:1" in rec["ivr_path"]
    # the only gap is the recording the recorder attaches later
    assert problems(rec) == [("recording", "missing")]
    assert channel.hangup_called and channel.vars["HL_CLOSED"] == "1" and channel.vars["HL_FLOW_DONE"] == "1"
    assert "EXEC Queue hotline,c,,,60,,hotline-agent-connect" in channel.log


def test_queue_args_put_gosub_after_macro_on_asterisk_20(shipped_flows, engine_config):
    _, channel, _, _ = run(shipped_flows, engine_config, version="20.5.0",
                           queue=[QueuePlan(member="1001")], inputs=["2"])
    assert "EXEC Queue hotline,c,,,60,,,hotline-agent-connect" in channel.log


def test_caller_hangs_up_during_talk(shipped_flows, engine_config):
    ctx, _, sink, _ = run(shipped_flows, engine_config, queue=[QueuePlan(member="1002", hold=3, wait=20, hangup=True)])
    rec = sink.records[RID]
    assert rec["call_outcome"] == "人工接通" and rec["hangup_party"] == "诉求人"
    assert problems(rec) == [("recording", "missing")]


def test_hangup_in_greeting_is_ivr_abandon(shipped_flows, engine_config):
    _, _, sink, _ = run(shipped_flows, engine_config, hangup_at=1)
    rec = sink.records[RID]
    assert rec["call_outcome"] == "IVR放弃" and rec["hangup_party"] == "诉求人" and rec["callback_required"] is True
    assert problems(rec) == []


def test_abandon_in_queue(shipped_flows, engine_config):
    _, _, sink, _ = run(shipped_flows, engine_config, queue=[QueuePlan(wait=12, hangup=True)])
    rec = sink.records[RID]
    assert rec["call_outcome"] == "排队放弃" and rec["callback_required"] is True
    assert rec["wait_seconds"] == 13 and rec["queue_id"] == "hotline"   # 1 s command + 12 s waiting
    assert problems(rec) == []


def test_long_wait_describe_then_answered_with_priority(shipped_flows, engine_config):
    _, channel, sink, _ = run(shipped_flows, engine_config, inputs=["1", "2"],
                              queue=[QueuePlan(status="TIMEOUT", wait=60), QueuePlan(member="1003", hold=20, wait=50)])
    rec = sink.records[RID]
    assert rec["call_outcome"] == "人工接通"
    assert ["offer:1", "describe:ok"] == [p for p in rec["ivr_path"] if p.startswith(("offer", "describe"))]
    assert [c.kind for _, c in sink.clips] == ["ivr_clip"]
    assert channel.vars["QUEUE_PRIO"] == "10"
    # wait counts from the first entry, through the offer and the clip
    assert rec["wait_seconds"] > 60
    assert problems(rec) == [("recording", "missing")]


def test_long_wait_callback_with_own_number(shipped_flows, engine_config):
    _, _, sink, _ = run(shipped_flows, engine_config, inputs=["2", ""], queue=[QueuePlan(status="TIMEOUT", wait=60)])
    rec = sink.records[RID]
    assert rec["call_outcome"] == "留言" and rec["callback_required"] is True
    assert rec["contact_phone"] == "13800138000"
    assert "callback_number:#" in rec["ivr_path"]
    assert problems(rec) == []


def test_long_wait_callback_other_number_is_masked_in_path(shipped_flows, engine_config):
    _, _, sink, _ = run(shipped_flows, engine_config, inputs=["2", "123", "13911112222"],
                        queue=[QueuePlan(status="TIMEOUT", wait=60)])
    rec = sink.records[RID]
    assert rec["contact_phone"] == "13911112222"
    assert "callback_number:<11位>" in rec["ivr_path"]
    assert not any("13911112222" in p for p in rec["ivr_path"])


def test_second_timeout_overflows(shipped_flows, engine_config):
    _, _, sink, _ = run(shipped_flows, engine_config, inputs=[None],
                        queue=[QueuePlan(status="TIMEOUT", wait=60), QueuePlan(status="TIMEOUT", wait=600)])
    rec = sink.records[RID]
    assert rec["call_outcome"] == "排队超时" and rec["hangup_party"] == "系统" and rec["callback_required"] is True
    assert problems(rec) == []


def test_after_hours_voicemail_opens_a_ticket(shipped_flows, engine_config):
    _, channel, sink, _ = run(shipped_flows, engine_config, services_kw={"open_now": False})
    rec = sink.records[RID]
    assert rec["call_outcome"] == "留言" and rec["callback_required"] is True
    assert rec["ticket_no"] == "20261128000001"
    assert "SAY DIGITS 20261128000001" in channel.log
    assert [c.kind for _, c in sink.clips] == ["voicemail"]
    assert problems(rec) == []


def test_voicemail_with_store_down_defers_ticket_number(shipped_flows, engine_config):
    _, channel, sink, _ = run(shipped_flows, engine_config, services_kw={"open_now": False, "store_down": True})
    rec = sink.records[RID]
    assert "ticket_no" not in rec and RID in sink.allocate
    assert not any(x.startswith("SAY DIGITS") for x in channel.log)
    # once the applier allocates the number the record is complete
    assert problems({**rec, "ticket_no": "20261128000009"}) == []


def test_joinempty_goes_to_voicemail_without_queue_entry(shipped_flows, engine_config):
    _, _, sink, _ = run(shipped_flows, engine_config, queue=[QueuePlan(status="JOINEMPTY", wait=0)])
    rec = sink.records[RID]
    assert rec["call_outcome"] == "留言"
    assert rec.get("queue_enter_at") is None and rec.get("wait_seconds") is None
    assert problems(rec) == []


def test_menu_complaint_sets_appeal_type(shipped_flows, engine_config):
    _, _, sink, _ = run(shipped_flows, engine_config, flow="menu", inputs=["3", "1"],
                        queue=[QueuePlan(member="1001")])
    rec = sink.records[RID]
    assert "appeal_menu:3" in rec["ivr_path"] and "set_complaint" in rec["ivr_path"]
    # 投诉 needs an incident address only the agent's form gives: the completed record keeps the choice in
    # ivr_path, not as appeal_type
    assert rec["appeal_type"] is None
    assert problems(rec) == [("recording", "missing")]


def test_menu_consult_keeps_appeal_type(shipped_flows, engine_config):
    _, _, sink, _ = run(shipped_flows, engine_config, flow="menu", inputs=["1", "1"], queue=[QueuePlan(member="1001")])
    assert sink.records[RID]["appeal_type"] == "咨询"


def test_menu_complaint_voicemail_ticket_stays_valid(shipped_flows, engine_config):
    _, _, sink, _ = run(shipped_flows, engine_config, flow="menu", inputs=["3"],
                        queue=[QueuePlan(status="LEAVEEMPTY", wait=30)])
    rec = sink.records[RID]
    assert rec["call_outcome"] == "留言" and "投诉" in rec["title"]
    assert problems(rec) == []


def test_ticket_status_lookup(shipped_flows, engine_config):
    _, channel, sink, _ = run(shipped_flows, engine_config, flow="menu", inputs=["9", "20261101000042"],
                              hangup_at=9, services_kw={"statuses": {"20261101000042": "已派单"}})
    assert "SAY DIGITS 20261101000042" in channel.log
    assert "STREAM hl-status-dispatched" in channel.log
    assert "status:20261101000042" in sink.records[RID]["ivr_path"]


def test_ticket_status_store_down(shipped_flows, engine_config):
    _, channel, sink, _ = run(shipped_flows, engine_config, flow="menu", inputs=["9", "20261101000042"],
                              hangup_at=7, services_kw={"store_down": True})
    assert "STREAM hl-status-unavailable" in channel.log


def test_agent_connect_fills_answer_and_pops(shipped_flows, engine_config):
    clock = Clock()
    sink = MemorySink()
    sink.records[RID] = {"record_id": RID}
    chan = FakeChannel(clock, channel_name="Local/1007@hotline-agents-0000001a;1")
    FlowRun(shipped_flows, chan, sink, FakeServices(clock), engine_config).run("agent-connect")
    assert sink.records[RID]["agent_id"] == "1007" and sink.records[RID]["answered_at"]
    assert sink.pops == [(RID, "1007")]
    assert not chan.hangup_called and chan.media == 0     # never touches the agent's audio


def test_agent_id_sources():
    assert agent_id_from_channel("Local/1001@hotline-agents-0000001a;1") == "1001"
    assert agent_id_from_channel("PJSIP/2002-00000012") == "2002"


def test_agent_connect_prefers_argument(shipped_flows, engine_config):
    clock = Clock()
    sink = MemorySink()
    FlowRun(shipped_flows, FakeChannel(clock), sink, FakeServices(clock), engine_config, ("A88",)).run("agent-connect")
    assert sink.pops == [(RID, "A88")]


def test_call_end_does_nothing_when_closed(shipped_flows, engine_config):
    clock = Clock()
    sink = MemorySink()
    chan = FakeChannel(clock, variables={"HL_CLOSED": "1"})
    FlowRun(shipped_flows, chan, sink, FakeServices(clock), engine_config).run("call-end")
    assert sink.completed == {}


def test_call_end_completes_fallback_call(shipped_flows, engine_config):
    clock = Clock()
    sink = MemorySink()
    start = clock.t.timestamp()
    chan = FakeChannel(clock, variables={
        "HL_CALL_START": str(start), "HL_FALLBACK": "1", "HL_QUEUE_ENTER": str(start + 2),
        "MEMBERNAME": "1005", "QEHOLDTIME": "9", "HL_TALK_END": str(start + 60), "QUEUENAME": "hotline"})
    clock.advance(70)
    FlowRun(shipped_flows, chan, sink, FakeServices(clock), engine_config).run("call-end")
    rec = sink.records[RID]
    assert rec["call_outcome"] == "人工接通" and rec["agent_id"] == "1005" and rec["wait_seconds"] == 9
    assert rec["talk_seconds"] == 49 and rec["hangup_party"] == "坐席"
    assert problems(rec) == [("recording", "missing")]
    assert chan.vars["HL_CLOSED"] == "1"


def test_call_end_fallback_without_queue_is_system_failure(shipped_flows, engine_config):
    clock = Clock()
    sink = MemorySink()
    chan = FakeChannel(clock, variables={"HL_ERROR": "1", "HL_CALL_START": str(clock.t.timestamp())})
    FlowRun(shipped_flows, chan, sink, FakeServices(clock), engine_config).run("call-end")
    rec = sink.records[RID]
    assert rec["call_outcome"] == "系统失败" and problems(rec) == []


class ExplodingChannel(FakeChannel):
    def exec_app(self, application: str, options: str = "") -> int:
        raise RuntimeError("boom")


def test_internal_error_leaves_record_open_for_fallback(shipped_flows, engine_config):
    clock = Clock()
    sink = MemorySink()
    chan = ExplodingChannel(clock)
    FlowRun(shipped_flows, chan, sink, FakeServices(clock), engine_config).run("main")
    assert sink.completed == {}
    assert chan.vars["HL_ERROR"] == "1" and "HL_FLOW_DONE" not in chan.vars
    assert sink.records[RID]["ivr_path"][-1] == "error"


def test_withheld_caller_is_anonymous(shipped_flows, engine_config):
    _, _, sink, _ = run(shipped_flows, engine_config, callerid="unknown", hangup_at=1)
    assert sink.records[RID]["caller_number"] == "anonymous"


# ---------------------------------------------------------------- a hangup at every step of every flow
SCENARIOS = {
    # name: (flow, channel kwargs, services kwargs, outcomes allowed for a hangup at any step)
    "answered": ("main", {"inputs": ["1"], "queue": [QueuePlan(member="1001", hold=5, wait=30)]}, {}),
    "describe": ("main", {"inputs": ["1", "3"], "queue": [QueuePlan(status="TIMEOUT", wait=60),
                                                          QueuePlan(member="1001", wait=30)]}, {}),
    "callback": ("main", {"inputs": ["2", "010"], "queue": [QueuePlan(status="TIMEOUT", wait=60)]}, {}),
    "overflow": ("main", {"inputs": [None], "queue": [QueuePlan(status="TIMEOUT", wait=60),
                                                      QueuePlan(status="TIMEOUT", wait=600)]}, {}),
    "after_hours": ("main", {}, {"open_now": False}),
    "joinempty": ("main", {"queue": [QueuePlan(status="JOINEMPTY", wait=0)]}, {}),
    "menu": ("menu", {"inputs": ["4", "2"], "queue": [QueuePlan(member="1001", wait=30)]}, {}),
    "menu_status": ("menu", {"inputs": ["9", "20261101000042", "0", None],
                             "queue": [QueuePlan(status="TIMEOUT", wait=60), QueuePlan(status="TIMEOUT", wait=600)]},
                    {"statuses": {"20261101000042": "办理中"}}),
}


def _full_run_commands(flows, cfg, flow, ch_kw, sv_kw) -> int:
    _, channel, _, _ = run(flows, cfg, flow, sv_kw, **ch_kw)
    return channel.media


CASES = []
for _name, (_flow, _ch, _sv) in SCENARIOS.items():
    CASES.append(pytest.param(_name, id=_name))


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_hangup_at_every_step_leaves_a_valid_record(shipped_flows, engine_config, name):
    flow, ch_kw, sv_kw = SCENARIOS[name]
    total = _full_run_commands(shipped_flows, engine_config, flow, ch_kw, sv_kw)
    assert total >= 3
    seen = set()
    for step in range(1, total + 1):
        kw = {**ch_kw, "inputs": list(ch_kw.get("inputs", [])), "queue": list(ch_kw.get("queue", []))}
        ctx, channel, sink, _ = run(shipped_flows, engine_config, flow, sv_kw, hangup_at=step, **kw)
        rec = sink.records[RID]
        assert sink.completed.get(RID) == 1, f"step {step}: record not completed exactly once"
        found = problems(rec)
        if rec["call_outcome"] == "人工接通":
            assert found == [("recording", "missing")], (step, found)
        else:
            assert found == [], (step, found)
        last = channel.log[-1]
        outcome = rec["call_outcome"]
        seen.add(outcome)
        if "EXEC Queue" in last or last.startswith(("STREAM hl-offer", "GET DATA hl-offer", "RECORD /spool/ivr/" + RID + "-ivr_clip")):
            assert outcome in ("排队放弃", "人工接通"), (step, last, outcome)
        if step == 1 and flow == "main":
            assert outcome in ("IVR放弃", "非工作时段"), (step, last, outcome)
        if rec["call_outcome"] in ("IVR放弃", "排队放弃", "留言", "排队超时"):
            assert rec["callback_required"] is True
        assert rec["hangup_party"] in ("诉求人", "坐席", "系统")
    assert len(seen) >= 2, seen


def test_vars_asks_several_variables_in_one_round_trip(shipped_flows, engine_config):
    clock = Clock()
    channel = FakeChannel(clock)
    flow_run = FlowRun(shipped_flows, channel, MemorySink(), FakeServices(clock), engine_config)
    channel.vars.update(QUEUESTATUS="CONTINUE", MEMBERNAME="1001")
    asked: list[str] = []
    channel.get_full_variable = lambda expr: asked.append(expr) or FakeChannel.get_full_variable(channel, expr)
    assert flow_run.vars("QUEUESTATUS", "MEMBERNAME", "QEHOLDTIME") == {
        "QUEUESTATUS": "CONTINUE", "MEMBERNAME": "1001", "QEHOLDTIME": ""}
    assert asked == ["${QUEUESTATUS}|${MEMBERNAME}|${QEHOLDTIME}"]
    channel.vars["MEMBERNAME"] = "a|b"          # a value with the separator: each variable on its own
    assert flow_run.vars("QUEUESTATUS", "MEMBERNAME") == {"QUEUESTATUS": "CONTINUE", "MEMBERNAME": "a|b"}


def test_server_linkedid_saves_the_engine_a_round_trip(shipped_flows, engine_config):
    clock = Clock()
    channel = FakeChannel(clock, queue=[QueuePlan(member="1001", hold=3, wait=10)], inputs=["1"])
    sink = MemorySink()
    FlowRun(shipped_flows, channel, sink, FakeServices(clock), engine_config, linkedid="77.1").run("main")
    assert list(sink.records) == ["77.1"]       # not the channel's CHANNEL(linkedid), 1795900000.1
