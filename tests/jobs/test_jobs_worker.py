"""The worker's job handling on both back-ends, with a trivial real transcriber (file decode + voiced regions):
results stored per channel, IVR clip events, corrupt/missing input, retries, a lost lease."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import select

from asr.fastpath import FAST_PATH_PRIORITY, SleepWaker, enqueue_transcription
from asr.results import ANY_AGENT, TRANSCRIPT_READY
from asr.worker import InputUnavailable, Worker, WorkerConfig, resolve_input
from jobsupport import enqueue_recording, make_call, make_recording, voiced_transcriber
from store import jobs
from store.db import Database
from store.models import AgentEvent, Job, Recording, Transcript, utcnow

RATE = 8000


def _tone_call(path: Path) -> Path:
    """2 s stereo: caller tone in the first second, agent tone in the second."""
    t = np.arange(RATE) / RATE
    tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    quiet = np.zeros(RATE, dtype=np.float32)
    sf.write(str(path), np.stack([np.concatenate([tone, quiet]), np.concatenate([quiet, tone])], axis=1), RATE)
    return path


def _worker(db: Database, tmp_path: Path, transcriber=None, **kw) -> Worker:
    cfg = WorkerConfig(database_url=db.url, archive_dir=str(tmp_path), lease_seconds=30, poll_seconds=0.01,
                       retry_backoff_seconds=kw.pop("backoff", 0.0), **kw)
    return Worker(cfg, transcriber or voiced_transcriber(cfg), db=db, waker=SleepWaker())


def test_stores_one_row_per_channel_and_completes(db: Database, tmp_path: Path) -> None:
    _tone_call(tmp_path / "call.wav")
    call_id = make_call(db, "1795901133.57", agent_id="1001")
    rec = make_recording(db, "call.wav", call_id=call_id)     # relative to the archive directory
    jid = enqueue_recording(db, rec, call_id=call_id)
    worker = _worker(db, tmp_path)
    assert worker.run_once() is True
    assert worker.run_once() is False
    with db.session() as s:
        rows = s.scalars(select(Transcript).where(Transcript.recording_id == rec).order_by(Transcript.channel)).all()
        job = s.get(Job, jid)
        events = s.scalars(select(AgentEvent)).all()
    assert job is not None and job.state == jobs.DONE and job.attempts == 1
    assert [(r.channel, r.speaker, r.call_id) for r in rows] == [(0, "诉求人", call_id), (1, "坐席", call_id)]
    caller, agent = rows
    assert caller.model == "voiced-regions" and caller.text == "voiced"
    assert caller.segments[0]["start"] < 0.5 and 0.9 <= caller.segments[0]["end"] <= 1.5
    assert agent.segments[0]["start"] >= 0.6 and agent.segments[0]["words"][0]["word"] == "voiced"
    assert events == [], "only IVR clips notify the agent console"


def test_retry_replaces_previous_rows(db: Database, tmp_path: Path) -> None:
    _tone_call(tmp_path / "call.wav")
    rec = make_recording(db, str(tmp_path / "call.wav"))
    for _ in range(2):
        enqueue_recording(db, rec)
        assert _worker(db, tmp_path).run_once()
    with db.session() as s:
        assert len(s.scalars(select(Transcript).where(Transcript.recording_id == rec)).all()) == 2


@pytest.mark.parametrize("agent_id", [None, "1002"])
def test_ivr_clip_publishes_transcript_ready(db: Database, tmp_path: Path, agent_id: str | None) -> None:
    t = np.arange(RATE) / RATE
    tone = (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    sf.write(str(tmp_path / "clip.wav"), np.concatenate([np.zeros(RATE // 2, np.float32), tone, np.zeros(RATE // 2, np.float32)]), RATE)
    call_id = make_call(db, "1795901200.1", agent_id=agent_id)
    rec = make_recording(db, f"file://{tmp_path / 'clip.wav'}", kind="ivr_clip", call_id=call_id, channels=1,
                         record_id="1795901200.1")
    with db.write() as s:
        job = enqueue_transcription(s, s.get(Recording, rec))
        assert job.priority == FAST_PATH_PRIORITY and job.call_id == call_id
    fast = _worker(db, tmp_path, min_priority=FAST_PATH_PRIORITY)
    assert fast.run_once() is True
    with db.session() as s:
        (event,) = s.scalars(select(AgentEvent)).all()
        (row,) = s.scalars(select(Transcript)).all()
    assert event.kind == TRANSCRIPT_READY and event.call_id == call_id
    assert event.agent_id == (agent_id or ANY_AGENT)
    assert event.payload == {"record_id": "1795901200.1", "recording_id": rec, "text": "voiced"}
    assert row.speaker == "诉求人" and row.channel == 0


def test_corrupt_audio_fails_at_once_with_the_reason(db: Database, tmp_path: Path) -> None:
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage, not audio" * 3)
    rec = make_recording(db, str(tmp_path / "bad.wav"))
    jid = enqueue_recording(db, rec, max_attempts=5)
    assert _worker(db, tmp_path).run_once()
    job = jobs.get_job(db, jid)
    assert job is not None and job.state == jobs.FAILED and job.attempts == 1
    assert job.last_error is not None and job.last_error.startswith("corrupt audio: not readable audio")


def test_missing_file_is_retried_with_backoff_then_failed(db: Database, tmp_path: Path) -> None:
    rec = make_recording(db, "nowhere.wav")
    jid = enqueue_recording(db, rec, max_attempts=2)
    worker = _worker(db, tmp_path, backoff=30.0)
    assert worker.run_once()
    job = jobs.get_job(db, jid)
    assert job is not None and job.state == jobs.QUEUED and "audio file not found" in (job.last_error or "")
    assert job.run_after >= utcnow() + timedelta(seconds=25)
    assert worker.run_once() is False, "backing off"
    with db.write() as s:                                           # time passes
        s.get(Job, jid).run_after = utcnow()
    assert worker.run_once()
    job = jobs.get_job(db, jid)
    assert job is not None and job.state == jobs.FAILED and job.attempts == 2


def test_purged_recording_fails_permanently(db: Database, tmp_path: Path) -> None:
    _tone_call(tmp_path / "call.wav")
    rec = make_recording(db, "call.wav")
    with db.write() as s:
        s.get(Recording, rec).status = "purged"
    jid = enqueue_recording(db, rec)
    assert _worker(db, tmp_path).run_once()
    job = jobs.get_job(db, jid)
    assert job is not None and job.state == jobs.FAILED and job.last_error == f"recording {rec} is purged"


def test_transcriber_error_is_retried_and_poisoned_after_max_attempts(db: Database, tmp_path: Path) -> None:
    _tone_call(tmp_path / "call.wav")
    rec = make_recording(db, "call.wav")
    jid = enqueue_recording(db, rec, max_attempts=3)
    calls: list[Path] = []

    def explode(path: Path):
        calls.append(path)
        raise RuntimeError("decoder blew up")

    worker = _worker(db, tmp_path, transcriber=explode)
    for _ in range(5):
        worker.run_once()
    job = jobs.get_job(db, jid)
    assert len(calls) == 3
    assert job is not None and job.state == jobs.FAILED and job.attempts == 3
    assert job.last_error is not None and job.last_error.startswith("RuntimeError: decoder blew up")


def test_result_of_a_lost_lease_is_discarded(db: Database, tmp_path: Path) -> None:
    _tone_call(tmp_path / "call.wav")
    rec = make_recording(db, "call.wav")
    jid = enqueue_recording(db, rec)
    real = voiced_transcriber()

    def slow_and_overtaken(path: Path):
        # While we work, our lease runs out and another worker takes the job over.
        assert jobs.claim(db, "rescuer", 30, now=utcnow() + timedelta(seconds=31)) is not None
        return real(path)

    worker = _worker(db, tmp_path, transcriber=slow_and_overtaken)
    assert worker.run_once()
    job = jobs.get_job(db, jid)
    assert job is not None and job.state == jobs.RUNNING and job.lease_owner == "rescuer"
    with db.session() as s:
        assert s.scalars(select(Transcript)).all() == []


def test_heartbeat_extends_the_lease_while_transcribing(db: Database, tmp_path: Path) -> None:
    _tone_call(tmp_path / "call.wav")
    rec = make_recording(db, "call.wav")
    jid = enqueue_recording(db, rec)
    seen: list[object] = []
    real = voiced_transcriber()
    done = threading.Event()

    def slow(path: Path):
        first = jobs.get_job(db, jid).lease_expires_at
        done.wait(1.0)                                              # several heartbeats (0.2 s)
        seen.append((first, jobs.get_job(db, jid).lease_expires_at))
        return real(path)

    worker = _worker(db, tmp_path, transcriber=slow, heartbeat_seconds=0.2)
    assert worker.run_once()
    ((first, later),) = seen
    assert later > first + timedelta(seconds=0.5)
    assert jobs.get_job(db, jid).state == jobs.DONE


def test_resolve_input_forms(tmp_path: Path) -> None:
    f = tmp_path / "a b.wav"
    f.write_bytes(b"x")
    assert resolve_input(None, {"path": str(f)}, "/elsewhere") == f
    assert resolve_input(None, {"path": "file://" + str(f).replace(" ", "%20")}, "/x") == f
    assert resolve_input(None, {"path": "a b.wav"}, str(tmp_path)) == f
    with pytest.raises(InputUnavailable) as exc:
        resolve_input(None, {}, str(tmp_path))
    assert exc.value.permanent is True
