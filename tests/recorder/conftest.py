"""Recorder fixtures: settings pointing at a temporary spool, archive and quarantine."""

from __future__ import annotations

from pathlib import Path

import pytest

from config import Settings
from rec_helpers import Dirs, make_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    s = make_settings(tmp_path)
    Path(s.recordings.spool_dir).mkdir(parents=True)
    return s


@pytest.fixture
def dirs(settings: Settings) -> Dirs:
    r = settings.recordings
    return Dirs(Path(r.spool_dir), Path(r.archive_dir), Path(r.quarantine_dir))
