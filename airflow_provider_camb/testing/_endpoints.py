"""The stand-in's endpoints: one handler each, registered with its routes by ``@endpoint``.

An endpoint's name is its handler's name; ``ENDPOINTS``, the routing, the request body a route reads and
the dispatch all read that one registration. The create, status, result and bulk result routes of every
kind come from the table in ``airflow_provider_camb.kinds``; what differs per kind is in ``_kinds``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote

from aiohttp import BodyPartReader, web

from airflow_provider_camb.kinds import KINDS, TEXT_TO_VOICE, kind_of
from airflow_provider_camb.testing._kinds import HANDLERS, ResultCall, media_file, wav_reply
from airflow_provider_camb.testing._replies import Reply, detail, invalid, json_reply
from airflow_provider_camb.testing._tasks import Tasks
from airflow_provider_camb.testing._validation import (
    Error,
    check_custom_voice,
    error,
    int_text_error,
    is_int_text,
)

ServerName = Literal["api", "preview"]
BodyForm = Literal["json", "multipart"] | None  # what a route's request body is read as (None: not read)

#: The endpoint name of a request no route matches (answered 404, never faulted).
UNKNOWN = "unknown"


@dataclass(frozen=True)
class Route:
    """One way to reach an endpoint: a method and a raw (percent-encoded) path, and the kind and body they imply."""

    method: str
    pattern: re.Pattern[str]
    kind: str | None = None
    body: BodyForm = None


@dataclass
class Call:
    """One request on its way through the stand-in."""

    request: web.BaseRequest
    server: ServerName
    endpoint: str
    route: Route | None
    path: str
    params: dict[str, str]
    query: dict[str, str]
    headers: dict[str, str]
    storage: str  # the storage host's base URL, for links
    received: float = field(default_factory=time.time)
    json: Any = None
    body_error: str | None = None
    form: dict[str, str] = field(default_factory=dict)
    has_file: bool = False

    @property
    def kind(self) -> str | None:
        """The CAMB task kind of a create, status or result request."""
        return None if self.route is None else self.route.kind

    @property
    def path_id(self) -> str | None:
        return self.params.get("id")


Handler = Callable[[Tasks, Call], Reply]


@dataclass(frozen=True)
class _Endpoint:
    server: ServerName
    routes: tuple[Route, ...]
    handler: Handler


_REGISTERED: dict[str, _Endpoint] = {}


def endpoint(server: ServerName, *routes: Route) -> Callable[[Handler], Handler]:
    """Register the decorated handler as the endpoint named after it, reached on ``server`` by ``routes``."""

    def register(handler: Handler) -> Handler:
        assert handler.__name__ not in (*_REGISTERED, UNKNOWN), f"endpoint {handler.__name__!r} registered twice"
        _REGISTERED[handler.__name__] = _Endpoint(server, routes, handler)
        return handler

    return register


def _literal(path: str, tail: str = "") -> re.Pattern[str]:
    return re.compile(re.escape(path) + tail)


_ID = r"(?P<id>[^/]+)"


def receive(request: web.BaseRequest, server: ServerName, path: str, query: dict[str, str], storage: str) -> Call:
    """The call of a request: its endpoint and route by method and raw path, the path parameters decoded once."""
    headers = {name.lower(): value for name, value in request.headers.items()}
    for name, registered in _REGISTERED.items():
        if registered.server != server:
            continue
        for route in registered.routes:
            match = route.pattern.fullmatch(path)
            if match and request.method == route.method:
                params = {key: unquote(value) for key, value in match.groupdict().items()}
                return Call(request, server, name, route, path, params, query, headers, storage)
    return Call(request, server, UNKNOWN, None, path, {}, query, headers, storage)


async def read_body(call: Call) -> None:
    """Parse the body its route reads: JSON, or a form, multipart (its file hashed, never kept) or urlencoded."""
    form = None if call.route is None else call.route.body
    request = call.request
    try:
        if form == "json":
            call.json = json.loads(await request.read())
        elif form == "multipart" and request.content_type == "application/x-www-form-urlencoded":  # no file part
            call.form.update((name, str(value)) for name, value in (await request.post()).items())
            call.json = dict(call.form)
        elif form == "multipart" and request.content_type.startswith("multipart/"):
            digest, size, name = hashlib.sha256(), 0, None
            reader = await request.multipart()
            while (part := await reader.next()) is not None:
                if not isinstance(part, BodyPartReader) or part.name is None:
                    continue
                if part.name in ("file", "media_file"):
                    call.has_file, name = True, part.filename
                    while chunk := await part.read_chunk():
                        digest.update(chunk)
                        size += len(chunk)
                else:
                    call.form[part.name] = await part.text()
            call.json = dict(call.form)
            if call.has_file:
                call.json.update(file_name=name, file_bytes=size, file_sha256=digest.hexdigest())
    except (ValueError, web.HTTPException) as exc:
        call.body_error = f"The request body could not be read: {exc}"


def answer(tasks: Tasks, call: Call) -> Reply:
    """The reply of the call's endpoint (404 for a request no route matches)."""
    registered = _REGISTERED.get(call.endpoint)
    return detail(404, "Not Found") if registered is None else registered.handler(tasks, call)


# --- the API server -------------------------------------------------------------------------------

_LANGUAGES = [
    {"id": 1, "language": "English (United States)", "short_name": "en-us"},
    {"id": 35, "language": "English (United Kingdom)", "short_name": "en-gb"},
    {"id": 31, "language": "German (Germany)", "short_name": "de-de"},
    {"id": 54, "language": "Spanish (Spain)", "short_name": "es-es"},
    {"id": 76, "language": "French (France)", "short_name": "fr-fr"},
]


