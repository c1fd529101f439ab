"""Spool file checks on real Asterisk files and on broken ones (no database)."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from recorder.audio_check import read_audio
from recorder.errors import RecordingRejected
from recorder.spool import discover, spool_linkedids

from rec_helpers import FIXTURE_ID, FIXTURES, fixture_leg, tone, write_wav


def test_real_mixmonitor_leg_reads_as_soxi_reports() -> None:
    data, info = read_audio(FIXTURES / f"{FIXTURE_ID}-in.wav")
    assert (info.sample_rate, info.channels, info.frames, info.format) == (8000, 1, 77600, "wav")
    assert info.duration_seconds == pytest.approx(9.70)
    assert data.dtype == np.int16 and data.shape == (77600, 1)
    # the caller leg is silence for 3 s, then demo-thanks
    assert np.abs(data[: 8000 * 2]).max() < 50 and np.abs(data[8000 * 3:8000 * 6]).max() > 1000


def test_truncated_wav_is_rejected_although_libsndfile_reads_it(tmp_path: Path) -> None:
    path = tmp_path / "t.wav"
    path.write_bytes((FIXTURES / f"{FIXTURE_ID}-in.wav").read_bytes()[:50_000])
    assert sf.info(str(path)).frames > 0          # libsndfile clamps silently…
    with pytest.raises(RecordingRejected) as exc:  # …the recorder does not
        read_audio(path)
    assert exc.value.reason.startswith("truncated: header declares 155200 bytes of audio, file holds 49956")


def test_unclosed_wav_header_is_rejected(tmp_path: Path) -> None:
    raw = bytearray((FIXTURES / f"{FIXTURE_ID}-out.wav").read_bytes())
    raw[40:44] = struct.pack("<I", 0)             # data size never written back
    path = tmp_path / "u.wav"
    path.write_bytes(bytes(raw))
    with pytest.raises(RecordingRejected, match="not closed"):
        read_audio(path)


@pytest.mark.parametrize("content, reason", [
    (b"", "empty"),
    (np.random.default_rng(7).bytes(4096), "unreadable"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", "truncated"),
])
def test_broken_bytes_are_rejected(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "x.wav"
    path.write_bytes(content)
    with pytest.raises(RecordingRejected) as exc:
        read_audio(path)
    assert exc.value.reason.startswith(reason)


def test_wrong_rate_and_header_only_are_rejected(tmp_path: Path) -> None:
    with pytest.raises(RecordingRejected, match="wrong rate: 44100 Hz"):
        read_audio(write_wav(tmp_path / "a.wav", tone(1.0, 44100), 44100))
    with pytest.raises(RecordingRejected, match="empty: no audio frames"):
        read_audio(write_wav(tmp_path / "b.wav", np.zeros(0, dtype=np.int16)))
    with pytest.raises(RecordingRejected, match="missing"):
        read_audio(tmp_path / "none.wav")


def test_headerless_signed_linear_uses_the_declared_rate(tmp_path: Path) -> None:
    stereo = np.column_stack([fixture_leg("in"), fixture_leg("out")])
    (tmp_path / "c-stereo.raw").write_bytes(stereo.astype("<i2").tobytes())
    data, info = read_audio(tmp_path / "c-stereo.raw", raw_channels=2)
    assert (info.sample_rate, info.channels, info.frames) == (8000, 2, 77600)
    assert np.array_equal(data, stereo)
    (tmp_path / "w.sln16").write_bytes(tone(0.5, 16000).astype("<i2").tobytes())
    assert read_audio(tmp_path / "w.sln16")[1].sample_rate == 16000
    (tmp_path / "odd.raw").write_bytes(stereo.astype("<i2").tobytes()[:-2])
    with pytest.raises(RecordingRejected, match="truncated: .* not a whole number"):
        read_audio(tmp_path / "odd.raw", raw_channels=2)


def test_discovery_prefers_legs_and_lists_by_products(tmp_path: Path) -> None:
    for name in ("9.1-in.wav", "9.1-out.wav", "9.1.wav", "9.1-mix.wav", "9.2-stereo.raw", "9.3.wav",
                 "9.4-mix.wav", ".9.5-in.wav.tmp"):
        (tmp_path / name).write_bytes(b"x")
    assert spool_linkedids(tmp_path) == ["9.1", "9.2", "9.3"]
    legs = discover(tmp_path, "9.1")
    assert legs is not None and legs.layout == "legs"
    assert [p.name for p in legs.files] == ["9.1-in.wav", "9.1-out.wav"]
    assert sorted(p.name for p in legs.redundant) == ["9.1-mix.wav", "9.1.wav"]
    assert discover(tmp_path, "9.2").layout == "raw"        # type: ignore[union-attr]
    assert discover(tmp_path, "9.3").layout == "stereo"     # type: ignore[union-attr]
    assert discover(tmp_path, "9.4") is None
