"""Settings: defaults, site file, environment; unknown keys and bad values name key, source and type."""

from __future__ import annotations

import json

import pytest

from cli.main import main
from config.settings import SettingsError, load_settings


def test_defaults_load() -> None:
    s = load_settings({})
    assert s.agi.port == 4573 and s.general.timezone == "Asia/Shanghai"
    assert s.database.url.startswith("sqlite:///") and s.kpi.service_level_seconds == 15
    assert sum(item.weight for item in s.qa.rubric) == 100


def test_site_file_then_environment(tmp_path) -> None:
    site = tmp_path / "site.toml"
    site.write_text('[agi]\nport = 5000\n[hours]\nholidays = ["2026-10-01"]\n', encoding="utf-8")
    s = load_settings({"HOTLINE_CONFIG": str(site), "HOTLINE_AGI__HOST": "0.0.0.0"})
    assert (s.agi.port, s.agi.host, s.hours.holidays) == (5000, "0.0.0.0", ("2026-10-01",))
    assert s.agi.flows_dir == "ivr_flows"  # untouched keys keep their defaults
    s = load_settings({"HOTLINE_CONFIG": str(site), "HOTLINE_AGI__PORT": "6000"})
    assert s.agi.port == 6000


@pytest.mark.parametrize("content, key, needle", [
    ("[agi]\nprot = 1\n", "agi.prot", "unknown key"),
    ("[agi]\nport = \"4573\"\n", "agi.port", "expected int"),
    ("[nosuch]\nx = 1\n", "nosuch", "unknown section"),
    ("[web]\ncookie_secure = 1\n", "web.cookie_secure", "expected bool"),
    ("[hours]\ndays = [1, 9]\n", "hours.days", "weekdays"),
])
def test_bad_site_file_names_key_file_and_type(tmp_path, content, key, needle) -> None:
    site = tmp_path / "site.toml"
    site.write_text(content, encoding="utf-8")
    with pytest.raises(SettingsError) as err:
        load_settings({"HOTLINE_CONFIG": str(site)})
    assert err.value.key == key and needle in str(err.value)
    if key != "hours.days":
        assert str(site) in str(err.value)


def test_bad_environment_value() -> None:
    with pytest.raises(SettingsError, match="environment: setting 'web.port': expected int"):
        load_settings({"HOTLINE_WEB__PORT": "eighty"})


def test_config_show_redacts_secrets(capsys, monkeypatch) -> None:
    monkeypatch.setenv("HOTLINE_WEB__SECRET_KEY", "s3cret")
    monkeypatch.setenv("HOTLINE_DATABASE__URL", "postgresql://app:pw@db/hotline")
    assert main(["config", "show"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["web"]["secret_key"] == "***"
    assert shown["database"]["url"] == "postgresql://app:***@db/hotline"


def test_cli_refuses_bad_settings(capsys, monkeypatch) -> None:
    monkeypatch.setenv("HOTLINE_AGI__PORT", "x")
    assert main(["config", "show"]) == 2
    assert "agi.port" in capsys.readouterr().err