def _create_route(name: str, path: str) -> Route:
    return Route("POST", _literal(path), name, "multipart" if HANDLERS[name].multipart else "json")


@endpoint("api", *(_create_route(kind.name, kind.create_path) for kind in KINDS.values()))
def create(tasks: Tasks, call: Call) -> Reply:
    kind = str(call.kind)
    if call.body_error is not None:
        return invalid([error(("body",), "json_invalid", call.body_error)])
    handler = HANDLERS[kind]
    errors = handler.check(call.form if handler.multipart else call.json, call.has_file)
    if errors:
        return invalid(errors)
    request = call.json if isinstance(call.json, dict) else {}
    return json_reply(200, {"task_id": tasks.add(kind=kind, request=request)})


@endpoint("api", *(Route("GET", _literal(f"/{kind.name}/", _ID), kind.name) for kind in KINDS.values()))
def status(tasks: Tasks, call: Call) -> Reply:
    if not is_int_text(call.query.get("run_id", "0")):
        return invalid([int_text_error(("query", "run_id"))])
    task_id = call.params["id"]
    now = time.monotonic()
    task = tasks.status_read(task_id, now)
    if task is None or task.kind != call.kind:
        return detail(404, f"{kind_of(call.kind).label.capitalize()} task {task_id!r} not found.")
    return json_reply(200, task.reply(now))


# A result path two kinds share is routed to the first of them (its handler's run_kinds serve both).
@endpoint("api", *(Route("GET", _literal(f"/{kind.result_path}/", _ID), kind.name) for kind in KINDS.values()))
def result(tasks: Tasks, call: Call) -> Reply:
    kind = kind_of(call.kind)
    raw = call.params["id"]
    if not is_int_text(raw):
        return invalid([int_text_error(("path", "run_id"))])
    run_id = int(raw)
    run = tasks.run(run_id)
    if run is None:
        return detail(404, f"{kind.label.capitalize()} run {run_id} not found.")
    handler = HANDLERS[kind.name]
    if run.kind not in (handler.run_kinds or {kind.name}):
        return detail(400, f"Run {run_id} is not a {kind.label} run.")
    return handler.result(ResultCall(run_id, run, call.query, call.storage))


@endpoint(
    "api",
    *(
        Route("POST", _literal(f"/{kind.bulk_result_path}"), kind.name, "json")
        for kind in KINDS.values()
        if kind.bulk_result_path
    ),
)
def bulk_result(tasks: Tasks, call: Call) -> Reply:
    """``POST /{bulk result path}``: ``{"run_ids": [...]}`` -> each known run's value by its id as a string.

    Runs that are unknown or of another kind are left out of the reply, as CAMB may do.
    """
    kind = kind_of(call.kind)
    if call.body_error is not None:
        return invalid([error(("body",), "json_invalid", call.body_error)])
    run_ids = call.json.get("run_ids") if isinstance(call.json, dict) else None
    if not isinstance(run_ids, list) or not all(isinstance(r, int) and not isinstance(r, bool) for r in run_ids):
        return invalid([error(("body", "run_ids"), "list_type", "Input should be a valid list of integers")])
    handler = HANDLERS[kind.name]
    assert handler.bulk is not None
    values = {}
    for run_id in run_ids:
        run = tasks.run(run_id)
        if run is not None and run.kind in (handler.run_kinds or {kind.name}):
            values[str(run_id)] = handler.bulk(ResultCall(run_id, run, call.query, call.storage))
    return json_reply(200, values)


@endpoint("api", Route("POST", _literal("/create-custom-voice"), body="multipart"))
def custom_voice(tasks: Tasks, call: Call) -> Reply:
    errors: list[Error] = []
    if not is_int_text(call.query.get("run_id", "0")):
        errors.append(int_text_error(("query", "run_id")))
    if call.body_error is not None:
        errors.append(error(("body",), "value_error", call.body_error))
    errors += check_custom_voice(call.form, call.has_file)
    if errors:
        return invalid(errors)
    return json_reply(200, {"voice_id": tasks.new_voice_id()})


@endpoint("api", Route("GET", _literal("/source-languages")))
def languages(tasks: Tasks, call: Call) -> Reply:
    return json_reply(200, _LANGUAGES)


# --- the storage (preview) server: bearer links, no API key ---------------------------------------


@endpoint("preview", Route("GET", re.compile(r"/previews/(?P<id>[^/]+)/(?P<index>[^/]+)\.wav"), TEXT_TO_VOICE.name))
def preview(tasks: Tasks, call: Call) -> Reply:
    raw, index = call.params["id"], call.params["index"]
    run = tasks.run(int(raw)) if is_int_text(raw) else None
    if run is None or not is_int_text(index) or not 0 <= int(index) < run.previews:
        return detail(404, "No such preview.")
    if not hmac.compare_digest(call.query.get("token", "").encode(), run.token.encode()):
        return detail(403, "Invalid preview token.")
    return wav_reply(run.data_bytes, tone=int(index))


@endpoint("preview", Route("GET", re.compile(r"/media/(?P<id>[^/]+)/(?P<name>[^/]+)")))
def media(tasks: Tasks, call: Call) -> Reply:
    """A result file behind a bearer link (speech, sound, dubbed audio or video): the token is the secret."""
    raw = call.params["id"]
    run = tasks.run(int(raw)) if is_int_text(raw) else None
    if run is None:
        return detail(404, "No such file.")
    if not hmac.compare_digest(call.query.get("token", "").encode(), run.token.encode()):
        return detail(403, "Invalid or expired link.")
    return media_file(run, call.params["name"])


#: Endpoint names, as used by ``inject(endpoint=...)`` and ``requests(endpoint)``; ``"any"`` also works for inject.
ENDPOINTS: tuple[str, ...] = tuple(_REGISTERED)
