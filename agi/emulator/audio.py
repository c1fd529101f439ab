"""Sounds and audio files of the emulated channel: prompt lengths, RECORD FILE output, MixMonitor files."""

from __future__ import annotations

import wave
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import numpy as np

from agi.emulator.model import SAMPLE_RATE, EmulatorConfig

BEEP_SAMPLES = 3404            # Asterisk core sound "beep", as recorded (endpos=3404)
SOUND_EXTENSIONS = (".wav", ".sln", ".raw", ".gsm", ".ulaw", ".alaw", ".g722", ".sln16")
Direction = Literal["in", "out"]


@lru_cache(maxsize=4096)
def _file_samples(path: Path) -> int:
    suffix = path.suffix.lower()
    size = path.stat().st_size
    if suffix == ".wav":
        try:
            with wave.open(str(path), "rb") as w:
                return int(w.getnframes() * SAMPLE_RATE / max(w.getframerate(), 1))
        except (wave.Error, EOFError):
            return max((size - 44) // 2, 0)
    if suffix in (".sln", ".raw"):
        return size // 2
    if suffix == ".sln16":
        return size // 4
    if suffix == ".gsm":
        return size // 33 * 160
    if suffix == ".g722":
        return size * 2
    return size  # ulaw / alaw: one byte a sample


def find_sound(config: EmulatorConfig, name: str) -> Path | None:
    if config.sounds_dir is None:
        return None
    base = name if Path(name).is_absolute() else str(config.sounds_dir / name)
    for ext in SOUND_EXTENSIONS:
        candidate = Path(base + ext)
        if candidate.is_file():
            return candidate
    return None


def sound_samples(config: EmulatorConfig, name: str) -> int | None:
    """Length of a prompt in 8 kHz samples, or ``None`` when Asterisk would not find it."""
    if name in config.sound_seconds:
        return int(round(config.sound_seconds[name] * SAMPLE_RATE))
    if name.startswith("silence/") and name[8:].isdigit():
        return int(name[8:]) * SAMPLE_RATE
    path = find_sound(config, name)
    if path is not None:
        return _file_samples(path)
    if name == "beep":
        return BEEP_SAMPLES
    if config.sounds_dir is None:
        return int(round(config.default_sound_s * SAMPLE_RATE))
    return None


def read_clip(path: Path) -> np.ndarray:
    """A caller clip as int16 mono at 8 kHz (other rates are resampled linearly, stereo is mixed down)."""
    with wave.open(str(path), "rb") as w:
        rate, channels, width = w.getframerate(), w.getnchannels(), w.getsampwidth()
        raw = w.readframes(w.getnframes())
    if width != 2:
        raise ValueError(f"{path}: only 16-bit PCM clips are supported")
    data = np.frombuffer(raw, dtype="<i2").astype(np.float32)
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1)
    if rate != SAMPLE_RATE and len(data):
        n = int(len(data) * SAMPLE_RATE / rate)
        data = np.interp(np.linspace(0, len(data) - 1, n), np.arange(len(data)), data)
    return np.clip(data, -32768, 32767).astype(np.int16)


def write_audio(path: Path, samples: np.ndarray, fmt: str) -> None:
    """Write 8 kHz mono 16-bit: ``wav`` with a plain 44-byte header, ``sln``/``raw`` headerless."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = np.asarray(samples, dtype="<i2").tobytes()
    if fmt.lower() == "wav":
        with wave.open(str(path), "wb") as w:
            w.setnchannels(1)
            w.setsampwidth(2)
            w.setframerate(SAMPLE_RATE)
            w.writeframes(data)
    else:
        path.write_bytes(data)


def tone(samples: int, freq: float, amplitude: int = 3000, phase0: int = 0) -> np.ndarray:
    t = (np.arange(samples) + phase0) / SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


@dataclass(frozen=True)
class Segment:
    """Audio on the channel: ``in`` = what the channel received (caller), ``out`` = what it sent."""

    start_s: float
    duration_s: float
    direction: Direction
    kind: str                   # prompt | moh | agent | caller
    source: Path | None = None


@dataclass
class MixMonitorJob:
    """One MixMonitor on the channel: the mix file plus optional ``r()`` (received) and ``t()`` (sent) files."""

    mix: Path
    receive: Path | None
    transmit: Path | None
    bridged_only: bool
    start_s: float
    stop_s: float | None = None


def parse_mixmonitor(arg: str, spool_dir: Path, now_s: float) -> MixMonitorJob:
    """``file.wav,b r(in.wav) t(out.wav)`` → job; relative names go into the spool directory."""
    name, _, options = arg.partition(",")
    options = options.split(",", 1)[0]

    def resolve(text: str) -> Path:
        p = Path(text)
        return p if p.is_absolute() else spool_dir / p

    receive = transmit = None
    bridged = False
    i = 0
    while i < len(options):
        ch = options[i]
        if ch in "rt" and i + 1 < len(options) and options[i + 1] == "(":
            end = options.index(")", i)
            target = resolve(options[i + 2:end])
            if ch == "r":
                receive = target
            else:
                transmit = target
            i = end + 1
            continue
        if ch == "b":
            bridged = True
        i += 1
    return MixMonitorJob(mix=resolve(name), receive=receive, transmit=transmit, bridged_only=bridged, start_s=now_s)


def render_direction(segments: list[Segment], direction: Direction, start_s: float, end_s: float,
                     clip_cache: dict[Path, np.ndarray]) -> np.ndarray:
    total = max(int(round((end_s - start_s) * SAMPLE_RATE)), 0)
    out = np.zeros(total, dtype=np.int32)
    for seg in segments:
        if seg.direction != direction:
            continue
        s0 = int(round((seg.start_s - start_s) * SAMPLE_RATE))
        n = int(round(seg.duration_s * SAMPLE_RATE))
        lo, hi = max(s0, 0), min(s0 + n, total)
        if hi <= lo:
            continue
        if seg.source is not None and seg.source.suffix.lower() == ".wav" and seg.source.is_file():
            clip = clip_cache.get(seg.source)
            if clip is None:
                clip = clip_cache.setdefault(seg.source, read_clip(seg.source))
            piece = clip[lo - s0: hi - s0]
            out[lo: lo + len(piece)] += piece
        else:
            freq = {"prompt": 440.0, "moh": 330.0, "agent": 620.0, "caller": 250.0}.get(seg.kind, 500.0)
            out[lo:hi] += tone(hi - lo, freq, phase0=lo - s0)
    return np.clip(out, -32768, 32767).astype(np.int16)


def write_mixmonitor(job: MixMonitorJob, segments: list[Segment], end_s: float,
                     bridge: tuple[float, float] | None) -> list[Path]:
    """Write the job's files as Asterisk would at hangup: same length, sample-aligned, 8 kHz mono 16-bit."""
    start, stop = job.start_s, job.stop_s if job.stop_s is not None else end_s
    if job.bridged_only:
        if bridge is None:
            return []
        start, stop = max(start, bridge[0]), min(stop, bridge[1])
    cache: dict[Path, np.ndarray] = {}
    received = render_direction(segments, "in", start, stop, cache)
    sent = render_direction(segments, "out", start, stop, cache)
    written: list[Path] = []
    mix = np.clip(received.astype(np.int32) + sent.astype(np.int32), -32768, 32767).astype(np.int16)
    for path, data in ((job.mix, mix), (job.receive, received), (job.transmit, sent)):
        if path is None:
            continue
        write_audio(path, data, "wav" if path.suffix.lower() == ".wav" else "sln")
        written.append(path)
    return written
