"""Logs are JSON lines with the call's ids bound, and phone numbers masked (last 4 digits kept)."""

from __future__ import annotations

import io
import json
import logging
import sys

import structlog

from config.log import bind_call, configure_logging, get_logger, mask_phone, unbind_call


def test_mask_phone() -> None:
    assert mask_phone("caller 13800138000 called") == "caller *******8000 called"
    assert mask_phone("+8613800138000") == "**********8000"
    assert mask_phone("ticket 20261128000001") == "ticket 20261128000001"     # 14-digit ticket numbers stay
    assert mask_phone("uniqueid 1795901013.1") == "uniqueid 1795901013.1"
    assert mask_phone("ext 1001") == "ext 1001"


def test_json_lines_with_call_ids_and_masking(monkeypatch) -> None:
    buf = io.StringIO()
    monkeypatch.setattr(sys, "stderr", buf)
    configure_logging(json=True)
    try:
        bind_call(uniqueid="1795901013.1", linkedid="1795901013.1")
        get_logger("t").info("call_started", caller_number="13800138000", note="callback to 13900139000")
        logging.getLogger("aiohttp.access").info("GET /?phone=13700137000")
    finally:
        unbind_call()
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()
    lines = [json.loads(line) for line in buf.getvalue().splitlines()]
    event = lines[0]
    assert event["event"] == "call_started" and event["uniqueid"] == "1795901013.1"
    assert event["caller_number"] == "*******8000" and event["note"] == "callback to *******9000"
    assert "13700137000" not in buf.getvalue() and "*******7000" in lines[1]["event"]
