"""Administration: users (list, add with a generated one-time password) and the audit trail."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.orm import Session

from config.log import get_logger
from store.audit import list_events
from store.models import ROLES, AuditEvent, User
from store.users import UserError, add_user, generate_password
from web.auth import audit_request, require_role
from web.layout import ROLE_LABELS, Safe, csrf_field, join, page, render, table
from web.state import SETTINGS_KEY, db_read, db_write

log = get_logger(__name__)

AUDIT_PAGE_SIZE = 200

ACTION_LABELS = {
    "login": "登录", "login_failed": "登录失败", "login_blocked": "登录被锁定", "logout": "退出",
    "playback": "播放录音", "download": "下载", "export": "导出", "user_add": "新增用户", "purge": "清除",
}


def list_users(session: Session) -> list[User]:
    return list(session.scalars(select(User).order_by(User.role, User.username)))


def create_user(session: Session, username: str, role: str, agent_id: str | None, display_name: str) -> tuple[User, str]:
    """A new user with a generated password (shown once). Raises :class:`store.users.UserError`."""
    if agent_id and session.scalar(select(User.id).where(User.agent_id == agent_id)) is not None:
        raise UserError(f"坐席工号 {agent_id} 已被使用")
    password = generate_password()
    user = add_user(session, username, role, password, display_name=display_name, agent_id=agent_id or None)
    return user, password


_USER_FORM = """
<form method="post" action="/admin/users" class="card inline-form">
$csrf
<label>用户名<input name="username" required maxlength="64" value="$username"></label>
<label>姓名<input name="display_name" maxlength="64" value="$display_name"></label>
<label>角色<select name="role">$roles</select></label>
<label>坐席工号<input name="agent_id" maxlength="32" value="$agent_id" placeholder="坐席必填，如 1001"></label>
<button type="submit" class="primary">新增用户</button>
</form>
"""


def _users_body(request: web.Request, users: list[User], form: dict[str, str], created: tuple[str, str] | None,
                error: str) -> Safe:
    roles = join(render('<option value="$r"$s>$l</option>', r=r, l=ROLE_LABELS[r],
                        s=Safe(" selected") if form.get("role", "agent") == r else Safe("")) for r in ROLES)
    notice = Safe("")
    if created:
        notice = render('<div class="notice" role="status">已创建用户 <b>$u</b>，初始密码 <code class="secret">$p</code>'
                        '（只显示这一次，请当面交给本人）</div>', u=created[0], p=created[1])
    if error:
        notice = render('<p class="error" role="alert">$e</p>', e=error)
    rows = [(u.username, u.display_name, ROLE_LABELS.get(u.role, u.role), u.agent_id or "—",
             "启用" if u.active else "停用",
             u.locked_until.strftime("%Y-%m-%d %H:%M") if u.locked_until else "—") for u in users]
    form_html = render(_USER_FORM, csrf=csrf_field(request), roles=roles, username=form.get("username", ""),
                       display_name=form.get("display_name", ""), agent_id=form.get("agent_id", ""))
    return join([notice, form_html, table(["用户名", "姓名", "角色", "坐席工号", "状态", "锁定至"], rows)])


@require_role("admin")
async def users_page(request: web.Request) -> web.StreamResponse:
    users = await db_read(request, list_users)
    return page(request, "用户管理", _users_body(request, users, {}, None, ""))


@require_role("admin")
async def users_add(request: web.Request) -> web.StreamResponse:
    data = await request.post()
    form = {k: str(data.get(k, "")).strip() for k in ("username", "display_name", "role", "agent_id")}
    created: tuple[str, str] | None = None
    error = ""
    status = 200
    try:
        user, password = await db_write(request, create_user, form["username"], form["role"], form["agent_id"] or None,
                                        form["display_name"])
        created = (user.username, password)
        await audit_request(request, "user_add", "user", user.username, {"role": user.role, "agent_id": user.agent_id})
        form = {}
    except UserError as exc:
        error, status = f"未创建：{exc}", 422
    except Exception as exc:  # noqa: BLE001 - e.g. a unique agent id clash reported by the database
        log.warning("user_add_failed", error=str(exc))
        error, status = "未创建：用户名或坐席工号已存在", 422
    users = await db_read(request, list_users)
    return page(request, "用户管理", _users_body(request, users, form, created, error), status=status)


def _events(session: Session, actor: str | None, action: str | None) -> list[AuditEvent]:
    return list_events(session, limit=AUDIT_PAGE_SIZE, actor=actor, action=action)


def _event_row(ev: AuditEvent, tz: str) -> tuple[Any, ...]:
    detail = ", ".join(f"{k}={v}" for k, v in (ev.detail or {}).items())
    return (ev.at.astimezone(ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M:%S"), ev.actor,
            ACTION_LABELS.get(ev.action, ev.action), f"{ev.target_type}:{ev.target_id}" if ev.target_type else ev.target_id,
            detail, ev.remote or "")


@require_role("admin")
async def audit_page(request: web.Request) -> web.StreamResponse:
    actor = request.query.get("actor", "").strip() or None
    action = request.query.get("action", "").strip() or None
    events = await db_read(request, _events, actor, action)
    tz = request.app[SETTINGS_KEY].general.timezone
    if request.query.get("format") == "json" or "application/json" in request.headers.get("Accept", ""):
        return web.json_response([{"id": e.id, "at": e.at.isoformat(), "actor": e.actor, "action": e.action,
                                   "target_type": e.target_type, "target_id": e.target_id, "detail": e.detail,
                                   "remote": e.remote} for e in events])
    filters = render('<form method="get" action="/admin/audit" class="inline-form"><label>操作人<input name="actor" value="$a">'
                     '</label><label>操作<input name="action" value="$c"></label><button type="submit">筛选</button></form>',
                     a=actor or "", c=action or "")
    rows = [_event_row(e, tz) for e in events]
    return page(request, "审计日志", join([filters, table(["时间", "操作人", "操作", "对象", "详情", "来源地址"], rows)]))


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/admin/users", users_page, name="admin_users")
    app.router.add_post("/admin/users", users_add)
    app.router.add_get("/admin/audit", audit_page, name="admin_audit")
    app.router.add_get("/api/admin/audit", audit_page)
