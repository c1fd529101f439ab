"""QA pages and JSON API: search with role scope, call detail with masking, audio with HTTP Range and audit,
scoring (both back-ends)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import select

from config import Settings
from store.db import Database
from store.models import AuditEvent, Call, QaReview, Recording, Transcript

SEGMENTS_CALLER = [{"start": 0.5, "end": 1.6, "text": "楼上噪音很大",
                    "words": [{"start": 0.5, "end": 0.9, "word": "楼上", "conf": 0.9},
                              {"start": 0.9, "end": 1.3, "word": "噪音", "conf": 0.95},
                              {"start": 1.3, "end": 1.6, "word": "很大", "conf": 0.9}]}]
SEGMENTS_AGENT = [{"start": 0.0, "end": 0.4, "text": "您好", "words": [{"start": 0.0, "end": 0.4, "word": "您好", "conf": 1.0}]}]


@pytest.fixture
def web_settings(web_settings: Settings, tmp_path: Path) -> Settings:
    archive = tmp_path / "archive"
    archive.mkdir()
    return dataclasses.replace(web_settings, recordings=dataclasses.replace(web_settings.recordings,
                                                                             archive_dir=str(archive)))


def _add_recording(db: Database, settings: Settings, call_id: int, record_id: str, uri: str = "2026/05/01/a.wav") -> Path:
    path = Path(settings.recordings.archive_dir) / uri
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(8000 * 2) / 8000.0
    stereo = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.3 * np.sin(2 * np.pi * 660 * t)], axis=1)
    sf.write(path, stereo, 8000, subtype="PCM_16")
    with db.write() as s:
        rec = Recording(call_id=call_id, record_id=record_id, kind="call", status="archived", uri=uri, format="wav",
                        channels=2, sample_rate=8000, duration_seconds=2.0, source_files=[])
        s.add(rec)
        s.flush()
        for ch, speaker, segs in ((0, "诉求人", SEGMENTS_CALLER), (1, "坐席", SEGMENTS_AGENT)):
            s.add(Transcript(recording_id=rec.id, call_id=call_id, channel=ch, speaker=speaker, model="vosk-test",
                             segments=segs, text="".join(x["text"] for x in segs)))
    return path


@pytest.fixture
def qa_call(make_call: Any, db: Database, web_settings: Settings) -> dict[str, Any]:
    fields = make_call(agent_id="1001", caller_number="13912345678", confidential=True, claimant_name="李四")
    fields["path"] = _add_recording(db, web_settings, fields["id"], fields["record_id"])
    return fields


async def test_search_scope_and_filters(client_for: Any, qa_call: dict[str, Any], make_call: Any) -> None:
    other = make_call(agent_id="1002", caller_number="13700000000")
    qa = await client_for("qa")
    body = await (await qa.get("/api/calls?q=噪音")).json()
    assert [c["record_id"] for c in body["calls"]] == [qa_call["record_id"]]
    # confidential claimant: the number is masked for QA
    assert body["calls"][0]["caller_number"] == "*******5678"
    body = await (await qa.get("/api/calls?caller=5678")).json()
    assert [c["record_id"] for c in body["calls"]] == [qa_call["record_id"]]
    body = await (await qa.get("/api/calls?agent=1002")).json()
    assert [c["record_id"] for c in body["calls"]] == [other["record_id"]]
    resp = await qa.get("/api/calls?outcome=bogus")
    assert resp.status == 400 and "呼叫结果" in (await resp.json())["message"]
    # an agent sees only the calls they handled
    agent2 = await client_for("agent", agent_id="1002")
    body = await (await agent2.get("/api/calls")).json()
    assert [c["record_id"] for c in body["calls"]] == [other["record_id"]]
    resp = await agent2.get(f"/api/calls/{qa_call['record_id']}")
    assert resp.status == 403
    # the HTML search page renders the same result with a link to the call page
    html = await (await qa.get("/qa?q=噪音")).text()
    assert f'/qa/calls/{qa_call["record_id"]}' in html and "来电查询与质检" in html


async def test_call_detail(client_for: Any, qa_call: dict[str, Any]) -> None:
    qa = await client_for("qa")
    body = await (await qa.get(f"/api/calls/{qa_call['record_id']}")).json()
    assert body["record"]["caller_number"] == "*******5678" and body["record"]["claimant_name"] == "李*"
    assert [t["speaker"] for t in body["transcripts"]] == ["诉求人", "坐席"]
    assert body["transcripts"][0]["segments"][0]["words"][1]["word"] == "噪音"
    assert body["recordings"][0]["audio_url"].startswith(f"/api/calls/{qa_call['record_id']}/audio?recording=")
    assert [r["id"] for r in body["rubric"]] == ["greeting", "accuracy", "attitude", "record"]
    html = await (await qa.get(f"/qa/calls/{qa_call['record_id']}")).text()
    assert 'class="w" data-start="0.90" data-end="1.30"' in html
    assert "来电号码" in html and "呼叫信息" in html and 'id="player"' in html and "/static/qa.js" in html
    assert "13912345678" not in html
    # the handling agent sees the identity
    agent = await client_for("agent", agent_id="1001")
    body = await (await agent.get(f"/api/calls/{qa_call['record_id']}")).json()
    assert body["record"]["caller_number"] == "13912345678"
    assert (await qa.get("/api/calls/nope")).status == 404


async def test_audio_range_and_audit(client_for: Any, qa_call: dict[str, Any], db: Database) -> None:
    qa = await client_for("qa")
    data = qa_call["path"].read_bytes()
    url = f"/api/calls/{qa_call['record_id']}/audio"
    resp = await qa.get(url)
    assert resp.status == 200 and resp.headers["Content-Type"] == "audio/wav"
    assert resp.headers["Accept-Ranges"] == "bytes" and await resp.read() == data
    resp = await qa.get(url, headers={"Range": "bytes=100-199"})
    assert resp.status == 206 and resp.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert await resp.read() == data[100:200]
    resp = await qa.get(url, headers={"Range": "bytes=0-9"})
    assert resp.status == 206 and await resp.read() == data[:10]
    resp = await qa.get(url, headers={"Range": f"bytes={len(data) + 10}-"})
    assert resp.status == 416
    resp = await qa.get(url + "?download=1")
    assert resp.status == 200 and resp.headers["Content-Disposition"].startswith("attachment")
    with db.session() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.target_id == qa_call["record_id"])
                           .order_by(AuditEvent.id)).all()
    # playback starts (no Range, Range from 0) and the download are audited; the seek to byte 100 is not
    assert [e.action for e in events] == ["playback", "playback", "download"]
    assert {e.actor for e in events} == {qa.user.username}
    other_agent = await client_for("agent", agent_id="1009")
    assert (await other_agent.get(url)).status == 403


async def test_audio_refuses_paths_outside_archive(client_for: Any, make_call: Any, db: Database,
                                                   web_settings: Settings, tmp_path: Path) -> None:
    call = make_call(agent_id="1001")
    outside = tmp_path / "secret.wav"
    outside.write_bytes(b"RIFF....")
    with db.write() as s:
        s.add(Recording(call_id=call["id"], record_id=call["record_id"], kind="call", status="archived",
                        uri="../secret.wav", source_files=[]))
    qa = await client_for("qa")
    resp = await qa.get(f"/api/calls/{call['record_id']}/audio")
    assert resp.status == 404 and (await resp.json())["error"] == "RecordingUnavailable"


async def test_qa_review_json_and_form(client_for: Any, qa_call: dict[str, Any], db: Database) -> None:
    qa = await client_for("qa")
    url = f"/api/calls/{qa_call['record_id']}/qa"
    resp = await qa.post_json(url, {"scores": {"greeting": 90, "accuracy": 80, "attitude": 100, "record": 70},
                                    "comment": "答复准确"})
    assert resp.status == 201, await resp.text()
    review = await resp.json()
    assert review["total"] == 84.0     # (90×20 + 80×40 + 100×20 + 70×20) ÷ 100
    resp = await qa.post_json(url, {"scores": {"greeting": 90}})
    assert resp.status == 422 and "请评分" in (await resp.json())["message"]
    resp = await qa.post_json(url, {"scores": {"greeting": 120, "accuracy": 1, "attitude": 1, "record": 1}})
    assert resp.status == 422
    agent = await client_for("agent", agent_id="1001")
    assert (await agent.post_json(url, {"scores": {}})).status == 403
    # the HTML form
    resp = await qa.post(f"/qa/calls/{qa_call['record_id']}/review",
                         {"score_greeting": "100", "score_accuracy": "100", "score_attitude": "50", "score_record": "50",
                          "comment": "表单评分"})
    assert resp.status == 303 and resp.headers["Location"].endswith("?saved=1")
    with db.session() as s:
        rows = s.scalars(select(QaReview).join(Call).where(Call.record_id == qa_call["record_id"])
                         .order_by(QaReview.id)).all()
        assert [(r.reviewer, r.total, r.comment) for r in rows] == [(qa.user.username, 84.0, "答复准确"),
                                                                    (qa.user.username, 80.0, "表单评分")]
        assert rows[0].items["accuracy"] == {"label": "答复准确", "weight": 40, "score": 80.0}
    html = await (await qa.get(f"/qa/calls/{qa_call['record_id']}?saved=1")).text()
    assert "评分已保存" in html and "表单评分" in html
    body = await (await qa.get(f"/api/calls/{qa_call['record_id']}")).json()
    assert body["record"]["qa_review"]["total"] == 80.0 and len(body["qa_reviews"]) == 2
