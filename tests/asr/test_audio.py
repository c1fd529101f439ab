"""Audio loading, leg joining, resampling and the silence gate (no recognizer needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.audio import AudioError, load_audio, load_legs, resample, to_pcm16
from asr.vad import VadConfig, gate, voiced_regions


@pytest.mark.parametrize(("src", "dst"), [(8000, 16000), (16000, 8000), (22050, 16000)])
def test_resample_keeps_in_band_tones(src: int, dst: int) -> None:
    t = np.arange(src) / src
    for freq in (300.0, 1000.0, 3000.0):
        y = resample(np.sin(2 * np.pi * freq * t).astype(np.float32), src, dst)
        assert len(y) == dst
        ref = np.sin(2 * np.pi * freq * np.arange(len(y)) / dst)
        mid = slice(len(y) // 8, -len(y) // 8)
        assert np.max(np.abs(y[mid] - ref[mid])) < 0.01


def test_resample_removes_what_the_lower_rate_cannot_carry() -> None:
    x = np.sin(2 * np.pi * 6000 * np.arange(16000) / 16000).astype(np.float32)
    y = resample(x, 16000, 8000)
    assert np.sqrt(np.mean(y[500:-500] ** 2)) < 0.01  # a 6 kHz tone must not alias into 2 kHz


def test_pcm16_conversion_clips() -> None:
    pcm = np.frombuffer(to_pcm16(np.array([0.0, 0.5, 2.0, -2.0], dtype=np.float32)), dtype="<i2")
    assert pcm.tolist() == [0, 16383, 32767, -32767]


def test_load_stereo_wav_and_flac(tmp_path: Path) -> None:
    data = np.stack([np.linspace(-0.5, 0.5, 800), np.zeros(800)], axis=1).astype(np.float32)
    for ext in ("wav", "flac"):
        path = tmp_path / f"x.{ext}"
        sf.write(str(path), data, 8000, subtype="PCM_16")
        audio = load_audio(path)
        assert (audio.sample_rate, audio.channels, audio.frames) == (8000, 2, 800)
        assert audio.duration_seconds == pytest.approx(0.1)
        assert np.allclose(audio.channel(0), data[:, 0], atol=1e-4)


def test_headerless_sln_and_raw(tmp_path: Path) -> None:
    pcm = (np.arange(1600, dtype=np.int16) - 800).astype("<i2")
    sln = tmp_path / "clip.sln"
    pcm.tofile(sln)
    audio = load_audio(sln)
    assert audio.sample_rate == 8000 and audio.frames == 1600
    assert audio.channel(0)[0] == pytest.approx(-800 / 32768)
    raw = tmp_path / "clip.raw"
    pcm.tofile(raw)
    with pytest.raises(AudioError, match="declared sample rate"):
        load_audio(raw)
    assert load_audio(raw, raw_rate=16000).duration_seconds == pytest.approx(0.1)
    odd = tmp_path / "odd.sln"
    odd.write_bytes(pcm.tobytes()[:-1])
    with pytest.raises(AudioError, match="odd byte count"):
        load_audio(odd)


@pytest.mark.parametrize("kind", ["truncated_header", "random_bytes", "zero_length", "random_flac"])
def test_corrupt_input_raises_audio_error(corrupt_files: dict[str, Path], kind: str) -> None:
    with pytest.raises(AudioError) as info:
        load_audio(corrupt_files[kind])
    assert info.value.reason
    assert info.value.path == str(corrupt_files[kind])


def test_missing_file_and_too_many_channels(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match="cannot open"):
        load_audio(tmp_path / "nope.wav")
    path = tmp_path / "three.wav"
    sf.write(str(path), np.zeros((100, 3), dtype=np.float32), 8000)
    with pytest.raises(AudioError, match="3 channels"):
        load_audio(path)


def test_legs_join_as_caller_agent_and_pad_the_shorter(tmp_path: Path) -> None:
    caller, agent = tmp_path / "1-in.wav", tmp_path / "1-out.wav"
    sf.write(str(caller), np.full(800, 0.25, dtype=np.float32), 8000, subtype="PCM_16")
    sf.write(str(agent), np.full(400, -0.25, dtype=np.float32), 8000, subtype="PCM_16")
    both = load_legs(caller, agent)
    assert (both.channels, both.frames) == (2, 800)
    assert both.channel(0)[700] == pytest.approx(0.25, abs=1e-3)
    assert both.channel(1)[100] == pytest.approx(-0.25, abs=1e-3)
    assert both.channel(1)[700] == 0.0
    other = tmp_path / "1-out16.wav"
    sf.write(str(other), np.zeros(800, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="sample rates differ"):
        load_legs(caller, other)


def _bursts(rate: int) -> tuple[np.ndarray, list[tuple[float, float]]]:
    rng = np.random.default_rng(3)
    x = (rng.standard_normal(rate * 10) * 1e-3).astype(np.float32)
    spans = [(1.0, 2.0), (6.0, 7.5)]
    for a, b in spans:
        n = int((b - a) * rate)
        x[int(a * rate):int(a * rate) + n] += 0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)
    return x, spans


def test_gate_keeps_bursts_and_cuts_noise() -> None:
    x, spans = _bursts(8000)
    cfg = VadConfig()
    regions = voiced_regions(x, 8000, cfg)
    assert len(regions) == 2
    for (a, b), (sa, sb) in zip(regions, spans):
        assert a / 8000 == pytest.approx(sa - cfg.pad_seconds, abs=0.03)
        assert b / 8000 == pytest.approx(sb + cfg.pad_seconds, abs=0.03)
    stream, timemap = gate(x, 8000, cfg)
    assert len(stream) == sum(b - a for a, b in regions) < len(x) / 2
    # Stream time 0 is the start of the first region; a time in the second piece maps past the cut.
    assert timemap.to_source(0.0) == pytest.approx(regions[0][0] / 8000)
    second = (regions[0][1] - regions[0][0]) / 8000 + 0.5
    assert timemap.to_source(second) == pytest.approx(regions[1][0] / 8000 + 0.5)
    samples = [timemap.to_source(t) for t in np.linspace(0, len(stream) / 8000 + 1, 200)]
    assert samples == sorted(samples) and samples[-1] <= len(x) / 8000


def test_gate_on_silence_and_empty_input() -> None:
    assert voiced_regions(np.zeros(8000, dtype=np.float32), 8000) == []
    quiet = (np.random.default_rng(0).standard_normal(8000) * 1e-4).astype(np.float32)
    assert voiced_regions(quiet, 8000) == []
    stream, timemap = gate(np.zeros(0, dtype=np.float32), 8000)
    assert len(stream) == 0 and timemap.to_source(1.0) == 0.0
