"""`hotline transcribe FILE…`: ad-hoc offline transcription of recordings (no database, no job queue).

Stereo files are caller | agent; ``X-in.wav`` and ``X-out.wav`` given together are one call's two legs.
JSON output is one line per input: ``{"file": ..., "transcript": {...}}``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from asr.transcript import Transcript, to_srt, to_text
from config import Settings
from config.log import get_logger

log = get_logger(__name__)

_LEG_RE = re.compile(r"^(?P<call>.+)-(?P<leg>in|out)$")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("transcribe", help="transcribe recordings with the Vosk model (offline, ad hoc)")
    p.add_argument("files", nargs="+", metavar="FILE", help="WAV/FLAC/.sln/.raw; X-in + X-out legs pair up")
    p.add_argument("--format", choices=("json", "srt", "txt"), default="json")
    p.add_argument("--channels", choices=("split", "mix"), default="split",
                   help="split: per channel (0 诉求人, 1 坐席); mix: mixed down, one pass")
    p.add_argument("--rate", type=int, default=None, help="sample rate of headerless .raw/.pcm input")
    p.add_argument("--output-dir", type=Path, default=None, help="write <name>.<format> files here instead of stdout")
    p.add_argument("--progress", choices=("auto", "always", "never"), default="auto",
                   help="progress bar on stderr (auto: when stderr is a terminal and there is more than one input)")
    p.set_defaults(func=run)


@dataclass(frozen=True)
class Job:
    name: str
    paths: tuple[Path, ...]  # one file, or (caller leg, agent leg)


def plan_jobs(files: list[str]) -> list[Job]:
    """Inputs in the order given; ``X-in.ext`` + ``X-out.ext`` both present become one two-leg job."""
    paths = [Path(f) for f in files]
    by_key = {(p.parent, p.suffix, p.stem): p for p in paths}
    jobs: list[Job] = []
    used: set[Path] = set()
    for p in paths:
        if p in used:
            continue
        m = _LEG_RE.match(p.stem)
        if m:
            other_leg = "out" if m["leg"] == "in" else "in"
            other = by_key.get((p.parent, p.suffix, f"{m['call']}-{other_leg}"))
            if other is not None and other not in used:
                caller, agent = (p, other) if m["leg"] == "in" else (other, p)
                jobs.append(Job(m["call"], (caller, agent)))
                used.update((p, other))
                continue
        jobs.append(Job(p.stem, (p,)))
        used.add(p)
    return jobs


def _audio_seconds(job: Job) -> float:
    import soundfile as sf

    try:
        return max(sf.info(str(p)).duration for p in job.paths)
    except Exception:  # headerless or unreadable: counted as 0, the error surfaces when transcribing
        return 0.0


class ProgressBar:
    """A one-line bar on stderr, weighted by audio seconds."""

    def __init__(self, total_seconds: float, files: int, stream: TextIO, enabled: bool) -> None:
        self.total = max(total_seconds, 1e-9)
        self.files = files
        self.stream = stream
        self.enabled = enabled
        self.done_seconds = 0.0
        self.done_files = 0
        self.started = time.monotonic()

    def advance(self, seconds: float) -> None:
        self.done_seconds += seconds
        self.done_files += 1
        self.draw()

    def draw(self) -> None:
        if not self.enabled:
            return
        frac = min(self.done_seconds / self.total, 1.0)
        width = 30
        filled = int(frac * width)
        elapsed = time.monotonic() - self.started
        speed = self.done_seconds / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done_seconds) / speed if speed > 0 else 0.0
        self.stream.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done_files}/{self.files} files "
                          f"{frac * 100:5.1f}%  {speed:5.1f}x realtime  eta {eta:5.0f}s ")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def render(fmt: str, name: str, transcript: Transcript) -> str:
    if fmt == "json":
        return json.dumps({"file": name, "transcript": transcript.to_dict()}, ensure_ascii=False) + "\n"
    if fmt == "srt":
        return to_srt(transcript)
    return to_text(transcript)


def run(args: argparse.Namespace, settings: Settings) -> int:
    from asr.audio import AudioError  # noqa: PLC0415 - numpy/vosk only when transcribing
    from asr.engine import EngineOptions, TranscriptionEngine  # noqa: PLC0415
    from asr.model import ModelError  # noqa: PLC0415

    jobs = plan_jobs(args.files)
    try:
        # One process, many files: keep the recognizer (and its expanded graph) between files.
        engine = TranscriptionEngine.from_settings(settings, EngineOptions(reuse_recognizer=True))
    except ModelError as exc:
        sys.stderr.write(f"hotline transcribe: {exc}\n")
        return 2
    show = args.progress == "always" or (args.progress == "auto" and len(jobs) > 1 and sys.stderr.isatty())
    seconds = [_audio_seconds(j) for j in jobs]
    bar = ProgressBar(sum(seconds), len(jobs), sys.stderr, show)
    bar.draw()
    if args.output_dir is not None:
        args.output_dir.mkdir(parents=True, exist_ok=True)
    failures = 0
    for job, secs in zip(jobs, seconds):
        label = " + ".join(str(p) for p in job.paths)
        try:
            if len(job.paths) == 2:
                transcript = engine.transcribe_legs(*job.paths, raw_rate=args.rate, channels=args.channels)
            else:
                transcript = engine.transcribe_file(job.paths[0], raw_rate=args.rate, channels=args.channels)
        except AudioError as exc:
            failures += 1
            if show:
                sys.stderr.write("\n")
            sys.stderr.write(f"hotline transcribe: {exc}\n")
            bar.advance(secs)
            continue
        text = render(args.format, label, transcript)
        if args.output_dir is not None:
            (args.output_dir / f"{job.name}.{args.format}").write_text(text, encoding="utf-8")
        else:
            if args.format != "json" and len(jobs) > 1:
                sys.stdout.write(f"# {label}\n")
            sys.stdout.write(text)
            sys.stdout.flush()
        bar.advance(secs)
    bar.close()
    log.info("transcribe.done", files=len(jobs), failed=failures)
    return 1 if failures else 0
