"""A raw scripted FastAGI server for emulator tests: it reads the environment block, runs a script on the
socket, and reports what the emulated call saw (no protocol layer of ours in between)."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

from agi.emulator import CallReport, CallSpec, EmulatorConfig, run_call

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[Any]]


async def raw_call(script: Script, spec: CallSpec,
                   config: EmulatorConfig) -> tuple[CallReport, Any, float]:
    """One call against a raw scripted server (no protocol layer); returns the report, the script's result and
    the wall-clock seconds the emulated call took."""
    outcome: dict[str, Any] = {}
    done = asyncio.Event()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\n", b""):
                pass
            outcome["value"] = await script(reader, writer)
        except Exception as exc:  # noqa: BLE001 - re-raised below
            outcome["error"] = exc
        finally:
            writer.close()
            done.set()

    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    started = time.monotonic()
    try:
        report = await asyncio.wait_for(run_call("127.0.0.1", server.sockets[0].getsockname()[1], spec, config), 20)
        elapsed = time.monotonic() - started
        await asyncio.wait_for(done.wait(), 5)
    finally:
        server.close()
        await server.wait_closed()
    if "error" in outcome:
        raise outcome["error"]
    return report, outcome.get("value"), elapsed
