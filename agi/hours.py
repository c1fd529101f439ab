"""Business hours and the holiday calendar (settings [hours]): is the hotline staffed at a given moment?"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from config.settings import HoursSettings


class HoursError(ValueError):
    """A [hours] setting cannot be understood (bad time or date)."""


def _parse_hhmm(value: str) -> int:
    hh, _, mm = value.partition(":")
    try:
        minutes = int(hh) * 60 + int(mm)
    except ValueError as exc:
        raise HoursError(f"expected HH:MM, got {value!r}") from exc
    if not 0 <= minutes <= 24 * 60:
        raise HoursError(f"expected HH:MM within a day, got {value!r}")
    return minutes


def _parse_dates(values: tuple[str, ...]) -> frozenset[date]:
    out = set()
    for v in values:
        try:
            out.add(date.fromisoformat(v))
        except ValueError as exc:
            raise HoursError(f"expected an ISO date, got {v!r}") from exc
    return frozenset(out)


@dataclass(frozen=True)
class BusinessHours:
    """Open from ``open_min`` to ``close_min`` (minutes of the local day; close may be 24:00) on ``days``.

    ``holidays`` are closed all day; ``extra_workdays`` are open on their weekday hours even when the weekday is
    not in ``days`` (调休 working weekends). A window closing before it opens spans midnight (e.g. 20:00–08:00).
    """

    open_min: int
    close_min: int
    days: frozenset[int]
    holidays: frozenset[date]
    extra_workdays: frozenset[date]
    tz: ZoneInfo

    @classmethod
    def from_settings(cls, hours: HoursSettings, timezone: str) -> "BusinessHours":
        return cls(_parse_hhmm(hours.open), _parse_hhmm(hours.close), frozenset(hours.days),
                   _parse_dates(hours.holidays), _parse_dates(hours.extra_workdays), ZoneInfo(timezone))

    def _day_open(self, day: date) -> bool:
        if day in self.holidays:
            return False
        return day in self.extra_workdays or day.isoweekday() in self.days

    def is_open(self, now: datetime) -> bool:
        if now.tzinfo is None:
            raise HoursError("is_open needs an aware datetime")
        local = now.astimezone(self.tz)
        minute = local.hour * 60 + local.minute
        if self.open_min <= self.close_min:
            return self._day_open(local.date()) and self.open_min <= minute < self.close_min
        # overnight window: the part after midnight belongs to the previous day's shift
        if minute >= self.open_min:
            return self._day_open(local.date())
        if minute < self.close_min:
            return self._day_open(date.fromordinal(local.date().toordinal() - 1))
        return False


__all__ = ["BusinessHours", "HoursError"]
