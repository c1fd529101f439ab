"""The engine on real Vosk with the installed Korean test model and espeak-ng speech."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asr.audio import AudioError, load_audio
from asr.engine import EngineOptions, TranscriptionEngine, measure_clip_latency
from asr.transcript import SPEAKER_AGENT, SPEAKER_CALLER, SPEAKER_MIXED, Transcript, Word, merge_conversation

from tests.asr.conftest import SyntheticCall

SLACK = 0.6  # seconds a word may sit outside the span its sentence was placed in (gate padding, alignment)


def assert_timeline(words: list[Word], duration: float) -> None:
    """Inside the file, each word well-formed, starts and ends monotonic, no overlap."""
    for w in words:
        assert 0.0 <= w.start <= w.end <= duration, w
        assert 0.0 <= w.conf <= 1.0
    for a, b in zip(words, words[1:]):
        assert a.start <= b.start and a.end <= b.start + 1e-9, (a, b)


def assert_words_in_regions(words: list[Word], regions: list[tuple[float, float]]) -> None:
    for w in words:
        assert any(a - SLACK <= w.start and w.end <= b + SLACK for a, b in regions), (w, regions)


def assert_every_region_heard(words: list[Word], regions: list[tuple[float, float]]) -> None:
    for a, b in regions:
        assert any(a - SLACK <= w.start <= b + SLACK for w in words), f"no word in {a:.1f}-{b:.1f}"


def check_split_call(t: Transcript, call: SyntheticCall) -> None:
    assert t.duration_seconds == pytest.approx(call.duration, abs=1e-3)
    assert [(c.channel, c.speaker) for c in t.channels] == [(0, SPEAKER_CALLER), (1, SPEAKER_AGENT)]
    for ch in t.channels:
        words = ch.words
        assert words, f"channel {ch.channel} produced no words"
        assert_timeline(words, t.duration_seconds)
        assert_words_in_regions(words, call.regions(ch.channel))
        assert_every_region_heard(words, call.regions(ch.channel))
        for seg in ch.segments:
            assert seg.text and seg.words and seg.start == seg.words[0].start and seg.end == seg.words[-1].end


def test_8k_stereo_split_puts_each_speaker_on_its_own_timeline(engine: TranscriptionEngine, call_8k: SyntheticCall) -> None:
    check_split_call(engine.transcribe_file(call_8k.path), call_8k)
    # The gate skipped the other party's turns: well under the file's length was decoded per channel.
    for stats in engine.last_stats:
        assert stats.decoded_seconds < 0.7 * stats.audio_seconds


def test_16k_stereo_split(engine: TranscriptionEngine, call_16k: SyntheticCall) -> None:
    check_split_call(engine.transcribe_file(call_16k.path), call_16k)


def test_flac_input(engine: TranscriptionEngine, call_8k: SyntheticCall, tmp_path: Path) -> None:
    flac = tmp_path / "call.flac"
    audio = load_audio(call_8k.path)
    import soundfile as sf

    sf.write(str(flac), audio.samples, audio.sample_rate, subtype="PCM_16")
    check_split_call(engine.transcribe_file(flac), call_8k)


def test_two_leg_files(engine: TranscriptionEngine, call_8k: SyntheticCall) -> None:
    check_split_call(engine.transcribe_legs(call_8k.caller_leg, call_8k.agent_leg), call_8k)


def test_mono_is_the_caller_and_mix_mode_hears_both(engine: TranscriptionEngine, call_8k: SyntheticCall) -> None:
    mono = engine.transcribe_file(call_8k.caller_leg)
    assert [(c.channel, c.speaker) for c in mono.channels] == [(0, SPEAKER_CALLER)]
    assert_words_in_regions(mono.channels[0].words, call_8k.regions(0))
    mixed = engine.transcribe_file(call_8k.path, channels="mix")
    assert [(c.channel, c.speaker) for c in mixed.channels] == [(0, SPEAKER_MIXED)]
    words = mixed.channels[0].words
    assert_timeline(words, mixed.duration_seconds)
    assert_every_region_heard(words, call_8k.regions(0) + call_8k.regions(1))


def test_headerless_sln_leg(engine: TranscriptionEngine, call_8k: SyntheticCall, tmp_path: Path) -> None:
    import numpy as np

    sln = tmp_path / "leg.sln"
    (np.clip(load_audio(call_8k.caller_leg).channel(0), -1, 1) * 32767).astype("<i2").tofile(sln)
    t = engine.transcribe_file(sln)
    assert_words_in_regions(t.channels[0].words, call_8k.regions(0))
    assert_every_region_heard(t.channels[0].words, call_8k.regions(0))


def test_silent_and_empty_audio_give_no_words(engine: TranscriptionEngine, silent_8k: Path, empty_wav: Path) -> None:
    silent = engine.transcribe_file(silent_8k)
    assert len(silent.channels) == 2 and all(c.segments == [] for c in silent.channels)
    assert silent.duration_seconds == pytest.approx(10.0)
    empty = engine.transcribe_file(empty_wav)
    assert empty.duration_seconds == 0.0 and all(c.segments == [] for c in empty.channels)


def test_corrupt_files_raise_audio_error(engine: TranscriptionEngine, corrupt_files: dict[str, Path]) -> None:
    for path in corrupt_files.values():
        with pytest.raises(AudioError):
            engine.transcribe_file(path)


def test_transcript_json_round_trip_and_conversation(engine: TranscriptionEngine, call_8k: SyntheticCall) -> None:
    t = engine.transcribe_file(call_8k.path)
    again = Transcript.from_dict(json.loads(json.dumps(t.to_dict(), ensure_ascii=False)))
    assert again.model == "vosk-model-small-ko"
    assert [c.text for c in again.channels] == [c.text for c in t.channels]
    turns = merge_conversation(t)
    assert [tu.start for tu in turns] == sorted(tu.start for tu in turns)
    # Agent greets first, then the parties alternate as placed.
    assert [tu.speaker for tu in turns] == [SPEAKER_AGENT, SPEAKER_CALLER, SPEAKER_AGENT, SPEAKER_CALLER]


def test_reused_recognizer_rebases_word_times(engine: TranscriptionEngine, call_8k: SyntheticCall) -> None:
    assert engine.options.reuse_recognizer
    engine.transcribe_file(call_8k.path)
    # This pass decodes on a recognizer that has already consumed whole calls: times must be re-based.
    check_split_call(engine.transcribe_file(call_8k.path), call_8k)


def test_fresh_recognizer_per_channel(engine: TranscriptionEngine, call_8k: SyntheticCall) -> None:
    fresh = TranscriptionEngine(engine.info, EngineOptions(reuse_recognizer=False))
    assert fresh._model is engine._model  # the model is loaded once per process, whatever the options
    check_split_call(fresh.transcribe_file(call_8k.path), call_8k)


def test_thirty_minute_file(engine: TranscriptionEngine, long_call_8k: SyntheticCall) -> None:
    assert long_call_8k.duration == pytest.approx(1800.0, abs=0.1)
    t = engine.transcribe_file(long_call_8k.path)
    check_split_call(t, long_call_8k)
    assert t.channels[0].words[-1].start > 1780.0  # the sentence near the end lands near the end
    # Half an hour of line noise is gated out: only the sentences (plus padding) were decoded.
    assert all(s.decoded_seconds < 30.0 for s in engine.last_stats), engine.last_stats


def test_clip_latency(engine: TranscriptionEngine, call_8k: SyntheticCall) -> None:
    report = measure_clip_latency(engine, call_8k.agent_leg, repeats=2)
    assert report.clip_seconds == pytest.approx(call_8k.duration, abs=1e-3)
    assert len(report.runs_seconds) == 2 and 0 < report.best_seconds <= report.median_seconds
