"""`hotline serve` as a real process group: a call through it, a clean stop when SIGTERM reaches the whole
group (systemd, `timeout`), and a clear refusal when another instance holds the ports or the journal."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from agi.emulator import CallerScript, CallSpec, EmulatorConfig, QueueOutcome, run_call_sync
from store.db import open_database
from store.models import Call

ROOT = Path(__file__).resolve().parents[2]
HOTLINE = str(Path(sys.executable).with_name("hotline"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def sounds(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("sounds")
    env = dict(os.environ, HOTLINE_AGI__SOUNDS_DIR=str(directory), HOTLINE_AGI__FLOWS_DIR=str(ROOT / "ivr_flows"))
    subprocess.run([HOTLINE, "prompts", "build"], env=env, check=True, capture_output=True, timeout=300)
    return directory


def _env(tmp_path: Path, sounds: Path, agi_port: int, web_port: int) -> dict[str, str]:
    return dict(os.environ, HOTLINE_DATABASE__URL=f"sqlite:///{tmp_path / 'hotline.sqlite3'}",
                HOTLINE_AGI__PORT=str(agi_port), HOTLINE_WEB__PORT=str(web_port),
                HOTLINE_AGI__JOURNAL_DIR=str(tmp_path / "journal"), HOTLINE_AGI__SOUNDS_DIR=str(sounds),
                HOTLINE_AGI__FLOWS_DIR=str(ROOT / "ivr_flows"), HOTLINE_RECORDINGS__SPOOL_DIR=str(tmp_path / "spool"),
                HOTLINE_RECORDINGS__ARCHIVE_DIR=str(tmp_path / "archive"),
                HOTLINE_ASR__EMBEDDED_WORKERS="1", HOTLINE_WEB__SECRET_KEY="x" * 40)


def _wait_for_event(log: Path, event: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            try:
                if json.loads(line).get("event") == event:
                    return True
            except ValueError:
                continue
        time.sleep(0.1)
    return False


def _group_members(pgid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(stat.parent.name))
    return out


def test_serve_takes_a_call_and_stops_cleanly_on_a_group_sigterm(tmp_path, sounds):
    agi_port, web_port = _free_port(), _free_port()
    env = _env(tmp_path, sounds, agi_port, web_port)
    subprocess.run([HOTLINE, "db", "upgrade"], env=env, check=True, capture_output=True, timeout=120)
    log = tmp_path / "serve.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen([HOTLINE, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=err,
                                start_new_session=True)
    try:
        assert _wait_for_event(log, "hotline_ready", 120), log.read_text()[-2000:]
        assert _wait_for_event(log, "asr.worker.started", 120), log.read_text()[-2000:]
        assert len(_group_members(proc.pid)) >= 3          # serve, the journal applier, an ASR worker

        report = run_call_sync("127.0.0.1", agi_port, CallSpec(
            script="main", callerid="13800138000", extension="12345", context="from-pstn",
            caller=CallerScript(queue=QueueOutcome("answered", agent="1001", after_s=3, talk_s=20))),
            EmulatorConfig(time_scale=0.0, gosub_scripts={"hotline-agent-connect": "agent-connect"}))
        assert report.error is None and report.queue is not None and report.queue.outcome == "ANSWERED"

        second = subprocess.run([HOTLINE, "serve"], env=env, capture_output=True, text=True, timeout=60)
        assert second.returncode == 2
        assert "in use" in second.stderr and "Traceback" not in second.stderr

        time.sleep(1.0)                                     # every child idle in its wait
        os.killpg(proc.pid, signal.SIGTERM)                 # as systemd and `timeout` do
        assert proc.wait(timeout=30) == 0
        deadline = time.monotonic() + 10
        while _group_members(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _group_members(proc.pid) == [], "children left behind after serve stopped"
    finally:
        if proc.poll() is None or _group_members(proc.pid):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    db = open_database(env["HOTLINE_DATABASE__URL"])
    try:
        with db.session() as s:
            calls = s.scalars(select(Call)).all()
        assert [(c.state, c.call_outcome, c.agent_id) for c in calls] == [("complete", "人工接通", "1001")]
    finally:
        db.dispose()
