"""Offline transcription engine: Vosk per channel, silence gated, word times on the file's timeline.

A worker process builds one :class:`TranscriptionEngine` (the model loads once per process) and calls
:meth:`TranscriptionEngine.transcribe_file` / :meth:`~TranscriptionEngine.transcribe_legs` for each job.
An engine is not thread-safe: use one per thread or process. Long-lived workers should pass
``EngineOptions(reuse_recognizer=True)``: a fresh KaldiRecognizer re-expands the lookahead decoding graph
(measured on vosk-model-small-ko: about 3 s of CPU per recognizer, i.e. per channel), which costs more
than decoding a short call; bench/asr_throughput.py measures both.

Per channel: gate the silence out (the other party's turns, hold), resample the voiced stream to the
model's rate in-process (vosk 0.3.45 refuses to upsample for most models), decode it with one
KaldiRecognizer in big chunks (no partial results), map word times back through the gate.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from asr.audio import Audio, load_audio, load_legs, resample, to_pcm16
from asr.model import ModelInfo, load_model, resolve_model
from asr.text import join_cjk
from asr.transcript import (CHANNEL_SPEAKERS, SPEAKER_CALLER, SPEAKER_MIXED, ChannelTranscript, Segment,
                            Transcript, Word)
from asr.vad import TimeMap, VadConfig, gate
from config import Settings, load_settings
from config.log import get_logger

log = get_logger(__name__)

ChannelMode = Literal["split", "mix"]


@dataclass(frozen=True)
class EngineOptions:
    # Silence gate; None decodes every sample.
    vad: VadConfig | None = field(default_factory=VadConfig)
    # Audio handed to AcceptWaveform per call. Endpoints (segment ends) are only checked between calls.
    chunk_seconds: float = 2.0
    # Words further apart than this (on the file's timeline) start a new segment.
    segment_gap_seconds: float = 1.0
    # Keep one recognizer per engine and Reset() it between channels instead of a fresh one per channel.
    # On lookahead-graph models a fresh recognizer re-expands the decoding graph (about 1-2 s of CPU on
    # vosk-model-small-ko); a reused one keeps that cache. Word times are re-based per channel.
    reuse_recognizer: bool = False
    # A reused recognizer is replaced after this much audio: Vosk keeps word times as float32 seconds
    # since the recognizer was created, so they would lose millisecond precision after some hours.
    recycle_after_seconds: float = 3600.0


@dataclass(frozen=True)
class ChannelStats:
    """What one channel cost: audio seconds in, seconds actually decoded, wall seconds spent."""

    audio_seconds: float
    decoded_seconds: float
    elapsed_seconds: float


class TranscriptionEngine:
    """Vosk transcription of call recordings; construct once per process, call many times."""

    def __init__(self, model: ModelInfo, options: EngineOptions | None = None) -> None:
        self.info = model
        self.options = options or EngineOptions()
        self._model = load_model(model)
        self._recognizer: Any = None
        self._fed_samples = 0  # samples fed to the reused recognizer since it was created
        self.last_stats: list[ChannelStats] = []

    @classmethod
    def from_settings(cls, settings: Settings | None = None, options: EngineOptions | None = None) -> TranscriptionEngine:
        return cls(resolve_model(settings or load_settings()), options)

    @property
    def model_name(self) -> str:
        return self.info.name

    @property
    def sample_rate(self) -> int:
        return self.info.sample_rate

    # --- public entry points ---------------------------------------------------------------------

    def transcribe_file(self, path: str | os.PathLike[str], *, raw_rate: int | None = None,
                        channels: ChannelMode = "split") -> Transcript:
        """A WAV/FLAC/.sln/.raw recording; stereo is caller | agent. Raises ``AudioError``."""
        return self.transcribe_audio(load_audio(path, raw_rate), channels=channels)

    def transcribe_legs(self, caller_path: str | os.PathLike[str], agent_path: str | os.PathLike[str], *,
                        raw_rate: int | None = None, channels: ChannelMode = "split") -> Transcript:
        """Two MixMonitor leg files (``<linkedid>-in.wav`` caller, ``-out.wav`` agent) as one call."""
        return self.transcribe_audio(load_legs(caller_path, agent_path, raw_rate), channels=channels)

    def transcribe_audio(self, audio: Audio, *, channels: ChannelMode = "split") -> Transcript:
        """``split``: one ChannelTranscript per channel (0 诉求人, 1 坐席; mono is the caller).
        ``mix``: the channels mixed down and decoded once as speaker 混合."""
        self.last_stats = []
        duration = audio.duration_seconds
        if channels == "mix":
            parts = [self.transcribe_samples(audio.mixdown(), audio.sample_rate, channel=0,
                                             speaker=SPEAKER_MIXED, source=audio.source)]
        elif channels == "split":
            if audio.channels > len(CHANNEL_SPEAKERS):
                raise ValueError(f"split mode takes mono or stereo audio, got {audio.channels} channels")
            parts = [self.transcribe_samples(audio.channel(i), audio.sample_rate, channel=i,
                                             speaker=CHANNEL_SPEAKERS[i], source=audio.source)
                     for i in range(audio.channels)]
        else:
            raise ValueError(f"channels must be 'split' or 'mix', got {channels!r}")
        return Transcript(model=self.model_name, duration_seconds=duration, channels=parts)

    def transcribe_clip(self, audio: Audio) -> ChannelTranscript:
        """Fast path for a short caller clip (IVR problem description): mono mix, speaker 诉求人."""
        self.last_stats = []
        return self.transcribe_samples(audio.mixdown(), audio.sample_rate, channel=0,
                                       speaker=SPEAKER_CALLER, source=audio.source)

    def transcribe_samples(self, samples: np.ndarray, sample_rate: int, *, channel: int = 0,
                           speaker: str = SPEAKER_CALLER, source: str = "") -> ChannelTranscript:
        """One channel of float samples in [-1, 1] at ``sample_rate``."""
        started = time.perf_counter()
        x = np.asarray(samples, dtype=np.float32)
        duration = len(x) / float(sample_rate)
        stream, timemap = gate(x, sample_rate, self.options.vad)
        decoded_seconds = len(stream) / float(sample_rate)
        segments: list[Segment] = []
        if len(stream):
            pcm = to_pcm16(resample(stream, sample_rate, self.sample_rate))
            results = self._decode(pcm)
            segments = self._segments(results, timemap, duration)
        stats = ChannelStats(duration, decoded_seconds, time.perf_counter() - started)
        self.last_stats.append(stats)
        log.debug("asr.channel.transcribed", source=source, channel=channel, audio_seconds=round(duration, 2),
                  decoded_seconds=round(decoded_seconds, 2), elapsed_seconds=round(stats.elapsed_seconds, 3),
                  segments=len(segments))
        return ChannelTranscript(channel=channel, speaker=speaker, segments=segments)

    # --- decoding ------------------------------------------------------------------------------

    def _take_recognizer(self) -> tuple[Any, float]:
        """A recognizer ready for a new channel and the stream offset (seconds) its word times carry."""
        from vosk import KaldiRecognizer

        rate = self.sample_rate
        if not self.options.reuse_recognizer:
            rec = KaldiRecognizer(self._model, float(rate))
            rec.SetWords(True)
            return rec, 0.0
        if self._recognizer is None or self._fed_samples / rate >= self.options.recycle_after_seconds:
            self._recognizer = KaldiRecognizer(self._model, float(rate))
            self._recognizer.SetWords(True)
            self._fed_samples = 0
        else:
            self._recognizer.Reset()
        return self._recognizer, self._fed_samples / float(rate)

    def _decode(self, pcm: bytes) -> list[list[dict[str, Any]]]:
        """Feed 16-bit PCM at the model rate; the word lists of each utterance, times from 0."""
        rec, offset = self._take_recognizer()
        chunk = max(int(self.options.chunk_seconds * self.sample_rate), 1600) * 2
        results: list[list[dict[str, Any]]] = []

        def collect(raw: str) -> None:
            words = json.loads(raw).get("result") or []
            if words:
                if offset:
                    for w in words:
                        w["start"] -= offset
                        w["end"] -= offset
                results.append(words)

        view = memoryview(pcm)
        try:
            for pos in range(0, len(view), chunk):
                if rec.AcceptWaveform(bytes(view[pos:pos + chunk])):
                    collect(rec.Result())
            collect(rec.FinalResult())
        except BaseException:
            self._recognizer = None  # its timeline offset is unknown now; the next channel gets a new one
            raise
        if self.options.reuse_recognizer:
            self._fed_samples += len(pcm) // 2
        return results

    def _segments(self, results: list[list[dict[str, Any]]], timemap: TimeMap, duration: float) -> list[Segment]:
        """Words mapped to the file's timeline (clamped, monotonic, non-overlapping), grouped in segments."""
        segments: list[Segment] = []
        prev_end = 0.0
        gap = self.options.segment_gap_seconds
        for utterance in results:
            current: list[Word] = []
            for w in utterance:
                start = min(max(timemap.to_source(float(w["start"])), prev_end, 0.0), duration)
                end = min(max(timemap.to_source(float(w["end"])), start), duration)
                word = Word(start=start, end=end, word=str(w["word"]), conf=float(w.get("conf", 1.0)))
                if current and start - current[-1].end > gap:
                    segments.append(_segment(current))
                    current = []
                current.append(word)
                prev_end = end
            if current:
                segments.append(_segment(current))
        return segments


def _segment(words: list[Word]) -> Segment:
    return Segment(start=words[0].start, end=words[-1].end, text=join_cjk(" ".join(w.word for w in words)), words=words)


# --- fast-path latency --------------------------------------------------------------------------

@dataclass(frozen=True)
class LatencyReport:
    clip_seconds: float
    runs_seconds: list[float]

    @property
    def best_seconds(self) -> float:
        return min(self.runs_seconds)

    @property
    def median_seconds(self) -> float:
        return float(np.median(self.runs_seconds))


def measure_clip_latency(engine: TranscriptionEngine, clip: Audio | str | Path, repeats: int = 3) -> LatencyReport:
    """Wall time to transcribe a short clip (e.g. 10 s) with the engine's already-loaded model.

    The first run is included: with a fresh recognizer per channel every run pays the same graph
    warm-up, which is exactly the latency an agent waits for."""
    audio = clip if isinstance(clip, Audio) else load_audio(clip)
    runs: list[float] = []
    for _ in range(max(repeats, 1)):
        t0 = time.perf_counter()
        engine.transcribe_clip(audio)
        runs.append(time.perf_counter() - t0)
    return LatencyReport(clip_seconds=audio.duration_seconds, runs_seconds=runs)
