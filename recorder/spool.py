"""Find a call's MixMonitor output in the spool directory (files named by linkedid).

Accepted layouts, in order of preference:

* ``legs``   – ``<linkedid>-in.<ext>`` (caller, MixMonitor ``r()``) and ``<linkedid>-out.<ext>`` (agent, ``t()``),
  each mono; ``<ext>`` is ``wav`` or a signed-linear extension (``raw``, ``sln``, ``sln16``…).
* ``raw``    – ``<linkedid>-stereo.<raw|sln|sln16…>``: headerless 2-channel interleaved signed 16-bit
  (MixMonitor option ``D``: left = caller, right = agent), the rate given by the extension.
* ``stereo`` – ``<linkedid>.wav`` with 2 channels (left = caller, right = agent).

With legs present, the other files of the same linkedid are by-products that hold a subset of the same
audio (``<linkedid>.wav`` = the whole-call mono mix written beside ``r()``/``t()``, ``-mix.wav`` / ``-stereo.raw``
= the bridged part): they are listed as ``redundant`` and removed with the legs once the archive is committed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from recorder.audio_check import RAW_EXTENSIONS

_EXT = r"(?:wav|raw|sln\d*)"
SPOOL_NAME_RE = re.compile(rf"^(?P<linkedid>[^/]+?)(?P<suffix>-in|-out|-stereo|-mix)?\.(?P<ext>{_EXT})$", re.IGNORECASE)


@dataclass(frozen=True)
class SpoolSet:
    """The spool files of one call recording: which layout, the files to read, by-products to remove."""

    linkedid: str
    layout: str                                   # legs | raw | stereo
    files: tuple[Path, ...]                       # legs: (in, out) with a missing one kept as its expected path
    redundant: tuple[Path, ...] = field(default=())

    @property
    def present(self) -> tuple[Path, ...]:
        return tuple(p for p in (*self.files, *self.redundant) if p.exists())


def _find(spool: Path, linkedid: str, suffix: str) -> Path | None:
    for ext in ("wav", *sorted(RAW_EXTENSIONS)):
        p = spool / f"{linkedid}{suffix}.{ext}"
        if p.is_file():
            return p
    return None


def discover(spool_dir: Path, linkedid: str) -> SpoolSet | None:
    """The call's spool files, or None when none of them is there."""
    leg_in, leg_out = _find(spool_dir, linkedid, "-in"), _find(spool_dir, linkedid, "-out")
    raw = next((p for p in (spool_dir / f"{linkedid}-stereo.{e}" for e in sorted(RAW_EXTENSIONS)) if p.is_file()), None)
    whole = spool_dir / f"{linkedid}.wav"
    mix = spool_dir / f"{linkedid}-mix.wav"
    if leg_in or leg_out:
        ext = (leg_in or leg_out).suffix  # type: ignore[union-attr]
        files = (leg_in or spool_dir / f"{linkedid}-in{ext}", leg_out or spool_dir / f"{linkedid}-out{ext}")
        redundant = tuple(p for p in (whole, mix, raw) if p is not None and p.is_file())
        return SpoolSet(linkedid, "legs", files, redundant)
    if raw is not None:
        return SpoolSet(linkedid, "raw", (raw,), tuple(p for p in (whole, mix) if p.is_file()))
    if whole.is_file():
        return SpoolSet(linkedid, "stereo", (whole,), tuple(p for p in (mix,) if p.is_file()))
    return None


def spool_linkedids(spool_dir: Path) -> list[str]:
    """Linkedids that have call-recording files in the spool (hidden and temporary files ignored)."""
    if not spool_dir.is_dir():
        return []
    ids: set[str] = set()
    for entry in spool_dir.iterdir():
        if entry.name.startswith(".") or not entry.is_file():
            continue
        m = SPOOL_NAME_RE.match(entry.name)
        if m and m.group("suffix") != "-mix":
            ids.add(m.group("linkedid"))
    return sorted(ids)


def newest_mtime(paths: tuple[Path, ...]) -> float:
    return max((p.stat().st_mtime for p in paths if p.exists()), default=0.0)
