"""The agent console: the page, the ``/ws/agent`` websocket and the agent-event poller.

The telephony side (possibly another process) inserts ``AgentEvent`` rows: ``screen_pop`` when the queue
connects a call to an agent, ``transcript_ready`` when the caller's description clip is transcribed
(``agent_id`` ``"*"``: whoever has the call). One poller task per app reads new rows by id every
``poll_interval`` seconds and pushes them, enriched and masked for the receiving user, to that agent's
websockets. A console that (re)connects during a call gets its latest open screen pop again.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, AsyncIterator, Mapping
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

from aiohttp import WSCloseCode, WSMsgType, web
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from config.log import get_logger
from store.models import AgentEvent, Call, Recording, Transcript, utcnow
from store.records import record_dict
from web.access import sees_identity, visible_record
from web.auth import Forbidden, require_user
from web.layout import Safe, page, render, table
from web.state import POLL_INTERVAL_KEY, SETTINGS_KEY, CurrentUser, db_read

log = get_logger(__name__)

ANY_AGENT = "*"
HISTORY_LIMIT = 10
POLL_BATCH = 200
REPLAY_WINDOW = timedelta(hours=1)
WS_HEARTBEAT_SECONDS = 30.0


class NotAnAgent(Forbidden):
    message = "坐席工作台需要坐席工号，请联系管理员"


@dataclass(frozen=True)
class EventRow:
    """A detached copy of one ``agent_events`` row."""

    id: int
    agent_id: str
    call_id: int | None
    kind: str
    payload: dict[str, Any]

    @classmethod
    def of(cls, ev: AgentEvent) -> "EventRow":
        return cls(ev.id, ev.agent_id, ev.call_id, ev.kind, dict(ev.payload or {}))


class AgentHub:
    """Open console websockets per agent id (this process)."""

    def __init__(self, last_event_id: int = 0) -> None:
        self._sockets: dict[str, dict[web.WebSocketResponse, CurrentUser]] = {}
        # Highest event id the poller has dispatched: newer events reach every socket registered now.
        self.last_event_id = last_event_id

    def add(self, user: CurrentUser, ws: web.WebSocketResponse) -> None:
        assert user.agent_id
        self._sockets.setdefault(user.agent_id, {})[ws] = user

    def remove(self, user: CurrentUser, ws: web.WebSocketResponse) -> None:
        if user.agent_id and user.agent_id in self._sockets:
            self._sockets[user.agent_id].pop(ws, None)
            if not self._sockets[user.agent_id]:
                del self._sockets[user.agent_id]

    def connected(self, agent_id: str) -> list[tuple[web.WebSocketResponse, CurrentUser]]:
        return list(self._sockets.get(agent_id, {}).items())

    def __bool__(self) -> bool:
        return bool(self._sockets)

    def all_sockets(self) -> list[web.WebSocketResponse]:
        return [ws for sockets in self._sockets.values() for ws in sockets]


HUB_KEY = web.AppKey("agent_hub", AgentHub)
_POLLER_KEY = web.AppKey("agent_poller", asyncio.Task)


# --------------------------------------------------------------------------- queries (run in the executor)

def max_event_id(session: Session) -> int:
    return session.scalar(select(func.max(AgentEvent.id))) or 0


def events_after(session: Session, last_id: int, limit: int = POLL_BATCH) -> list[EventRow]:
    rows = session.scalars(select(AgentEvent).where(AgentEvent.id > last_id).order_by(AgentEvent.id).limit(limit))
    return [EventRow.of(ev) for ev in rows]


def _event_call(session: Session, event: EventRow) -> Call | None:
    if event.call_id is not None:
        return session.get(Call, event.call_id)
    record_id = event.payload.get("record_id")
    if record_id:
        return session.scalar(select(Call).where(Call.record_id == str(record_id)))
    return None


def resolve_agent(session: Session, event: EventRow) -> str | None:
    """The agent an event is for: its own agent id, or for ``"*"`` whoever has the call."""
    if event.agent_id != ANY_AGENT:
        return event.agent_id
    call = _event_call(session, event)
    if call is not None and call.agent_id:
        return call.agent_id
    if call is not None:  # the call's agent column may not be written yet: the agent it was popped to
        return session.scalar(select(AgentEvent.agent_id).where(
            AgentEvent.call_id == call.id, AgentEvent.kind == "screen_pop", AgentEvent.agent_id != ANY_AGENT)
            .order_by(AgentEvent.id.desc()).limit(1))
    return None


def transcript_text(value: Any) -> str | None:
    """Plain text of a transcript in any of the shapes the worker may send (text, segments, channels)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping):
        if isinstance(value.get("text"), str):
            return value["text"]
        for key in ("segments", "channels"):
            if key in value:
                return transcript_text(value[key])
        return None
    if isinstance(value, (list, tuple)):
        parts = [transcript_text(v) for v in value]
        return "".join(p for p in parts if p) or None
    return None


