"""Recorder test helpers: settings, call records, real and generated audio files."""


from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from config import Settings, load_settings
from store.db import Database
from store.records import complete_call, open_call

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "asterisk" / "mixmonitor"
FIXTURE_ID = "1795901133.57"
CST = timezone(timedelta(hours=8))
# 00:00:05 in Beijing is the previous day in UTC: the archive folder must use the hotline's date.
T0 = datetime(2026, 11, 28, 0, 0, 5, tzinfo=CST)


@dataclass(frozen=True)
class Dirs:
    spool: Path
    archive: Path
    quarantine: Path


def make_settings(tmp_path: Path, **extra: str) -> Settings:
    env = {
        "HOTLINE_RECORDINGS__SPOOL_DIR": str(tmp_path / "spool"),
        "HOTLINE_RECORDINGS__ARCHIVE_DIR": str(tmp_path / "archive"),
        "HOTLINE_RECORDINGS__QUARANTINE_DIR": str(tmp_path / "quarantine"),
        **extra,
    }
    return load_settings(environ=env)


def add_call(db: Database, record_id: str, *, start: datetime = T0, answered: bool = True, ring: int = 2,
             talk: int = 8, complete: bool = True, outcome: str | None = None, **fields: Any) -> None:
    """A call record: queue at start, answered after ``ring`` s, ``talk`` s of talk (10 s in all by default)."""
    with db.write() as s:
        open_call(s, {"record_id": record_id, "caller_number": "13800138000", "called_number": "12345",
                      "call_start_at": start.isoformat(), "channel": "电话", "ivr_path": []})
        if not complete:
            return
        changes: dict[str, Any] = {"queue_id": "hotline", "queue_enter_at": start.isoformat(), "hangup_party": "诉求人"}
        if answered:
            changes.update(call_outcome=outcome or "人工接通", answered_at=(start + timedelta(seconds=ring)).isoformat(),
                           ended_at=(start + timedelta(seconds=ring + talk)).isoformat(), wait_seconds=ring,
                           talk_seconds=talk, agent_id="1001")
        else:
            changes.update(call_outcome=outcome or "排队放弃", ended_at=(start + timedelta(seconds=ring + talk)).isoformat(),
                           wait_seconds=ring + talk)
        changes.update(fields)
        complete_call(s, record_id, changes)


def copy_fixture_legs(spool: Path, linkedid: str) -> tuple[Path, Path]:
    """The real Asterisk r()/t() legs, renamed to ``linkedid``; returns (in, out)."""
    out = []
    for leg in ("in", "out"):
        dst = spool / f"{linkedid}-{leg}.wav"
        shutil.copyfile(FIXTURES / f"{FIXTURE_ID}-{leg}.wav", dst)
        out.append(dst)
    return out[0], out[1]


def fixture_leg(leg: str) -> np.ndarray:
    data, rate = sf.read(str(FIXTURES / f"{FIXTURE_ID}-{leg}.wav"), dtype="int16")
    assert rate == 8000
    return data


def tone(seconds: float, rate: int = 8000, freq: float = 440.0, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = (np.sin(2 * np.pi * freq * t) * 8000).astype(np.int16)
    if channels == 1:
        return mono
    return np.column_stack([(np.sin(2 * np.pi * (freq * (c + 1)) * t) * 8000).astype(np.int16) for c in range(channels)])


def write_wav(path: Path, data: np.ndarray, rate: int = 8000) -> Path:
    sf.write(str(path), data, rate, format="WAV", subtype="PCM_16")
    return path
