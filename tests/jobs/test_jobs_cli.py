"""`hotline worker`: argument handling, and the real command run in the foreground until SIGINT."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from cli.main import build_parser
from cli.worker import run_worker
from config import load_settings
from conftest import Speech
from jobsupport import enqueue_recording, make_recording, wait_for
from store import jobs
from store.db import open_database
from store.migrate import upgrade


def test_worker_command_is_registered() -> None:
    args = build_parser().parse_args(["worker", "--processes", "3", "--fast-path-workers", "0"])
    assert args.func is run_worker and args.processes == 3 and args.fast_path_workers == 0


def test_negative_process_count_is_refused() -> None:
    args = argparse.Namespace(processes=-1, fast_path_workers=1, config=None, log_level="INFO")
    assert run_worker(args, load_settings(environ={})) == 2


def test_hotline_worker_transcribes_and_stops_on_sigint(speech: Speech, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hotline.sqlite3'}"
    db = open_database(url)
    upgrade(db)
    jid = enqueue_recording(db, make_recording(db, str(speech.clip), kind="ivr_clip", channels=1), priority=100)
    env = dict(os.environ, HOTLINE_DATABASE__URL=url, HOTLINE_RECORDINGS__ARCHIVE_DIR=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "worker", "--processes", "1", "--fast-path-workers", "1"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert wait_for(lambda: jobs.get_job(db, jid).state == jobs.DONE, timeout=180), jobs.get_job(db, jid).last_error
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert "1 bulk + 1 fast-path workers" in out
    db.dispose()
