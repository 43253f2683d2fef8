"""The OpenAPI 3.1 document of the HTTP API, made from the code: the route table
(``ingress.http.OPERATIONS``) and pydantic's JSON Schemas of the request and response models.
Nothing here is written by hand about a field; change a model and the document follows.

Served at ``/openapi.json``; ``/docs`` is a page rendered from the same document (no script, no
outside assets), and ``/problems/<slug>`` points into it for every problem type.
"""

from __future__ import annotations

import html
import json
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from adressat import __version__

from .http import HTTP_PROBLEMS, OPERATIONS, Operation
from .refusals import ANSWERS, PROBLEM_BASE

REF = "#/components/schemas/{model}"
_SECURITY: list[dict[str, list[str]]] = [{"apiKey": []}]


def _models() -> list[type[BaseModel]]:
    seen: dict[str, type[BaseModel]] = {}
    for op in OPERATIONS:
        if op.request is not None:
            seen[op.request.__name__] = op.request
        for _, model in op.responses.values():
            if model is not None:
                seen[model.__name__] = model
    return list(seen.values())


def problem_types() -> list[tuple[str, int, str]]:
    """(slug, HTTP status, title) of every problem the API can answer."""
    rows = [(a.slug, a.http, a.title) for a in ANSWERS.values()]
    rows += [(slug, status, title) for slug, (status, title) in HTTP_PROBLEMS.items()]
    return sorted(rows)


def _operation(op: Operation) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": op.summary, "security": _SECURITY,
                           "operationId": f"{op.method}_{op.path.strip('/').replace('/', '_')}"
                           .replace("{", "").replace("}", "")}
    params: list[dict[str, Any]] = []
    if "{id}" in op.path:
        params.append({"name": "id", "in": "path", "required": True,
                       "schema": {"type": "string", "minLength": 1, "maxLength": 64}})
    for name, description, required in op.query:
        schema: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": 64}
        if name == "limit":
            schema = {"type": "integer", "minimum": 1, "maximum": 100}
        params.append({"name": name, "in": "query", "required": required,
                       "description": description, "schema": schema})
    if op.idempotent_key:
        params.append({"name": "Idempotency-Key", "in": "header", "required": False,
                       "description": "The same key with the same body answers the first "
                                      "answer again and creates nothing (kept 24 h); with "
                                      "another body: 422 idempotency-key-reused",
                       "schema": {"type": "string", "minLength": 1, "maxLength": 255}})
    if params:
        out["parameters"] = params
    if op.request is not None:
        out["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": {"$ref": REF.format(model=op.request.__name__)}}}}
    responses: dict[str, Any] = {}
    for status, (description, model) in sorted(op.responses.items()):
        entry: dict[str, Any] = {"description": description}
        if model is not None:
            media = "application/problem+json" if model.__name__ == "Problem" \
                else "application/json"
            entry["content"] = {media: {"schema": {"$ref": REF.format(model=model.__name__)}}}
        if status == 202 and op.path == "/v1/messages":  # where a stateful client goes next
            entry["links"] = {name: {"operationId": f"{verb}_v1_messages_id",
                                     "parameters": {"id": "$response.body#/id"}}
                              for name, verb in (("GetMessage", "get"),
                                                 ("CancelMessage", "delete"))}
        if status == 429:
            entry["headers"] = {"Retry-After": {"schema": {"type": "integer"},
                                                "description": "Seconds to wait"}}
        responses[str(status)] = entry
    out["responses"] = responses
    return out


def document() -> dict[str, Any]:
    _, schemas = models_json_schema([(m, "validation") for m in _models()],
                                    ref_template=REF)
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "adressat messages API", "version": __version__,
                 "description": "Send SMS over HTTP with the promises of SMPP: 202 only after "
                                "the durable commit; status callbacks signed per account."},
        "paths": paths,
        "components": {
            "schemas": schemas.get("$defs", {}),
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer",
                                           "description": "adressat account key add NAME"}},
        },
    }


