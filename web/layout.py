"""Dependency-free server-side HTML: auto-escaping templates, the shared page layout, Chinese labels.

Every value interpolated with :func:`render` is HTML-escaped unless it is :class:`Safe` (markup built
by this module or by another ``render``). Pages carry no inline script or style (the CSP forbids it):
behaviour lives in ``/static/*.js``, data reaches it through ``data-*`` attributes.
"""

from __future__ import annotations

import html
from string import Template
from typing import Any, Iterable

from aiohttp import web

from web.state import CSRF_KEY, USER_KEY, CurrentUser


class Safe(str):
    """A string that is already HTML and is inserted as is."""


def esc(value: Any) -> Safe:
    """Escape any value for HTML text and attribute positions; ``None`` renders empty."""
    if isinstance(value, Safe):
        return value
    if value is None:
        return Safe("")
    return Safe(html.escape(str(value), quote=True))


def render(template: Template | str, **values: Any) -> Safe:
    """``string.Template`` substitution with every value escaped (except :class:`Safe`)."""
    tpl = template if isinstance(template, Template) else Template(template)
    return Safe(tpl.substitute({k: esc(v) for k, v in values.items()}))


def join(parts: Iterable[Any], sep: str = "") -> Safe:
    return Safe(sep.join(esc(p) for p in parts))


ROLE_LABELS = {"agent": "坐席", "qa": "质检", "supervisor": "班长", "admin": "管理员"}

# Navigation entries: (path, label, roles allowed). Other modules append theirs with add_nav().
NAV: list[tuple[str, str, frozenset[str]]] = [
    ("/agent", "坐席工作台", frozenset({"agent"})),
    ("/admin/users", "用户管理", frozenset({"admin"})),
    ("/admin/audit", "审计日志", frozenset({"admin"})),
]


def add_nav(path: str, label: str, roles: Iterable[str]) -> None:
    """Register a navigation link (idempotent), e.g. ``add_nav("/qa", "质检", ("qa", "supervisor", "admin"))``."""
    entry = (path, label, frozenset(roles))
    if entry not in NAV:
        NAV.append(entry)


_PAGE = Template("""<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="csrf-token" content="$csrf">
<title>$title · 12345 市民服务热线</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/static/app.css">
$head
</head>
<body>
<header class="topbar">
  <a class="brand" href="/">12345 市民服务热线</a>
  <nav>$nav</nav>
  <div class="who">$who</div>
</header>
<main class="$main_class">
<h1>$title</h1>
$flash
$body
</main>
$scripts
</body>
</html>
""")

_LOGOUT = Template("""<span>$name（$role）</span>
<form method="post" action="/logout" class="inline">
<input type="hidden" name="csrf_token" value="$csrf"><button type="submit" class="link">退出登录</button></form>""")


def nav_html(user: CurrentUser | None) -> Safe:
    if user is None:
        return Safe("")
    links = [render('<a href="$p">$l</a>', p=p, l=label) for p, label, roles in NAV if user.role in roles]
    return join(links, " ")


def page(request: web.Request, title: str, body: Safe | str, *, status: int = 200, flash: str = "",
         scripts: Iterable[str] = (), main_class: str = "", head: Safe | str = "") -> web.Response:
    """A full HTML page in the shared layout."""
    user = request.get(USER_KEY)
    csrf = request.get(CSRF_KEY, "")
    who = render(_LOGOUT, name=user.display_name, role=ROLE_LABELS.get(user.role, user.role), csrf=csrf) if user else Safe("")
    text = _PAGE.substitute(
        title=esc(title), csrf=esc(csrf), nav=nav_html(user), who=who, main_class=esc(main_class),
        flash=render('<p class="flash">$m</p>', m=flash) if flash else "",
        body=esc(body) if not isinstance(body, Safe) else body,
        head=head if isinstance(head, Safe) else esc(head),
        scripts=join(render('<script src="$s" defer></script>', s=s) for s in scripts),
    )
    return web.Response(text=text, status=status, content_type="text/html", charset="utf-8")


def csrf_field(request: web.Request) -> Safe:
    return render('<input type="hidden" name="csrf_token" value="$t">', t=request.get(CSRF_KEY, ""))


def table(headers: Iterable[str], rows: Iterable[Iterable[Any]], empty: str = "暂无记录") -> Safe:
    head = join(render("<th>$h</th>", h=h) for h in headers)
    body_rows = [join(render("<td>$c</td>", c=c) for c in row) for row in rows]
    if not body_rows:
        return render('<p class="empty">$e</p>', e=empty)
    return Safe(f'<table class="grid"><thead><tr>{head}</tr></thead><tbody>'
                + "".join(f"<tr>{r}</tr>" for r in body_rows) + "</tbody></table>")
