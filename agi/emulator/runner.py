"""Connect emulated calls to a FastAGI server: one call, many at once, or from a thread."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace
from typing import Sequence

from agi.emulator.call import AgentConnector, EmulatedCall
from agi.emulator.model import CallReport, CallSpec, EmulatorConfig

DEFAULT_CONFIG = EmulatorConfig()


async def run_call(host: str, port: int, spec: CallSpec | None = None, config: EmulatorConfig = DEFAULT_CONFIG,
                   connect_timeout_s: float = 10.0) -> CallReport:
    """Play Asterisk for one call against the FastAGI server at ``host:port``; returns when the server closes.

    A Queue gosub (``EXEC Queue "q,c,,,,,agent-connect"``) opens a second session (the agent's channel) to
    the same server; its report is in ``report.queue.agent_session``.
    """
    spec = replace(spec or CallSpec(), host=host, port=port)

    async def connector(agent_spec: CallSpec) -> CallReport:
        return await _connect_and_run(host, port, agent_spec, config, connect_timeout_s, None)  # no nested gosubs

    return await _connect_and_run(host, port, spec, config, connect_timeout_s, connector)


async def _connect_and_run(host: str, port: int, spec: CallSpec, config: EmulatorConfig, connect_timeout_s: float,
                           connector: "AgentConnector | None") -> CallReport:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), connect_timeout_s)
    sock = writer.get_extra_info("socket")
    if sock is not None and config.tcp_nodelay:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return await EmulatedCall(reader, writer, spec, config, agent_connector=connector).run()


async def run_calls(host: str, port: int, specs: Sequence[CallSpec], config: EmulatorConfig = DEFAULT_CONFIG,
                    concurrency: int | None = None) -> list[CallReport | BaseException]:
    """Run many calls at once (at most ``concurrency`` in flight); failures are returned, not raised."""
    limit = asyncio.Semaphore(concurrency or max(len(specs), 1))

    async def one(spec: CallSpec) -> CallReport:
        async with limit:
            return await run_call(host, port, spec, config)

    return list(await asyncio.gather(*(one(s) for s in specs), return_exceptions=True))


async def run_process_call(command: Sequence[str], spec: CallSpec | None = None,
                           config: EmulatorConfig = DEFAULT_CONFIG) -> CallReport:
    """Process AGI: start ``command`` (e.g. ``["hotline-agi", "main"]``) and talk to it over its stdin/stdout."""
    spec = replace(spec or CallSpec(), network=False)
    proc = await asyncio.create_subprocess_exec(*command, stdin=asyncio.subprocess.PIPE,
                                                stdout=asyncio.subprocess.PIPE)
    assert proc.stdin is not None and proc.stdout is not None
    call = EmulatedCall(proc.stdout, proc.stdin, spec, config)
    report = await call.run()
    await proc.wait()
    return report


def run_call_sync(host: str, port: int, spec: CallSpec | None = None,
                  config: EmulatorConfig = DEFAULT_CONFIG) -> CallReport:
    """Blocking wrapper for thread-based tests and the command line (starts its own event loop)."""
    return asyncio.run(run_call(host, port, spec, config))
