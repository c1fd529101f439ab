"""Retention purge (QA review and legal hold respected, audited) and archive verification, also through the CLI."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from cli.main import main
from config import Settings
from recorder.finalize import finalize_call_recording
from recorder.retention import purge
from recorder.verify import verify_archive
from store.audit import list_events
from store.db import Database
from store.models import Call, QaReview, Recording
from store.records import get_call

from rec_helpers import add_call, copy_fixture_legs, make_settings, tone, write_wav

NOW = datetime(2027, 12, 1, 12, 0, tzinfo=timezone.utc)


def _archived(db: Database, settings: Settings, rid: str, days_old: int, **call_kw) -> int:
    add_call(db, rid, start=NOW - timedelta(days=days_old), **call_kw)
    write_wav(Path(settings.recordings.spool_dir) / f"{rid}.wav", tone(9.0, channels=2))
    r = finalize_call_recording(db, settings, rid)
    assert r.status == "archived" and r.recording_id is not None
    return r.recording_id


@pytest.fixture
def seeded(db: Database, tmp_path: Path) -> tuple[Settings, dict[str, int]]:
    settings = make_settings(tmp_path, HOTLINE_RETENTION__VOICEMAIL_DAYS="90")     # answered 365, default 180
    Path(settings.recordings.spool_dir).mkdir(parents=True)
    ids = {
        "old_answered": _archived(db, settings, "6.1", 400),
        "young_answered": _archived(db, settings, "6.2", 300),
        "old_abandoned": _archived(db, settings, "6.3", 200, answered=False),
        "in_review": _archived(db, settings, "6.4", 400),
        "call_hold": _archived(db, settings, "6.5", 400),
        "rec_hold": _archived(db, settings, "6.6", 400),
        "voicemail": _archived(db, settings, "6.7", 100, answered=False, outcome="留言"),
        "young_abandoned": _archived(db, settings, "6.8", 100, answered=False),
    }
    with db.write() as s:
        s.add(QaReview(call_id=get_call(s, "6.4").id, reviewer="qa1", items={}, total=0.0, status="in_review"))
        get_call(s, "6.5").legal_hold = True
        rec = s.get(Recording, ids["rec_hold"])
        assert rec is not None
        rec.legal_hold = True
    return settings, ids


def _state(db: Database, settings: Settings, rec_id: int) -> tuple[str, bool]:
    with db.session() as s:
        rec = s.get(Recording, rec_id)
        assert rec is not None and rec.uri
        return rec.status, (Path(settings.recordings.archive_dir) / rec.uri).exists()


def test_purge_by_outcome_respects_review_and_hold(db: Database, seeded: tuple[Settings, dict[str, int]]) -> None:
    settings, ids = seeded
    expected = {ids["old_answered"]: "would_purge", ids["old_abandoned"]: "would_purge", ids["voicemail"]: "would_purge",
                ids["in_review"]: "kept_qa_review", ids["call_hold"]: "kept_legal_hold", ids["rec_hold"]: "kept_legal_hold"}

    dry = purge(db, settings, dry_run=True, now=NOW)
    assert {r.recording_id: r.action for r in dry} == expected
    assert all(_state(db, settings, i) == ("archived", True) for i in ids.values())
    with db.session() as s:
        assert list_events(s, action="purge") == []

    done = purge(db, settings, now=NOW, actor="ops")
    assert {r.recording_id: r.action for r in done} == {
        k: ("purged" if v == "would_purge" else v) for k, v in expected.items()}
    for key in ("old_answered", "old_abandoned", "voicemail"):
        assert _state(db, settings, ids[key]) == ("purged", False)
    for key in ("young_answered", "in_review", "call_hold", "rec_hold", "young_abandoned"):
        assert _state(db, settings, ids[key]) == ("archived", True)
    with db.session() as s:
        events = list_events(s, action="purge")
        purged_at = s.scalar(select(Recording.purged_at).where(Recording.id == ids["old_answered"]))
        call = get_call(s, "6.1")
    assert sorted(int(e.target_id) for e in events) == sorted([ids["old_answered"], ids["old_abandoned"], ids["voicemail"]])
    assert all(e.actor == "ops" and e.target_type == "recording" and e.detail["file_existed"] for e in events)
    assert purged_at == NOW
    assert call.recording is not None                             # the record keeps what was archived

    again = purge(db, settings, now=NOW)
    assert {r.action for r in again} == {"kept_qa_review", "kept_legal_hold"}


def test_older_than_overrides_the_configured_days(db: Database, seeded: tuple[Settings, dict[str, int]]) -> None:
    settings, ids = seeded
    done = purge(db, settings, older_than_days=250, now=NOW)
    purged = {r.recording_id for r in done if r.action == "purged"}
    assert purged == {ids["old_answered"], ids["young_answered"]}   # 400 and 300 days; not 200 / 100
    assert {r.keep_days for r in done} == {250}


def test_verify_reports_missing_and_altered_files(db: Database, settings: Settings) -> None:
    spool = Path(settings.recordings.spool_dir)
    for rid in ("7.1", "7.2", "7.3"):
        add_call(db, rid)
        copy_fixture_legs(spool, rid)
        finalize_call_recording(db, settings, rid)
    assert verify_archive(db, settings).ok and verify_archive(db, settings).checked == 3

    archive = Path(settings.recordings.archive_dir)
    with db.session() as s:
        uris = dict(s.execute(select(Recording.record_id, Recording.uri)).all())
    f1 = archive / uris["7.1"]
    f1.write_bytes(f1.read_bytes()[:-1] + bytes([f1.read_bytes()[-1] ^ 1]))   # one bit flipped
    (archive / uris["7.2"]).unlink()

    report = verify_archive(db, settings)
    assert not report.ok and report.checked == 3
    assert sorted((i.record_id, i.problem) for i in report.issues) == [("7.1", "mismatch"), ("7.2", "missing")]
    assert verify_archive(db, settings, record_id="7.3").ok


def test_cli_finalize_verify_purge(db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    # configure_logging() would cache loggers bound to this test's captured stderr (closed after it).
    monkeypatch.setattr("cli.main.configure_logging", lambda **_kw: None)
    monkeypatch.setenv("HOTLINE_DATABASE__URL", db.url)
    for key in ("spool_dir", "archive_dir", "quarantine_dir"):
        monkeypatch.setenv(f"HOTLINE_RECORDINGS__{key.upper()}", getattr(settings.recordings, key))
    spool = Path(settings.recordings.spool_dir)
    add_call(db, "8.1", start=datetime.now(timezone.utc) - timedelta(days=40))
    copy_fixture_legs(spool, "8.1")
    add_call(db, "8.2")
    (spool / "8.2-in.wav").write_bytes(b"")
    (spool / "8.2-out.wav").write_bytes(b"")

    assert main(["recordings", "finalize", "--record-id", "8.1"]) == 0
    line = next(json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{"))
    assert line["status"] == "archived" and line["record_id"] == "8.1" and line["channels"] == 2
    assert main(["recordings", "finalize", "--all"]) == 0
    out = capsys.readouterr().out
    assert '"status": "quarantined"' in out and "1 quarantined" in out
    assert main(["recordings", "finalize", "--record-id", "no.such"]) == 2
    capsys.readouterr()

    assert main(["recordings", "verify"]) == 0
    assert "verified 1 archived recordings: 0 bad" in capsys.readouterr().out
    with db.session() as s:
        uri = s.scalar(select(Recording.uri).where(Recording.record_id == "8.1", Recording.status == "archived"))
    path = Path(settings.recordings.archive_dir) / uri
    original = path.read_bytes()
    path.write_bytes(original + b"\0")
    assert main(["recordings", "verify"]) == 1
    assert '"problem": "mismatch"' in capsys.readouterr().out
    path.write_bytes(original)

    assert main(["recordings", "purge", "--older-than", "30", "--dry-run"]) == 0
    assert "dry run: would_purge 1" in capsys.readouterr().out and path.exists()
    assert main(["recordings", "purge", "--older-than", "30"]) == 0
    assert "purged 1" in capsys.readouterr().out and not path.exists()
    with db.session() as s:
        assert s.scalar(select(Recording.status).where(Recording.uri == uri)) == "purged"
        assert s.scalar(select(Call.legal_hold).where(Call.record_id == "8.1")) is False
