"""Synthesized speech shared by the real-engine job tests (made once per session with espeak-ng + sox)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from jobsupport import call_recording, clip_recording


@dataclass(frozen=True)
class Speech:
    call: Path       # stereo call, 3 turns each side (~20 s)
    medium: Path     # the conversation three times (~80 s)
    long: Path       # the conversation six times (~160 s)
    clip: Path       # mono 10 s caller description


@pytest.fixture(scope="session")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Speech:
    d = tmp_path_factory.mktemp("speech")
    return Speech(call=call_recording(d / "call.wav"), medium=call_recording(d / "medium.wav", repeat=3),
                  long=call_recording(d / "long.wav", repeat=6),
                  clip=clip_recording(d / "clip.wav", seconds=10.0))