def _clip_transcript(session: Session, recording_id: Any) -> str | None:
    if recording_id is None:
        return None
    try:
        rid = int(recording_id)
    except (TypeError, ValueError):
        return None
    rows = session.scalars(select(Transcript).where(Transcript.recording_id == rid).order_by(Transcript.channel))
    text = "".join(t.text for t in rows if t.text)
    return text or None


def _clip_recording_id(session: Session, payload: Mapping[str, Any], call: Call | None) -> Any:
    for key in ("clip_recording_id", "recording_id", "clip_id"):
        if payload.get(key) is not None:
            return payload[key]
    clip = payload.get("clip")
    if isinstance(clip, Mapping) and clip.get("recording_id") is not None:
        return clip["recording_id"]
    if call is not None:
        return session.scalar(select(Recording.id).where(Recording.call_id == call.id, Recording.kind == "ivr_clip")
                              .order_by(Recording.id.desc()).limit(1))
    return None


def _history(session: Session, user: CurrentUser, call: Call, tz: str) -> list[dict[str, Any]]:
    if not call.caller_number or call.caller_number == "anonymous":
        return []
    rows = session.scalars(select(Call).where(Call.caller_number == call.caller_number, Call.id != call.id)
                           .order_by(Call.call_start_at.desc()).limit(HISTORY_LIMIT))
    out = []
    for prev in rows:
        out.append({
            "record_id": prev.record_id,
            "call_start_at": prev.call_start_at.astimezone(ZoneInfo(tz)).isoformat() if prev.call_start_at else None,
            "call_outcome": prev.call_outcome, "agent_id": prev.agent_id, "ticket_no": prev.ticket_no,
            "appeal_type": prev.appeal_type, "status": prev.status,
            "title": prev.title if sees_identity(user, prev) else None,
        })
    return out


