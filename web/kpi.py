"""The KPI dashboard (服务指标) and the missed-call callback list (漏接回拨).

Pages: ``/kpi`` (figures with their definitions and numerator/denominator, hour/day charts as inline SVG
drawn here, satisfaction, callbacks), ``/callbacks`` (the callback work list), ``POST /callbacks/{record_id}``.
JSON: ``GET /api/kpi``, ``GET /api/callbacks``, ``POST /api/calls/{record_id}/callback``.

Figures come from :func:`store.kpi_query.kpi_series` (SQL counts, the definitions of :mod:`store.kpi`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Sequence
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy.orm import Session

from config.log import get_logger
from store.kpi import BUCKETS, Figure, KpiError, KpiParams, KpiReport, KpiSeries
from store.kpi_query import CallbackNotRequired, callback_deadline, kpi_series, list_callbacks, mark_called_back
from store.masking import mask_number
from store.models import Call
from store.records import RecordNotFound, record_dict
from store.search import BadCursor, decode_cursor, encode_cursor
from web.access import visible_record
from web.apiutil import BadParameter, Period, error_json, int_param, json_response, local_text, parse_period
from web.auth import audit_request, require_role
from web.layout import Safe, add_nav, csrf_field, join, page, render, table
from web.state import SETTINGS_KEY, USER_KEY, CurrentUser, db_read, db_write

log = get_logger(__name__)

KPI_ROLES = ("qa", "supervisor", "admin")
CALLBACK_VIEW_ROLES = ("agent", "qa", "supervisor", "admin")
CALLBACK_ROLES = ("agent", "supervisor", "admin")       # who calls back: sees the number, may mark
HEADLINE = ("connection_rate", "service_level", "answer_timeliness", "abandon_rate", "avg_wait", "avg_talk",
            "max_wait", "callback_completion")
COUNT_LINES = ("offered", "answered", "short_abandons", "abandoned", "timed_out", "voicemail", "ivr_abandoned",
               "callback_required")
TARGET_CONNECTION_RATE = 0.95


# --------------------------------------------------------------------------- services

def params_of(request: web.Request) -> KpiParams:
    """Thresholds from settings; the dashboard may override them per request (``sl`` / ``short``)."""
    kpi = request.app[SETTINGS_KEY].kpi
    return KpiParams(
        service_level_seconds=int_param(request.query, "sl", kpi.service_level_seconds, 1, 3600),
        short_abandon_seconds=int_param(request.query, "short", kpi.short_abandon_seconds, 0, 3600),
        callback_deadline_hours=kpi.callback_deadline_hours)


@dataclass(frozen=True)
class CallbackRow:
    record_id: str
    call_start_at: str
    caller_number: str
    call_outcome: str
    wait_seconds: int | None
    called_back_at: str | None
    called_back_by: str | None
    overdue: bool

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _callback_row(call: Call, user: CurrentUser, tz: str, params: KpiParams, now: datetime) -> CallbackRow:
    rec = visible_record(user, record_dict(call))
    number = rec["caller_number"] if user.role in CALLBACK_ROLES else mask_number(call.caller_number)
    deadline = callback_deadline(call, params)
    done_at = call.called_back_at
    overdue = (done_at or now) > deadline
    zone = ZoneInfo(tz)
    return CallbackRow(call.record_id, call.call_start_at.astimezone(zone).isoformat(), number or "",
                       call.call_outcome or "", call.wait_seconds,
                       done_at.astimezone(zone).isoformat() if done_at else None, call.called_back_by, overdue)


@dataclass(frozen=True)
class CallbackList:
    rows: list[CallbackRow]
    next_cursor: str | None


def load_callbacks(session: Session, user: CurrentUser, period: Period, tz: str, params: KpiParams, *,
                   pending_only: bool, limit: int, cursor: str) -> CallbackList:
    before = decode_cursor(cursor) if cursor else None
    page_ = list_callbacks(session, period.start, period.end, pending_only=pending_only, limit=limit, before=before)
    now = datetime.now(ZoneInfo(tz))
    rows = [_callback_row(c, user, tz, params, now) for c in page_.calls]
    nxt = encode_cursor(*page_.next_cursor) if page_.next_cursor else None
    return CallbackList(rows, nxt)


# --------------------------------------------------------------------------- charts (inline SVG)

SVG_W, SVG_H = 760, 240
PAD_L, PAD_R, PAD_T, PAD_B = 48, 12, 16, 40
COLORS = {"answered": "#2e7d32", "abandoned": "#c62828", "short_abandons": "#9e9e9e", "timed_out": "#ef6c00",
          "voicemail": "#6a1b9a", "connection_rate": "#1565c0", "service_level": "#2e7d32", "abandon_rate": "#c62828",
          "target": "#ff8f00", "满意": "#2e7d32", "基本满意": "#9ccc65", "不满意": "#c62828"}


def bucket_label(report: KpiReport, bucket: str, tz: ZoneInfo, multi_day: bool) -> str:
    local = report.start.astimezone(tz)
    if bucket == "day":
        return local.strftime("%m-%d")
    return local.strftime("%m-%d %H时" if multi_day else "%H时")


def _x_labels(labels: Sequence[str], x_of: Any, step_w: float) -> Safe:
    every = max(1, int(len(labels) * 48 / (SVG_W - PAD_L - PAD_R)) + 1)   # ~48 px per label
    return join(render('<text x="$x" y="$y" font-size="11" text-anchor="middle" fill="#444">$t</text>',
                       x=f"{x_of(i) + step_w / 2:.1f}", y=str(SVG_H - PAD_B + 16), t=lab)
                for i, lab in enumerate(labels) if i % every == 0)


def _frame(title: str, y_ticks: Safe, body: Safe, legend: Safe, x_labels: Safe) -> Safe:
    return render('<svg class="chart" viewBox="0 0 $w $h" width="100%" role="img" aria-label="$t" '
                  'xmlns="http://www.w3.org/2000/svg"><title>$t</title>$ticks$body$xl$legend</svg>',
                  w=str(SVG_W), h=str(SVG_H), t=title, ticks=y_ticks, body=body, xl=x_labels, legend=legend)


def _legend(items: Sequence[tuple[str, str]]) -> Safe:
    out, x = [], PAD_L
    for label, color in items:
        out.append(render('<rect x="$x" y="$y" width="10" height="10" fill="$c"/>'
                          '<text x="$tx" y="$ty" font-size="11" fill="#333">$l</text>',
                          x=str(x), y=str(SVG_H - 14), c=color, tx=str(x + 14), ty=str(SVG_H - 5), l=label))
        x += 14 + 13 * len(label) + 18
    return join(out)


def _y_grid(max_value: float, fmt: Any) -> tuple[Safe, Any]:
    plot_h = SVG_H - PAD_T - PAD_B

    def y_of(v: float) -> float:
        return PAD_T + plot_h * (1 - (v / max_value if max_value else 0))

    ticks = []
    for i in range(5):
        v = max_value * i / 4
        y = y_of(v)
        ticks.append(render('<line x1="$x1" x2="$x2" y1="$y" y2="$y" stroke="#e0e0e0"/>'
                            '<text x="$tx" y="$ty" font-size="11" text-anchor="end" fill="#666">$v</text>',
                            x1=str(PAD_L), x2=str(SVG_W - PAD_R), y=f"{y:.1f}", tx=str(PAD_L - 6),
                            ty=f"{y + 4:.1f}", v=fmt(v)))
    return join(ticks), y_of


def volume_chart(series: KpiSeries, labels: Sequence[str]) -> Safe:
    """Stacked bars per bucket: 人工接通 / 排队放弃 / 短时放弃 / 排队超时 / 留言 (of the calls that queued)."""
    keys = (("answered", "人工接通"), ("abandoned", "排队放弃"), ("short_abandons", "短时放弃"),
            ("timed_out", "排队超时"), ("voicemail", "留言"))
    totals = [sum(getattr(b.counts, k) for k, _ in keys) for b in series.buckets]
    top = max(totals + [1])
    top = top if top <= 5 else ((top + 4) // 5) * 5
    ticks, y_of = _y_grid(top, lambda v: f"{v:g}")
    n = max(len(series.buckets), 1)
    step = (SVG_W - PAD_L - PAD_R) / n

    def x_of(i: int) -> float:
        return PAD_L + i * step

    bars = []
    for i, (b, lab) in enumerate(zip(series.buckets, labels)):
        acc = 0
        for key, name in keys:
            v = getattr(b.counts, key)
            if not v:
                continue
            y0, y1 = y_of(acc), y_of(acc + v)
            bars.append(render('<rect x="$x" y="$y" width="$w" height="$h" fill="$c"><title>$t</title></rect>',
                               x=f"{x_of(i) + step * 0.15:.1f}", y=f"{y1:.1f}", w=f"{step * 0.7:.1f}",
                               h=f"{max(y0 - y1, 0.5):.1f}", c=COLORS[key], t=f"{lab} {name} {v} 通"))
            acc += v
    return _frame("来电量（进入排队）", ticks, join(bars), _legend([(n_, COLORS[k]) for k, n_ in keys]),
                  _x_labels(labels, x_of, step))


def rate_chart(series: KpiSeries, labels: Sequence[str]) -> Safe:
    """Lines per bucket: 人工接通率, N秒接通率, 放弃率 (0–100 %), with the 95 % target; "—" buckets leave gaps."""
    keys = ("connection_rate", "service_level", "abandon_rate")
    ticks, y_of = _y_grid(1.0, lambda v: f"{v * 100:.0f}%")
    n = max(len(series.buckets), 1)
    step = (SVG_W - PAD_L - PAD_R) / n

    def x_of(i: int) -> float:
        return PAD_L + i * step

    parts = [render('<line x1="$x1" x2="$x2" y1="$y" y2="$y" stroke="$c" stroke-dasharray="6 4" stroke-width="1.5">'
                    '<title>目标 95%</title></line>', x1=str(PAD_L), x2=str(SVG_W - PAD_R),
                    y=f"{y_of(TARGET_CONNECTION_RATE):.1f}", c=COLORS["target"])]
    names = {}
    for key in keys:
        runs: list[list[str]] = [[]]
        for i, b in enumerate(series.buckets):
            f = b.figure(key)
            names[key] = f.label
            if f.value is None:
                runs.append([])
                continue
            x, y = x_of(i) + step / 2, y_of(f.value)
            runs[-1].append(f"{x:.1f},{y:.1f}")
            parts.append(render('<circle cx="$x" cy="$y" r="3" fill="$c"><title>$t</title></circle>',
                                x=f"{x:.1f}", y=f"{y:.1f}", c=COLORS[key],
                                t=f"{labels[i]} {f.label} {f.display}（{f.numerator}/{f.denominator}）"))
        for run in runs:
            if len(run) > 1:
                parts.append(render('<polyline points="$p" fill="none" stroke="$c" stroke-width="2"/>',
                                    p=" ".join(run), c=COLORS[key]))
    legend = _legend([(names.get(k, k), COLORS[k]) for k in keys] + [("目标95%", COLORS["target"])])
    return _frame("接通率与放弃率", ticks, join(parts), legend, _x_labels(labels, x_of, step))


def satisfaction_bar(report: KpiReport) -> Safe:
    shares = [report.figure(k) for k in ("satisfied_share", "basically_satisfied_share", "unsatisfied_share")]
    total = shares[0].denominator or 0
    if not total:
        return render('<p class="empty">本期无满意度评价（—）</p>')
    w, x, parts = 600.0, 0.0, []
    for f in shares:
        width = w * (f.numerator or 0) / total
        if width > 0:
            parts.append(render('<rect x="$x" y="0" width="$w" height="28" fill="$c"><title>$t</title></rect>'
                                '<text x="$tx" y="19" font-size="12" fill="#fff">$s</text>',
                                x=f"{x:.1f}", w=f"{width:.1f}", c=COLORS[f.label],
                                t=f"{f.label} {f.numerator}（{f.display}）", tx=f"{x + 4:.1f}",
                                s=f"{f.label} {f.display}" if width > 90 else ""))
        x += width
    return render('<svg class="chart sat" viewBox="0 0 600 28" width="100%" role="img" aria-label="满意度分布" '
                  'xmlns="http://www.w3.org/2000/svg"><title>满意度分布</title>$p</svg>', p=join(parts))


# --------------------------------------------------------------------------- page pieces

def _tile(f: Figure) -> Safe:
    frac = (f"{f.numerator} / {f.denominator}" if f.kind in ("rate", "mean") and f.denominator is not None
            else (f"进入排队 {f.denominator} 通" if f.kind == "max" else ""))
    return render('<div class="tile" data-key="$k"><div class="label">$l</div><div class="value">$v</div>'
                  '<div class="frac">$frac</div><div class="def">$d</div></div>',
                  k=f.key, l=f.label, v=f.display, frac=frac, d=f.definition)


def _bucket_table(series: KpiSeries, labels: Sequence[str]) -> Safe:
    keys = ("connection_rate", "service_level", "abandon_rate", "avg_wait", "max_wait")
    rows = []
    for b, lab in zip(series.buckets, labels):
        c = b.counts
        rows.append((lab, c.offered, c.answered, c.short_abandons, c.abandoned, c.timed_out, c.voicemail,
                     c.ivr_abandoned, *(b.figure(k).display for k in keys)))
    heads = ("时段", "进入排队", "人工接通", "短时放弃", "排队放弃", "排队超时", "留言", "IVR放弃",
             *(series.total.figure(k).label for k in keys))
    return table(heads, rows, empty="本期无数据")


_KPI_FORM = """<form method="get" action="/kpi" class="card kpi-form">
<label>开始日期<input type="date" name="from" value="$from_"></label>
<label>结束日期（不含）<input type="date" name="to" value="$to"></label>
<label>粒度<select name="bucket"><option value="hour"$h>按小时</option><option value="day"$d>按天</option></select></label>
<label>接通时限（秒）<input type="number" name="sl" min="1" value="$sl"></label>
<label>短时放弃（秒）<input type="number" name="short" min="0" value="$short"></label>
<button type="submit" class="primary">查看</button></form>"""


def callback_table(request: web.Request, rows: Sequence[CallbackRow], user: CurrentUser, back: str) -> Safe:
    out = []
    for r in rows:
        if r.called_back_at:
            state = render('<span class="done">已回拨 $t（$by）</span>', t=r.called_back_at[:16].replace("T", " "),
                           by=r.called_back_by or "")
        elif user.role in CALLBACK_ROLES:
            state = render('<form method="post" action="/callbacks/$id" class="inline">$csrf'
                           '<input type="hidden" name="next" value="$back">'
                           '<button type="submit" class="mark-callback">标记已回拨</button></form>',
                           id=quote(r.record_id, safe=""), csrf=csrf_field(request), back=back)
        else:
            state = render('<span class="pending">待回拨</span>')
        flag = render('<span class="overdue">超时</span>') if r.overdue else Safe("")
        out.append((r.call_start_at[:19].replace("T", " "), r.caller_number, r.call_outcome,
                    "" if r.wait_seconds is None else f"{r.wait_seconds} 秒", Safe(state + flag)))
    return table(("来电时间", "来电号码", "呼叫结果", "等待时长", "回拨"), out, empty="本期无漏接来电")


def _tz(request: web.Request) -> str:
    return request.app[SETTINGS_KEY].general.timezone


def _user(request: web.Request) -> CurrentUser:
    user = request[USER_KEY]
    assert user is not None
    return user


def _period(request: web.Request) -> Period:
    return parse_period(request.query, _tz(request), default_days=1)


def _bucket(request: web.Request) -> str:
    bucket = request.query.get("bucket") or "hour"
    if bucket not in BUCKETS:
        raise BadParameter("bucket", "bucket：应为 hour 或 day")
    return bucket


# --------------------------------------------------------------------------- handlers

@require_role(*KPI_ROLES)
async def api_kpi(request: web.Request) -> web.StreamResponse:
    try:
        period, bucket, params = _period(request), _bucket(request), params_of(request)
        series = await db_read(request, kpi_series, period.start, period.end, params, bucket=bucket, tz=_tz(request))
    except (BadParameter, KpiError) as exc:
        return error_json(exc)
    return json_response(series.to_dict())


@require_role(*KPI_ROLES)
async def kpi_page(request: web.Request) -> web.StreamResponse:
    tz = ZoneInfo(_tz(request))
    user = _user(request)
    query = request.query
    try:
        period, bucket, params = _period(request), _bucket(request), params_of(request)
        series = await db_read(request, kpi_series, period.start, period.end, params, bucket=bucket, tz=_tz(request))
        callbacks = await db_read(request, load_callbacks, user, period, _tz(request), params, pending_only=False,
                                  limit=50, cursor="")
    except (BadParameter, KpiError) as exc:
        message = exc.message if isinstance(exc, BadParameter) else str(exc)
        return page(request, "服务指标", render('<p><a href="/kpi">返回</a></p>'), flash=message, status=400)
    end_day = (period.end - timedelta(microseconds=1)).astimezone(tz).date()
    multi_day = period.start.astimezone(tz).date() != end_day
    labels = [bucket_label(b, bucket, tz, multi_day) for b in series.buckets]
    total = series.total
    form = render(_KPI_FORM, from_=period.start.astimezone(tz).strftime("%Y-%m-%d"),
                  to=period.end.astimezone(tz).strftime("%Y-%m-%d"),
                  h=Safe(" selected") if bucket == "hour" else Safe(""), d=Safe(" selected") if bucket == "day" else Safe(""),
                  sl=str(params.service_level_seconds), short=str(params.short_abandon_seconds))
    shown = render('<p class="period">统计时段：$a 至 $b（$tz，按来电时间；不含结束时刻）</p>',
                   a=local_text(period.start, tz, "%Y-%m-%d %H:%M"), b=local_text(period.end, tz, "%Y-%m-%d %H:%M"),
                   tz=_tz(request))
    tiles = join(_tile(total.figure(k)) for k in HEADLINE)
    counts = table(("项目", "数量", "口径"), [(f.label, f.display, f.definition) for f in (total.figure(k) for k in COUNT_LINES)])
    sat = join((satisfaction_bar(total), render('<div class="tiles small">$a$b</div>',
                                                a=_tile(total.figure("satisfaction_rate")),
                                                b=_tile(total.figure("satisfaction_response_rate")))))
    back = "/kpi?" + urlencode({k: v for k, v in query.items()})
    cb_link = render('<p><a href="/callbacks?$q">查看全部漏接回拨 →</a></p>',
                     q=urlencode({"from": period.start.astimezone(tz).strftime("%Y-%m-%d"),
                                  "to": period.end.astimezone(tz).strftime("%Y-%m-%d")}))
    body = join((form, shown, render('<div class="tiles">$t</div>', t=tiles),
                 render("<h2>分项统计</h2>$c", c=counts),
                 render('<h2>趋势</h2><div class="charts">$a$b</div>', a=volume_chart(series, labels),
                        b=rate_chart(series, labels)),
                 render("<h2>满意度</h2>$s", s=sat),
                 render("<h2>分时段明细</h2>$t", t=_bucket_table(series, labels)),
                 render("<h2>漏接回拨</h2>$t$l", t=callback_table(request, callbacks.rows, user, back), l=cb_link)))
    return page(request, "服务指标", body, head=Safe('<link rel="stylesheet" href="/static/kpi.css">'))


@require_role(*CALLBACK_VIEW_ROLES)
async def api_callbacks(request: web.Request) -> web.StreamResponse:
    try:
        period = parse_period(request.query, _tz(request), default_days=7)
        limit = int_param(request.query, "limit", 100, 1, 500)
        pending = request.query.get("pending") in ("1", "true")
        result = await db_read(request, load_callbacks, _user(request), period, _tz(request),
                               KpiParams.from_settings(request.app[SETTINGS_KEY].kpi), pending_only=pending,
                               limit=limit, cursor=request.query.get("cursor", ""))
    except (BadParameter, BadCursor) as exc:
        return error_json(exc)
    return json_response({**period.to_dict(), "callbacks": [r.to_dict() for r in result.rows],
                          "next_cursor": result.next_cursor})


@require_role(*CALLBACK_VIEW_ROLES)
async def callbacks_page(request: web.Request) -> web.StreamResponse:
    tz = ZoneInfo(_tz(request))
    user = _user(request)
    try:
        period = parse_period(request.query, _tz(request), default_days=7)
        pending = request.query.get("pending", "1") == "1"
        result = await db_read(request, load_callbacks, user, period, _tz(request),
                               KpiParams.from_settings(request.app[SETTINGS_KEY].kpi), pending_only=pending,
                               limit=200, cursor=request.query.get("cursor", ""))
    except (BadParameter, BadCursor) as exc:
        return page(request, "漏接回拨", render('<p><a href="/callbacks">返回</a></p>'), flash=str(exc), status=400)
    query = {"from": period.start.astimezone(tz).strftime("%Y-%m-%d"), "to": period.end.astimezone(tz).strftime("%Y-%m-%d")}
    toggle = render('<p>$a · $b</p>', a=render('<a href="/callbacks?$q">只看待回拨</a>', q=urlencode({**query, "pending": "1"})),
                    b=render('<a href="/callbacks?$q">全部</a>', q=urlencode({**query, "pending": "0"})))
    more = render('<p class="pager"><a href="/callbacks?$q">下一页 →</a></p>',
                  q=urlencode({**query, "pending": "1" if pending else "0", "cursor": result.next_cursor})) \
        if result.next_cursor else Safe("")
    form = render('<form method="get" action="/callbacks" class="card kpi-form"><label>开始日期<input type="date" name="from" '
                  'value="$f"></label><label>结束日期（不含）<input type="date" name="to" value="$t"></label>'
                  '<input type="hidden" name="pending" value="$p"><button type="submit" class="primary">查看</button></form>',
                  f=query["from"], t=query["to"], p="1" if pending else "0")
    back = "/callbacks?" + urlencode({**query, "pending": "1" if pending else "0"})
    flash = "已标记回拨" if request.query.get("marked") == "1" else ""
    return page(request, "漏接回拨", join((form, toggle, callback_table(request, result.rows, user, back), more)),
                flash=flash, head=Safe('<link rel="stylesheet" href="/static/kpi.css">'))


async def _mark(request: web.Request) -> Call:
    user = _user(request)
    record_id = request.match_info["record_id"]
    call = await db_write(request, mark_called_back, record_id, user.username)
    await audit_request(request, "callback", "call", record_id, {})
    log.info("called_back", record_id=record_id, by=user.username)
    return call


@require_role(*CALLBACK_ROLES)
async def api_mark_callback(request: web.Request) -> web.StreamResponse:
    try:
        call = await _mark(request)
    except RecordNotFound:
        return json_response({"error": "RecordNotFound", "message": "来电记录不存在"}, status=404)
    except CallbackNotRequired:
        return json_response({"error": "CallbackNotRequired", "message": "该来电无需回拨"}, status=409)
    tz = ZoneInfo(_tz(request))
    return json_response({"record_id": call.record_id, "called_back_by": call.called_back_by,
                          "called_back_at": call.called_back_at.astimezone(tz).isoformat() if call.called_back_at else None})


def _safe_back(target: str) -> str:
    return target if target.startswith(("/callbacks", "/kpi")) and "//" not in target else "/callbacks"


@require_role(*CALLBACK_ROLES)
async def mark_callback_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    back = _safe_back(str(form.get("next") or ""))
    try:
        await _mark(request)
    except (RecordNotFound, CallbackNotRequired):
        return page(request, "漏接回拨", render('<p class="error">该来电无需回拨或不存在。</p><p><a href="$b">返回</a></p>', b=back),
                    status=404)
    sep = "&" if "?" in back else "?"
    return web.Response(status=303, headers={"Location": f"{back}{sep}marked=1"})


def setup_routes(app: web.Application) -> None:
    add_nav("/kpi", "服务指标", KPI_ROLES)
    add_nav("/callbacks", "漏接回拨", CALLBACK_VIEW_ROLES)
    app.router.add_get("/kpi", kpi_page, name="kpi")
    app.router.add_get("/callbacks", callbacks_page, name="callbacks")
    app.router.add_post("/callbacks/{record_id}", mark_callback_submit, name="callback_mark")
    app.router.add_get("/api/kpi", api_kpi, name="api_kpi")
    app.router.add_get("/api/callbacks", api_callbacks, name="api_callbacks")
    app.router.add_post("/api/calls/{record_id}/callback", api_mark_callback, name="api_call_callback")


__all__ = ["setup_routes", "volume_chart", "rate_chart", "satisfaction_bar", "load_callbacks", "CallbackRow",
           "CallbackList", "params_of"]
