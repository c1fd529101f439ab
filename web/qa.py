"""QA (质检): call search, the call page (player + word-synced transcript + Appendix C record) and scoring.

Pages: ``/qa`` (search), ``/qa/calls/{record_id}`` (call), ``POST /qa/calls/{record_id}/review`` (form).
JSON: ``GET /api/calls``, ``GET /api/calls/{record_id}``, ``GET /api/calls/{record_id}/audio`` (HTTP Range),
``POST /api/calls/{record_id}/qa``. Every audio response that starts a playback or a download (no Range, or
a Range from byte 0) is an audit event; the seeks a player makes after that are not.
"""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Mapping
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from config import Settings
from config.log import get_logger
from store.appendix_c import APPEAL_TYPES, CALL_OUTCOMES, FIELDS
from store.models import Call, QaReview, Recording, Transcript
from store.qa import QaError, reviews_of, save_review
from store.records import RecordNotFound, record_dict
from store.search import CallSearch, SearchError, search_calls
from web.access import call_scope, can_play_recording, can_view_call, visible_record
from web.apiutil import BadParameter, error_json, int_param, json_response, parse_time
from web.auth import Forbidden, audit_request, require_role
from web.layout import Safe, add_nav, csrf_field, esc, join, page, render, table
from web.state import SETTINGS_KEY, USER_KEY, CurrentUser, db_read, db_write

log = get_logger(__name__)

QA_ROLES = ("qa", "supervisor", "admin")
SEARCH_ROLES = ("agent", *QA_ROLES)
GROUP_LABELS = {"call": "呼叫信息", "claimant": "诉求人", "appeal": "诉求内容", "handling": "处置", "evidence": "录音转写与质检"}
AUDIO_TYPES = {".flac": "audio/flac", ".wav": "audio/wav"}
SEARCH_PARAMS = ("from", "to", "caller", "agent", "ticket", "appeal_type", "outcome", "q", "limit", "cursor")


class CallNotVisible(Forbidden):
    message = "无权查看该来电"


class RecordingUnavailable(LookupError):
    """No archived recording to play (none, quarantined, purged, or the file is missing)."""


# --------------------------------------------------------------------------- services (run in the executor)

def search_query(query: Mapping[str, str], tz: str) -> CallSearch:
    zone = ZoneInfo(tz)
    return CallSearch(
        start=parse_time("from", query["from"], zone) if query.get("from") else None,
        end=parse_time("to", query["to"], zone) if query.get("to") else None,
        caller=query.get("caller", ""), agent_id=query.get("agent", ""), ticket_no=query.get("ticket", ""),
        appeal_type=query.get("appeal_type", ""), outcome=query.get("outcome", ""), text=query.get("q", ""),
        limit=int_param(query, "limit", 50, 1, 200), cursor=query.get("cursor", ""))


def _row(call: Call, user: CurrentUser, tz: str) -> dict[str, Any]:
    rec = visible_record(user, record_dict(call, tz=tz, as_json=True))
    keys = ("record_id", "call_start_at", "caller_number", "agent_id", "ticket_no", "appeal_type", "call_outcome",
            "wait_seconds", "talk_seconds", "title")
    return {k: rec[k] for k in keys} | {"url": f"/qa/calls/{quote(call.record_id, safe='')}"}


@dataclass(frozen=True)
class SearchResult:
    rows: list[dict[str, Any]]
    next_cursor: str | None


def run_search(session: Session, user: CurrentUser, q: CallSearch, tz: str) -> SearchResult:
    page_ = search_calls(session, q, scope=call_scope(user))
    return SearchResult([_row(c, user, tz) for c in page_.calls], page_.next_cursor)


@dataclass(frozen=True)
class CallView:
    call_id: int
    record: dict[str, Any]
    recordings: list[dict[str, Any]]
    transcripts: list[dict[str, Any]]
    reviews: list[dict[str, Any]]


def _visible_call(session: Session, user: CurrentUser, record_id: str) -> Call:
    call = session.scalar(select(Call).where(Call.record_id == record_id))
    if call is None:
        raise RecordNotFound(record_id)
    if not can_view_call(user, call):
        raise CallNotVisible()
    return call


def _review_dict(r: QaReview, tz: str) -> dict[str, Any]:
    return {"id": r.id, "reviewer": r.reviewer, "items": r.items, "total": r.total, "comment": r.comment,
            "status": r.status, "reviewed_at": r.reviewed_at.astimezone(ZoneInfo(tz)).isoformat()}