def build_message(session: Session, user: CurrentUser, event: EventRow, tz: str) -> dict[str, Any] | None:
    """The websocket message for one event as ``user`` may see it (None: nothing to show)."""
    call = _event_call(session, event)
    payload = event.payload
    base: dict[str, Any] = {"type": event.kind, "event_id": event.id,
                            "record_id": payload.get("record_id") or (call.record_id if call else None)}
    if event.kind == "transcript_ready":
        recording_id = _clip_recording_id(session, payload, call)
        text = transcript_text(payload.get("transcript")) or transcript_text(payload.get("text")) \
            or _clip_transcript(session, recording_id)
        return {**base, "recording_id": recording_id, "transcript": text}
    if event.kind != "screen_pop":
        return {**base, "payload": payload}
    record: dict[str, Any] = record_dict(call, tz=tz, as_json=True) if call is not None else {
        "record_id": payload.get("record_id"), "caller_number": payload.get("caller_number"), "confidential": None}
    # The agent the call was popped to is its handling agent even before the record says so.
    record["agent_id"] = record.get("agent_id") or (user.agent_id if event.agent_id in (user.agent_id, ANY_AGENT) else None)
    shown = visible_record(user, record)
    recording_id = _clip_recording_id(session, payload, call)
    clip_text = transcript_text(payload.get("transcript")) or _clip_transcript(session, recording_id)
    record_id = shown.get("record_id")
    return {
        **base,
        "call": {k: shown.get(k) for k in ("record_id", "caller_number", "called_number", "call_start_at", "queue_id",
                                           "agent_id", "confidential", "ticket_no", "claimant_name")},
        "ivr_path": payload.get("ivr_path") or shown.get("ivr_path") or [],
        "appeal_type": payload.get("appeal_type") or shown.get("appeal_type"),
        "clip": {"recording_id": recording_id, "transcript": clip_text},
        "history": _history(session, user, call, tz) if call is not None else [],
        "ticket_url": f"/calls/{quote(str(record_id), safe='')}/ticket" if record_id else None,
    }


def latest_open_pop(session: Session, agent_id: str, up_to: int) -> EventRow | None:
    """The agent's newest screen pop (id <= ``up_to``) of the last hour whose call is still going on."""
    ev = session.scalar(select(AgentEvent).where(
        AgentEvent.agent_id == agent_id, AgentEvent.kind == "screen_pop", AgentEvent.id <= up_to,
        AgentEvent.created_at >= utcnow() - REPLAY_WINDOW).order_by(AgentEvent.id.desc()).limit(1))
    if ev is None:
        return None
    call = session.get(Call, ev.call_id) if ev.call_id is not None else None
    if call is not None and call.state != "open":
        return None
    return EventRow.of(ev)


def recent_calls(session: Session, user: CurrentUser, limit: int = 20) -> list[Call]:
    if not user.agent_id:
        return []
    return list(session.scalars(select(Call).where(Call.agent_id == user.agent_id)
                                .order_by(Call.call_start_at.desc()).limit(limit)))


# --------------------------------------------------------------------------- poller

async def dispatch(app: web.Application, event: EventRow) -> int:
    """Push one event to the websockets of its agent; returns how many sockets got it."""
    hub = app[HUB_KEY]
    tz = app[SETTINGS_KEY].general.timezone
    agent_id = event.agent_id if event.agent_id != ANY_AGENT else await db_read(app, resolve_agent, event)
    if not agent_id:
        return 0
    sent = 0
    for ws, user in hub.connected(agent_id):
        message = await db_read(app, build_message, user, event, tz)
        if message is None or ws.closed:
            continue
        try:
            await ws.send_json(message)
            sent += 1
        except (ConnectionResetError, RuntimeError) as exc:
            log.info("agent_ws_send_failed", agent_id=agent_id, error=str(exc))
            hub.remove(user, ws)
    return sent


async def poll_agent_events(app: web.Application, interval: float) -> None:
    """Forever: read events newer than the hub's ``last_event_id`` and dispatch them."""
    hub = app[HUB_KEY]
    backoff = interval
    while True:
        await asyncio.sleep(backoff)
        try:
            if not hub:  # nobody to tell: just move past what exists
                hub.last_event_id = max(hub.last_event_id, await db_read(app, max_event_id))
                backoff = interval
                continue
            for event in await db_read(app, events_after, hub.last_event_id):
                # Advance first: a console registering meanwhile gets this event from the replay or
                # from dispatch (at worst twice, a harmless re-render), never from neither.
                hub.last_event_id = event.id
                await dispatch(app, event)
            backoff = interval
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - a database hiccup must not end the poller
            log.exception("agent_event_poll_failed", last_id=hub.last_event_id)
            backoff = min(max(backoff * 2, interval), 10.0)


