"""The built-in benchmark flow "bench-ivr": a realistic IVR walk, kept free of heavy imports so the
process-AGI baseline (one Python process per call) pays only for what a real flow would import."""

from __future__ import annotations

from agi.process_agi import register_flow
from agi.protocol import HotlineAGI
from agi.request import AgiRequest

BENCH_FLOW = "bench-ivr"


def bench_ivr(agi: HotlineAGI, request: AgiRequest) -> None:
    """Answer, greeting and hours prompts, a one-key menu, the queue, the outcome."""
    agi.answer()
    agi.set_variable("HOTLINE_FLOW", request.script)
    agi.stream_file("hotline/welcome")
    agi.stream_file("hotline/hours")
    choice = agi.get_data("hotline/menu", 3000, 1)
    agi.set_variable("HOTLINE_CHOICE", choice.digits or "0")
    agi.stream_file("hotline/transfer")
    agi.exec_app("Queue", f"{request.params.get('queue', 'hotline')},c,,,{request.params.get('timeout', '60')}")
    agi.get_variable("QUEUESTATUS")
    agi.verbose(f"bench walk done choice={choice.digits}")


register_flow(BENCH_FLOW, bench_ivr)