def load_call_view(session: Session, user: CurrentUser, record_id: str, tz: str) -> CallView:
    call = _visible_call(session, user, record_id)
    transcripts = list(session.scalars(select(Transcript).where(Transcript.call_id == call.id)
                                       .order_by(Transcript.recording_id, Transcript.channel)))
    recordings = list(session.scalars(select(Recording).where(Recording.call_id == call.id).order_by(Recording.id)))
    reviews = reviews_of(session, call.id)
    record = visible_record(user, record_dict(call, tz=tz, transcripts=transcripts,
                                              qa_review=reviews[0] if reviews else None, as_json=True))
    base = f"/api/calls/{quote(call.record_id, safe='')}/audio"
    recs = [{"id": r.id, "kind": r.kind, "status": r.status, "format": r.format, "duration_seconds": r.duration_seconds,
             "channels": r.channels, "sample_rate": r.sample_rate,
             "audio_url": f"{base}?recording={r.id}" if r.status == "archived" and r.uri else None}
            for r in recordings]
    trs = [{"recording_id": t.recording_id, "channel": t.channel, "speaker": t.speaker, "model": t.model,
            "segments": t.segments} for t in transcripts]
    return CallView(call.id, record, recs, trs, [_review_dict(r, tz) for r in reviews])


def archive_path(settings: Settings, uri: str) -> Path:
    """The file of an archived recording; refuses anything outside ``[recordings] archive_dir``."""
    rel = PurePosixPath(uri)
    if not uri or rel.is_absolute() or ".." in rel.parts:
        raise RecordingUnavailable(f"bad archive uri {uri!r}")
    root = Path(settings.recordings.archive_dir).resolve()
    path = root.joinpath(*rel.parts).resolve()
    if root not in path.parents or not path.is_file():
        raise RecordingUnavailable(f"archive file missing: {uri}")
    return path


@dataclass(frozen=True)
class AudioTarget:
    recording_id: int
    path: Path
    content_type: str


def find_audio(session: Session, user: CurrentUser, settings: Settings, record_id: str,
               recording_id: int | None) -> AudioTarget:
    call = _visible_call(session, user, record_id)
    if not can_play_recording(user, call):
        raise CallNotVisible()
    stmt = select(Recording).where(Recording.call_id == call.id, Recording.status == "archived",
                                   Recording.uri.is_not(None))
    if recording_id is not None:
        stmt = stmt.where(Recording.id == recording_id)
    else:  # the two-leg call recording first, then clips / voicemail
        stmt = stmt.order_by((Recording.kind != "call"), Recording.id)
    rec = session.scalars(stmt.limit(1)).first()
    if rec is None or rec.uri is None:
        raise RecordingUnavailable(f"no archived recording for {record_id}")
    path = archive_path(settings, rec.uri)
    ctype = AUDIO_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return AudioTarget(rec.id, path, ctype)


# --------------------------------------------------------------------------- helpers

def _tz(request: web.Request) -> str:
    return request.app[SETTINGS_KEY].general.timezone


def _user(request: web.Request) -> CurrentUser:
    user = request[USER_KEY]
    assert user is not None  # require_role ran first
    return user


def _record_id(request: web.Request) -> str:
    return request.match_info["record_id"]


# --------------------------------------------------------------------------- JSON API

@require_role(*SEARCH_ROLES)
async def api_search(request: web.Request) -> web.StreamResponse:
    try:
        q = search_query(request.query, _tz(request))
        result = await db_read(request, run_search, _user(request), q, _tz(request))
    except (BadParameter, SearchError) as exc:
        return error_json(exc)
    return json_response({"calls": result.rows, "next_cursor": result.next_cursor})


@require_role(*SEARCH_ROLES)
async def api_call(request: web.Request) -> web.StreamResponse:
    try:
        view = await db_read(request, load_call_view, _user(request), _record_id(request), _tz(request))
    except RecordNotFound:
        return json_response({"error": "RecordNotFound", "message": "来电记录不存在"}, status=404)
    rubric = [{"id": i.id, "label": i.label, "weight": i.weight} for i in request.app[SETTINGS_KEY].qa.rubric]
    return json_response({"record": view.record, "recordings": view.recordings, "transcripts": view.transcripts,
                          "qa_reviews": view.reviews, "rubric": rubric})


def _range_start(header: str | None) -> int | None:
    """First byte of a single ``bytes=N-…`` range (None: no or suffix range)."""
    if not header or not header.startswith("bytes="):
        return None
    first = header[len("bytes="):].split(",")[0].strip()
    head = first.split("-")[0].strip()
    return int(head) if head.isdigit() else None


