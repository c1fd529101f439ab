"""Small helpers shared by the QA and KPI pages: JSON responses, query parameters, periods in local time."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from aiohttp import web

MAX_PERIOD_DAYS = 400


class BadParameter(ValueError):
    """A query or form value that cannot be used; the message is shown to the user (Chinese)."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


def _default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status,
                             dumps=lambda d: json.dumps(d, ensure_ascii=False, default=_default))


def error_json(param: BadParameter | Exception, status: int = 400) -> web.Response:
    message = param.message if isinstance(param, BadParameter) else str(param)
    body: dict[str, Any] = {"error": type(param).__name__, "message": message}
    if isinstance(param, BadParameter):
        body["parameter"] = param.name
    return json_response(body, status=status)


def parse_time(name: str, value: str, tz: ZoneInfo) -> datetime:
    """``2026-03-02`` (local midnight), ``2026-03-02T09:30`` (local) or ISO 8601 with an offset."""
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(0), tz)
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise BadParameter(name, f"{name}：无法识别的时间 {value!r}（例：2026-03-02 或 2026-03-02T09:30）") from None
    return dt if dt.tzinfo is not None else dt.replace(tzinfo=tz)


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime

    def to_dict(self) -> dict[str, str]:
        return {"from": self.start.isoformat(), "to": self.end.isoformat()}


def parse_period(query: Mapping[str, str], tz_name: str, *, default_days: int = 1,
                 now: datetime | None = None) -> Period:
    """``from`` / ``to`` ([from, to)); missing ones default to the ``default_days`` local days up to tomorrow."""
    tz = ZoneInfo(tz_name)
    today = (now or datetime.now(tz)).astimezone(tz).date()
    end = (parse_time("to", query["to"], tz) if query.get("to")
           else datetime.combine(today + timedelta(days=1), time(0), tz))
    start = (parse_time("from", query["from"], tz) if query.get("from")
             else datetime.combine(end.astimezone(tz).date() - timedelta(days=default_days), time(0), tz))
    if end <= start:
        raise BadParameter("to", "结束时间必须晚于开始时间")
    if end - start > timedelta(days=MAX_PERIOD_DAYS):
        raise BadParameter("to", f"时间范围不能超过 {MAX_PERIOD_DAYS} 天")
    return Period(start, end)


def int_param(query: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(name, f"{name}：需要整数") from None
    if not lo <= value <= hi:
        raise BadParameter(name, f"{name}：应在 {lo}–{hi} 之间")
    return value


def local_text(value: datetime | None, tz: ZoneInfo, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return value.astimezone(tz).strftime(fmt) if value is not None else ""
