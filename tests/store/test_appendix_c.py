"""The spec in code must match shared/spec/appendix_c.yaml, and every field must exist in the store."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from store.appendix_c import FIELDS, FIELDS_BY_ID, QA_REVIEW_MEMBERS, RECORDING_MEMBERS, TRANSCRIPT_MEMBERS, Requirement
from store.models import Call

HERE = Path(__file__).resolve().parent
PROJECT_COPY = HERE.parent / "fixtures" / "appendix_c.yaml"
SHARED = HERE.parents[2] / "shared" / "spec" / "appendix_c.yaml"


def _spec_fields(path: Path) -> list[dict]:
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [dict(f, group=g) for g, fields in spec["groups"].items() for f in fields]


def _sources() -> list[Path]:
    return [p for p in (PROJECT_COPY, SHARED) if p.exists()]


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.parent.name))
def test_code_matches_spec(path: Path) -> None:
    spec = _spec_fields(path)
    assert [f["id"] for f in spec] == [f.id for f in FIELDS], "field ids or their order drifted"
    for entry in spec:
        field = FIELDS_BY_ID[entry["id"]]
        assert field.zh == entry["zh"], entry["id"]
        assert field.group == entry["group"], entry["id"]
        assert field.type == entry["type"], entry["id"]
        assert field.required_text == entry["required"], entry["id"]
        assert field.values == tuple(entry.get("values", ())), entry["id"]


def test_shared_spec_and_project_copy_agree() -> None:
    if not SHARED.exists():
        pytest.skip("shared/ is not beside this checkout (clean clone in CI); the project copy is the contract")
    assert SHARED.read_bytes() == PROJECT_COPY.read_bytes()


def test_every_field_is_stored() -> None:
    columns = set(Call.__table__.columns.keys())
    documented_json = {"transcript": TRANSCRIPT_MEMBERS, "qa_review": QA_REVIEW_MEMBERS}
    for field in FIELDS:
        assert field.id in columns or field.id in documented_json, f"{field.label} has no column"
    assert "recording" in columns and RECORDING_MEMBERS == ("uri", "sha256", "duration_seconds", "channels", "sample_rate")


def test_requirement_parsing() -> None:
    assert Requirement.parse("when: is_anonymous == false") == Requirement("when", "is_anonymous", (False,), "when: is_anonymous == false")
    r = Requirement.parse("when: appeal_type in [求助, 投诉, 举报]")
    assert r.cond_field == "appeal_type" and r.cond_values == ("求助", "投诉", "举报")
    with pytest.raises(ValueError):
        Requirement.parse("sometimes")
