"""`AgiRequest`: which flow a session asked for, and `run_handler`, the one way a session runs a flow handler."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Mapping
from urllib.parse import parse_qsl, urlsplit

from agi.channel import ChannelHungUp, CommandFailed, ProtocolError
from agi.protocol import HotlineAGI
from config.log import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class AgiRequest:
    """``AGI(agi://host:4573/main?lang=zh,arg1,两个字)`` → script "main", params {"lang": "zh"}, args ("arg1", "两个字")."""

    script: str
    params: Mapping[str, str] = field(default_factory=dict)
    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    linkedid: str | None = None

    @property
    def uniqueid(self) -> str | None:
        return self.env.get("agi_uniqueid")

    @property
    def channel(self) -> str | None:
        return self.env.get("agi_channel")

    @property
    def caller_number(self) -> str | None:
        value = self.env.get("agi_callerid")
        return None if value in (None, "", "unknown") else value

    @classmethod
    def from_env(cls, env: Mapping[str, str], script: str | None = None, linkedid: str | None = None) -> "AgiRequest":
        """Parse ``agi_network_script`` (FastAGI) or the given script (process AGI) and the ``agi_arg_N`` lines."""
        raw = script if script is not None else env.get("agi_network_script", "")
        parts = urlsplit(raw)
        path = parts.path.strip("/")
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        numbered = sorted((int(k[8:]), v) for k, v in env.items() if k.startswith("agi_arg_") and k[8:].isdigit())
        return cls(script=path, params=params, args=tuple(v for _, v in numbered), env=dict(env), linkedid=linkedid)


Handler = Callable[[HotlineAGI, AgiRequest], None]


def run_handler(handler: Handler, agi: HotlineAGI, request: AgiRequest) -> str:
    """Run one flow handler; every way it can end is logged once. Returns the outcome name."""
    started = time.monotonic()
    outcome = "completed"
    try:
        handler(agi, request)
    except ChannelHungUp as exc:
        outcome = "caller_hung_up"
        log.info("agi_caller_hung_up", script=request.script, detail=str(exc))
    except CommandFailed as exc:
        outcome = "command_failed"
        log.error("agi_command_failed", script=request.script, command=exc.command, code=exc.code,
                  text=exc.text.split("\n")[0])
    except ProtocolError as exc:
        outcome = "protocol_error"
        log.warning("agi_protocol_error", script=request.script, error=str(exc))
    except Exception:  # noqa: BLE001 - a flow bug must cost this call only, never the server
        outcome = "handler_error"
        log.exception("agi_handler_error", script=request.script)
    log.debug("agi_session_end", script=request.script, outcome=outcome,
              seconds=round(time.monotonic() - started, 3), commands=agi.commands_sent)
    return outcome
