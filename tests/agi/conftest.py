"""Fixtures for the AGI tests: a FastAGI server on a free port running a test handler in its threads."""

from __future__ import annotations

from typing import Callable, Iterator

import pytest

from agi.request import Handler
from agi.server import FastAGIServer, ServerOptions


@pytest.fixture()
def agi_server() -> Iterator[Callable[..., FastAGIServer]]:
    started: list[FastAGIServer] = []

    def start(handler: Handler | None = None, resolve: Callable | None = None, **options: object) -> FastAGIServer:
        opts = ServerOptions(port=0, **{"env_timeout_s": 2.0, "stop_grace_s": 1.0, **options})  # type: ignore[arg-type]
        server = FastAGIServer(handler, opts, resolve=resolve).start()  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop(0.5)