@require_role(*SEARCH_ROLES)
async def api_audio(request: web.Request) -> web.StreamResponse:
    """The archived audio with HTTP Range (206 + Content-Range; 416 outside the file), audited."""
    try:
        rec_id = int_param(request.query, "recording", 0, 0, 2**62) or None
    except BadParameter as exc:
        return error_json(exc)
    download = request.query.get("download") == "1"
    try:
        target = await db_read(request, find_audio, _user(request), request.app[SETTINGS_KEY], _record_id(request), rec_id)
    except RecordNotFound:
        return json_response({"error": "RecordNotFound", "message": "来电记录不存在"}, status=404)
    except RecordingUnavailable as exc:
        log.warning("recording_unavailable", record_id=_record_id(request), reason=str(exc))
        return json_response({"error": "RecordingUnavailable", "message": "录音不可用"}, status=404)
    start = _range_start(request.headers.get("Range"))
    if start in (None, 0) and request.method == "GET":
        await audit_request(request, "download" if download else "playback", "call", _record_id(request),
                            {"recording_id": target.recording_id, "range": request.headers.get("Range", "")})
    headers = {"Content-Type": target.content_type, "Accept-Ranges": "bytes"}
    if download:
        headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(target.path.name)}"
    return web.FileResponse(target.path, headers=headers)


