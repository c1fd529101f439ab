"""Typed settings: config/hotline.toml, then the site file named by HOTLINE_CONFIG, then HOTLINE_* variables.

Every section is a frozen dataclass; an unknown key or a value of the wrong type stops start-up with a
:class:`SettingsError` that names the key, where it came from and the expected type.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

DEFAULTS_FILE = Path(__file__).with_name("hotline.toml")
ENV_PREFIX = "HOTLINE_"
SECRET_KEYS = frozenset({"secret_key", "password"})


class SettingsError(ValueError):
    """A settings value is unknown or of the wrong type."""

    def __init__(self, key: str, source: str, problem: str) -> None:
        super().__init__(f"{source}: setting {key!r}: {problem}")
        self.key = key
        self.source = source
        self.problem = problem


@dataclass(frozen=True)
class GeneralSettings:
    timezone: str = "Asia/Shanghai"
    data_dir: str = "var"
    access_number: str = "12345"
    ticket_prefix: str = ""


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = "sqlite:///var/hotline.sqlite3"
    echo: bool = False


@dataclass(frozen=True)
class AgiSettings:
    host: str = "127.0.0.1"
    port: int = 4573
    flows_dir: str = "ivr_flows"
    sounds_dir: str = "var/sounds"
    journal_dir: str = "var/journal"
    read_timeout_seconds: float = 3600.0
    env_timeout_seconds: float = 10.0
    max_sessions: int = 4000
    applier: str = "process"         # where the journal is applied to the store: "process" | "thread"


@dataclass(frozen=True)
class WebSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    secret_key: str = ""
    cookie_secure: bool = True
    session_max_age_seconds: int = 43200
    login_max_failures: int = 5
    login_lockout_seconds: int = 300


@dataclass(frozen=True)
class RecordsSettings:
    max_open_seconds: int = 14400
    sweep_interval_seconds: int = 300


@dataclass(frozen=True)
class RecordingSettings:
    spool_dir: str = "var/spool"
    archive_dir: str = "var/archive"
    quarantine_dir: str = "var/quarantine"
    archive_format: str = "flac"
    talk_time_tolerance_seconds: float = 5.0


@dataclass(frozen=True)
class RetentionSettings:
    default_days: int = 180
    answered_days: int = 365
    voicemail_days: int = 365


@dataclass(frozen=True)
class AsrSettings:
    model_path: str = ""
    model_name: str = ""
    workers: int = 0
    embedded_workers: int = 1
    max_jobs_per_worker: int = 500
    max_rss_mb: int = 2048
    max_attempts: int = 3
    lease_seconds: int = 300
    retry_backoff_seconds: int = 10


@dataclass(frozen=True)
class QueueSettings:
    default_queue: str = "hotline"
    long_wait_seconds: int = 60
    position_announce_seconds: int = 30


@dataclass(frozen=True)
class HoursSettings:
    open: str = "00:00"
    close: str = "24:00"
    days: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)
    holidays: tuple[str, ...] = ()
    extra_workdays: tuple[str, ...] = ()


@dataclass(frozen=True)
class KpiSettings:
    service_level_seconds: int = 15
    short_abandon_seconds: int = 5
    callback_deadline_hours: int = 24


@dataclass(frozen=True)
class RubricItem:
    id: str
    label: str
    weight: int


@dataclass(frozen=True)
class QaSettings:
    rubric: tuple[RubricItem, ...] = ()


@dataclass(frozen=True)
class Settings:
    general: GeneralSettings = field(default_factory=GeneralSettings)
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    agi: AgiSettings = field(default_factory=AgiSettings)
    web: WebSettings = field(default_factory=WebSettings)
    records: RecordsSettings = field(default_factory=RecordsSettings)
    recordings: RecordingSettings = field(default_factory=RecordingSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    asr: AsrSettings = field(default_factory=AsrSettings)
    queue: QueueSettings = field(default_factory=QueueSettings)
    hours: HoursSettings = field(default_factory=HoursSettings)
    kpi: KpiSettings = field(default_factory=KpiSettings)
    qa: QaSettings = field(default_factory=QaSettings)

    def as_dict(self, redact: bool = True) -> dict[str, Any]:
        """Plain nested dict of the settings; secrets are shown as ``***`` when set."""
        data = dataclasses.asdict(self)
        if redact:
            for section in data.values():
                for key in section:
                    if key in SECRET_KEYS and section[key]:
                        section[key] = "***"
            url = data["database"]["url"]
            data["database"]["url"] = _redact_url(url)
        return data


def _redact_url(url: str) -> str:
    # postgresql://user:secret@host/db -> postgresql://user:***@host/db
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    creds, _, host = rest.rpartition("@")
    if ":" in creds:
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str, source: str, from_env: bool) -> Any:
    """Check (and for environment strings, parse) one value against its declared type."""
    origin = typing.get_origin(tp)
    if from_env and isinstance(value, str) and tp is not str:
        try:
            value = json.loads(value) if (origin is tuple or tp in (int, float, bool)) else value
        except json.JSONDecodeError:
            if tp is bool and value.lower() in ("yes", "no", "on", "off"):
                value = value.lower() in ("yes", "on")
            else:
                raise SettingsError(key, source, f"expected {_type_name(tp)}, got {value!r}") from None
    if tp is bool:
        if not isinstance(value, bool):
            raise SettingsError(key, source, f"expected bool, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SettingsError(key, source, f"expected int, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SettingsError(key, source, f"expected float, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise SettingsError(key, source, f"expected string, got {value!r}")
        return value
    if origin is tuple:
        (item_tp, _ellipsis) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise SettingsError(key, source, f"expected a list of {_type_name(item_tp)}, got {value!r}")
        if dataclasses.is_dataclass(item_tp):
            return tuple(_build(item_tp, v, f"{key}[{i}]", source, from_env) for i, v in enumerate(value))
        return tuple(_coerce(v, item_tp, f"{key}[{i}]", source, from_env) for i, v in enumerate(value))
    raise SettingsError(key, source, f"unsupported type {tp!r}")  # pragma: no cover - programming error


def _build(cls: type, data: Any, key: str, source: str, from_env: bool = False) -> Any:
    if not isinstance(data, Mapping):
        raise SettingsError(key, source, f"expected a table, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    for name in data:
        if name not in known:
            raise SettingsError(f"{key}.{name}", source, f"unknown key (known: {', '.join(sorted(known))})")
    kwargs = {name: _coerce(value, hints[name], f"{key}.{name}", source, from_env) for name, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise SettingsError(key, source, str(exc)) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError("(file)", str(path), f"not valid TOML: {exc}") from None
    except OSError as exc:
        raise SettingsError("(file)", str(path), f"cannot read: {exc.strerror}") from None


def _merge(base: Settings, data: Mapping[str, Any], source: str, from_env: bool = False) -> Settings:
    hints = typing.get_type_hints(Settings)
    changes: dict[str, Any] = {}
    for section, values in data.items():
        if section not in hints:
            raise SettingsError(section, source, f"unknown section (known: {', '.join(sorted(hints))})")
        if not isinstance(values, Mapping):
            raise SettingsError(section, source, f"expected a table, got {values!r}")
        # Only the new values are checked; the ones kept from `base` are already typed.
        section_obj = _build(hints[section], values, section, source, from_env)
        current = getattr(base, section)
        kept = {f.name: getattr(current, f.name) for f in dataclasses.fields(current) if f.name not in values}
        changes[section] = dataclasses.replace(section_obj, **kept)
    return dataclasses.replace(base, **changes)


def _env_overrides(environ: Mapping[str, str]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == "HOTLINE_CONFIG" or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX):].lower().partition("__")
        out.setdefault(section, {})[key] = value
    return out


def load_settings(environ: Mapping[str, str] | None = None, site_file: str | os.PathLike[str] | None = None) -> Settings:
    """Defaults file, then the site file (argument or HOTLINE_CONFIG), then HOTLINE_<SECTION>__<KEY>."""
    env = os.environ if environ is None else environ
    settings = _merge(Settings(), _read_toml(DEFAULTS_FILE), str(DEFAULTS_FILE))
    site = site_file or env.get("HOTLINE_CONFIG")
    if site:
        settings = _merge(settings, _read_toml(Path(site)), str(site))
    overrides = _env_overrides(env)
    if overrides:
        settings = _merge(settings, overrides, "environment", from_env=True)
    _check_values(settings)
    return settings


def _check_values(s: Settings) -> None:
    if s.agi.applier not in ("process", "thread"):
        raise SettingsError("agi.applier", "settings", f"expected 'process' or 'thread', got {s.agi.applier!r}")
    if s.recordings.archive_format not in ("flac", "wav"):
        raise SettingsError("recordings.archive_format", "settings", f"expected 'flac' or 'wav', got {s.recordings.archive_format!r}")
    for key, value in (("hours.open", s.hours.open), ("hours.close", s.hours.close)):
        hh, sep, mm = value.partition(":")
        if not (sep and hh.isdigit() and mm.isdigit() and 0 <= int(hh) <= 24 and 0 <= int(mm) < 60):
            raise SettingsError(key, "settings", f"expected HH:MM, got {value!r}")
    for day in s.hours.days:
        if not 1 <= day <= 7:
            raise SettingsError("hours.days", "settings", f"expected weekdays 1..7, got {day}")
    for key, value in (("records.max_open_seconds", s.records.max_open_seconds),
                       ("records.sweep_interval_seconds", s.records.sweep_interval_seconds)):
        if value <= 0:
            raise SettingsError(key, "settings", f"expected a positive number of seconds, got {value}")
    if not 1 <= s.agi.port <= 65535:
        raise SettingsError("agi.port", "settings", f"expected a TCP port, got {s.agi.port}")


__all__ = [
    "Settings", "SettingsError", "load_settings",
    "GeneralSettings", "DatabaseSettings", "AgiSettings", "WebSettings", "RecordsSettings", "RecordingSettings",
    "RetentionSettings", "AsrSettings", "QueueSettings", "HoursSettings", "KpiSettings", "QaSettings", "RubricItem",
]
