"""Pure Appendix C validation: ``validate_record(record) -> list[Problem]``.

A record is a mapping keyed by Appendix C field ids. Every required / conditional rule, type and
enumeration is checked; messages use the Chinese field name plus the id, e.g.
``应答时间(answered_at)：呼叫结果为人工接通时必填``. No I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

from store.appendix_c import FIELDS, OUTCOME_ANSWERED, RECORDING_MEMBERS, FieldSpec

TICKET_NO_RE = re.compile(r"\d{8}\d{6}")


@dataclass(frozen=True)
class Problem:
    field: str          # Appendix C field id
    code: str           # missing | type | enum | format | consistency
    message: str        # Chinese, names the field as 中文名(id)

    def to_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "message": self.message}


def is_present(value: Any) -> bool:
    if value is None:
        return False
    if isinstance(value, str):
        return value.strip() != ""
    return True


def has_ticket(record: Mapping[str, Any]) -> bool:
    """A 诉求 was registered: the record carries a ticket number."""
    return is_present(record.get("ticket_no"))


def is_queued(record: Mapping[str, Any]) -> bool:
    return is_present(record.get("queue_enter_at"))


def is_answered(record: Mapping[str, Any]) -> bool:
    return record.get("call_outcome") == OUTCOME_ANSWERED


_REASONS = {
    "always": "必填",
    "answered": "呼叫结果为人工接通时必填",
    "queued": "进入排队的来电必填",
    "ticket": "已登记工单时必填",
}


def _required_reason(spec: FieldSpec, record: Mapping[str, Any]) -> str | None:
    """The reason the field is required for this record, or None if it is not."""
    req = spec.required
    if req.kind == "optional":
        return None
    if req.kind == "always":
        return _REASONS["always"]
    if req.kind == "answered":
        return _REASONS["answered"] if is_answered(record) else None
    if req.kind == "queued":
        return _REASONS["queued"] if is_queued(record) else None
    if req.kind == "ticket":
        return _REASONS["ticket"] if has_ticket(record) else None
    assert req.kind == "when" and req.cond_field is not None
    actual = record.get(req.cond_field)
    if actual is None or actual not in req.cond_values:
        return None
    cond_spec = next(f for f in FIELDS if f.id == req.cond_field)
    shown = {True: "是", False: "否"}.get(actual, actual) if isinstance(actual, bool) else actual
    return f"{cond_spec.zh}为{shown}时必填"


def _type_problem(spec: FieldSpec, value: Any) -> Problem | None:
    label = spec.label
    t = spec.type
    ok: bool
    if t in ("string", "text"):
        ok = isinstance(value, str)
    elif t == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif t == "bool":
        ok = isinstance(value, bool)
    elif t == "datetime":
        if isinstance(value, datetime):
            ok = value.tzinfo is not None
        elif isinstance(value, str):
            try:
                ok = datetime.fromisoformat(value).tzinfo is not None
            except ValueError:
                ok = False
        else:
            ok = False
        if not ok:
            return Problem(spec.id, "type", f"{label}：应为带时区的时间(ISO 8601)，实际为 {value!r}")
        return None
    elif t == "enum":
        if value not in spec.values:
            return Problem(spec.id, "enum", f"{label}：取值 {value!r} 不在允许值 {'、'.join(spec.values)} 之中")
        return None
    elif t == "list":
        ok = isinstance(value, (list, tuple))
    elif t == "object":
        ok = isinstance(value, Mapping)
    else:  # pragma: no cover - FieldSpec rejects unknown types
        ok = False
    names = {"string": "字符串", "text": "文本", "int": "整数", "bool": "布尔值", "list": "列表", "object": "对象"}
    return None if ok else Problem(spec.id, "type", f"{label}：应为{names[t]}，实际为 {value!r}")


def _as_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else None
    return None


def _consistency(record: Mapping[str, Any]) -> list[Problem]:
    """Rules between fields the spec's notes state (ticket number form, wait/talk arithmetic, order of times)."""
    out: list[Problem] = []
    ticket_no = record.get("ticket_no")
    if isinstance(ticket_no, str) and ticket_no and not TICKET_NO_RE.fullmatch(ticket_no):
        out.append(Problem("ticket_no", "format", f"工单编号(ticket_no)：应为14位数字(年月日8位+当日序号6位)，实际为 {ticket_no!r}"))
    start = _as_datetime(record.get("call_start_at"))
    ended = _as_datetime(record.get("ended_at"))
    enter = _as_datetime(record.get("queue_enter_at"))
    answered = _as_datetime(record.get("answered_at"))
    if start and ended and ended < start:
        out.append(Problem("ended_at", "consistency", "挂机时间(ended_at)：早于来电时间(call_start_at)"))
    if enter and start and enter < start:
        out.append(Problem("queue_enter_at", "consistency", "进入排队时间(queue_enter_at)：早于来电时间(call_start_at)"))
    if answered and enter and answered < enter:
        out.append(Problem("answered_at", "consistency", "应答时间(answered_at)：早于进入排队时间(queue_enter_at)"))
    wait = record.get("wait_seconds")
    if isinstance(wait, int) and not isinstance(wait, bool):
        if wait < 0:
            out.append(Problem("wait_seconds", "consistency", f"等待时长(wait_seconds)：不能为负数({wait})"))
        elif enter and (answered or ended):
            expected = int(((answered or ended) - enter).total_seconds())  # type: ignore[operator]
            if abs(expected - wait) > 1:
                out.append(Problem("wait_seconds", "consistency", f"等待时长(wait_seconds)：应为 {expected} 秒(应答或挂机时间减进入排队时间)，实际为 {wait}"))
    talk = record.get("talk_seconds")
    if isinstance(talk, int) and not isinstance(talk, bool):
        if talk < 0:
            out.append(Problem("talk_seconds", "consistency", f"通话时长(talk_seconds)：不能为负数({talk})"))
        elif answered and ended:
            expected = int((ended - answered).total_seconds())
            if abs(expected - talk) > 1:
                out.append(Problem("talk_seconds", "consistency", f"通话时长(talk_seconds)：应为 {expected} 秒(挂机时间减应答时间)，实际为 {talk}"))
    recording = record.get("recording")
    if isinstance(recording, Mapping):
        missing = [m for m in RECORDING_MEMBERS if not is_present(recording.get(m))]
        if missing:
            out.append(Problem("recording", "missing", f"录音文件(recording)：缺少 {', '.join(missing)}"))
    if record.get("is_anonymous") is True and is_present(record.get("claimant_name")):
        out.append(Problem("claimant_name", "consistency", "姓名或称呼(claimant_name)：匿名诉求应为空"))
    return out


def validate_record(record: Mapping[str, Any]) -> list[Problem]:
    """Every problem of one call record against Appendix C; an empty list means the record conforms."""
    problems: list[Problem] = []
    for spec in FIELDS:
        value = record.get(spec.id)
        if not is_present(value):
            reason = _required_reason(spec, record)
            if reason:
                problems.append(Problem(spec.id, "missing", f"{spec.label}：{reason}"))
            continue
        problem = _type_problem(spec, value)
        if problem:
            problems.append(problem)
    problems.extend(_consistency(record))
    return problems
