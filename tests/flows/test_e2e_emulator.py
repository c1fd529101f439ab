"""The shipped flows over TCP: the FastAGI server (agi/server.py) driven by the Asterisk peer emulator.

Every scenario runs on SQLite and PostgreSQL (``db`` fixture); the records go through the journal and the
applier into the store and are checked against Appendix C. A hang-up at every command of every scenario
leaves exactly one completed, valid record (answered calls: only the recorder's ``recording`` pending).
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import select

from agi.calls import pending_recording_only
from agi.emulator import CallerScript, CallSpec, EmulatorConfig, QueueOutcome, run_call
from agi.flows import FlowRuntime
from agi.server import ServerOptions, start_server
from config import load_settings
from store.models import AgentEvent, Call, Job, Recording
from store.records import record_dict
from store.validation import validate_record

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def clip(tmp_path) -> Path:
    path = tmp_path / "speech.wav"
    t = np.arange(8000 * 3) / 8000
    sf.write(path, (np.sin(2 * np.pi * 300 * t) * 8000).astype(np.int16), 8000, subtype="PCM_16")
    return path


@pytest.fixture
def hotline(db, tmp_path):
    base = load_settings(environ={})
    settings = dataclasses.replace(
        base,
        agi=dataclasses.replace(base.agi, flows_dir=str(ROOT / "ivr_flows"), journal_dir=str(tmp_path / "journal"),
                                sounds_dir=str(tmp_path / "sounds")),
        recordings=dataclasses.replace(base.recordings, spool_dir=str(tmp_path / "spool")),
    )
    runtime = FlowRuntime.start(settings, database=db, check_sounds=False)
    registry: dict = {}
    runtime.install(registry)
    server = start_server(resolve=registry.get, options=ServerOptions(port=0, stop_grace_s=2))
    yield runtime, server
    server.stop()
    runtime.stop()


EMU = EmulatorConfig(time_scale=0.0, gosub_scripts={"hotline-agent-connect": "agent-connect"}, agent_context="hotline-agents")


def call(server, linkedid: str, script: str = "main", **caller) -> object:
    host, port = server.address
    spec = CallSpec(script=script, callerid="13800138000", linkedid=linkedid, uniqueid=linkedid,
                    caller=CallerScript(**caller))
    return asyncio.run(run_call(host, port, spec, EMU))


def stored(runtime, db, record_id: str):
    assert runtime.applier.drain(timeout=20)
    with db.session() as s:
        c = s.scalar(select(Call).where(Call.record_id == record_id))
        assert c is not None, f"no record {record_id}"
        return c, record_dict(c)


def test_answered_call_with_screen_pop_and_survey(hotline, db):
    runtime, server = hotline
    report = call(server, "1800000000.10", responses=("1",),
                  queue=QueueOutcome(kind="answered", agent="1001", after_s=8, talk_s=30))
    assert report.queue.agent_session is not None, "agent-connect must run on the agent's channel"
    c, rec = stored(runtime, db, "1800000000.10")
    assert rec["call_outcome"] == "人工接通" and rec["agent_id"] == "1001" and rec["hangup_party"] == "坐席"
    assert rec["satisfaction"] == "满意" and rec["satisfaction_source"] == "IVR评价"
    # the emulator runs with time_scale=0 (no real waiting): durations are checked for consistency by the
    # validator; their arithmetic is tested with a fake clock in test_engine.py
    assert rec["wait_seconds"] >= 0 and rec["talk_seconds"] >= 0
    assert c.state == "complete" and pending_recording_only(validate_record(rec))
    with db.session() as s:
        pop = s.scalar(select(AgentEvent).where(AgentEvent.call_id == c.id))
        assert pop.kind == "screen_pop" and pop.agent_id == "1001"
        assert pop.payload["caller_number"] == "13800138000" and pop.payload["caller_number_masked"] == "*******8000"
        assert pop.payload["ivr_path"][:2] == ["greeting", "hours:open"]


def test_long_wait_description_clip_then_overflow(hotline, db, clip):
    runtime, server = hotline
    call(server, "1800000000.11", responses=("1",), say=(clip,), queue=QueueOutcome(kind="timeout"))
    c, rec = stored(runtime, db, "1800000000.11")
    assert rec["call_outcome"] == "排队超时" and rec["callback_required"] is True
    assert "offer:1" in rec["ivr_path"] and "describe:ok" in rec["ivr_path"]
    assert validate_record(rec) == []
    with db.session() as s:
        r = s.scalar(select(Recording).where(Recording.record_id == "1800000000.11"))
        assert r.kind == "ivr_clip" and Path(r.uri).is_file() and r.duration_seconds > 2.5
        job = s.scalar(select(Job).where(Job.recording_id == r.id))
        assert job.kind == "transcribe" and job.priority == 100


def test_callback_instead_of_waiting(hotline, db):
    runtime, server = hotline
    call(server, "1800000000.12", responses=("2", "#"), queue=QueueOutcome(kind="timeout"))
    _, rec = stored(runtime, db, "1800000000.12")
    assert rec["call_outcome"] == "留言" and rec["contact_phone"] == "13800138000" and rec["callback_required"]
    assert validate_record(rec) == []


def test_nobody_logged_in_voicemail_ticket(hotline, db, clip):
    runtime, server = hotline
    report = call(server, "1800000000.13", say=(clip,), queue=QueueOutcome(kind="joinempty"))
    _, rec = stored(runtime, db, "1800000000.13")
    assert rec["call_outcome"] == "留言" and rec["ticket_no"] and len(rec["ticket_no"]) == 14
    assert rec["queue_enter_at"] is None
    assert any(c.line.startswith(f"SAY DIGITS {rec['ticket_no']}") for c in report.commands)
    assert validate_record(rec) == []


def test_abandon_in_queue(hotline, db):
    runtime, server = hotline
    call(server, "1800000000.14", queue=QueueOutcome(kind="abandon", after_s=12))
    _, rec = stored(runtime, db, "1800000000.14")
    assert rec["call_outcome"] == "排队放弃" and rec["hangup_party"] == "诉求人" and rec["wait_seconds"] >= 0
    assert validate_record(rec) == []


def test_menu_flow_complaint(hotline, db):
    runtime, server = hotline
    call(server, "1800000000.15", script="menu", responses=("3", "2"),
         queue=QueueOutcome(kind="answered", agent="1002", after_s=3, talk_s=10))
    _, rec = stored(runtime, db, "1800000000.15")
    assert "appeal_menu:3" in rec["ivr_path"] and rec["satisfaction"] == "基本满意"
    assert pending_recording_only(validate_record(rec))


SCENARIOS = {
    "answered": ("main", dict(responses=("1",), queue=QueueOutcome(kind="answered", agent="1001", after_s=5, talk_s=20))),
    "clip_overflow": ("main", dict(responses=("1",), say="CLIP", queue=QueueOutcome(kind="timeout"))),
    "callback": ("main", dict(responses=("2", "#"), queue=QueueOutcome(kind="timeout"))),
    "voicemail": ("main", dict(say="CLIP", queue=QueueOutcome(kind="leaveempty", after_s=20))),
    "menu": ("menu", dict(responses=("5", "3"), queue=QueueOutcome(kind="answered", agent="1003", after_s=4, talk_s=9))),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_hangup_at_every_command_leaves_a_valid_record(hotline, db, clip, name):
    runtime, server = hotline
    script, caller = SCENARIOS[name]
    caller = {k: ((clip,) if v == "CLIP" else v) for k, v in caller.items()}
    full = call(server, f"1810000000.{name}", script=script, **caller)
    total = len(full.commands)
    assert total >= 5
    outcomes = set()
    for n in range(1, total + 1):
        rid = f"1820000000.{name}.{n}"
        call(server, rid, script=script, hangup_at_command=n, hangup_into_command_s=0.1, **caller)
        c, rec = stored(runtime, db, rid)
        found = validate_record(rec)
        assert c.state == "complete", (n, rec)
        if rec["call_outcome"] == "人工接通":
            assert pending_recording_only(found), (n, [p.message for p in found])
        else:
            assert found == [], (n, [p.message for p in found])
        if rec["call_outcome"] in ("IVR放弃", "排队放弃", "排队超时", "留言"):
            assert rec["callback_required"] is True
        outcomes.add(rec["call_outcome"])
    assert "IVR放弃" in outcomes and len(outcomes) >= 2, outcomes
