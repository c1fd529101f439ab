"""`hotline transcribe` through the real console entry point (cli.main.main)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.main import main
from cli.transcribe import plan_jobs

from tests.asr.conftest import SyntheticCall


def test_leg_files_pair_up(tmp_path: Path) -> None:
    jobs = plan_jobs(["a/1-out.wav", "b.wav", "a/1-in.wav", "a/2-in.wav"])
    assert [(j.name, tuple(map(str, j.paths))) for j in jobs] == [
        ("1", ("a/1-in.wav", "a/1-out.wav")),
        ("b", ("b.wav",)),
        ("2-in", ("a/2-in.wav",)),
    ]


def test_json_for_a_stereo_file_and_a_leg_pair(call_8k: SyntheticCall, capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["transcribe", str(call_8k.path), str(call_8k.caller_leg), str(call_8k.agent_leg),
               "--format", "json", "--progress", "never"])
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    docs = [json.loads(line) for line in lines]
    assert docs[0]["file"] == str(call_8k.path)
    assert docs[1]["file"] == f"{call_8k.caller_leg} + {call_8k.agent_leg}"
    for doc in docs:
        t = doc["transcript"]
        assert t["model"] == "vosk-model-small-ko"
        assert [c["speaker"] for c in t["channels"]] == ["诉求人", "坐席"]
        assert all(c["segments"] for c in t["channels"])


def test_srt_txt_progress_and_a_bad_file(call_8k: SyntheticCall, corrupt_files: dict[str, Path], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "out"
    rc = main(["transcribe", str(call_8k.path), str(corrupt_files["random_bytes"]), "--format", "srt",
               "--output-dir", str(out_dir), "--progress", "always"])
    captured = capsys.readouterr()
    assert rc == 1  # one input failed, the other was still transcribed
    assert f"{corrupt_files['random_bytes']}: not readable audio" in captured.err
    assert "2/2 files" in captured.err and "100.0%" in captured.err
    srt = (out_dir / f"{call_8k.path.stem}.srt").read_text(encoding="utf-8")
    assert srt.startswith("1\n00:00:0") and "坐席：" in srt and "诉求人：" in srt
    rc = main(["transcribe", str(call_8k.path), "--format", "txt", "--channels", "mix"])
    lines = capsys.readouterr().out.splitlines()
    assert rc == 0 and lines and all(line.startswith("[") and "] 混合：" in line for line in lines)