async def _poller_ctx(app: web.Application) -> AsyncIterator[None]:
    app[HUB_KEY] = AgentHub(last_event_id=await db_read(app, max_event_id))
    task = asyncio.create_task(poll_agent_events(app, app.get(POLL_INTERVAL_KEY, 0.3)),
                               name="agent-event-poller")
    app[_POLLER_KEY] = task
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _close_sockets(app: web.Application) -> None:
    if HUB_KEY in app:
        for ws in app[HUB_KEY].all_sockets():
            await ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutdown")


# --------------------------------------------------------------------------- handlers

def _require_agent(request: web.Request) -> CurrentUser:
    user = require_user(request)
    if not user.agent_id:
        raise NotAnAgent()
    return user


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if not origin:
        return True  # not a browser (browsers always send Origin on websocket handshakes)
    return urlsplit(origin).netloc == request.host


async def agent_ws(request: web.Request) -> web.StreamResponse:
    user = _require_agent(request)
    if not _same_origin(request):
        log.warning("agent_ws_cross_origin", origin=request.headers.get("Origin"), agent_id=user.agent_id)
        raise Forbidden("跨站连接被拒绝")
    ws = web.WebSocketResponse(heartbeat=WS_HEARTBEAT_SECONDS)
    await ws.prepare(request)
    hub = request.app[HUB_KEY]
    hub.add(user, ws)
    replay_up_to = hub.last_event_id  # later events come from the poller, earlier ones from the replay
    log.info("agent_ws_connected", agent_id=user.agent_id, username=user.username)
    try:
        await ws.send_json({"type": "hello", "agent_id": user.agent_id})
        pending = await db_read(request, latest_open_pop, user.agent_id or "", replay_up_to)
        if pending is not None:
            message = await db_read(request, build_message, user, pending, request.app[SETTINGS_KEY].general.timezone)
            if message is not None:
                await ws.send_json({**message, "replay": True})
        async for msg in ws:
            if msg.type == WSMsgType.TEXT and msg.data == "ping":
                await ws.send_str("pong")
            elif msg.type == WSMsgType.ERROR:
                break
    finally:
        hub.remove(user, ws)
        log.info("agent_ws_closed", agent_id=user.agent_id)
    return ws


_CONSOLE = """
<section class="console" id="console" data-ws="/ws/agent" data-agent-id="$agent_id">
  <div class="status" id="ws-status" data-state="connecting">连接中…</div>
  <div class="pop empty" id="pop"><p>等待来电…接通后此处显示来电信息。</p></div>
  <div class="ticket-area" id="ticket-area"></div>
</section>
<section class="recent">
<h2>我最近接听的来电</h2>
$recent
</section>
"""


async def console_page(request: web.Request) -> web.StreamResponse:
    user = _require_agent(request)
    tz = request.app[SETTINGS_KEY].general.timezone
    calls = await db_read(request, recent_calls, user)
    rows = []
    for call in calls:
        rec = visible_record(user, record_dict(call, tz=tz))
        link = render('<a href="/calls/$q/ticket">$label</a>', q=quote(call.record_id, safe=""),
                      label=call.ticket_no or "填写工单")
        start = rec["call_start_at"].strftime("%Y-%m-%d %H:%M:%S") if rec.get("call_start_at") else ""
        rows.append((start, rec.get("caller_number"), rec.get("call_outcome"), rec.get("appeal_type") or "—", link))
    recent = table(["来电时间", "来电号码", "呼叫结果", "诉求类型", "工单"], rows, empty="暂无来电")
    body = render(_CONSOLE, agent_id=user.agent_id, recent=recent)
    return page(request, f"坐席工作台 · 工号 {user.agent_id}", Safe(body), scripts=["/static/agent.js"],
                main_class="agent-console")


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/agent", console_page, name="agent_console")
    app.router.add_get("/ws/agent", agent_ws, name="agent_ws")
    app.cleanup_ctx.append(_poller_ctx)
    app.on_shutdown.append(_close_sockets)
