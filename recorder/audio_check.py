"""Read and check one spool audio file: WAV (RIFF header checked by hand) or headerless signed linear.

libsndfile silently clamps a WAV whose header declares more data than the file holds, so the RIFF
chunk sizes are checked here before soundfile reads the samples. Samples are returned as int16.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from recorder.errors import RecordingRejected

# Telephone audio: narrowband (8 kHz) and wideband (G.722 → slin16). Anything else is a misconfiguration.
ACCEPTED_RATES: tuple[int, ...] = (8000, 16000)

# Asterisk's signed-linear extensions and their rates (format_sln: "sln|raw" is 8 kHz).
RAW_RATES: dict[str, int] = {
    "raw": 8000, "sln": 8000, "sln12": 12000, "sln16": 16000, "sln24": 24000, "sln32": 32000,
    "sln44": 44100, "sln48": 48000, "sln96": 96000, "sln192": 192000,
}
RAW_EXTENSIONS = frozenset(RAW_RATES)
# 0 / 0xFFFFFFFF with audio after the header: what a writer leaves before it closes the file.
_UNFINISHED_SIZES = (0, 0xFFFFFFFF)


@dataclass(frozen=True)
class AudioInfo:
    path: str
    format: str          # "wav" | "raw"
    sample_rate: int
    channels: int
    frames: int

    @property
    def duration_seconds(self) -> float:
        return self.frames / self.sample_rate if self.sample_rate else 0.0


def _check_riff(path: Path) -> None:
    """Reject a WAV whose RIFF/data sizes do not fit the file (truncated or never closed)."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(12)
        if len(head) < 12 and b"RIFF".startswith(head[:4]):
            raise RecordingRejected(f"truncated: {len(head)} bytes, shorter than a RIFF header", str(path))
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            raise RecordingRejected("unreadable: not a RIFF/WAVE file", str(path))
        pos = 12
        while True:
            fh.seek(pos)
            chunk = fh.read(8)
            if len(chunk) < 8:
                raise RecordingRejected("truncated: no data chunk", str(path))
            cid, csize = chunk[:4], struct.unpack("<I", chunk[4:])[0]
            if cid == b"data":
                available = size - pos - 8
                if csize == 0 and available == 0:
                    raise RecordingRejected("empty: no audio frames", str(path))
                if csize in _UNFINISHED_SIZES:
                    raise RecordingRejected(f"truncated: data chunk size {csize} (file not closed by its writer)", str(path))
                if csize > available:
                    raise RecordingRejected(
                        f"truncated: header declares {csize} bytes of audio, file holds {available}", str(path))
                return
            pos += 8 + csize + (csize & 1)
            if pos > size:
                raise RecordingRejected(f"truncated: chunk {cid!r} runs past the end of the file", str(path))


def raw_rate(path: Path) -> int | None:
    """The declared rate of a headerless signed-linear file from its extension, None for other files."""
    return RAW_RATES.get(path.suffix.lstrip(".").lower())


def read_audio(path: Path, *, raw_channels: int = 1) -> tuple[np.ndarray, AudioInfo]:
    """Read a whole file as int16 frames × channels; raises :class:`RecordingRejected` with the reason."""
    if not path.exists():
        raise RecordingRejected("missing: file not found", str(path))
    size = path.stat().st_size
    if size == 0:
        raise RecordingRejected("empty: zero-length file", str(path))
    rate = raw_rate(path)
    try:
        if rate is not None:
            frame_bytes = 2 * raw_channels
            if size % frame_bytes:
                raise RecordingRejected(
                    f"truncated: {size} bytes is not a whole number of {raw_channels}-channel 16-bit frames", str(path))
            data = np.fromfile(path, dtype="<i2").reshape(-1, raw_channels)
            info = AudioInfo(str(path), "raw", rate, raw_channels, int(data.shape[0]))
        else:
            _check_riff(path)
            with sf.SoundFile(str(path)) as snd:
                if snd.format != "WAV":
                    raise RecordingRejected(f"unreadable: format {snd.format} is not WAV", str(path))
                data = snd.read(dtype="int16", always_2d=True)
                info = AudioInfo(str(path), "wav", int(snd.samplerate), int(snd.channels), int(data.shape[0]))
    except (sf.LibsndfileError, RuntimeError, ValueError) as exc:
        raise RecordingRejected(f"unreadable: {exc}", str(path)) from None
    if info.frames == 0:
        raise RecordingRejected("empty: no audio frames", str(path))
    if info.sample_rate not in ACCEPTED_RATES:
        raise RecordingRejected(
            f"wrong rate: {info.sample_rate} Hz (accepted: {', '.join(map(str, ACCEPTED_RATES))})", str(path))
    return data, info
