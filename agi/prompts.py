"""Prompt inventory and synthesis: every prompt a flow plays, and Mandarin WAVs made with espeak-ng.

Asterisk plays ``<sounds_dir>/<sound>.<ext>``; STREAM FILE answers ``result=-1 endpos=0`` for a missing file even
on a live channel (and AGI() then ends with AGISTATUS=FAILURE), so start-up checks that every prompt exists.
``hotline prompts build`` synthesizes the missing ones: espeak-ng (voice ``cmn``) → sox → 8 kHz mono 16-bit WAV.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Mapping

from agi.flowdef import Flow, Prompt
from config.log import get_logger

log = get_logger(__name__)

SOUND_EXTENSIONS = (".wav", ".sln", ".sln16", ".gsm", ".ulaw", ".alaw", ".g722", ".g729")
VOICE = "cmn"


class PromptError(Exception):
    """A prompt cannot be synthesized (tool missing or failing) or two flows disagree on a prompt's text."""


@dataclass(frozen=True)
class PromptUse:
    prompt: Prompt
    flows: tuple[str, ...]


def inventory(flows: Mapping[str, Flow] | Iterable[Flow]) -> dict[str, PromptUse]:
    """Every prompt by sound name, with the flows using it. Raises :class:`PromptError` on conflicting texts."""
    items = flows.values() if isinstance(flows, Mapping) else flows
    found: dict[str, PromptUse] = {}
    conflicts: list[str] = []
    for flow in items:
        for p in flow.prompts():
            use = found.get(p.sound)
            if use is None:
                found[p.sound] = PromptUse(p, (flow.name,))
            elif use.prompt.text != p.text:
                conflicts.append(f"{flow.file}: prompt {p.sound!r} has another text in {', '.join(use.flows)}")
            else:
                found[p.sound] = PromptUse(use.prompt, use.flows + (flow.name,))
    if conflicts:
        raise PromptError("\n".join(conflicts))
    return found


def sound_exists(sounds_dir: str | Path, sound: str) -> bool:
    base = Path(sounds_dir) / sound
    return any(base.with_name(base.name + ext).is_file() for ext in SOUND_EXTENSIONS)


def check_prompts(flows: Mapping[str, Flow] | Iterable[Flow], sounds_dir: str | Path) -> list[str]:
    """Sound names used by the flows that have no file under ``sounds_dir`` (sorted)."""
    return sorted(s for s in inventory(flows) if not sound_exists(sounds_dir, s))


def synthesize(text: str, target: Path, voice: str = VOICE) -> None:
    """espeak-ng → sox: 8 kHz, mono, 16-bit signed PCM WAV at ``target``."""
    espeak, sox = shutil.which("espeak-ng"), shutil.which("sox")
    if not espeak or not sox:
        raise PromptError("espeak-ng and sox are needed to build prompts (apt-get install espeak-ng sox)")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        done = subprocess.run([espeak, "-v", voice, "-s", "150", "-w", str(raw), text], capture_output=True, timeout=60)
        if done.returncode != 0 or not raw.is_file():
            raise PromptError(f"espeak-ng failed for {target.name}: {done.stderr.decode(errors='replace').strip()}")
        out = Path(tmp) / "out.wav"
        done = subprocess.run([sox, str(raw), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer", str(out)],
                              capture_output=True, timeout=60)
        if done.returncode != 0:
            raise PromptError(f"sox failed for {target.name}: {done.stderr.decode(errors='replace').strip()}")
        shutil.move(str(out), target)


def build_prompts(flows: Mapping[str, Flow], sounds_dir: str | Path, force: bool = False) -> list[str]:
    """Synthesize every missing prompt (all of them with ``force``); returns the sound names written."""
    written = []
    for sound, use in sorted(inventory(flows).items()):
        if not force and sound_exists(sounds_dir, sound):
            continue
        synthesize(use.prompt.text, Path(sounds_dir) / f"{sound}.wav")
        log.info("prompt_built", sound=sound)
        written.append(sound)
    return written


__all__ = ["PromptError", "PromptUse", "build_prompts", "check_prompts", "inventory", "sound_exists", "synthesize"]
