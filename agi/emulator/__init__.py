"""Asterisk peer emulator: plays Asterisk's side of FastAGI as the recorded fixtures show.

    report = await run_call("127.0.0.1", 4573, CallSpec(script="main", caller=CallerScript(responses=("1",))))
"""

from agi.emulator.call import EmulatedCall
from agi.emulator.model import (
    CallerScript,
    CallReport,
    CallSpec,
    CommandRecord,
    EmulatorConfig,
    GosubTarget,
    QueueOutcome,
    QueueResult,
    TimedKey,
)
from agi.emulator.runner import run_call, run_call_sync, run_calls, run_process_call

__all__ = [
    "CallReport", "CallSpec", "CallerScript", "CommandRecord", "EmulatedCall", "EmulatorConfig", "GosubTarget",
    "QueueOutcome", "QueueResult", "TimedKey", "run_call", "run_call_sync", "run_calls", "run_process_call",
]
