"""Helpers for the job tests: rows, synthesized speech (espeak-ng Korean + sox), a trivial real transcriber,
and process targets (importable by name in ``spawn``-ed children: this directory is on ``sys.path``)."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from asr.audio import load_audio
from asr.transcript import CHANNEL_SPEAKERS, ChannelTranscript, Segment, Transcript, Word
from asr.vad import voiced_regions
from asr.worker import Transcriber, Worker, WorkerConfig
from store import jobs
from store.db import Database, open_database
from store.models import Call, Recording

TRACE_ENV = "HOTLINE_TEST_TRACE_DIR"

# Korean sentences (the test model is Korean): a citizen's complaint and an agent's answers.
CALLER_LINES = ("우리 집 앞 도로에 큰 구멍이 생겼어요 빨리 고쳐 주세요",
                "어제 저녁부터 물이 나오지 않습니다",
                "쓰레기 수거 차량이 일주일째 오지 않아요")
AGENT_LINES = ("안녕하세요 민원 센터입니다 무엇을 도와드릴까요",
               "네 주소를 말씀해 주시겠어요",
               "접수되었습니다 담당 부서에 전달하겠습니다")


# --- rows ------------------------------------------------------------------------------------------

def make_call(db: Database, record_id: str, agent_id: str | None = None) -> int:
    with db.write() as s:
        call = Call(record_id=record_id, caller_number="13800138000", called_number="12345",
                    call_start_at=datetime.now(timezone.utc), agent_id=agent_id)
        s.add(call)
        s.flush()
        return call.id


def make_recording(db: Database, uri: str, *, kind: str = "call", call_id: int | None = None,
                   channels: int = 2, record_id: str | None = None) -> int:
    with db.write() as s:
        rec = Recording(call_id=call_id, record_id=record_id or f"r-{uuid.uuid4().hex[:12]}", kind=kind, uri=uri,
                        channels=channels, sample_rate=8000, status="archived")
        s.add(rec)
        s.flush()
        return rec.id


def enqueue_recording(db: Database, recording_id: int, *, priority: int = 0, max_attempts: int = 3,
                      call_id: int | None = None) -> int:
    with db.write() as s:
        return jobs.enqueue(s, recording_id=recording_id, call_id=call_id, priority=priority,
                            max_attempts=max_attempts).id


# --- audio -----------------------------------------------------------------------------------------

def say(text: str, path: Path, rate: int = 8000) -> Path:
    """Korean speech by espeak-ng, resampled by sox to telephone rate, mono 16-bit WAV."""
    raw = path.with_suffix(".espeak.wav")
    subprocess.run(["espeak-ng", "-v", "ko", "-s", "150", "-w", str(raw), text], check=True, capture_output=True)
    subprocess.run(["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(path)], check=True, capture_output=True)
    raw.unlink()
    return path


def call_recording(path: Path, turns: int = 3, repeat: int = 1, rate: int = 8000) -> Path:
    """A stereo call (channel 0 caller | channel 1 agent) of alternating turns, each leg silent while the
    other speaks; ``repeat`` repeats the whole conversation to make long recordings."""
    tmp = path.parent / f".{path.stem}-parts"
    tmp.mkdir(exist_ok=True)
    caller: list[np.ndarray] = []
    agent: list[np.ndarray] = []
    gap = np.zeros(int(0.4 * rate), dtype=np.float32)
    for i in range(turns):
        a, _ = sf.read(str(say(AGENT_LINES[i % len(AGENT_LINES)], tmp / f"a{i}.wav", rate)), dtype="float32")
        c, _ = sf.read(str(say(CALLER_LINES[i % len(CALLER_LINES)], tmp / f"c{i}.wav", rate)), dtype="float32")
        agent += [a, gap, np.zeros_like(c), gap]
        caller += [np.zeros_like(a), gap, c, gap]
    left, right = np.concatenate(caller), np.concatenate(agent)
    stereo = np.stack([np.tile(left, repeat), np.tile(right, repeat)], axis=1)
    sf.write(str(path), stereo, rate, subtype="PCM_16")
    return path


def clip_recording(path: Path, seconds: float = 10.0, rate: int = 8000) -> Path:
    """A mono caller clip of about ``seconds`` of Korean speech (IVR problem description)."""
    tmp = path.parent / f".{path.stem}-parts"
    tmp.mkdir(exist_ok=True)
    parts: list[np.ndarray] = []
    total = 0
    i = 0
    while total < seconds * rate:
        x, _ = sf.read(str(say(CALLER_LINES[i % len(CALLER_LINES)], tmp / f"c{i}.wav", rate)), dtype="float32")
        parts += [x, np.zeros(int(0.3 * rate), dtype=np.float32)]
        total += len(x) + int(0.3 * rate)
        i += 1
    sf.write(str(path), np.concatenate(parts)[: int(seconds * rate)], rate, subtype="PCM_16")
    return path


# --- a trivial real transcriber --------------------------------------------------------------------

def trace(event: str, detail: str) -> None:
    directory = os.environ.get(TRACE_ENV)
    if directory:
        with open(Path(directory) / f"{event}-{os.getpid()}.txt", "a", encoding="utf-8") as fh:
            fh.write(detail + "\n")


def voiced_transcriber(_config: WorkerConfig | None = None) -> Transcriber:
    """Not speech recognition: reads the file (real decoding, real AudioError on corrupt input) and reports
    each channel's voiced stretches as segments. Enough to exercise the job machinery quickly."""

    def transcribe(path: Path) -> Transcript:
        trace("transcribed", str(path))
        audio = load_audio(path)
        delay = float(os.environ.get("HOTLINE_TEST_TRANSCRIBE_DELAY", "0"))
        if delay:
            time.sleep(delay)
        channels = []
        for ch in range(audio.channels):
            segs = []
            for a, b in voiced_regions(audio.channel(ch), audio.sample_rate):
                start, end = a / audio.sample_rate, b / audio.sample_rate
                segs.append(Segment(start, end, "voiced", [Word(start, end, "voiced", 1.0)]))
            channels.append(ChannelTranscript(ch, CHANNEL_SPEAKERS[ch], segs))
        return Transcript(model="voiced-regions", duration_seconds=audio.duration_seconds, channels=channels)

    return transcribe


def drain(database_url: str, trace_dir: str, lease_seconds: float = 30.0) -> None:
    """Process target: claim and process jobs until the queue has had nothing runnable for a while;
    write every job this process completed to ``done-<pid>.txt``."""
    os.environ[TRACE_ENV] = trace_dir
    cfg = WorkerConfig(database_url=database_url, lease_seconds=lease_seconds, poll_seconds=0.02, max_jobs=0)
    db = open_database(database_url)
    worker = Worker(cfg, voiced_transcriber(cfg), db=db)
    idle_since: float | None = None
    while True:
        job = jobs.claim(db, worker.owner, lease_seconds)
        if job is None:
            idle_since = idle_since or time.monotonic()
            if time.monotonic() - idle_since > 1.0:
                break
            time.sleep(0.01)
            continue
        idle_since = None
        if worker.process(job) is not None:
            trace("done", str(job.id))
    db.dispose()


def read_trace(trace_dir: Path, event: str) -> list[str]:
    lines: list[str] = []
    for f in sorted(trace_dir.glob(f"{event}-*.txt")):
        lines += f.read_text(encoding="utf-8").split()
    return lines


def wait_for(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())
