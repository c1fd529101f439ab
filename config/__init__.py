"""Settings: the defaults in hotline.toml and the typed loader that applies site file and environment overrides."""

from config.settings import Settings, SettingsError, load_settings

__all__ = ["Settings", "SettingsError", "load_settings"]
