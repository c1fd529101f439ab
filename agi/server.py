"""FastAGI server for `hotline serve`: one thread per session, pyst2's synchronous command layer inside.

Each accepted connection gets a small-stack thread (512 KiB) that reads the environment block under a
deadline, picks the flow handler from ``agi_network_script`` and runs it over :class:`HotlineAGI`. A peer
that sends garbage, half an environment or nothing costs its own session (one log line) and never the
server. ``stop()`` stops accepting, lets running calls finish for a grace period, then drops the rest.

    server = FastAGIServer(handler, ServerOptions(port=4573)).start()
    ...
    server.stop()

or, beside an aiohttp app: ``server = await start_server_async(handler, options)`` / ``await server.stop_async()``.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass
from typing import Callable

from agi.channel import ChannelHungUp, ProtocolError
from agi.protocol import HotlineAGI, read_env_block
from agi.request import AgiRequest, Handler, run_handler
from config.log import bind_call, get_logger, unbind_call

log = get_logger(__name__)

__all__ = ["AgiRequest", "FastAGIServer", "Handler", "ServerOptions", "start_server", "start_server_async",
           "options_from_settings"]

_stack_lock = threading.Lock()


@dataclass(frozen=True)
class ServerOptions:
    host: str = "127.0.0.1"
    port: int = 4573                 # 0: any free port (tests)
    env_timeout_s: float = 10.0      # the whole environment block must arrive within this
    read_timeout_s: float = 3600.0   # a silent Asterisk costs the session after this long
    max_sessions: int = 4000
    thread_stack_bytes: int = 512 * 1024
    backlog: int = 1024
    fetch_linkedid: bool = True      # ask CHANNEL(linkedid) once, bind it to the logs, put it in the request
    stop_grace_s: float = 10.0
    reuse_port: bool = False         # several server processes on one port (SO_REUSEPORT: the kernel spreads calls)


def options_from_settings(agi_settings: object, **overrides: object) -> ServerOptions:
    """Build options from ``Settings.agi`` (config/settings.py AgiSettings)."""
    values = {
        "host": getattr(agi_settings, "host"), "port": getattr(agi_settings, "port"),
        "env_timeout_s": getattr(agi_settings, "env_timeout_seconds"),
        "read_timeout_s": getattr(agi_settings, "read_timeout_seconds"),
        "max_sessions": getattr(agi_settings, "max_sessions"),
    }
    values.update(overrides)
    return ServerOptions(**values)  # type: ignore[arg-type]


class FastAGIServer:
    """Thread-per-session FastAGI server. ``handler(agi, request)`` runs once per call."""

    def __init__(self, handler: Handler | Callable[[str], Handler | None], options: ServerOptions = ServerOptions(),
                 resolve: Callable[[str], Handler | None] | None = None) -> None:
        self.handler = handler
        self.options = options
        self.resolve = resolve
        self._listener: socket.socket | None = None
        self._accept_thread: threading.Thread | None = None
        self._sessions: dict[int, socket.socket] = {}
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self.address: tuple[str, int] | None = None
        self.stats = {"accepted": 0, "rejected": 0, "completed": 0, "dropped": 0, "busy": 0}

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "FastAGIServer":
        if self._listener is not None:
            raise RuntimeError("server already started")
        listener = socket.create_server((self.options.host, self.options.port), backlog=self.options.backlog,
                                        reuse_port=self.options.reuse_port)
        listener.settimeout(0.5)
        self._listener = listener
        self.address = listener.getsockname()[:2]
        self._accept_thread = threading.Thread(target=self._accept_loop, name="fastagi-accept", daemon=True)
        self._accept_thread.start()
        log.info("agi_server_listening", host=self.address[0], port=self.address[1])
        return self

    @property
    def active_sessions(self) -> int:
        with self._lock:
            return len(self._sessions)

    def stop(self, grace_s: float | None = None) -> None:
        """Stop accepting; wait up to ``grace_s`` for running calls, then cut the remaining connections."""
        grace = self.options.stop_grace_s if grace_s is None else grace_s
        self._stopping.set()
        if self._listener is not None:
            try:
                self._listener.close()
            except OSError:
                pass
        if self._accept_thread is not None:
            self._accept_thread.join(5)
        deadline = time.monotonic() + grace
        with self._idle:
            while self._sessions and time.monotonic() < deadline:
                self._idle.wait(min(0.2, max(deadline - time.monotonic(), 0.0)))
            remaining = list(self._sessions.values())
        for conn in remaining:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if remaining:
            log.warning("agi_server_dropped_sessions", count=len(remaining))
            with self._idle:
                end = time.monotonic() + 5
                while self._sessions and time.monotonic() < end:
                    self._idle.wait(0.2)
        log.info("agi_server_stopped", **self.stats)

    async def start_async(self) -> "FastAGIServer":
        await asyncio.get_running_loop().run_in_executor(None, self.start)
        return self

    async def stop_async(self, grace_s: float | None = None) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.stop, grace_s)

    def serve_forever(self) -> None:
        """Block the calling thread until :meth:`stop` is called from elsewhere (signal handler, other thread)."""
        if self._listener is None:
            self.start()
        while not self._stopping.wait(1.0):
            pass

    # ------------------------------------------------------------------ accept
    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                conn, peer = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                if self._stopping.is_set():
                    return
                log.exception("agi_accept_failed")
                time.sleep(0.05)
                continue
            with self._lock:
                too_many = len(self._sessions) >= self.options.max_sessions
                if not too_many:
                    self._sessions[conn.fileno()] = conn
                    self.stats["accepted"] += 1
            if too_many:
                self._count("busy")
                log.warning("agi_session_refused_busy", peer=f"{peer[0]}:{peer[1]}",
                            max_sessions=self.options.max_sessions)
                conn.close()
                continue
            key = conn.fileno()
            thread = threading.Thread(target=self._session, args=(conn, key, peer), name=f"agi-{key}", daemon=True)
            try:
                with _stack_lock:
                    previous = threading.stack_size(self.options.thread_stack_bytes)
                    try:
                        thread.start()
                    finally:
                        threading.stack_size(previous)
            except RuntimeError:
                log.exception("agi_session_thread_failed")
                self._forget(key)
                conn.close()

    def _count(self, name: str) -> None:
        with self._lock:
            self.stats[name] += 1

    def _forget(self, key: int) -> None:
        with self._idle:
            self._sessions.pop(key, None)
            self._idle.notify_all()

    # ------------------------------------------------------------------ one session
    def _session(self, conn: socket.socket, key: int, peer: tuple) -> None:
        rfile = wfile = None
        try:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            rfile = conn.makefile("rb")
            wfile = conn.makefile("wb")
            env = self._read_env(conn, rfile, peer)
            if env is None:
                self._count("rejected")
                return
            conn.settimeout(self.options.read_timeout_s)
            request = AgiRequest.from_env(env)
            bind_call(uniqueid=env.get("agi_uniqueid"), script=request.script, caller=request.caller_number)
            agi = HotlineAGI(rfile, wfile, env=env)
            handler = self._handler_for(request)
            if handler is None:
                log.error("agi_unknown_script", script=request.script)
                self._count("rejected")
                return
            if self.options.fetch_linkedid:
                request = self._with_linkedid(agi, request)
            outcome = run_handler(handler, agi, request)
            self._count("completed" if outcome != "handler_error" else "dropped")
        except Exception:  # noqa: BLE001 - never let one session take the server down
            self._count("dropped")
            log.exception("agi_session_failed", peer=f"{peer[0]}:{peer[1]}")
        finally:
            for f in (wfile, rfile):
                if f is not None:
                    try:
                        f.close()
                    except OSError:
                        pass
            try:
                conn.close()
            except OSError:
                pass
            unbind_call()
            self._forget(key)

    def _read_env(self, conn: socket.socket, rfile: object, peer: tuple) -> dict[str, str] | None:
        conn.settimeout(self.options.env_timeout_s)
        try:
            return read_env_block(rfile)  # type: ignore[arg-type]
        except (ProtocolError, TimeoutError, ConnectionError, OSError) as exc:
            reason = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
            log.warning("agi_session_rejected", peer=f"{peer[0]}:{peer[1]}", reason=reason, detail=str(exc)[:200])
            return None

    def _handler_for(self, request: AgiRequest) -> Handler | None:
        if self.resolve is not None:
            return self.resolve(request.script)
        return self.handler  # type: ignore[return-value]

    @staticmethod
    def _with_linkedid(agi: HotlineAGI, request: AgiRequest) -> AgiRequest:
        try:
            linkedid = agi.get_variable("CHANNEL(linkedid)")
        except ChannelHungUp:
            return request
        if linkedid:
            bind_call(linkedid=linkedid)
            return AgiRequest(script=request.script, params=request.params, args=request.args, env=request.env,
                              linkedid=linkedid)
        return request


def start_server(handler: Handler | None = None, options: ServerOptions = ServerOptions(),
                 resolve: Callable[[str], Handler | None] | None = None) -> FastAGIServer:
    """Start listening and return the running server. Give ``handler`` (one for every script) or ``resolve``
    (script name → handler, e.g. :func:`agi.process_agi.lookup_handler`)."""
    if handler is None and resolve is None:
        raise ValueError("start_server needs a handler or a resolve function")
    return FastAGIServer(handler, options, resolve=resolve).start()  # type: ignore[arg-type]


async def start_server_async(handler: Handler | None = None, options: ServerOptions = ServerOptions(),
                             resolve: Callable[[str], Handler | None] | None = None) -> FastAGIServer:
    """The same, from a running event loop (``hotline serve`` beside the aiohttp app)."""
    if handler is None and resolve is None:
        raise ValueError("start_server_async needs a handler or a resolve function")
    server = FastAGIServer(handler, options, resolve=resolve)  # type: ignore[arg-type]
    return await server.start_async()
