"""The FastAGI server: malformed peers cost one session and never the server; concurrency; stop; process AGI."""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from agi.channel import ChannelHungUp
from agi.emulator import CallerScript, CallSpec, EmulatorConfig, run_call, run_calls, run_process_call
from agi.process_agi import FLOW_HANDLERS, UnknownFlow, lookup_handler, register_flow
from agi.protocol import HotlineAGI
from agi.request import AgiRequest
from agi.server import FastAGIServer, options_from_settings
from config import load_settings

ENV = b"agi_network: yes\nagi_network_script: main\nagi_uniqueid: 1.1\n\n"


def ok_handler(calls: list) -> Callable[[HotlineAGI, AgiRequest], None]:
    def handler(agi: HotlineAGI, request: AgiRequest) -> None:
        agi.answer()
        calls.append(request.uniqueid)
    return handler


def good_call(server: FastAGIServer) -> Any:
    host, port = server.address  # type: ignore[misc]
    return asyncio.run(run_call(host, port, CallSpec(), EmulatorConfig()))


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def raw_peer(server: FastAGIServer, payload: bytes, then: str = "close", hold_s: float = 0.0) -> bytes:
    sock = socket.create_connection(server.address)  # type: ignore[arg-type]
    sock.settimeout(5)
    if payload:
        sock.sendall(payload)
    time.sleep(hold_s)
    received = b""
    if then == "read":
        try:
            while chunk := sock.recv(4096):
                received += chunk
        except OSError:
            pass
    elif then == "reset":
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    return received


@pytest.mark.parametrize("payload,hold_s", [
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0.0),           # garbage
    (b"\x00\xff\xfe binary junk\n", 0.0),
    (b"agi_network: yes\nagi_network_scr", 0.0),            # half an environment, then EOF
    (b"", 0.0),                                             # connect and close
])
def test_malformed_peers_cost_one_session(agi_server: Callable, payload: bytes, hold_s: float) -> None:
    calls: list = []
    server = agi_server(ok_handler(calls))
    raw_peer(server, payload, then="read", hold_s=hold_s)
    assert wait_until(lambda: server.stats["rejected"] == 1 and server.active_sessions == 0)
    assert calls == []
    report = good_call(server)
    assert calls == [report.uniqueid]


@pytest.mark.parametrize("payload", [b"", b"agi_network: yes\nagi_uniqueid: 1.1\n"])
def test_silent_peer_is_dropped_after_the_env_timeout(agi_server: Callable, payload: bytes) -> None:
    calls: list = []
    server = agi_server(ok_handler(calls), env_timeout_s=0.3)
    sock = socket.create_connection(server.address)
    sock.sendall(payload)
    sock.settimeout(3)
    started = time.monotonic()
    assert sock.recv(100) == b""  # the server closes the connection
    assert 0.25 <= time.monotonic() - started < 2.5
    sock.close()
    assert wait_until(lambda: server.stats["rejected"] == 1)
    good_call(server)
    assert len(calls) == 1


def test_connection_reset_mid_command_ends_only_that_session(agi_server: Callable) -> None:
    outcomes: list = []
    entered = threading.Event()

    def handler(agi: HotlineAGI, request: AgiRequest) -> None:
        if request.script == "main":
            entered.set()
            try:
                agi.stream_file("long")
            except ChannelHungUp:
                outcomes.append("hung_up")
                raise
        else:
            outcomes.append("second")

    server = agi_server(handler, fetch_linkedid=False)
    sock = socket.create_connection(server.address)
    sock.sendall(ENV)
    sock.settimeout(5)
    assert sock.recv(100).startswith(b"STREAM FILE long")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()
    assert wait_until(lambda: outcomes == ["hung_up"] and server.active_sessions == 0)
    host, port = server.address
    asyncio.run(run_call(host, port, CallSpec(script="other"), EmulatorConfig()))
    assert outcomes == ["hung_up", "second"]


def test_handler_bug_costs_one_call(agi_server: Callable) -> None:
    def handler(agi: HotlineAGI, request: AgiRequest) -> None:
        if request.script == "bad":
            raise RuntimeError("flow bug")
        agi.answer()

    server = agi_server(handler)
    host, port = server.address
    bad = asyncio.run(run_call(host, port, CallSpec(script="bad"), EmulatorConfig()))
    good = asyncio.run(run_call(host, port, CallSpec(script="good"), EmulatorConfig()))
    assert bad.command_lines == ["GET VARIABLE CHANNEL(linkedid)"]
    assert good.command_lines == ["GET VARIABLE CHANNEL(linkedid)", "ANSWER"]
    assert server.stats["dropped"] == 1


def test_concurrent_sessions_run_in_parallel(agi_server: Callable) -> None:
    barrier = threading.Barrier(50, timeout=10)
    seen: list = []
    lock = threading.Lock()

    def handler(agi: HotlineAGI, request: AgiRequest) -> None:
        barrier.wait()  # all 50 sessions are inside their handler at the same time
        agi.answer()
        value = agi.get_variable("CHANNEL(linkedid)")
        with lock:
            seen.append((request.uniqueid, request.linkedid, value, threading.current_thread().name))

    server = agi_server(handler)
    host, port = server.address
    reports = asyncio.run(run_calls(host, port, [CallSpec() for _ in range(50)], EmulatorConfig()))
    assert len(seen) == 50 and len({s[0] for s in seen}) == 50 and len({s[3] for s in seen}) == 50
    assert all(s[1] == s[2] for s in seen)
    assert all(r.agistatus == "SUCCESS" for r in reports)  # type: ignore[union-attr]


