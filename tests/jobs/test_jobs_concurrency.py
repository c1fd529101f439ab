"""Several worker processes claiming from one database at once: every job is done, exactly once."""

from __future__ import annotations

import multiprocessing
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf
from sqlalchemy import func, select

from jobsupport import drain, enqueue_recording, make_recording, read_trace
from store import jobs
from store.db import Database
from store.models import Job, Transcript

PROCESSES = 4
JOBS = 80


def test_processes_claim_each_job_exactly_once(db: Database, tmp_path: Path) -> None:
    rate = 8000
    rng = np.random.default_rng(1)
    burst = np.concatenate([np.zeros(2000), rng.standard_normal(4000) * 0.2, np.zeros(2000)]).astype(np.float32)
    ids = []
    for i in range(JOBS):
        path = tmp_path / f"rec{i:03d}.wav"
        sf.write(str(path), np.stack([burst, burst[::-1]], axis=1), rate)
        ids.append(enqueue_recording(db, make_recording(db, str(path)), priority=i % 3))
    trace_dir = tmp_path / "trace"
    trace_dir.mkdir()
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=drain, args=(db.url, str(trace_dir))) for _ in range(PROCESSES)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * PROCESSES

    done = Counter(int(x) for x in read_trace(trace_dir, "done"))
    transcribed = Counter(read_trace(trace_dir, "transcribed"))
    assert sorted(done) == sorted(ids) and set(done.values()) == {1}, "each job completed by exactly one worker"
    assert len(transcribed) == JOBS and set(transcribed.values()) == {1}, "no input transcribed twice"
    per_process = [len(f.read_text().split()) for f in trace_dir.glob("done-*.txt")]
    assert len(per_process) >= 2, f"the work should be shared between processes, got {per_process}"
    with db.session() as s:
        states = dict(s.execute(select(Job.state, func.count()).group_by(Job.state)).all())
        rows = s.scalar(select(func.count()).select_from(Transcript))
        attempts = set(s.scalars(select(Job.attempts)))
    assert states == {jobs.DONE: JOBS}
    assert rows == 2 * JOBS and attempts == {1}
