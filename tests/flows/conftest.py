from __future__ import annotations

from pathlib import Path

import pytest

from agi.engine import EngineConfig
from agi.flowdef import Flow, load_flows

FLOWS_DIR = Path(__file__).resolve().parents[2] / "ivr_flows"


@pytest.fixture(scope="session")
def shipped_flows() -> dict[str, Flow]:
    return load_flows(FLOWS_DIR)


@pytest.fixture
def engine_config() -> EngineConfig:
    return EngineConfig(long_wait_seconds=60)