def test_routing_by_script_with_query_and_args(agi_server: Callable) -> None:
    got: list[AgiRequest] = []
    handlers = {"main": lambda agi, req: got.append(req)}
    server = agi_server(resolve=handlers.get)
    host, port = server.address
    asyncio.run(run_call(host, port, CallSpec(script="main?lang=zh&x=1", args=("a b", "两个字")), EmulatorConfig()))
    unknown = asyncio.run(run_call(host, port, CallSpec(script="nope"), EmulatorConfig()))
    assert [(r.script, dict(r.params), r.args) for r in got] == [("main", {"lang": "zh", "x": "1"}, ("a b", "两个字"))]
    assert unknown.commands == [] and server.stats["rejected"] == 1


def test_max_sessions_refuses_extra_calls(agi_server: Callable) -> None:
    release = threading.Event()
    server = agi_server(lambda agi, req: release.wait(5), max_sessions=1, fetch_linkedid=False)
    first = socket.create_connection(server.address)
    first.sendall(ENV)
    assert wait_until(lambda: server.active_sessions == 1)
    second = socket.create_connection(server.address)
    second.settimeout(3)
    assert second.recv(10) == b""
    assert wait_until(lambda: server.stats["busy"] == 1)
    release.set()
    first.close()
    second.close()


def test_graceful_stop_drops_sessions_after_the_grace_period(agi_server: Callable) -> None:
    outcomes: list = []

    def handler(agi: HotlineAGI, request: AgiRequest) -> None:
        try:
            agi.wait_for_digit(-1)  # the emulated caller never presses anything
        except ChannelHungUp:
            outcomes.append("dropped")

    server = agi_server(handler)
    host, port = server.address
    result: list = []
    # Daemon: the emulated caller keeps "waiting" in WAIT FOR DIGIT -1 (real time) after the server cut it;
    # it must not keep the test process alive.
    t = threading.Thread(target=lambda: result.append(asyncio.run(run_call(
        host, port, CallSpec(), EmulatorConfig(time_scale=1.0)))), daemon=True)
    t.start()
    assert wait_until(lambda: server.active_sessions == 1)
    time.sleep(0.1)
    started = time.monotonic()
    server.stop(grace_s=0.3)
    assert 0.25 <= time.monotonic() - started < 5
    t.join(5)
    assert outcomes == ["dropped"] and server.active_sessions == 0
    with pytest.raises(OSError):
        socket.create_connection((host, port), timeout=1)


async def test_async_start_and_stop(agi_server: Callable) -> None:
    from agi.server import ServerOptions, start_server_async
    calls: list = []
    server = await start_server_async(ok_handler(calls), ServerOptions(port=0))
    host, port = server.address
    report = await run_call(host, port, CallSpec(), EmulatorConfig())
    await server.stop_async(1.0)
    assert calls == [report.uniqueid]


def test_options_from_settings() -> None:
    settings = load_settings(environ={})
    options = options_from_settings(settings.agi, port=0)
    assert (options.host, options.port, options.env_timeout_s, options.max_sessions) == \
        (settings.agi.host, 0, settings.agi.env_timeout_seconds, settings.agi.max_sessions)


def test_flow_registry() -> None:
    def handler(agi: HotlineAGI, request: AgiRequest) -> None:
        return None
    register_flow("registry-test", handler)
    try:
        assert lookup_handler("registry-test") is handler
        with pytest.raises(UnknownFlow):
            lookup_handler("no-such-flow-anywhere")
    finally:
        FLOW_HANDLERS.pop("registry-test", None)


async def test_process_agi_runs_the_same_handler_over_stdin_stdout() -> None:
    here = Path(__file__).parent
    os.environ["PYTHONPATH"] = os.pathsep.join([str(here), str(here.parents[1]), os.environ.get("PYTHONPATH", "")])
    os.environ["HOTLINE_FLOW_MODULES"] = "agi_test_flows"
    try:
        command = [str(Path(sys.executable).with_name("hotline-agi")), "echo-test"]
        spec = CallSpec(script="hotline-agi", args=("x", "两个字"), caller=CallerScript(responses=("42",)))
        report = await run_process_call(command, spec, EmulatorConfig())
    finally:
        os.environ.pop("HOTLINE_FLOW_MODULES")
    assert report.command_lines[:2] == ["ANSWER", "GET DATA menu 3000 2"]
    assert report.variables["ECHO"] == "echo-test:42:x,两个字"


def test_two_servers_share_a_port_with_reuse_port() -> None:
    """Several server processes may listen on one port (SO_REUSEPORT); both take calls, none refuses."""
    from agi.server import ServerOptions

    seen: list[str] = []

    def handler(name: str) -> Callable[[HotlineAGI, AgiRequest], None]:
        def run(agi: HotlineAGI, request: AgiRequest) -> None:
            seen.append(name)
            agi.verbose("hello", 1)
        return run

    first = FastAGIServer(handler("first"), ServerOptions(port=0, reuse_port=True, stop_grace_s=1)).start()
    assert first.address is not None
    second = FastAGIServer(handler("second"), ServerOptions(port=first.address[1], reuse_port=True,
                                                           stop_grace_s=1)).start()
    try:
        reports = asyncio.run(run_calls("127.0.0.1", first.address[1], [CallSpec() for _ in range(40)],
                                        EmulatorConfig(time_scale=0.0), concurrency=8))
        assert all(not isinstance(r, BaseException) and r.error is None for r in reports)
        assert len(seen) == 40 and set(seen) == {"first", "second"}      # the kernel spread the calls
    finally:
        second.stop()
        first.stop()
