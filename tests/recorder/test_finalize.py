"""Finalize on both store back-ends with the real Asterisk MixMonitor legs and generated audio."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import func, select

import recorder.finalize as finalize_mod
from config import Settings
from recorder.archive import sha256_file
from recorder.errors import CallNotComplete
from recorder.finalize import finalize_call_recording, finalize_pending, finalize_record
from store.jobs import FAST_PATH_PRIORITY
from store.db import Database
from store.models import Call, Job, Recording
from store.records import get_call

from rec_helpers import (FIXTURE_ID, FIXTURES, T0, Dirs, add_call, copy_fixture_legs, fixture_leg, make_settings, tone,
                         write_wav)

LID = "1795909999.101"


def _counts(db: Database) -> tuple[int, int]:
    with db.session() as s:
        return s.scalar(select(func.count(Recording.id))) or 0, s.scalar(select(func.count(Job.id))) or 0


def _call(db: Database, record_id: str = LID) -> Call:
    with db.session() as s:
        return get_call(s, record_id)


def test_real_legs_archived_as_one_stereo_file(db: Database, settings: Settings, dirs: Dirs) -> None:
    add_call(db, LID)
    assert "recording" in {p["field"] for p in _call(db).problems}      # answered call without recording
    copy_fixture_legs(dirs.spool, LID)

    r = finalize_call_recording(db, settings, LID)

    assert (r.status, r.kind, r.channels, r.sample_rate, r.format, r.changed) == ("archived", "call", 2, 8000, "flac", True)
    assert r.duration_seconds == pytest.approx(9.70)
    assert r.uri == f"2026/11/28/{LID}.flac"                            # local date, not the UTC one
    path = dirs.archive / r.uri
    assert sha256_file(path) == r.sha256
    data, rate = sf.read(str(path), dtype="int16")
    assert rate == 8000 and data.shape == (77600, 2)
    assert np.array_equal(data[:, 0], fixture_leg("in"))                  # left = caller (r)
    assert np.array_equal(data[:, 1], fixture_leg("out"))                 # right = agent (t)
    assert sf.info(str(path)).format == "FLAC"
    assert list(dirs.spool.iterdir()) == []                               # spool emptied

    call = _call(db)
    assert call.recording == {"uri": r.uri, "sha256": r.sha256, "duration_seconds": r.duration_seconds,
                              "channels": 2, "sample_rate": 8000}
    assert "recording" not in {p["field"] for p in call.problems}        # re-validated
    with db.session() as s:
        row = s.get(Recording, r.recording_id)
        job = s.get(Job, r.job_id)
    assert row is not None and row.call_id == call.id and row.status == "archived" and row.record_id == LID
    assert [(e["name"], e["role"]) for e in row.source_files] == [(f"{LID}-in.wav", "caller"), (f"{LID}-out.wav", "agent")]
    assert row.source_files[0]["sha256"] == sha256_file(FIXTURES / f"{FIXTURE_ID}-in.wav")
    assert job is not None and (job.kind, job.recording_id, job.call_id, job.priority, job.state) == (
        "transcribe", row.id, call.id, 0, "queued")


def test_finalizing_twice_changes_nothing(db: Database, settings: Settings, dirs: Dirs) -> None:
    add_call(db, LID)
    copy_fixture_legs(dirs.spool, LID)
    first = finalize_call_recording(db, settings, LID)
    archived = (dirs.archive / first.uri).read_bytes()           # type: ignore[operator]
    counts = _counts(db)
    updated_at = _call(db).updated_at

    second = finalize_call_recording(db, settings, LID)

    assert second == first and second.changed is False
    assert _counts(db) == counts == (1, 1)
    assert (dirs.archive / first.uri).read_bytes() == archived   # type: ignore[operator]
    assert _call(db).updated_at == updated_at


def test_crash_after_commit_is_finished_by_the_next_run(db: Database, settings: Settings, dirs: Dirs) -> None:
    add_call(db, LID)
    copy_fixture_legs(dirs.spool, LID)
    first = finalize_call_recording(db, settings, LID)
    copy_fixture_legs(dirs.spool, LID)                          # as if the spool removal never happened

    again = finalize_call_recording(db, settings, LID)

    assert again == first and again.changed is True
    assert list(dirs.spool.iterdir()) == []
    assert _counts(db) == (1, 1)


def test_crash_after_commit_with_altered_archive_keeps_the_spool(db: Database, settings: Settings, dirs: Dirs) -> None:
    add_call(db, LID)
    copy_fixture_legs(dirs.spool, LID)
    first = finalize_call_recording(db, settings, LID)
    copy_fixture_legs(dirs.spool, LID)
    (dirs.archive / first.uri).write_bytes(b"damaged")          # type: ignore[operator]
    with pytest.raises(finalize_mod.ArchiveMismatch):
        finalize_call_recording(db, settings, LID)
    assert sorted(p.name for p in dirs.spool.iterdir()) == [f"{LID}-in.wav", f"{LID}-out.wav"]


def test_crash_before_commit_leaves_spool_and_no_row(db: Database, settings: Settings, dirs: Dirs,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    add_call(db, LID)
    copy_fixture_legs(dirs.spool, LID)

    def boom(*_a: object, **_k: object) -> None:
        raise RuntimeError("power cut")

    monkeypatch.setattr(finalize_mod, "revalidate", boom)
    with pytest.raises(RuntimeError):
        finalize_call_recording(db, settings, LID)
    monkeypatch.undo()
    assert _counts(db) == (0, 0)
    assert sorted(p.name for p in dirs.spool.iterdir()) == [f"{LID}-in.wav", f"{LID}-out.wav"]
    assert not [p for p in dirs.archive.rglob("*") if p.name.endswith(".tmp")]

    r = finalize_call_recording(db, settings, LID)
    assert r.status == "archived" and _counts(db) == (1, 1) and list(dirs.spool.iterdir()) == []
    assert sha256_file(dirs.archive / r.uri) == r.sha256        # type: ignore[operator]


def test_stereo_wav_and_headerless_raw_and_wav_archive(db: Database, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, HOTLINE_RECORDINGS__ARCHIVE_FORMAT="wav")
    spool = Path(settings.recordings.spool_dir)
    spool.mkdir(parents=True)
    stereo = tone(9.0, channels=2)
    add_call(db, "1.1")
    write_wav(spool / "1.1.wav", stereo)
    add_call(db, "1.2")
    legs = np.column_stack([fixture_leg("in"), fixture_leg("out")])
    (spool / "1.2-stereo.raw").write_bytes(legs.astype("<i2").tobytes())
    add_call(db, "1.3")
    wide = tone(9.0, rate=16000, channels=2)
    (spool / "1.3-stereo.sln16").write_bytes(wide.astype("<i2").tobytes())

    results = {rid: finalize_call_recording(db, settings, rid) for rid in ("1.1", "1.2", "1.3")}

    for rid, expected, rate in (("1.1", stereo, 8000), ("1.2", legs, 8000), ("1.3", wide, 16000)):
        r = results[rid]
        assert (r.status, r.format, r.sample_rate, r.channels) == ("archived", "wav", rate, 2)
        assert r.uri == f"2026/11/28/{rid}.wav"
        data, got_rate = sf.read(str(Path(settings.recordings.archive_dir) / r.uri), dtype="int16")
        assert got_rate == rate and np.array_equal(data, expected)
    assert list(spool.iterdir()) == []


def test_by_products_beside_the_legs_are_removed_and_listed(db: Database, settings: Settings, dirs: Dirs) -> None:
    add_call(db, LID)
    copy_fixture_legs(dirs.spool, LID)
    shutil.copyfile(FIXTURES / f"{FIXTURE_ID}-mix.wav", dirs.spool / f"{LID}-mix.wav")   # MixMonitor b
    r = finalize_call_recording(db, settings, LID)
    assert r.status == "archived" and list(dirs.spool.iterdir()) == []
    with db.session() as s:
        row = s.get(Recording, r.recording_id)
    assert row is not None and {(e["name"], e["role"]) for e in row.source_files} >= {(f"{LID}-mix.wav", "redundant")}


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:60_000])


def _random(path: Path) -> None:
    path.write_bytes(np.random.default_rng(3).bytes(155244))


def _zero(path: Path) -> None:
    path.write_bytes(b"")


def _rate(path: Path) -> None:
    write_wav(path, tone(9.7, 11025), 11025)


def _shorter(path: Path) -> None:
    write_wav(path, fixture_leg("out")[: 8000 * 8])


@pytest.mark.parametrize("damage, leg, reason", [
    (_truncate, "in", "truncated: header declares"),
    (_random, "out", "unreadable"),
    (_zero, "in", "empty: zero-length"),
    (_rate, "out", "wrong rate: 11025 Hz"),
    (_shorter, "out", "legs differ in length: 9.70 s vs 8.00 s"),
    (Path.unlink, "out", "missing leg: the agent leg"),
])
def test_bad_legs_are_quarantined_not_deleted(db: Database, settings: Settings, dirs: Dirs, damage, leg: str,
                                              reason: str) -> None:
    add_call(db, LID)
    copy_fixture_legs(dirs.spool, LID)
    target = dirs.spool / f"{LID}-{leg}.wav"
    damage(target)
    before = {p.name: p.read_bytes() for p in dirs.spool.iterdir()}

    r = finalize_call_recording(db, settings, LID)

    assert r.status == "quarantined" and reason in (r.reason or "") and r.job_id is None
    assert list(dirs.spool.iterdir()) == []
    moved = {p.name: p.read_bytes() for p in (dirs.quarantine / LID).iterdir()}
    assert moved == before                                        # every byte kept
    assert r.uri is not None and r.uri.startswith(f"{LID}/")
    call = _call(db)
    assert call.recording is None and call.valid is False
    flagged = [p for p in call.problems if p["code"] == "quarantined"]
    assert len(flagged) == 1 and reason in flagged[0]["message"] and "录音文件(recording)" in flagged[0]["message"]
    with db.session() as s:
        row = s.get(Recording, r.recording_id)
        assert row is not None and (row.status, row.call_id, row.quarantine_reason) == ("quarantined", call.id, r.reason)
        assert s.scalar(select(func.count(Job.id))) == 0
    assert not list(dirs.archive.rglob("*.flac"))
    # idempotent: nothing left in the spool, the same answer
    assert finalize_call_recording(db, settings, LID) == r
    assert _counts(db) == (1, 0)


def test_audio_shorter_than_talk_time_or_longer_than_call_is_quarantined(db: Database, settings: Settings,
                                                                        dirs: Dirs) -> None:
    add_call(db, "2.1", talk=60)                                 # 9.7 s of audio for a 60 s conversation
    copy_fixture_legs(dirs.spool, "2.1")
    short = finalize_call_recording(db, settings, "2.1")
    assert short.status == "quarantined" and "too short: 9.70 s" in (short.reason or "")
    add_call(db, "2.2", ring=0, talk=3)                          # the call lasted 3 s
    copy_fixture_legs(dirs.spool, "2.2")
    long = finalize_call_recording(db, settings, "2.2")
    assert long.status == "quarantined" and "too long: 9.70 s" in (long.reason or "")
    assert set(p.name for p in (dirs.quarantine / "2.2").iterdir()) == {"2.2-in.wav", "2.2-out.wav"}


def test_swept_answered_call_keeps_its_recording(db: Database, settings: Settings, dirs: Dirs) -> None:
    """The sweep closes a lost answered call with ended_at = answered_at (a lower bound): its real, longer
    recording is archived, not quarantined as too long. The same record unswept is quarantined."""
    add_call(db, "2.3", ring=0, talk=0, ivr_path=["greeting", "queue", "swept"])
    copy_fixture_legs(dirs.spool, "2.3")
    swept = finalize_call_recording(db, settings, "2.3")
    assert swept.status == "archived", swept.reason
    add_call(db, "2.4", ring=0, talk=0, ivr_path=["greeting", "queue"])
    copy_fixture_legs(dirs.spool, "2.4")
    unswept = finalize_call_recording(db, settings, "2.4")
    assert unswept.status == "quarantined" and "too long" in (unswept.reason or "")


def test_mono_mix_alone_cannot_be_split(db: Database, settings: Settings, dirs: Dirs) -> None:
    add_call(db, LID)
    write_wav(dirs.spool / f"{LID}.wav", fixture_leg("in"))
    r = finalize_call_recording(db, settings, LID)
    assert r.status == "quarantined" and "expected 2 (caller | agent), got 1" in (r.reason or "")


def test_quarantine_crash_before_move_is_finished(db: Database, settings: Settings, dirs: Dirs,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    add_call(db, LID)
    copy_fixture_legs(dirs.spool, LID)
    _zero(dirs.spool / f"{LID}-in.wav")
    monkeypatch.setattr(finalize_mod.quarantine, "execute", lambda *_a, **_k: None)   # crash after the commit
    r = finalize_call_recording(db, settings, LID)
    monkeypatch.undo()
    assert r.status == "quarantined" and len(list(dirs.spool.iterdir())) == 2
    again = finalize_call_recording(db, settings, LID)
    assert again == r and again.changed is True
    assert list(dirs.spool.iterdir()) == [] and len(list((dirs.quarantine / LID).iterdir())) == 2
    assert _counts(db) == (1, 0)


def test_missing_recording_of_answered_call_gets_a_reason_row(db: Database, settings: Settings) -> None:
    add_call(db, "3.1")
    r = finalize_call_recording(db, settings, "3.1")
    assert (r.status, r.uri) == ("quarantined", None) and (r.reason or "").startswith("missing")
    assert finalize_call_recording(db, settings, "3.1") == r and _counts(db) == (1, 0)
    add_call(db, "3.2", answered=False)                          # abandoned in the queue, no MixMonitor file
    none = finalize_call_recording(db, settings, "3.2")
    assert none.status == "absent" and none.recording_id is None and _counts(db) == (1, 0)
    add_call(db, "3.3", complete=False)
    with pytest.raises(CallNotComplete):
        finalize_call_recording(db, settings, "3.3")


def _clip(db: Database, record_id: str, kind: str, uri: str) -> int:
    with db.write() as s:
        call = get_call(s, record_id)
        row = Recording(call_id=call.id, record_id=record_id, kind=kind, status="pending", uri=uri)
        s.add(row)
        s.flush()
        return row.id


def test_ivr_clip_and_voicemail(db: Database, settings: Settings, dirs: Dirs) -> None:
    add_call(db, LID)
    clip = tone(4.0)
    write_wav(dirs.spool / f"{LID}-desc.wav", clip)
    ok_id = _clip(db, LID, "ivr_clip", f"{LID}-desc.wav")
    (dirs.spool / f"{LID}-vm.wav").write_bytes(b"RIFF")
    bad_id = _clip(db, LID, "voicemail", str(dirs.spool / f"{LID}-vm.wav"))    # absolute uri accepted too
    copy_fixture_legs(dirs.spool, LID)

    results = finalize_record(db, settings, LID)

    call_r, ok, bad = results
    assert call_r.status == "archived"
    assert (ok.recording_id, ok.status, ok.channels, ok.sample_rate) == (ok_id, "archived", 1, 8000)
    assert ok.uri == f"2026/11/28/{LID}-ivr_clip-{ok_id}.flac"
    data, _ = sf.read(str(dirs.archive / ok.uri), dtype="int16")
    assert np.array_equal(data, clip) and sha256_file(dirs.archive / ok.uri) == ok.sha256
    with db.session() as s:
        job = s.get(Job, ok.job_id)
        assert job is not None and job.priority == FAST_PATH_PRIORITY and job.recording_id == ok_id
    assert (bad.recording_id, bad.status) == (bad_id, "quarantined") and "truncated" in (bad.reason or "")
    assert (dirs.quarantine / LID / f"{LID}-vm.wav").read_bytes() == b"RIFF"
    assert list(dirs.spool.iterdir()) == []
    assert _call(db).recording["uri"] == call_r.uri               # type: ignore[index]
    # twice: the same
    assert finalize_record(db, settings, LID) == results
    assert _counts(db) == (3, 2)


def test_sweeper_takes_completed_calls_with_settled_files(db: Database, settings: Settings, dirs: Dirs) -> None:
    add_call(db, "5.1")
    add_call(db, "5.2", start=T0 + timedelta(minutes=1))
    add_call(db, "5.3", complete=False)                          # still talking
    for rid in ("5.1", "5.2", "5.3", "5.9"):                     # 5.9: no call record (orphan)
        copy_fixture_legs(dirs.spool, rid)
    add_call(db, "5.4")
    write_wav(dirs.spool / "5.4-desc.wav", tone(2.0))
    clip_id = _clip(db, "5.4", "ivr_clip", "5.4-desc.wav")

    # Files just written: a settle time keeps the sweeper off them.
    assert finalize_pending(db, settings, settle_seconds=3600, now=T0 + timedelta(days=1)) == []

    results = finalize_pending(db, settings, settle_seconds=0)

    assert sorted((r.record_id, r.kind, r.status) for r in results) == [
        ("5.1", "call", "archived"), ("5.2", "call", "archived"), ("5.4", "ivr_clip", "archived")]
    assert next(r for r in results if r.kind == "ivr_clip").recording_id == clip_id
    assert sorted(p.name for p in dirs.spool.iterdir()) == ["5.3-in.wav", "5.3-out.wav", "5.9-in.wav", "5.9-out.wav"]
    assert finalize_pending(db, settings, settle_seconds=0) == []
