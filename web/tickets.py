"""The ticket form (工单) and its save service.

The form has the Appendix D sections 诉求人信息 / 诉求内容 / 处置 with the Appendix C fields of the
``claimant``, ``appeal`` and ``handling`` groups. Saving validates the whole record with the store's
validator; only problems of those three groups block the save (an answered call may still lack its
``recording`` until the recorder attaches it after hangup: such problems are shown as information).
The ticket number is allocated in the same write transaction that stores the fields, once per call:
saving again keeps it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping
from urllib.parse import quote
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from config.log import get_logger
from store.appendix_c import FIELDS, FIELDS_BY_ID, FieldSpec
from store.masking import IDENTITY_FIELDS
from store.models import Call
from store.records import RecordNotFound, record_dict, revalidate, update_call
from store.tickets import allocate_ticket_no
from store.validation import Problem, validate_record
from web.access import can_edit_ticket, can_view_call, sees_identity, visible_record
from web.auth import Forbidden, require_user
from web.layout import Safe, csrf_field, esc, join, page, render
from web.state import SETTINGS_KEY, CurrentUser, db_read, db_write

log = get_logger(__name__)

TICKET_GROUPS: tuple[str, ...] = ("claimant", "appeal", "handling")
GROUP_TITLES = {"claimant": "诉求人信息", "appeal": "诉求内容", "handling": "处置"}
TICKET_FIELDS: tuple[FieldSpec, ...] = tuple(f for f in FIELDS if f.group in TICKET_GROUPS)
TICKET_FIELD_IDS = frozenset(f.id for f in TICKET_FIELDS)
_SPECS = {f.id: f for f in TICKET_FIELDS}
# A ticket-requirement check needs *a* ticket number before the real one is allocated.
_PLACEHOLDER_TICKET_NO = "00000000000000"
# Fields a user who sees the claimant masked may not change (they would overwrite or unmask the identity).
_IDENTITY_GUARDED = frozenset(IDENTITY_FIELDS) & TICKET_FIELD_IDS | {"confidential"}
# Pre-selected in an empty form (the agent changes them when they do not apply); never applied by the service.
FORM_DEFAULTS: dict[str, Any] = {"claimant_type": "自然人", "is_anonymous": False, "confidential": False,
                                 "urgency": "一般", "accepted": True}
_TRUE = frozenset({"true", "1", "yes", "on", "是"})
_FALSE = frozenset({"false", "0", "no", "off", "否"})


class TicketError(Exception):
    """Base of ticket errors."""


class TicketInvalid(TicketError):
    """The ticket fields do not meet Appendix C; nothing was saved and no number was allocated."""

    def __init__(self, problems: list[Problem], info: list[Problem] | None = None) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems
        self.info = info or []


@dataclass(frozen=True)
class TicketSaved:
    record_id: str
    ticket_no: str
    created: bool                                   # a number was allocated by this save
    info: list[Problem] = field(default_factory=list)  # non-blocking problems of the record (e.g. recording)


# --------------------------------------------------------------------------- input parsing (schema)

def _max_length(field_id: str) -> int | None:
    return getattr(Call.__table__.c[field_id].type, "length", None)


def parse_ticket_input(data: Mapping[str, Any], tz: str, *, strict: bool = False) -> tuple[dict[str, Any], list[Problem]]:
    """Form strings or JSON values → typed Appendix C values, plus problems for values that do not parse.

    Empty strings become None (the field is cleared). Naive times (``datetime-local`` inputs) are taken in
    the hotline's time zone. With ``strict`` (the JSON API) keys outside the ticket fields are problems;
    the form's own keys (csrf_token…) are ignored otherwise.
    """
    values: dict[str, Any] = {}
    problems: list[Problem] = []
    zone = ZoneInfo(tz)
    for key, raw in data.items():
        spec = _SPECS.get(key)
        if spec is None:
            if strict:
                problems.append(Problem(key, "unknown", f"{key}：不是工单字段"))
            continue
        if raw is None or (isinstance(raw, str) and raw.strip() == ""):
            values[key] = None
            continue
        if spec.type == "bool":
            if isinstance(raw, bool):
                values[key] = raw
            elif isinstance(raw, str) and raw.strip().lower() in _TRUE | _FALSE:
                values[key] = raw.strip().lower() in _TRUE
            else:
                problems.append(Problem(key, "type", f"{spec.label}：请选择是或否"))
            continue
        if spec.type == "datetime":
            if isinstance(raw, datetime):
                parsed = raw
            else:
                try:
                    parsed = datetime.fromisoformat(str(raw).strip())
                except ValueError:
                    problems.append(Problem(key, "type", f"{spec.label}：时间格式不正确"))
                    continue
            values[key] = parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)
            continue
        if not isinstance(raw, str):
            problems.append(Problem(key, "type", f"{spec.label}：应为文本"))
            continue
        text = raw.strip() if spec.type != "text" else raw.strip("\r\n ")
        limit = _max_length(key)
        if limit and len(text) > limit:
            problems.append(Problem(key, "format", f"{spec.label}：不能超过 {limit} 个字符"))
            continue
        values[key] = text
    return values, problems


# --------------------------------------------------------------------------- service

def _blocking(problem: Problem) -> bool:
    return problem.field in TICKET_FIELD_IDS


def save_ticket(session: Session, user: CurrentUser, record_id: str, values: Mapping[str, Any], *,
                tz: str, parse_problems: list[Problem] | tuple[Problem, ...] = ()) -> TicketSaved:
    """Validate and store the ticket fields of a call; allocate its ticket number on the first save.

    Runs inside one write transaction: on :class:`TicketInvalid` the caller's transaction rolls back and no
    number is consumed. Raises :class:`~store.records.RecordNotFound` and :class:`~web.auth.Forbidden`.
    """
    call = session.scalar(select(Call).where(Call.record_id == record_id).with_for_update())
    if call is None:
        raise RecordNotFound(record_id)
    if not can_edit_ticket(user, call):
        raise Forbidden("只有接听该来电的坐席、班长或管理员可以填写工单")
    changes = dict(values)
    if not sees_identity(user, call):
        for key in _IDENTITY_GUARDED:
            changes.pop(key, None)
    phone = changes["contact_phone"] if "contact_phone" in changes else call.contact_phone
    if not phone:
        changes["contact_phone"] = call.caller_number  # Appendix C: defaults to the caller's number
    candidate = {**record_dict(call), **changes, "ticket_no": call.ticket_no or _PLACEHOLDER_TICKET_NO}
    problems = validate_record(candidate)
    unparsed = {p.field for p in parse_problems}
    blocking = list(parse_problems) + [p for p in problems if _blocking(p) and p.field not in unparsed]
    if blocking:
        raise TicketInvalid(blocking, [p for p in problems if not _blocking(p)])
    update_call(session, record_id, changes)
    created = call.ticket_no is None
    if created:
        call.ticket_no = allocate_ticket_no(session, tz)
    if call.state == "complete":
        after = revalidate(session, call)
    else:  # the call is still going on: hangup's complete_call validates and completes it
        after = validate_record(record_dict(call))
        session.flush()
    log.info("ticket_saved", record_id=record_id, ticket_no=call.ticket_no, created=created, by=user.username)
    return TicketSaved(record_id=record_id, ticket_no=call.ticket_no or "", created=created,
                       info=[p for p in after if not _blocking(p)])


def load_ticket_view(session: Session, user: CurrentUser, record_id: str, tz: str, *, for_edit: bool = True) -> dict[str, Any]:
    """The call record as this user may see it (raises Forbidden / RecordNotFound).

    ``for_edit``: the user is about to fill the form (handling agent, supervisor, admin); otherwise reading
    is enough (the viewing rule: QA may read every ticket).
    """
    call = session.scalar(select(Call).where(Call.record_id == record_id))
    if call is None:
        raise RecordNotFound(record_id)
    if for_edit and not can_edit_ticket(user, call):
        raise Forbidden("只有接听该来电的坐席、班长或管理员可以填写工单")
    if not can_view_call(user, call):
        raise Forbidden("无权查看该来电")
    record = visible_record(user, record_dict(call, tz=tz))
    record["_identity_visible"] = sees_identity(user, call)
    return record


# --------------------------------------------------------------------------- rendering

def _input_value(spec: FieldSpec, value: Any) -> str:
    if value is None:
        return ""
    if spec.type == "bool":
        return "true" if value is True else "false" if value is False else str(value)
    if spec.type == "datetime" and isinstance(value, datetime):
        return value.strftime("%Y-%m-%dT%H:%M")
    return str(value)


def _condition_attrs(spec: FieldSpec) -> Safe:
    req = spec.required
    if req.kind != "when" or req.cond_field is None:
        return Safe("")
    shown = ["true" if v is True else "false" if v is False else str(v) for v in req.cond_values]
    return render(' data-when-field="$f" data-when-values="$v"', f=req.cond_field,
                  v=json.dumps(shown, ensure_ascii=False))


def _widget(spec: FieldSpec, value: str, readonly: bool) -> Safe:
    attrs = render(' id="f-$id" name="$id"', id=spec.id)
    if readonly:
        attrs = Safe(attrs + ' disabled title="保密诉求人信息，无权修改"')
    if spec.type in ("enum", "bool"):
        choices = [("true", "是"), ("false", "否")] if spec.type == "bool" else [(v, v) for v in spec.values]
        options = [Safe('<option value="">请选择</option>')] + [
            render('<option value="$v"$sel>$l</option>', v=v, l=label, sel=Safe(" selected") if v == value else Safe(""))
            for v, label in choices]
        return Safe(f"<select{attrs}>{join(options)}</select>")
    if spec.type == "text":
        return Safe(f'<textarea{attrs} rows="4">{esc(value)}</textarea>')
    kind = {"datetime": "datetime-local"}.get(spec.type, "tel" if spec.id == "contact_phone" else "text")
    limit = _max_length(spec.id)
    extra = render(' maxlength="$n"', n=limit) if limit else Safe("")
    return Safe(f'<input type="{kind}"{attrs}{extra} value="{esc(value)}">')


def render_ticket_form(request: web.Request, record: Mapping[str, Any], values: Mapping[str, Any] | None = None,
                       problems: list[Problem] | tuple[Problem, ...] = (), saved: TicketSaved | None = None) -> Safe:
    """The form HTML (used by the ticket page and, fetched as a fragment, by the agent console)."""
    settings = request.app[SETTINGS_KEY]
    shown = {**record, **(values or {})}
    if not record.get("ticket_no") and values is None:
        for key, default in FORM_DEFAULTS.items():
            if shown.get(key) is None:
                shown[key] = default
        if not shown.get("contact_phone"):
            shown["contact_phone"] = record.get("caller_number")
    identity_visible = bool(record.get("_identity_visible", True))
    by_field: dict[str, list[str]] = {}
    for p in problems:
        by_field.setdefault(p.field, []).append(p.message)
    sections = []
    for group in TICKET_GROUPS:
        rows = []
        for spec in (f for f in TICKET_FIELDS if f.group == group):
            readonly = not identity_visible and spec.id in _IDENTITY_GUARDED
            required = spec.required.kind == "ticket"
            errors = join(render('<p class="field-error" role="alert">$m</p>', m=m) for m in by_field.get(spec.id, []))
            rows.append(render(
                '<div class="field$req$err" data-field="$id"$cond><label for="f-$id">$zh</label>$widget'
                '<div class="errors" data-error-for="$id">$errors</div></div>',
                id=spec.id, zh=spec.zh, cond=_condition_attrs(spec), widget=_widget(spec, _input_value(spec, shown.get(spec.id)), readonly),
                req=Safe(" required" if required else (" conditional" if spec.required.kind == "when" else "")),
                err=Safe(" has-error" if spec.id in by_field else ""), errors=errors))
        sections.append(render('<fieldset class="section"><legend>$t</legend>$rows</fieldset>',
                               t=GROUP_TITLES[group], rows=join(rows)))
    other = [p for p in problems if p.field not in TICKET_FIELD_IDS]
    notes = render('<div class="notes"><p>以下来电信息由系统在挂机后补全，不影响工单保存：</p><ul>$items</ul></div>',
                   items=join(render("<li>$m</li>", m=p.message) for p in other)) if other else Safe("")
    ticket_no = saved.ticket_no if saved else record.get("ticket_no")
    banner = render(
        '<div class="ticket-banner" role="status"><span class="label">工单编号（请告知来电人）</span>'
        '<strong class="ticket-number" data-ticket-no="$no">$prefix$grouped</strong></div>',
        no=ticket_no, prefix=settings.general.ticket_prefix, grouped=_group_digits(ticket_no)) if ticket_no else Safe("")
    header = render(
        '<dl class="call-facts"><dt>来电记录编号</dt><dd>$rid</dd><dt>来电号码</dt><dd>$caller</dd>'
        '<dt>来电时间</dt><dd>$start</dd><dt>坐席工号</dt><dd>$agent</dd></dl>',
        rid=record.get("record_id"), caller=record.get("caller_number"),
        start=_input_value(FIELDS_BY_ID["call_start_at"], record.get("call_start_at")).replace("T", " "), agent=record.get("agent_id") or "—")
    return render(
        '<div class="ticket" data-record-id="$rid">$banner$header'
        '<form method="post" action="/calls/$rid_q/ticket" class="ticket-form" data-api="/api/calls/$rid_q/ticket" novalidate>'
        '$csrf$sections$notes<div class="actions"><button type="submit" class="primary">保存工单</button></div></form></div>',
        rid=record.get("record_id"), rid_q=_path_segment(str(record.get("record_id") or "")), banner=banner,
        header=header, csrf=csrf_field(request), sections=join(sections), notes=notes)


def _group_digits(ticket_no: str | None) -> Safe:
    if not ticket_no or len(ticket_no) != 14:
        return esc(ticket_no)
    return render('<span>$a</span> <span>$b</span> <span>$c</span>', a=ticket_no[:4], b=ticket_no[4:8], c=ticket_no[8:])


def _path_segment(value: str) -> str:
    return quote(value, safe="")


# --------------------------------------------------------------------------- handlers

def _tz(request: web.Request) -> str:
    return request.app[SETTINGS_KEY].general.timezone


async def _view(request: web.Request, user: CurrentUser, record_id: str, for_edit: bool = True) -> dict[str, Any]:
    return await db_read(request, load_ticket_view, user, record_id, _tz(request), for_edit=for_edit)


async def ticket_page(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    record = await _view(request, user, request.match_info["record_id"])
    form = render_ticket_form(request, record)
    if request.query.get("fragment"):
        return web.Response(text=form, content_type="text/html", charset="utf-8")
    return page(request, "工单登记", form, scripts=["/static/agent.js"], main_class="ticket-page")


async def ticket_submit(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    record_id = request.match_info["record_id"]
    form = await request.post()
    values, parse_problems = parse_ticket_input({k: v for k, v in form.items() if isinstance(v, str)}, _tz(request))
    try:
        saved = await db_write(request, save_ticket, user, record_id, values, tz=_tz(request),
                               parse_problems=parse_problems)
    except TicketInvalid as exc:
        record = await _view(request, user, record_id)
        body = render_ticket_form(request, record, values, exc.problems + exc.info)
        return page(request, "工单登记", body, status=422, flash="工单未保存：请按提示修改标红的字段",
                    scripts=["/static/agent.js"], main_class="ticket-page")
    record = await _view(request, user, record_id)
    body = render_ticket_form(request, record, problems=saved.info, saved=saved)
    return page(request, "工单登记", body, flash="工单已保存", scripts=["/static/agent.js"], main_class="ticket-page")


async def api_ticket_get(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    record = await _view(request, user, request.match_info["record_id"], for_edit=False)
    out = {k: record.get(k) for k in ("record_id", "ticket_no", *sorted(TICKET_FIELD_IDS))}
    return web.json_response(out, dumps=lambda o: json.dumps(o, ensure_ascii=False, default=_json_default))


async def api_ticket_save(request: web.Request) -> web.StreamResponse:
    user = require_user(request)
    record_id = request.match_info["record_id"]
    try:
        body = await request.json()
    except ValueError:
        return web.json_response({"error": "BadRequest", "message": "请求体不是 JSON"}, status=400)
    if not isinstance(body, dict):
        return web.json_response({"error": "BadRequest", "message": "请求体应为对象"}, status=400)
    values, parse_problems = parse_ticket_input(body, _tz(request), strict=True)
    try:
        saved = await db_write(request, save_ticket, user, record_id, values, tz=_tz(request),
                               parse_problems=parse_problems)
    except TicketInvalid as exc:
        return _json({"error": "TicketInvalid", "message": "工单未保存",
                      "problems": [p.to_dict() for p in exc.problems], "info": [p.to_dict() for p in exc.info]}, 422)
    return _json({"record_id": saved.record_id, "ticket_no": saved.ticket_no, "created": saved.created,
                  "info": [p.to_dict() for p in saved.info]}, 201 if saved.created else 200)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False, default=_json_default))


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/calls/{record_id}/ticket", ticket_page, name="ticket")
    app.router.add_post("/calls/{record_id}/ticket", ticket_submit)
    app.router.add_get("/api/calls/{record_id}/ticket", api_ticket_get)
    app.router.add_post("/api/calls/{record_id}/ticket", api_ticket_save)
