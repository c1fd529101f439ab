"""Audio for the ASR tests, synthesised once per session with espeak-ng (Korean voice) and sox.

Calls are built like MixMonitor recordings: each leg is silent (low line noise) while the other party
speaks, so every word has a known region on the timeline of its own channel.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.engine import EngineOptions, TranscriptionEngine
from config import load_settings

CALLER_SENTENCES = ("도로에 물이 새고 있어요", "버스가 너무 늦게 와요")
AGENT_SENTENCES = ("안녕하세요 서울시 민원 센터입니다", "주소를 말씀해 주세요")
NOISE_LEVEL = 10 ** (-62 / 20)  # line noise, about -62 dBFS


def _require(tool: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(f"{tool} is needed to synthesise test audio (apt-get install {tool})")


def synth(text: str, rate: int, workdir: Path) -> np.ndarray:
    """Korean speech for ``text`` as float32 mono at ``rate`` (espeak-ng, resampled by sox)."""
    _require("espeak-ng")
    _require("sox")
    raw = workdir / f"tts_{abs(hash((text, rate)))}.wav"
    out = workdir / f"tts_{abs(hash((text, rate)))}_{rate}.wav"
    subprocess.run(["espeak-ng", "-v", "ko", "-s", "130", "-w", str(raw), text], check=True)
    subprocess.run(["sox", str(raw), "-r", str(rate), "-c", "1", "-b", "16", str(out)], check=True)
    data, sr = sf.read(str(out), dtype="float32")
    assert sr == rate
    return data


@dataclass(frozen=True)
class Placed:
    """A sentence placed on a channel at [start, end) seconds."""

    channel: int
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class SyntheticCall:
    path: Path                 # stereo WAV, channel 0 caller, channel 1 agent
    caller_leg: Path           # <linkedid>-in.wav
    agent_leg: Path            # <linkedid>-out.wav
    rate: int
    duration: float
    placed: tuple[Placed, ...]

    def regions(self, channel: int) -> list[tuple[float, float]]:
        return [(p.start, p.end) for p in self.placed if p.channel == channel]


def build_call(workdir: Path, rate: int, name: str, layout: list[tuple[int, float, str]], tail: float = 1.5,
               seed: int = 7) -> SyntheticCall:
    """Place ``(channel, start_seconds, sentence)`` items on a two-leg call; write stereo + leg files."""
    clips = [(ch, start, text, synth(text, rate, workdir)) for ch, start, text in layout]
    duration = max(start + len(x) / rate for _ch, start, _t, x in clips) + tail
    frames = int(duration * rate)
    rng = np.random.default_rng(seed)
    legs = (rng.standard_normal((frames, 2)) * NOISE_LEVEL).astype(np.float32)
    placed = []
    for ch, start, text, x in clips:
        a = int(start * rate)
        legs[a:a + len(x), ch] += x
        placed.append(Placed(ch, start, start + len(x) / rate, text))
    stereo = workdir / f"{name}.wav"
    sf.write(str(stereo), legs, rate, subtype="PCM_16")
    caller, agent = workdir / f"{name}-in.wav", workdir / f"{name}-out.wav"
    sf.write(str(caller), legs[:, 0], rate, subtype="PCM_16")
    sf.write(str(agent), legs[:, 1], rate, subtype="PCM_16")
    return SyntheticCall(stereo, caller, agent, rate, frames / rate, tuple(placed))


# Agent greets, caller answers, agent asks, caller answers: alternating turns with pauses.
CALL_LAYOUT = [
    (1, 0.5, AGENT_SENTENCES[0]),
    (0, 6.0, CALLER_SENTENCES[0]),
    (1, 10.5, AGENT_SENTENCES[1]),
    (0, 15.0, CALLER_SENTENCES[1]),
]


@pytest.fixture(scope="session")
def audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("asr_audio")


@pytest.fixture(scope="session")
def engine() -> TranscriptionEngine:
    """The real Vosk engine with the installed test model (settings defaults, no site overrides),
    configured like the worker and the CLI: one recognizer reused across files and channels."""
    return TranscriptionEngine.from_settings(load_settings(environ={}), EngineOptions(reuse_recognizer=True))


@pytest.fixture(scope="session")
def call_8k(audio_dir: Path) -> SyntheticCall:
    return build_call(audio_dir, 8000, "call8k", CALL_LAYOUT)


@pytest.fixture(scope="session")
def call_16k(audio_dir: Path) -> SyntheticCall:
    return build_call(audio_dir, 16000, "call16k", CALL_LAYOUT)


@pytest.fixture(scope="session")
def silent_8k(audio_dir: Path) -> Path:
    """Ten seconds of line noise only, stereo."""
    path = audio_dir / "silent.wav"
    rng = np.random.default_rng(1)
    sf.write(str(path), (rng.standard_normal((80000, 2)) * NOISE_LEVEL).astype(np.float32), 8000, subtype="PCM_16")
    return path


@pytest.fixture(scope="session")
def empty_wav(audio_dir: Path) -> Path:
    """A valid WAV header with no frames."""
    path = audio_dir / "empty.wav"
    sf.write(str(path), np.zeros((0, 2), dtype=np.float32), 8000, subtype="PCM_16")
    return path


@pytest.fixture(scope="session")
def long_call_8k(audio_dir: Path) -> SyntheticCall:
    """A 30-minute stereo call: long holds of line noise with sentences near the start, middle and end.

    Built with sox: padded sentences mixed over 30 minutes of low noise."""
    _require("sox")
    rate = 8000
    layout = [(1, 2.0, AGENT_SENTENCES[0]), (0, 601.0, CALLER_SENTENCES[0]),
              (1, 1200.0, AGENT_SENTENCES[1]), (0, 1790.0, CALLER_SENTENCES[1])]
    total = 1800.0
    legs: list[list[str]] = [[], []]
    placed = []
    for i, (ch, start, text) in enumerate(layout):
        x = synth(text, rate, audio_dir)
        clip = audio_dir / f"long_clip{i}.wav"
        sf.write(str(clip), x, rate, subtype="PCM_16")
        padded = audio_dir / f"long_pad{i}.wav"
        subprocess.run(["sox", str(clip), str(padded), "pad", f"{start}", f"{total - start - len(x) / rate}"], check=True)
        legs[ch].append(str(padded))
        placed.append(Placed(ch, start, start + len(x) / rate, text))
    leg_files = []
    for ch in (0, 1):
        noise = audio_dir / f"long_noise{ch}.wav"
        subprocess.run(["sox", "-n", "-r", str(rate), "-c", "1", "-b", "16", str(noise), "synth", f"{total}",
                        "whitenoise", "vol", f"{NOISE_LEVEL:.6f}"], check=True)
        leg = audio_dir / f"long-{'in' if ch == 0 else 'out'}.wav"
        subprocess.run(["sox", "-m", "-v", "1", str(noise), *sum((["-v", "1", p] for p in legs[ch]), []), str(leg)],
                       check=True)
        leg_files.append(leg)
    stereo = audio_dir / "long.wav"
    subprocess.run(["sox", "-M", str(leg_files[0]), str(leg_files[1]), str(stereo)], check=True)
    info = sf.info(str(stereo))
    return SyntheticCall(stereo, leg_files[0], leg_files[1], rate, info.frames / rate, tuple(placed))


@pytest.fixture(scope="session")
def corrupt_files(audio_dir: Path, call_8k: SyntheticCall) -> dict[str, Path]:
    """Files the recorder would quarantine: truncated header, random bytes, zero length."""
    good = call_8k.caller_leg.read_bytes()
    out = {
        "truncated_header": audio_dir / "truncated.wav",
        "random_bytes": audio_dir / "random.wav",
        "zero_length": audio_dir / "zero.wav",
        "random_flac": audio_dir / "random.flac",
    }
    out["truncated_header"].write_bytes(good[:30])
    out["random_bytes"].write_bytes(os.urandom(4096))
    out["zero_length"].write_bytes(b"")
    out["random_flac"].write_bytes(b"fLaC" + os.urandom(2000))
    return out
