"""The archive: where a recording goes, written atomically and durably, and its sha256.

A recording's ``uri`` is a POSIX path **relative to** ``[recordings] archive_dir``
(``2026/11/28/1795901133.57.flac``), so machines that mount the shared store at different places agree
on it. Resolve with :func:`resolve_uri` (or ``Path(settings.recordings.archive_dir) / uri``).
"""

from __future__ import annotations

import hashlib
import os
import uuid
from datetime import datetime
from pathlib import Path, PurePosixPath
from zoneinfo import ZoneInfo

import numpy as np
import soundfile as sf

from config import Settings

_SF_FORMAT = {"flac": "FLAC", "wav": "WAV"}
CHUNK = 1 << 20


def archive_root(settings: Settings) -> Path:
    return Path(settings.recordings.archive_dir)


def archive_uri(settings: Settings, started_at: datetime, stem: str) -> str:
    """``YYYY/MM/DD/<stem>.<format>``, the date of the call start in the hotline's time zone."""
    local = started_at.astimezone(ZoneInfo(settings.general.timezone))
    ext = settings.recordings.archive_format
    return str(PurePosixPath(f"{local:%Y}", f"{local:%m}", f"{local:%d}", f"{stem}.{ext}"))


def resolve_uri(settings: Settings, uri: str) -> Path:
    rel = PurePosixPath(uri)
    if rel.is_absolute() or ".." in rel.parts:
        raise ValueError(f"archive uri must be relative and inside the archive: {uri!r}")
    return archive_root(settings).joinpath(*rel.parts)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_dirs(path: Path) -> None:
    """mkdir -p, fsyncing the parent of every directory created so the new entries survive a crash."""
    missing: list[Path] = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir(exist_ok=True)
        fsync_dir(d.parent)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def write_temp(data: np.ndarray, sample_rate: int, target: Path, fmt: str) -> Path:
    """Encode ``data`` (int16 frames × channels) next to ``target`` under a temporary name, fsynced."""
    make_dirs(target.parent)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with sf.SoundFile(str(tmp), "w", samplerate=sample_rate, channels=int(data.shape[1]),
                          format=_SF_FORMAT[fmt], subtype="PCM_16") as out:
            out.write(data)
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def publish(tmp: Path, target: Path) -> None:
    """Atomically move the fsynced temporary file to its final name and fsync the directory."""
    os.replace(tmp, target)
    fsync_dir(target.parent)


def check_readback(path: Path, data: np.ndarray, sample_rate: int) -> None:
    """The encoded file decodes to exactly the samples given (guards against a silent encoder fault)."""
    back, rate = sf.read(str(path), dtype="int16", always_2d=True)
    if rate != sample_rate or back.shape != data.shape or not np.array_equal(back, data):
        raise OSError(f"archive copy {path} does not decode to the source samples")
