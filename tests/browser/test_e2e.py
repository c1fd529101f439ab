"""End to end in a real browser (Debian chromium via Playwright) against a real server on a free port.

An agent signs in and gets the screen pop of an emulated call (the call record and the ``screen_pop`` agent
event inserted as the flow code does), saves the ticket; then QA finds the call, plays its archived stereo
WAV, clicks a transcript word (the player's currentTime jumps to that word's start) and scores the call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import socket
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pytest
import soundfile as sf
from aiohttp import web
from playwright.sync_api import sync_playwright
from sqlalchemy import select

from config import Settings, load_settings
from store.db import Database, open_database
from store.migrate import upgrade
from store.models import AgentEvent, AuditEvent, Call, QaReview, Recording, Transcript
from store.records import save_snapshot
from store.users import add_user
from web.app import create_app

pytestmark = pytest.mark.slow      # registered marker; the default suite (make test / CI) runs it

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PASSWORD = "correct horse battery"
TIMEOUT_MS = 15_000
WORDS_CALLER = [("楼上", 0.4, 0.9), ("装修", 0.9, 1.4), ("噪音", 1.6, 2.1), ("很大", 2.1, 2.6)]
WORDS_AGENT = [("您好", 0.0, 0.35), ("请讲", 2.8, 3.3)]


class LiveServer:
    """The app served by aiohttp on 127.0.0.1:<free port> from a thread with its own event loop."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.loop = asyncio.new_event_loop()
        self.runner = web.AppRunner(app)
        self.thread = threading.Thread(target=self.loop.run_forever, name="live-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=30)

    async def _start(self) -> None:
        await self.runner.setup()
        await web.SockSite(self.runner, self.sock).start()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def e2e(tmp_path: Path) -> Iterator[tuple[Settings, Database, LiveServer]]:
    base = load_settings(environ={})
    settings = dataclasses.replace(
        base,
        general=dataclasses.replace(base.general, data_dir=str(tmp_path / "var")),
        web=dataclasses.replace(base.web, secret_key="e2e-secret-" + "x" * 40, cookie_secure=False),
        recordings=dataclasses.replace(base.recordings, archive_dir=str(tmp_path / "archive")),
    )
    db = open_database(f"sqlite:///{tmp_path / 'hotline.sqlite3'}")
    upgrade(db)
    with db.write() as s:
        add_user(s, "agent1", "agent", PASSWORD, display_name="坐席一", agent_id="1001")
        add_user(s, "qa1", "qa", PASSWORD, display_name="质检一")
    server = LiveServer(create_app(settings, db, poll_interval=0.1))
    server.start()
    yield settings, db, server
    server.stop()
    db.dispose()


def _login(page: Any, server: LiveServer, username: str) -> None:
    page.goto(f"{server.url}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def _emulated_call(db: Database, record_id: str) -> int:
    """What the flow does when the queue connects a caller to agent 1001: the open record and a screen pop."""
    start = datetime.now(timezone.utc) - timedelta(seconds=40)
    with db.write() as s:
        call = save_snapshot(s, {
            "record_id": record_id, "channel": "电话", "caller_number": "13912345678", "called_number": "12345",
            "call_start_at": start.isoformat(), "ivr_path": ["greeting", "queue"], "queue_id": "hotline",
            "queue_enter_at": (start + timedelta(seconds=5)).isoformat(),
            "answered_at": (start + timedelta(seconds=12)).isoformat(), "wait_seconds": 7, "call_outcome": "人工接通",
            "agent_id": "1001", "language": "普通话", "transfer_type": "无", "callback_required": False,
        }, complete=False)
        s.add(AgentEvent(agent_id="1001", call_id=call.id, kind="screen_pop",
                         payload={"record_id": record_id, "ivr_path": ["greeting", "queue"]}))
        return call.id


def _archive_recording(settings: Settings, db: Database, call_id: int, record_id: str) -> None:
    """A 4-second stereo WAV (caller | agent) in the archive and its word-timed transcript."""
    rate = 8000
    t = np.arange(rate * 4) / rate
    stereo = np.stack([0.2 * np.sin(2 * np.pi * 300 * t), 0.2 * np.sin(2 * np.pi * 500 * t)], axis=1)
    uri = "2026/05/01/e2e.wav"
    path = Path(settings.recordings.archive_dir) / uri
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, stereo, rate, subtype="PCM_16")
    with db.write() as s:
        rec = Recording(call_id=call_id, record_id=record_id, kind="call", status="archived", uri=uri, format="wav",
                        channels=2, sample_rate=rate, duration_seconds=4.0, source_files=[])
        s.add(rec)
        s.flush()
        for ch, speaker, words in ((0, "诉求人", WORDS_CALLER), (1, "坐席", WORDS_AGENT)):
            segs = [{"start": w[1], "end": w[2], "text": w[0],
                     "words": [{"start": w[1], "end": w[2], "word": w[0], "conf": 0.9}]} for w in words]
            s.add(Transcript(recording_id=rec.id, call_id=call_id, channel=ch, speaker=speaker, model="e2e",
                             segments=segs, text="".join(w[0] for w in words)))
        call = s.get(Call, call_id)
        assert call is not None
        call.ended_at = datetime.now(timezone.utc)
        call.talk_seconds = 30
        call.state = "complete"


def test_agent_ticket_then_qa_playback_and_scoring(e2e: tuple[Settings, Database, LiveServer]) -> None:
    settings, db, server = e2e
    record_id = "1795901133.57"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            # --- agent: screen pop, ticket
            agent = browser.new_context().new_page()
            agent.set_default_timeout(TIMEOUT_MS)
            _login(agent, server, "agent1")
            assert agent.url.endswith("/agent")
            agent.wait_for_selector('#ws-status[data-state="open"]')
            call_id = _emulated_call(db, record_id)
            agent.wait_for_selector(f'#pop[data-record-id="{record_id}"]')
            assert "13912345678" in agent.inner_text("#pop")
            form = agent.wait_for_selector("#ticket-area form.ticket-form")
            assert form is not None
            agent.select_option("#f-claimant_type", "自然人")
            agent.fill("#f-claimant_name", "王五")
            agent.select_option("#f-is_anonymous", "false")
            agent.select_option("#f-confidential", "false")
            agent.select_option("#f-appeal_type", "投诉")
            agent.fill("#f-category_code", "0301")
            agent.fill("#f-title", "楼上装修噪音扰民")
            agent.fill("#f-content", "来电人反映楼上装修噪音很大，晚上十点后仍在施工。")
            agent.fill("#f-incident_address", "朝阳区某小区3号楼")
            agent.fill("#f-district", "朝阳区")
            agent.select_option("#f-urgency", "一般")
            agent.select_option("#f-accepted", "true")
            agent.select_option("#f-disposition", "直接答复")
            agent.fill("#f-answer_text", "已告知物业及城管执法部门处理。")
            agent.select_option("#f-status", "直接办结")
            agent.click("#ticket-area button[type=submit]")
            banner = agent.wait_for_selector(".ticket-number[data-ticket-no]")
            assert banner is not None
            ticket_no = banner.get_attribute("data-ticket-no") or ""
            assert re.fullmatch(r"\d{14}", ticket_no)
            with db.session() as s:
                saved = s.scalar(select(Call).where(Call.record_id == record_id))
                assert saved is not None and saved.ticket_no == ticket_no and saved.title == "楼上装修噪音扰民"

            # --- the call ends; its recording is archived and transcribed
            _archive_recording(settings, db, call_id, record_id)

            # --- QA: find, play, click a word, score
            qa = browser.new_context().new_page()
            qa.set_default_timeout(TIMEOUT_MS)
            _login(qa, server, "qa1")
            qa.goto(f"{server.url}/qa")
            qa.fill("input[name=q]", "噪音")
            qa.fill("input[name=caller]", "5678")
            qa.click("form.search-form button[type=submit]")
            qa.click(f'a.call-link:has-text("{record_id}")')
            qa.wait_for_selector("#player")
            assert ticket_no in qa.inner_text("main")
            qa.wait_for_function("document.getElementById('player').readyState >= 1")
            assert qa.evaluate("document.getElementById('player').duration") == pytest.approx(4.0, abs=0.05)
            word = qa.locator('#transcript .w:has-text("噪音")')
            assert word.get_attribute("data-start") == "1.60"
            word.click()
            qa.wait_for_function("document.getElementById('player').currentTime >= 1.6")
            position = qa.evaluate("document.getElementById('player').currentTime")
            assert 1.6 <= position < 2.6, position
            assert "current" in (word.get_attribute("class") or "")
            qa.evaluate("document.getElementById('player').pause()")
            for item, value in (("greeting", "90"), ("accuracy", "80"), ("attitude", "100"), ("record", "70")):
                qa.fill(f"input[name=score_{item}]", value)
            qa.fill("textarea[name=comment]", "处置得当")
            qa.click("#qa-form button[type=submit]")
            qa.wait_for_selector("text=评分已保存")
        finally:
            browser.close()
    with db.session() as s:
        review = s.scalar(select(QaReview).where(QaReview.call_id == call_id))
        assert review is not None and review.reviewer == "qa1" and review.total == 84.0
        assert review.comment == "处置得当"
        played = s.scalars(select(AuditEvent).where(AuditEvent.action == "playback",
                                                    AuditEvent.target_id == record_id)).all()
        assert played and {e.actor for e in played} == {"qa1"}
