"""The JSON API's documentation: ``/api/openapi.json`` (OpenAPI 3, web/openapi.json) and ``/api/docs``
(the same document rendered as a readable HTML page, server-side, without scripts)."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from aiohttp import web

from web.auth import public
from web.layout import Safe, join, page, render

OPENAPI_FILE = Path(__file__).with_name("openapi.json")
METHODS = ("get", "post", "put", "patch", "delete")


@lru_cache(maxsize=1)
def openapi() -> dict[str, Any]:
    with OPENAPI_FILE.open(encoding="utf-8") as fh:
        return json.load(fh)


def _schema_text(schema: Mapping[str, Any] | None) -> str:
    if not schema:
        return ""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if schema.get("type") == "array":
        return f"[{_schema_text(schema.get('items'))}]"
    if "enum" in schema:
        return " | ".join(str(v) for v in schema["enum"])
    return str(schema.get("type", "object"))


def _operation(path: str, method: str, op: Mapping[str, Any]) -> Safe:
    params = [(p["name"], p["in"], "是" if p.get("required") else "", _schema_text(p.get("schema")), p.get("description", ""))
              for p in op.get("parameters", [])]
    param_rows = join(render("<tr><td><code>$n</code></td><td>$i</td><td>$r</td><td>$t</td><td>$d</td></tr>",
                             n=n, i=i, r=r, t=t, d=d) for n, i, r, t, d in params)
    body = op.get("requestBody", {}).get("content", {})
    body_html = join(render("<p>请求体 <code>$ct</code>：$s</p>", ct=ct, s=_schema_text(v.get("schema")))
                     for ct, v in body.items())
    responses = join(render("<li><code>$c</code> $d $s</li>", c=code, d=r.get("description", ""),
                            s=" / ".join(f"{ct} {_schema_text(v.get('schema'))}".strip() for ct, v in r.get("content", {}).items()))
                     for code, r in op.get("responses", {}).items())
    table = render('<table class="grid"><thead><tr><th>参数</th><th>位置</th><th>必填</th><th>类型</th><th>说明</th></tr></thead>'
                   "<tbody>$rows</tbody></table>", rows=param_rows) if params else Safe("")
    anchor = f"{method}-{path}".replace("/", "-").replace("{", "").replace("}", "")
    return render('<section class="op" id="$a"><h3><span class="method">$m</span> <code>$p</code> — $s</h3>'
                  "<p>$desc</p>$table$body<ul>$resp</ul></section>",
                  a=anchor, m=method.upper(), p=path, s=op.get("summary", ""), desc=op.get("description", ""),
                  table=table, body=body_html, resp=responses)


def render_docs(doc: Mapping[str, Any]) -> Safe:
    by_tag: dict[str, list[Safe]] = {t["name"]: [] for t in doc.get("tags", [])}
    for path, item in doc["paths"].items():
        for method in METHODS:
            if method in item:
                op = item[method]
                by_tag.setdefault((op.get("tags") or ["其他"])[0], []).append(_operation(path, method, op))
    schemas = doc.get("components", {}).get("schemas", {})
    schema_html = join(render('<section class="schema" id="schema-$n"><h3>$n</h3><p>$d</p><ul>$props</ul></section>',
                              n=name, d=s.get("description", ""),
                              props=join(render("<li><code>$k</code>：$t $d</li>", k=k, t=_schema_text(v), d=v.get("description", ""))
                                         for k, v in s.get("properties", {}).items()))
                       for name, s in schemas.items())
    sections = join(render("<h2>$t</h2>$ops", t=tag, ops=join(ops)) for tag, ops in by_tag.items() if ops)
    intro = render('<p>$d</p><p>机器可读版本：<a href="/api/openapi.json">/api/openapi.json</a>（OpenAPI $v）</p>',
                   d=doc["info"].get("description", ""), v=doc.get("openapi", ""))
    return join((intro, sections, render("<h2>数据结构</h2>$s", s=schema_html)))


@public
async def openapi_json(request: web.Request) -> web.StreamResponse:
    return web.json_response(openapi(), dumps=lambda d: json.dumps(d, ensure_ascii=False))


@public
async def docs_page(request: web.Request) -> web.StreamResponse:
    doc = openapi()
    return page(request, doc["info"]["title"], render_docs(doc))


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/openapi.json", openapi_json, name="api_openapi")
    app.router.add_get("/api/docs", docs_page, name="api_docs")
