"""Logging: structlog configured once, JSON lines in production, readable in a terminal.

Every event passes :func:`mask_phone_numbers`, which keeps only the last four digits of anything that
looks like a phone number (caller numbers are personal data). Call code binds ``uniqueid`` /
``linkedid`` with :func:`bind_call` so every event of a call carries them.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any, MutableMapping

import structlog

# 7+ digit runs (optionally with a leading +), not part of a longer alphanumeric token, not a
# uniqueid (epoch.sequence) and not a 14-digit ticket number, which is not personal data.
_PHONE_RE = re.compile(r"(?<![\w.])(\+?\d{3,})(\d{4})(?![\w.]|\.\d)")
_SAFE_KEYS = frozenset({"uniqueid", "linkedid", "record_id", "ticket_no", "timestamp", "event", "level", "logger", "job_id", "pid"})
_MASKED_KEYS = frozenset({"caller", "caller_number", "callerid", "contact_phone", "number", "phone", "callback_number"})


def mask_phone(value: str) -> str:
    """``13800138000`` → ``*******8000``; shorter numbers than 7 digits are left alone."""
    def _sub(m: re.Match[str]) -> str:
        head, tail = m.group(1), m.group(2)
        if len(head) + len(tail) == 14 and not head.startswith("+"):
            return m.group(0)  # a ticket number, not a phone number
        return "*" * len(head) + tail
    return _PHONE_RE.sub(_sub, value)


def _mask_value(key: str, value: Any) -> Any:
    if isinstance(value, str):
        if key in _MASKED_KEYS:
            digits = value.strip()
            return ("*" * max(len(digits) - 4, 0)) + digits[-4:] if len(digits) > 4 else value
        return mask_phone(value)
    if isinstance(value, dict):
        return {k: _mask_value(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_mask_value(key, v) for v in value)
    return value


def mask_phone_numbers(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: masks phone numbers in every value of the event."""
    for key, value in list(event_dict.items()):
        if key in _SAFE_KEYS and key != "event":
            continue
        event_dict[key] = _mask_value(key, value)
    return event_dict


_configured = False


class _CurrentStderr:
    """Writes to whatever ``sys.stderr`` is at the time of writing (test runners swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stdlib handler bound to the current ``sys.stderr`` rather than the one at set-up."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def configure_logging(json: bool | None = None, level: str = "INFO") -> None:
    """Configure structlog and the stdlib root logger once; ``json=None`` picks JSON unless stderr is a TTY."""
    global _configured
    if json is None:
        json = not sys.stderr.isatty()
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        mask_phone_numbers,
    ]
    renderer: Any = structlog.processors.JSONRenderer(ensure_ascii=False) if json else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )
    # Libraries that use the stdlib (aiohttp, alembic, sqlalchemy) go through the same masking.
    handler = _StderrHandler()
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=[
        structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    _configured = True


def bind_call(uniqueid: str | None = None, linkedid: str | None = None, **extra: Any) -> None:
    """Bind the call's ids to every event logged from this context (thread or task)."""
    values = {k: v for k, v in {"uniqueid": uniqueid, "linkedid": linkedid, **extra}.items() if v is not None}
    structlog.contextvars.bind_contextvars(**values)


def unbind_call() -> None:
    structlog.contextvars.clear_contextvars()


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)