def _scores_from(data: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    scores = data.get("scores")
    if isinstance(scores, Mapping):
        return dict(scores)
    return {item.id: data.get(f"score_{item.id}") for item in settings.qa.rubric}


async def _save(request: web.Request, data: Mapping[str, Any]) -> QaReview:
    settings = request.app[SETTINGS_KEY]
    user = _user(request)
    record_id = _record_id(request)

    def work(session: Session) -> QaReview:
        _visible_call(session, user, record_id)
        return save_review(session, record_id, user.username, settings.qa.rubric, _scores_from(data, settings),
                           str(data.get("comment") or ""))

    review = await db_write(request, work)
    await audit_request(request, "qa_review", "call", record_id, {"review_id": review.id, "total": review.total})
    log.info("qa_review_saved", record_id=record_id, review_id=review.id, total=review.total)
    return review


@require_role(*QA_ROLES)
async def api_qa(request: web.Request) -> web.StreamResponse:
    try:
        body = await request.json()
    except ValueError:
        return json_response({"error": "BadJson", "message": "请求体必须是 JSON"}, status=400)
    if not isinstance(body, dict):
        return json_response({"error": "BadJson", "message": "请求体必须是 JSON 对象"}, status=400)
    try:
        review = await _save(request, body)
    except RecordNotFound:
        return json_response({"error": "RecordNotFound", "message": "来电记录不存在"}, status=404)
    except QaError as exc:
        return json_response({"error": "QaError", "message": str(exc)}, status=422)
    return json_response(_review_dict(review, _tz(request)), status=201)


# --------------------------------------------------------------------------- pages

_SEARCH_FORM = """
<form method="get" action="/qa" class="card search-form">
<div class="fields">
<label>开始时间<input type="datetime-local" name="from" value="$from_"></label>
<label>结束时间<input type="datetime-local" name="to" value="$to"></label>
<label>来电号码<input name="caller" value="$caller" placeholder="完整或部分号码" inputmode="tel"></label>
<label>坐席工号<input name="agent" value="$agent"></label>
<label>工单编号<input name="ticket" value="$ticket" inputmode="numeric"></label>
<label>诉求类型<select name="appeal_type">$appeal_options</select></label>
<label>呼叫结果<select name="outcome">$outcome_options</select></label>
<label class="wide">录音转写内容<input name="q" value="$q" placeholder="例：噪音、停水"></label>
</div>
<button type="submit" class="primary">查询</button> <a href="/qa">清空</a>
</form>
"""


def _options(values: tuple[str, ...], selected: str) -> Safe:
    opts = [render('<option value="">全部</option>')]
    opts += [render('<option value="$v"$s>$v</option>', v=v, s=Safe(" selected") if v == selected else Safe(""))
             for v in values]
    return join(opts)


def _form_time(value: str) -> str:
    return value[:16] if value else ""


@require_role(*SEARCH_ROLES)
async def qa_page(request: web.Request) -> web.StreamResponse:
    user = _user(request)
    query = request.query
    form = render(_SEARCH_FORM, from_=_form_time(query.get("from", "")), to=_form_time(query.get("to", "")),
                  caller=query.get("caller", ""), agent=query.get("agent", ""), ticket=query.get("ticket", ""),
                  q=query.get("q", ""), appeal_options=_options(APPEAL_TYPES, query.get("appeal_type", "")),
                  outcome_options=_options(CALL_OUTCOMES, query.get("outcome", "")))
    results: Safe = Safe("")
    flash = ""
    status = 200
    try:
        q = search_query(query, _tz(request))
        result = await db_read(request, run_search, user, q, _tz(request))
    except (BadParameter, SearchError) as exc:
        flash, status = (exc.message if isinstance(exc, BadParameter) else str(exc)), 400
    else:
        rows = [(render('<a href="$u" class="call-link">$r</a>', u=r["url"], r=r["record_id"]),
                 (r["call_start_at"] or "")[:19].replace("T", " "), r["caller_number"], r["agent_id"] or "",
                 r["ticket_no"] or "", r["appeal_type"] or "", r["call_outcome"] or "", r["title"] or "")
                for r in result.rows]
        results = table(("来电记录编号", "来电时间", "来电号码", "坐席工号", "工单编号", "诉求类型", "呼叫结果", "诉求标题"),
                        rows, empty="没有符合条件的来电")
        if result.next_cursor:
            params = {k: v for k, v in query.items() if k in SEARCH_PARAMS and k != "cursor"}
            params["cursor"] = result.next_cursor
            results = Safe(results + render('<p class="pager"><a href="/qa?$p">下一页 →</a></p>', p=urlencode(params)))
    return page(request, "来电查询与质检", Safe(form + results), flash=flash, status=status,
                head=Safe('<link rel="stylesheet" href="/static/qa.css">'))


def _field_value(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, list):
        return " → ".join(str(v if not isinstance(v, dict) else "/".join(str(x) for x in v.values())) for v in value) or "—"
    if isinstance(value, dict):
        return "，".join(f"{k}: {v}" for k, v in value.items())
    return str(value).replace("T", " ") if isinstance(value, str) and len(value) >= 19 and value[10:11] == "T" else str(value)


def _record_html(record: Mapping[str, Any]) -> Safe:
    parts: list[Safe] = []
    for group, label in GROUP_LABELS.items():
        rows = [render('<tr><th title="$id">$zh</th><td>$v</td></tr>', id=f.id, zh=f.zh, v=_field_value(record.get(f.id)))
                for f in FIELDS if f.group == group and f.id not in ("transcript", "qa_review", "recording")]
        if rows:
            parts.append(render('<section class="record-group"><h3>$g</h3><table class="record">$rows</table></section>',
                                g=label, rows=join(rows)))
    return join(parts)


def _word_spans(segment: Mapping[str, Any]) -> Safe:
    words = segment.get("words") or []
    if not words:
        return esc(segment.get("text", ""))
    return join(render('<span class="w" data-start="$s" data-end="$e" title="$s s">$w</span>',
                       s=f"{float(w['start']):.2f}", e=f"{float(w['end']):.2f}", w=w.get("word", ""))
                for w in words)


def _transcript_html(transcripts: list[dict[str, Any]], recording_id: int | None) -> Safe:
    chosen = [t for t in transcripts if recording_id is None or t["recording_id"] == recording_id]
    if not chosen:
        return render('<p class="empty">暂无录音转写</p>')
    segs = sorted(((float(s.get("start", 0)), t["channel"], t["speaker"], s) for t in chosen for s in t["segments"]),
                  key=lambda x: (x[0], x[1]))
    lines = [render('<div class="seg ch$c" data-start="$st"><span class="who">$sp</span><span class="at">$at</span>'
                    '<p>$words</p></div>', c=str(ch), st=f"{start:.2f}", sp=speaker,
                    at=f"{int(start // 60):02d}:{start % 60:04.1f}", words=_word_spans(seg))
             for start, ch, speaker, seg in segs]
    return Safe('<div class="transcript-head"><span>诉求人</span><span>坐席</span></div>'
                + '<div class="transcript" id="transcript">' + join(lines) + "</div>")


def _review_form(request: web.Request, record_id: str, error: str = "", values: Mapping[str, Any] | None = None) -> Safe:
    settings = request.app[SETTINGS_KEY]
    values = values or {}
    items = [render('<label class="score">$label <small>（权重 $w）</small>'
                    '<input type="number" name="score_$id" min="0" max="100" step="1" required value="$v"></label>',
                    label=i.label, w=str(i.weight), id=i.id, v=values.get(f"score_{i.id}", ""))
             for i in settings.qa.rubric]
    return render("""<form method="post" action="$action" class="card qa-form" id="qa-form">$csrf
<h2>质检评分</h2><p class="hint">每项 0–100 分，总分为按权重加权的平均分。</p>$error
$items
<label>评语<textarea name="comment" rows="3">$comment</textarea></label>
<button type="submit" class="primary">保存评分</button></form>""",
                  action=f"/qa/calls/{quote(record_id, safe='')}/review", csrf=csrf_field(request),
                  error=render('<p class="error" role="alert">$e</p>', e=error) if error else Safe(""),
                  items=join(items), comment=values.get("comment", ""))


def _reviews_html(reviews: list[dict[str, Any]]) -> Safe:
    rows = [(r["reviewed_at"][:16].replace("T", " "), r["reviewer"], f"{r['total']:.1f}",
             "，".join(f"{v['label']} {v['score']:g}" for v in r["items"].values()), r["comment"]) for r in reviews]
    return table(("评分时间", "质检员", "总分", "各项得分", "评语"), rows, empty="尚未质检")


async def call_page(request: web.Request, *, error: str = "", values: Mapping[str, Any] | None = None,
                    status: int = 200, flash: str = "") -> web.StreamResponse:
    user = _user(request)
    record_id = _record_id(request)
    try:
        view = await db_read(request, load_call_view, user, record_id, _tz(request))
    except RecordNotFound:
        return page(request, "来电不存在", render('<p class="error">来电记录 $r 不存在</p>', r=record_id), status=404)
    playable = [r for r in view.recordings if r["audio_url"]]
    try:
        chosen = int(request.query.get("recording", "0")) or None
    except ValueError:
        chosen = None
    current = next((r for r in playable if r["id"] == chosen), None) or next(
        (r for r in playable if r["kind"] == "call"), None) or (playable[0] if playable else None)
    if current is not None:
        kinds = {"call": "通话录音", "ivr_clip": "IVR描述录音", "voicemail": "留言录音"}
        choices = join(render(' <a href="?recording=$id"$cls>$k</a>', id=str(r["id"]), k=kinds.get(r["kind"], r["kind"]),
                              cls=Safe(' class="current"') if r is current else Safe(""))
                       for r in playable) if len(playable) > 1 else Safe("")
        player = render('<div class="player card"><audio id="player" controls preload="auto" src="$src"></audio>'
                        '<p class="player-links">$choices <a href="$src&amp;download=1">下载</a></p></div>',
                        src=current["audio_url"], choices=choices)
    else:
        player = render('<p class="empty">无可播放的录音</p>')
    left = Safe(player + _transcript_html(view.transcripts, current["id"] if current else None))
    qa = Safe(_review_form(request, record_id, error, values) + render("<h2>质检记录</h2>") + _reviews_html(view.reviews)) \
        if user.role in QA_ROLES else Safe("")
    body = render('<p><a href="/qa">← 返回查询</a></p><div class="qa-layout"><div class="qa-main">$left</div>'
                  '<div class="qa-side">$qa<h2>来电记录（附录C）</h2>$record</div></div>',
                  left=left, qa=qa, record=_record_html(view.record))
    return page(request, f"来电 {record_id}", body, status=status, flash=flash, scripts=("/static/qa.js",),
                head=Safe('<link rel="stylesheet" href="/static/qa.css">'))


@require_role(*SEARCH_ROLES)
async def call_page_handler(request: web.Request) -> web.StreamResponse:
    flash = "评分已保存" if request.query.get("saved") == "1" else ""
    return await call_page(request, flash=flash)


@require_role(*QA_ROLES)
async def review_submit(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    data = {k: v for k, v in form.items() if isinstance(v, str)}
    try:
        await _save(request, data)
    except RecordNotFound:
        return page(request, "来电不存在", render('<p class="error">来电记录不存在</p>'), status=404)
    except QaError as exc:
        return await call_page(request, error=str(exc), values=data, status=422)
    return web.Response(status=303, headers={"Location": f"/qa/calls/{quote(_record_id(request), safe='')}?saved=1"})


def setup_routes(app: web.Application) -> None:
    add_nav("/qa", "来电查询与质检", QA_ROLES)
    app.router.add_get("/qa", qa_page, name="qa_search")
    app.router.add_get("/qa/calls/{record_id}", call_page_handler, name="qa_call")
    app.router.add_post("/qa/calls/{record_id}/review", review_submit, name="qa_review")
    app.router.add_get("/api/calls", api_search, name="api_calls")
    app.router.add_get("/api/calls/{record_id}", api_call, name="api_call")
    app.router.add_get("/api/calls/{record_id}/audio", api_audio, name="api_call_audio")
    app.router.add_post("/api/calls/{record_id}/qa", api_qa, name="api_call_qa")


__all__ = ["setup_routes", "search_query", "run_search", "load_call_view", "find_audio", "archive_path",
           "CallView", "AudioTarget", "RecordingUnavailable", "CallNotVisible"]
