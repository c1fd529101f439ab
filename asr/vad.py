"""Energy gate: find the voiced stretches of one channel, cut the silence out, map times back.

Each leg of a call is silent while the other party speaks, so about half of it need not be decoded.
The gate is deliberately generous (padding, gap merging): it only drops stretches that are clearly
below the channel's own noise floor, never quiet speech next to loud speech.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class VadConfig:
    frame_seconds: float = 0.02
    # A frame is voiced when its energy is this far above the channel's noise floor ...
    margin_db: float = 12.0
    # ... and above this absolute level (digital silence and dither never count as speech).
    floor_dbfs: float = -50.0
    # The noise floor is this percentile of frame energies (most of a call leg is not speech).
    floor_percentile: float = 10.0
    # Kept around every voiced stretch: word onsets/offsets and silence context for endpointing.
    pad_seconds: float = 0.3
    # Silences shorter than this inside speech are kept (not worth a cut).
    merge_gap_seconds: float = 0.6
    # Voiced stretches shorter than this (clicks, line pops) are dropped.
    min_voiced_seconds: float = 0.1


@dataclass(frozen=True)
class Piece:
    """``length`` samples at ``source_start`` in the channel, placed at ``stream_start`` in the gated stream."""

    stream_start: int
    source_start: int
    length: int


class TimeMap:
    """Maps a time in the gated stream back to the original channel's timeline (monotonic)."""

    def __init__(self, pieces: list[Piece], sample_rate: int) -> None:
        self.pieces = pieces
        self.sample_rate = sample_rate
        self._starts = [p.stream_start for p in pieces]

    @property
    def stream_samples(self) -> int:
        return self.pieces[-1].stream_start + self.pieces[-1].length if self.pieces else 0

    def to_source(self, stream_seconds: float) -> float:
        if not self.pieces:
            return 0.0
        s = stream_seconds * self.sample_rate
        i = max(bisect.bisect_right(self._starts, s) - 1, 0)
        piece = self.pieces[i]
        offset = min(max(s - piece.stream_start, 0.0), float(piece.length))
        return (piece.source_start + offset) / self.sample_rate


def frame_energies_db(x: np.ndarray, frame: int) -> np.ndarray:
    """Mean-square energy per frame in dBFS (the last partial frame included)."""
    n = len(x)
    if n == 0:
        return np.zeros(0)
    full = n // frame
    sq = np.square(x.astype(np.float64))
    parts = [sq[: full * frame].reshape(full, frame).mean(axis=1)] if full else []
    if n % frame:
        parts.append(np.array([sq[full * frame:].mean()]))
    ms = np.concatenate(parts)
    return 10.0 * np.log10(ms + 1e-12)


def voiced_regions(x: np.ndarray, sample_rate: int, cfg: VadConfig = VadConfig()) -> list[tuple[int, int]]:
    """Sorted, non-overlapping ``(start, end)`` sample ranges worth decoding (padding included)."""
    n = len(x)
    frame = max(int(round(cfg.frame_seconds * sample_rate)), 1)
    db = frame_energies_db(x, frame)
    if db.size == 0:
        return []
    floor = float(np.percentile(db, cfg.floor_percentile))
    threshold = max(floor + cfg.margin_db, cfg.floor_dbfs)
    voiced = db > threshold
    if not voiced.any():
        return []
    # Runs of voiced frames.
    edges = np.diff(np.concatenate([[0], voiced.astype(np.int8), [0]]))
    starts = np.nonzero(edges == 1)[0]
    ends = np.nonzero(edges == -1)[0]
    min_frames = cfg.min_voiced_seconds / cfg.frame_seconds
    pad = int(round(cfg.pad_seconds * sample_rate))
    gap = int(round(cfg.merge_gap_seconds * sample_rate))
    regions: list[tuple[int, int]] = []
    for s, e in zip(starts, ends):
        if e - s < min_frames:
            continue
        a = max(int(s) * frame - pad, 0)
        b = min(int(e) * frame + pad, n)
        if regions and a - regions[-1][1] <= gap:
            regions[-1] = (regions[-1][0], b)
        else:
            regions.append((a, b))
    return regions


def gate(x: np.ndarray, sample_rate: int, cfg: VadConfig | None = VadConfig()) -> tuple[np.ndarray, TimeMap]:
    """The voiced stretches of ``x`` back to back, and the map from stream time to source time.

    ``cfg=None`` disables the gate (the whole channel is one piece)."""
    if cfg is None:
        pieces = [Piece(0, 0, len(x))] if len(x) else []
        return np.asarray(x), TimeMap(pieces, sample_rate)
    regions = voiced_regions(x, sample_rate, cfg)
    pieces: list[Piece] = []
    pos = 0
    for a, b in regions:
        pieces.append(Piece(pos, a, b - a))
        pos += b - a
    stream = np.concatenate([x[a:b] for a, b in regions]) if regions else np.zeros(0, dtype=x.dtype)
    return stream, TimeMap(pieces, sample_rate)
