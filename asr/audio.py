"""Audio input for transcription: load WAV/FLAC/headerless PCM, join two leg files, resample.

Everything is returned as float32 samples in [-1, 1], shape ``(frames, channels)``. Unreadable
input raises :class:`AudioError` with a reason the recorder can store when it quarantines the file.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf

# Headerless signed-linear extensions (Asterisk names) and their implied rate; None: must be declared.
RAW_EXTENSIONS: dict[str, int | None] = {".sln": 8000, ".sln16": 16000, ".raw": None, ".pcm": None}
MAX_CHANNELS = 2


class AudioError(Exception):
    """The file cannot be read as audio; ``reason`` says why (truncated, not audio, empty, ...)."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


@dataclass(frozen=True)
class Audio:
    """Decoded audio: ``samples`` is float32 ``(frames, channels)``."""

    samples: np.ndarray
    sample_rate: int
    source: str = ""

    @property
    def frames(self) -> int:
        return int(self.samples.shape[0])

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    @property
    def duration_seconds(self) -> float:
        return self.frames / float(self.sample_rate)

    def channel(self, index: int) -> np.ndarray:
        return self.samples[:, index]

    def mixdown(self) -> np.ndarray:
        """Mono mix: channels summed (legs alternate, so summing keeps each voice at full level), clipped."""
        if self.channels == 1:
            return self.samples[:, 0]
        return np.clip(self.samples.sum(axis=1, dtype=np.float32), -1.0, 1.0)


