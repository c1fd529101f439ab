"""`hotline-agi <flow>`: process AGI over stdin/stdout, for sites that cannot run the FastAGI daemon.

Dialplan: ``AGI(hotline-agi,main)``. The flow handlers are the same as the FastAGI server's; they live in
:data:`FLOW_HANDLERS`, filled by the flow engine (``register_flow("main", handler)``).
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from typing import Sequence

from agi.channel import ProtocolError
from agi.protocol import HotlineAGI
from agi.request import AgiRequest, Handler, run_handler
from config.log import bind_call, configure_logging, get_logger

log = get_logger(__name__)

FLOW_HANDLERS: dict[str, Handler] = {}
"""Flow name (the FastAGI script path, or hotline-agi's first argument) → handler(agi, request)."""

# Modules that register flows on import, tried once when a name is not registered yet
# (plus any named in $HOTLINE_FLOW_MODULES, comma-separated).
FLOW_MODULES: tuple[str, ...] = ("agi.flows",)
_imported: set[str] = set()


class UnknownFlow(KeyError):
    """No handler registered for this flow name."""


def register_flow(name: str, handler: Handler) -> None:
    FLOW_HANDLERS[name] = handler


def _import_flow_modules(wanted: str) -> None:
    """Import $HOTLINE_FLOW_MODULES, then FLOW_MODULES, stopping as soon as ``wanted`` is registered."""
    extra = tuple(m.strip() for m in os.environ.get("HOTLINE_FLOW_MODULES", "").split(",") if m.strip())
    for module in extra + FLOW_MODULES:
        if module in _imported:
            continue
        _imported.add(module)
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
        if wanted in FLOW_HANDLERS:
            return


def lookup_handler(name: str) -> Handler:
    """The handler for ``name``; raises :class:`UnknownFlow`."""
    if name not in FLOW_HANDLERS:
        _import_flow_modules(name)
    try:
        return FLOW_HANDLERS[name]
    except KeyError:
        raise UnknownFlow(name) from None


def resolve_handler(name: str) -> Handler | None:
    """``lookup_handler`` for the FastAGI server: ``None`` when unknown."""
    try:
        return lookup_handler(name)
    except UnknownFlow:
        return None


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    configure_logging(json=True, level=os.environ.get("HOTLINE_AGI_LOG_LEVEL", "WARNING"))
    if not args:
        sys.stderr.write("usage: hotline-agi <flow> [args...]\n")
        return 2
    try:
        agi = HotlineAGI(sys.stdin.buffer, sys.stdout.buffer)
    except ProtocolError as exc:
        log.error("agi_bad_environment", error=str(exc))
        return 1
    # Process AGI runs on the main thread: Asterisk's SIGHUP means the caller hung up.
    signal.signal(signal.SIGHUP, agi._handle_sighup)
    request = AgiRequest.from_env(agi.env, script=args[0])
    bind_call(uniqueid=agi.env.get("agi_uniqueid"), script=request.script, caller=request.caller_number)
    try:
        handler = lookup_handler(request.script)
    except UnknownFlow:
        log.error("agi_unknown_flow", flow=request.script)
        return 1
    run_handler(handler, agi, request)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
