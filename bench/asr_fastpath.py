"""Fast-path latency: IVR description clips (10 s of Korean speech, the test model is Korean) enqueued while the
pool's bulk workers are busy with long call recordings; from the enqueue (the clip's end) to its transcript
stored and the agent console event written. Prints p50/p95/max of the total and of the pick-up delay.

    .venv/bin/python bench/asr_fastpath.py                      # temporary SQLite file
    .venv/bin/python bench/asr_fastpath.py --postgres postgresql://postgres@127.0.0.1:5432/test
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
from sqlalchemy import create_engine, select, text

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "jobs"))   # speech synthesis helpers (espeak-ng + sox)

from asr.fastpath import enqueue_transcription  # noqa: E402
from asr.pool import PoolConfig, WorkerPool  # noqa: E402
from asr.worker import WorkerConfig  # noqa: E402
from config.log import configure_logging  # noqa: E402
from jobsupport import call_recording, clip_recording, enqueue_recording, make_call, make_recording  # noqa: E402
from store import jobs  # noqa: E402
from store.db import Database, normalize_url, open_database  # noqa: E402
from store.migrate import upgrade  # noqa: E402
from store.models import AgentEvent, Job, Recording  # noqa: E402


def _percentile(xs: list[float], q: float) -> float:
    return float(np.percentile(xs, q))


def _line(name: str, xs: list[float]) -> str:
    return (f"  {name:<22} p50 {statistics.median(xs):6.2f} s   p95 {_percentile(xs, 95):6.2f} s   "
            f"max {max(xs):6.2f} s   min {min(xs):6.2f} s\n")


def run(db: Database, workdir: Path, bulk: int, clips: int, long_recordings: int) -> int:
    out = sys.stdout
    out.write("synthesizing speech (espeak-ng ko + sox) ...\n")
    long_wav = call_recording(workdir / "long.wav", repeat=6)
    clip_wav = clip_recording(workdir / "clip.wav", seconds=10.0)
    long_ids = [enqueue_recording(db, make_recording(db, str(long_wav))) for _ in range(long_recordings)]
    worker = WorkerConfig(database_url=db.url, archive_dir=str(workdir), lease_seconds=120, poll_seconds=0.5,
                          log_level="WARNING")
    pool = WorkerPool(PoolConfig(worker=worker, processes=bulk, fast_path_workers=1))
    out.write(f"pool: {bulk} bulk + 1 fast-path worker on {db.dialect}; {long_recordings} long recordings queued\n")
    pool.start()
    totals: list[float] = []
    pickups: list[float] = []
    busy_at_end: list[int] = []
    try:
        if not pool.wait_ready(timeout=300):
            out.write("workers did not load the model in time\n")
            return 1
        rng = random.Random(7)
        for i in range(clips):
            record_id = f"bench.{uuid.uuid4().hex[:10]}"
            call_id = make_call(db, record_id)
            with db.write() as s:
                rec = Recording(call_id=call_id, record_id=record_id, kind="ivr_clip", uri=str(clip_wav),
                                channels=1, sample_rate=8000)
                s.add(rec)
                s.flush()
                jid = enqueue_transcription(s, rec).id
            t0 = time.monotonic()
            picked: float | None = None
            while True:
                with db.session() as s:
                    state = s.scalar(select(Job.state).where(Job.id == jid))
                    event = s.scalars(select(AgentEvent).where(AgentEvent.call_id == call_id)).first()
                if picked is None and state != jobs.QUEUED:
                    picked = time.monotonic() - t0
                if event is not None:
                    break
                if time.monotonic() - t0 > 120:
                    out.write(f"clip {i}: no transcript after 120 s (job state {state})\n")
                    return 1
                time.sleep(0.005)
            created = jobs.get_job(db, jid).created_at
            totals.append((event.created_at - created).total_seconds())
            pickups.append(picked if picked is not None else 0.0)
            with db.session() as s:
                busy_at_end.append(len(s.scalars(select(Job.id).where(Job.id.in_(long_ids),
                                                                      Job.state == jobs.RUNNING)).all()))
            out.write(f"  clip {i + 1:2d}: {totals[-1]:5.2f} s (picked up after {pickups[-1]:.3f} s; "
                      f"bulk jobs running: {busy_at_end[-1]})\n")
            time.sleep(rng.uniform(0.5, 2.0))
    finally:
        pool.stop(timeout=1.0)
    out.write(f"\nfast path, {clips} x 10 s clips, {db.dialect}, bulk workers busy on {long_recordings} x 160 s calls:\n")
    out.write(_line("enqueue -> transcript", totals))
    out.write(_line("enqueue -> picked up", pickups))
    out.write(f"  clips finished while >= 1 bulk job was running: {sum(1 for b in busy_at_end if b)}/{clips}\n")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--postgres", metavar="ADMIN_URL", help="run on a throw-away database on this server")
    ap.add_argument("--bulk", type=int, default=2, help="bulk workers (default 2)")
    ap.add_argument("--clips", type=int, default=20)
    ap.add_argument("--long-recordings", type=int, default=6)
    args = ap.parse_args()
    configure_logging(json=True, level="WARNING")
    with tempfile.TemporaryDirectory(prefix="asr-fastpath-") as tmp:
        workdir = Path(tmp)
        admin = None
        name = f"hotline_bench_{uuid.uuid4().hex[:8]}"
        if args.postgres:
            admin = create_engine(normalize_url(args.postgres), isolation_level="AUTOCOMMIT")
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{name}"'))
            url = normalize_url(args.postgres).rsplit("/", 1)[0] + f"/{name}"
        else:
            url = f"sqlite:///{workdir / 'bench.sqlite3'}"
        db = open_database(url)
        try:
            upgrade(db)
            return run(db, workdir, args.bulk, args.clips, args.long_recordings)
        finally:
            db.dispose()
            if admin is not None:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()


if __name__ == "__main__":
    sys.exit(main())
