"""Quarantine: bad spool files are moved (never deleted) to ``quarantine_dir/<linkedid>/``.

The destinations are planned first and stored in the ``recordings`` row (status ``quarantined``); the row is
committed, then the files are moved. A crash in between is finished by :func:`finish_moves` on the next run.
A row's ``uri`` is the first moved file relative to ``quarantine_dir`` (None when nothing could be moved,
i.e. the recording was missing altogether); ``source_files`` lists every file as
``{"name", "spool_path", "quarantine_uri"}``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Sequence

from config import Settings
from config.log import get_logger
from recorder.archive import fsync_dir, make_dirs

log = get_logger(__name__)


@dataclass(frozen=True)
class PlannedMove:
    source: Path
    quarantine_uri: str      # relative to quarantine_dir

    def as_json(self) -> dict[str, Any]:
        return {"name": self.source.name, "spool_path": str(self.source), "quarantine_uri": self.quarantine_uri}


def quarantine_root(settings: Settings) -> Path:
    return Path(settings.recordings.quarantine_dir)


def resolve(settings: Settings, quarantine_uri: str) -> Path:
    return quarantine_root(settings).joinpath(*PurePosixPath(quarantine_uri).parts)


def plan_moves(settings: Settings, linkedid: str, sources: Iterable[Path]) -> list[PlannedMove]:
    """Destinations ``<linkedid>/<name>`` (``<name>.1``, ``.2``… when a file of that name is already there)."""
    taken: set[str] = set()
    plan: list[PlannedMove] = []
    for src in sources:
        if not src.exists():
            continue
        n = 0
        while True:
            name = src.name if n == 0 else f"{src.name}.{n}"
            uri = str(PurePosixPath(linkedid, name))
            if uri not in taken and not resolve(settings, uri).exists():
                break
            n += 1
        taken.add(uri)
        plan.append(PlannedMove(src, uri))
    return plan


def _move(settings: Settings, move: PlannedMove) -> None:
    dest = resolve(settings, move.quarantine_uri)
    make_dirs(dest.parent)
    try:
        os.link(move.source, dest)          # same file system: a hard link, then unlink the spool name
    except OSError:
        tmp = dest.with_name(f".{dest.name}.tmp")
        shutil.copyfile(move.source, tmp)
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    fsync_dir(dest.parent)
    move.source.unlink()
    fsync_dir(move.source.parent)


def execute(settings: Settings, moves: Sequence[PlannedMove]) -> None:
    for m in moves:
        if m.source.exists():
            _move(settings, m)
            log.warning("recording_quarantined_file", source=str(m.source), quarantine_uri=m.quarantine_uri)


def finish_moves(settings: Settings, source_files: Sequence[dict[str, Any]]) -> bool:
    """Redo the moves a committed quarantine row lists that a crash left undone; True if any was redone."""
    redone = False
    for entry in source_files:
        src = Path(entry.get("spool_path") or "")
        uri = entry.get("quarantine_uri")
        if uri and src.is_file() and not resolve(settings, uri).exists():
            _move(settings, PlannedMove(src, uri))
            redone = True
    return redone