def load_audio(path: str | os.PathLike[str], raw_rate: int | None = None) -> Audio:
    """Read a WAV/FLAC (any rate, mono or stereo) or a headerless 16-bit little-endian PCM file.

    ``.sln`` is 8 kHz and ``.sln16`` 16 kHz; ``.raw``/``.pcm`` need ``raw_rate`` (it also overrides the
    implied rate of ``.sln``). Raises :class:`AudioError` for missing, empty, truncated or non-audio files.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise AudioError(p, f"cannot open: {exc.strerror or exc}") from None
    if size == 0:
        raise AudioError(p, "empty file (0 bytes)")
    suffix = p.suffix.lower()
    if suffix in RAW_EXTENSIONS:
        rate = raw_rate or RAW_EXTENSIONS[suffix]
        if rate is None:
            raise AudioError(p, f"headerless {suffix} file needs a declared sample rate")
        return _load_raw(p, size, rate)
    try:
        data, rate = sf.read(str(p), dtype="float32", always_2d=True)
    except sf.LibsndfileError as exc:
        raise AudioError(p, f"not readable audio: {exc.error_string}") from None
    except (RuntimeError, ValueError, TypeError) as exc:
        raise AudioError(p, f"not readable audio: {exc}") from None
    return _checked(p, data, int(rate))


def _load_raw(p: Path, size: int, rate: int) -> Audio:
    if rate <= 0:
        raise AudioError(p, f"bad declared sample rate {rate}")
    if size % 2:
        raise AudioError(p, f"truncated 16-bit PCM: odd byte count {size}")
    try:
        pcm = np.fromfile(p, dtype="<i2")
    except OSError as exc:
        raise AudioError(p, f"cannot read: {exc.strerror or exc}") from None
    data = (pcm.astype(np.float32) / 32768.0).reshape(-1, 1)
    return _checked(p, data, rate)


def _checked(p: Path, data: np.ndarray, rate: int) -> Audio:
    if rate <= 0:
        raise AudioError(p, f"bad sample rate {rate}")
    if data.ndim != 2 or data.shape[1] < 1:
        raise AudioError(p, "no audio channels")
    if data.shape[1] > MAX_CHANNELS:
        raise AudioError(p, f"{data.shape[1]} channels; expected mono or stereo (caller | agent)")
    if not np.isfinite(data).all():
        raise AudioError(p, "samples are not finite (NaN/Inf)")
    return Audio(samples=np.ascontiguousarray(data, dtype=np.float32), sample_rate=rate, source=str(p))


def load_legs(caller_path: str | os.PathLike[str], agent_path: str | os.PathLike[str],
              raw_rate: int | None = None) -> Audio:
    """Two mono leg files (MixMonitor ``<linkedid>-in.wav`` caller, ``-out.wav`` agent) as one stereo
    Audio: channel 0 caller, channel 1 agent; the shorter leg is padded with silence at the end."""
    caller = load_audio(caller_path, raw_rate)
    agent = load_audio(agent_path, raw_rate)
    for leg in (caller, agent):
        if leg.channels != 1:
            raise AudioError(leg.source, f"a leg file must be mono, got {leg.channels} channels")
    if caller.sample_rate != agent.sample_rate:
        raise AudioError(agent.source, f"leg sample rates differ: {caller.sample_rate} Hz vs {agent.sample_rate} Hz")
    frames = max(caller.frames, agent.frames)
    both = np.zeros((frames, 2), dtype=np.float32)
    both[: caller.frames, 0] = caller.samples[:, 0]
    both[: agent.frames, 1] = agent.samples[:, 0]
    return Audio(samples=both, sample_rate=caller.sample_rate, source=f"{caller.source}+{agent.source}")


def to_pcm16(x: np.ndarray) -> bytes:
    """float samples in [-1, 1] → 16-bit little-endian PCM bytes (what KaldiRecognizer accepts)."""
    return (np.clip(x, -1.0, 1.0) * 32767.0).astype("<i2").tobytes()


# --- resampling --------------------------------------------------------------------------------

@lru_cache(maxsize=16)
def _polyphase_filter(up: int, down: int) -> np.ndarray:
    """Kaiser-windowed sinc low-pass for rational resampling (same design as scipy.signal.resample_poly:
    cut-off at the lower Nyquist, 10 zero crossings each side per max(up, down), beta 5), gain ``up``."""
    max_rate = max(up, down)
    half_len = 10 * max_rate
    n = np.arange(-half_len, half_len + 1, dtype=np.float64)
    cutoff = 1.0 / max_rate  # as a fraction of the up-sampled Nyquist
    h = cutoff * np.sinc(cutoff * n) * np.kaiser(2 * half_len + 1, 5.0)
    return (h * up).astype(np.float64)


def resample(x: np.ndarray, src_rate: int, dst_rate: int) -> np.ndarray:
    """Band-limited rational resampling of a 1-D signal (polyphase FIR, zero phase).

    Output length is ``ceil(len(x) * dst_rate / src_rate)``; sample ``j`` of the output sits at time
    ``j / dst_rate`` like input sample ``j * src_rate / dst_rate``, so timestamps need no correction.
    """
    if src_rate == dst_rate:
        return np.asarray(x, dtype=np.float32)
    g = math.gcd(int(src_rate), int(dst_rate))
    up, down = dst_rate // g, src_rate // g
    h = _polyphase_filter(up, down)
    half_len = (len(h) - 1) // 2
    x64 = np.asarray(x, dtype=np.float64)
    n_out = -(-len(x64) * up // down)
    if n_out == 0:
        return np.zeros(0, dtype=np.float32)
    # Output j is sample j*down of the zero-stuffed, filtered signal y[m] = sum_k x[k] h[m - k*up + half_len].
    # Its phase p = (j*down + half_len) % up picks the taps h[p::up]; group outputs by phase.
    out = np.empty(n_out, dtype=np.float64)
    j = np.arange(n_out, dtype=np.int64)
    m = j * down + half_len
    phase = m % up
    pad = len(h) // up + 2
    xp = np.concatenate([np.zeros(pad), x64, np.zeros(pad)])
    for p in range(up):
        sel = np.nonzero(phase == p)[0]
        if sel.size == 0:
            continue
        taps = h[p::up]  # taps[t] = h[p + t*up] multiplies x[(m - p)//up - t]
        idx = (m[sel] - p) // up + pad  # padded input index of taps[0]
        if up <= 8:
            # Few phases (8 kHz <-> 16 kHz): one full convolution per phase is the cheapest.
            out[sel] = np.convolve(xp, taps, mode="full")[idx]
        else:
            acc = np.zeros(sel.size, dtype=np.float64)
            for t, tap in enumerate(taps):
                acc += tap * xp[idx - t]
            out[sel] = acc
    return out.astype(np.float32)