def _schema_rows(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    rows = []
    required = set(schema.get("required", ()))
    for name, prop in schema.get("properties", {}).items():
        kinds = []
        for alt in prop.get("anyOf", [prop]):
            if "$ref" in alt:
                kinds.append(alt["$ref"].rsplit("/", 1)[-1])
            elif alt.get("type") == "array":
                item = alt.get("items", {})
                kinds.append("array of " + (item.get("type") or
                                            item.get("$ref", "").rsplit("/", 1)[-1]))
            elif "type" in alt:
                kinds.append(str(alt["type"]))
        merged = {k: v for alt in prop.get("anyOf", []) for k, v in alt.items()} | prop
        limits = ", ".join(f"{k} {merged[k]}" for k in ("minLength", "maxLength", "minimum",
                                                        "maximum", "maxItems", "pattern")
                           if k in merged)
        rows.append(
            f"<tr><td><code>{html.escape(name)}</code></td>"
            f"<td>{html.escape(' | '.join(kinds))}</td>"
            f"<td>{'yes' if name in required else ''}</td>"
            f"<td>{html.escape(prop.get('description', ''))}"
            f"{' (' + html.escape(limits) + ')' if limits else ''}</td></tr>")
    return ("<table><tr><th>field</th><th>type</th><th>required</th><th>meaning</th></tr>"
            + "".join(rows) + "</table>")


def docs_page(doc: dict[str, Any]) -> str:
    defs = doc["components"]["schemas"]
    out = [f"<h1>{html.escape(doc['info']['title'])} {html.escape(doc['info']['version'])}</h1>",
           f"<p>{html.escape(doc['info']['description'])}</p>",
           "<p>Every request carries <code>Authorization: Bearer adr_&lt;id&gt;_&lt;secret"
           "&gt;</code> (<code>adressat account key add NAME</code>). The machine-readable "
           "document is <a href='/openapi.json'>/openapi.json</a>.</p>"]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            out.append(f"<h2 id='{op['operationId']}'><span class='m'>{method.upper()}</span> "
                       f"<code>{html.escape(path)}</code></h2><p>{html.escape(op['summary'])}</p>")
            for p in op.get("parameters", []):
                out.append(f"<p>{p['in']} parameter <code>{html.escape(p['name'])}</code>"
                           f"{' (required)' if p['required'] else ''}: "
                           f"{html.escape(p.get('description', ''))}</p>")
            body = op.get("requestBody")
            if body:
                ref = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
                out.append(f"<h3>Request: {html.escape(ref)}</h3>")
                out.append(_schema_rows(defs[ref], defs))
            out.append("<h3>Responses</h3><ul>")
            for status, r in op["responses"].items():
                out.append(f"<li><b>{status}</b> {html.escape(r['description'])}</li>")
            out.append("</ul>")
    out.append("<h2 id='problems'>Problem types (RFC 9457)</h2><table><tr><th>type</th>"
               "<th>status</th><th>title</th></tr>")
    for slug, status, title in problem_types():
        out.append(f"<tr id='problem-{slug}'><td><code>{PROBLEM_BASE}{slug}</code></td>"
                   f"<td>{status}</td><td>{html.escape(title)}</td></tr>")
    out.append("</table>")
    style = ("body{font:15px/1.45 system-ui,sans-serif;max-width:60em;margin:2em auto;"
             "padding:0 1em;color:#222}table{border-collapse:collapse;margin:.5em 0}"
             "td,th{border:1px solid #ccc;padding:.25em .5em;text-align:left;vertical-align:top}"
             "h2{margin-top:2em;border-top:1px solid #ddd;padding-top:.6em}"
             ".m{background:#235;color:#fff;padding:0 .4em;border-radius:3px;font-size:.8em}")
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            "<link rel='icon' href='data:,'>"
            f"<title>adressat API</title><style>{style}</style></head><body>"
            + "".join(out) + "</body></html>")


def mount(app: web.Application) -> None:
    doc = document()
    text = json.dumps(doc, indent=1)
    page = docs_page(doc)
    slugs = {slug for slug, _, _ in problem_types()}

    async def openapi(_r: web.Request) -> web.Response:
        return web.Response(text=text, content_type="application/json")

    async def docs(_r: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    async def problem(r: web.Request) -> web.Response:
        slug = r.match_info["slug"]
        if slug not in slugs:
            raise web.HTTPNotFound()
        raise web.HTTPFound(f"/docs#problem-{slug}")

    app.router.add_get("/openapi.json", openapi)
    app.router.add_get("/docs", docs)
    app.router.add_get(PROBLEM_BASE + "{slug}", problem)
