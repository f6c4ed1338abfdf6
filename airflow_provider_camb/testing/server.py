"""A local, contract-true stand-in of the CAMB.AI API: two real aiohttp servers on loopback.

The API server answers every CAMB task kind of ``camb-api.md`` (its routes come from the table in
``airflow_provider_camb.kinds``; what differs per kind is one handler in ``_kinds``) and a small control
API under ``/_standin/``; a second server, on another host name and port, serves previews and result
files like a storage host (bearer links, no API key). Every request of both passes through
``CambStandIn._handle``, which records it, applies any injected fault (see ``FAULTS``), checks the key
and asks the one handler of its endpoint for a ``Reply``.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import hmac
import json
import logging
import math
import os
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import IO, Any, Literal
from urllib.parse import parse_qsl, unquote

from aiohttp import BodyPartReader, web
from aiohttp.web_protocol import RequestHandler

from airflow_provider_camb.kinds import KINDS, TEXT_TO_VOICE, kind_of
from airflow_provider_camb.testing._kinds import HANDLERS, ResultCall, media_file, wav_reply
from airflow_provider_camb.testing._rate_limit import KeyRateLimit
from airflow_provider_camb.testing._replies import Reply, detail, invalid, json_reply
from airflow_provider_camb.testing._tasks import Settings, Tasks
from airflow_provider_camb.testing._validation import (
    Error,
    check_custom_voice,
    error,
    int_text_error,
    is_int_text,
)

log = logging.getLogger(__name__)

#: Endpoint names, as used by ``inject(endpoint=...)`` and ``requests(endpoint)``; ``"any"`` also works for inject.
ENDPOINTS = ("create", "status", "result", "bulk_result", "custom_voice", "languages", "preview", "media")
_BACKLOG = 4096  # thousands of pollers may connect at once
_SHUTDOWN_SECONDS = 0.5  # how long stop() lets in-flight requests finish

ServerName = Literal["api", "preview"]


@dataclass(frozen=True)
class RecordedRequest:
    """One request received by the stand-in, and the status it answered (0: dropped without a reply)."""

    server: ServerName
    endpoint: str
    method: str
    path: str
    path_id: str | None
    query: dict[str, str]
    headers: dict[str, str]
    json: Any | None
    status: int
    time: float
    kind: str | None = None  # the CAMB task kind of a create, status or result request


# --- replies (``Reply``, ``json_reply``, ``detail``, ``invalid``: see _replies) ------------------------


async def _send(request: web.BaseRequest, reply: Reply, *, truncate: bool = False) -> web.StreamResponse:
    """Write ``reply``; streamed bodies go out chunk by chunk, a truncated one stops halfway and hangs up."""
    if reply.stream is None and not truncate:
        return web.Response(
            status=reply.status, body=reply.body, content_type=reply.content_type, headers=dict(reply.headers)
        )
    response = web.StreamResponse(status=reply.status, headers=dict(reply.headers))
    response.content_type = reply.content_type
    response.content_length = reply.size
    await response.prepare(request)
    budget = reply.size // 2 if truncate else reply.size
    for chunk in reply.chunks():
        piece = chunk[:budget]
        if piece:
            await response.write(piece)
        budget -= len(piece)
        if budget <= 0:
            break
    if truncate:
        request.protocol.force_close()  # flushes what was written, then closes: a short body
    else:
        await response.write_eof()
    return response


# --- faults --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Behaviour:
    """A fault that changes how the normal reply is delivered rather than what it says."""

    delay: float = 0.0
    drop: bool = False
    truncate: bool = False


def _rate_limited(params: Mapping[str, Any]) -> Reply:
    """429 with ``Retry-After`` (seconds, or an HTTP date with ``date_form``) or, with
    ``header="X-RateLimit-Reset"``, that header alone (seconds, or an epoch time with ``date_form``)."""
    seconds = float(params.get("retry_after", 1))
    header = params.get("header", "Retry-After")
    if header not in ("Retry-After", "X-RateLimit-Reset"):
        raise ValueError(f"header must be 'Retry-After' or 'X-RateLimit-Reset', not {header!r}")
    if not params.get("date_form"):
        value = str(params.get("retry_after", 1))
    elif header == "Retry-After":
        value = email.utils.formatdate(math.ceil(time.time() + seconds), usegmt=True)
    else:
        value = str(math.ceil(time.time() + seconds))
    return json_reply(429, {"detail": "Too Many Requests"}, headers={header: value})


def _redirect(params: Mapping[str, Any]) -> Reply:
    """``307 Temporary Redirect`` to ``location`` (an http(s) URL): a client must not follow it with the key."""
    location = params.get("location")
    if not isinstance(location, str) or not location.startswith(("http://", "https://")):
        raise ValueError(f"the redirect fault needs location=<an http(s) URL>, not {location!r}")
    return json_reply(307, {"detail": "Temporary Redirect"}, headers={"Location": location})


def _json_body(params: Mapping[str, Any]) -> Reply:
    """A reply of ``status`` (default 200) whose JSON body is ``payload``: a reply in an unexpected shape."""
    if "payload" not in params:
        raise ValueError("the json_body fault needs payload=<any JSON value>")
    status = params.get("status", 200)
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise ValueError(f"status must be an HTTP status code, not {status!r}")
    return json_reply(status, params["payload"])


_HTML_502 = b"<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1></body></html>"

_FAULT_TABLE: dict[str, Callable[[Mapping[str, Any]], Reply | _Behaviour]] = {
    "http_500": lambda p: detail(500, "Internal Server Error"),
    "http_502": lambda p: detail(502, "Bad Gateway"),
    "http_503": lambda p: detail(503, "Service Unavailable"),
    "rate_limit": _rate_limited,
    "slow": lambda p: _Behaviour(delay=float(p.get("delay", 1.0))),
    "drop": lambda p: _Behaviour(drop=True),
    "malformed_json": lambda p: Reply(200, b'{"status": "PEN'),
    "html_error": lambda p: Reply(502, _HTML_502, content_type="text/html"),
    "empty_body": lambda p: Reply(200, b""),
    "json_body": _json_body,
    "unknown_status": lambda p: json_reply(
        200, {"status": p.get("status", "QUEUED_FOR_GPU"), "run_id": None, "exception_reason": None, "message": None}
    ),
    "unauthorized": lambda p: detail(401, "Invalid API key"),
    "payment_required": lambda p: detail(402, "Not enough credits"),
    "forbidden": lambda p: detail(403, "Forbidden"),
    "redirect": _redirect,
    "not_found": lambda p: detail(404, "Not Found"),
    "truncate": lambda p: _Behaviour(truncate=True),
}
#: The fault names ``inject`` accepts.
FAULTS: tuple[str, ...] = tuple(_FAULT_TABLE)


@dataclass
class _Fault:
    name: str
    endpoint: str
    remaining: int
    params: dict[str, Any]
    after: int = 0  # matching requests let through before the fault applies


# --- tasks (the bookkeeping shared by every kind: see _tasks) -------------------------------------

_LANGUAGES = [
    {"id": 1, "language": "English (United States)", "short_name": "en-us"},
    {"id": 35, "language": "English (United Kingdom)", "short_name": "en-gb"},
    {"id": 31, "language": "German (Germany)", "short_name": "de-de"},
    {"id": 54, "language": "Spanish (Spain)", "short_name": "es-es"},
    {"id": 76, "language": "French (France)", "short_name": "fr-fr"},
]


# --- requests ------------------------------------------------------------------------------------


def _kind_routes() -> tuple[tuple[str, str, str | None, re.Pattern[str]], ...]:
    """The create, status and result routes of every kind in the kinds table (a shared result path: first kind)."""
    routes = []
    for kind in KINDS.values():
        routes.append(("create", "POST", kind.name, re.compile(re.escape(kind.create_path))))
        routes.append(("status", "GET", kind.name, re.compile(re.escape(f"/{kind.name}/") + r"(?P<id>[^/]+)")))
        routes.append(("result", "GET", kind.name, re.compile(re.escape(f"/{kind.result_path}/") + r"(?P<id>[^/]+)")))
        if kind.bulk_result_path:
            routes.append(("bulk_result", "POST", kind.name, re.compile(re.escape(f"/{kind.bulk_result_path}"))))
    return tuple(routes)


_ROUTES: dict[ServerName, tuple[tuple[str, str, str | None, re.Pattern[str]], ...]] = {
    "api": (
        *_kind_routes(),
        ("custom_voice", "POST", None, re.compile(r"/create-custom-voice")),
        ("languages", "GET", None, re.compile(r"/source-languages")),
    ),
    "preview": (
        ("preview", "GET", TEXT_TO_VOICE.name, re.compile(r"/previews/(?P<id>[^/]+)/(?P<index>[^/]+)\.wav")),
        ("media", "GET", None, re.compile(r"/media/(?P<id>[^/]+)/(?P<name>[^/]+)")),
    ),
}


def _route(server: ServerName, method: str, path: str) -> tuple[str, str | None, dict[str, str]]:
    """The endpoint and kind of a raw (still percent-encoded) path, and its path parameters decoded once."""
    for endpoint, route_method, kind, pattern in _ROUTES[server]:
        match = pattern.fullmatch(path)
        if match and method == route_method:
            return endpoint, kind, {name: unquote(value) for name, value in match.groupdict().items()}
    return "unknown", None, {}


@dataclass
class _Call:
    """One request on its way through the stand-in."""

    request: web.BaseRequest
    server: ServerName
    endpoint: str
    kind: str | None
    path: str
    params: dict[str, str]
    query: dict[str, str]
    headers: dict[str, str]
    received: float = field(default_factory=time.time)
    json: Any = None
    body_error: str | None = None
    form: dict[str, str] = field(default_factory=dict)
    has_file: bool = False

    @property
    def path_id(self) -> str | None:
        return self.params.get("id")


async def _read_body(call: _Call) -> None:
    """Parse the body of a create (JSON, or multipart for some kinds) or custom-voice (multipart, files hashed)."""
    request = call.request
    multipart = call.endpoint == "custom_voice" or (call.endpoint == "create" and HANDLERS[str(call.kind)].multipart)
    try:
        if call.endpoint in ("create", "bulk_result") and not multipart:
            call.json = json.loads(await request.read())
        elif multipart and request.content_type.startswith("multipart/"):
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


def _raise_open_file_limit() -> None:
    """Let this process hold thousands of keep-alive connections (soft RLIMIT_NOFILE up to the hard one)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 65536 if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


# --- the stand-in --------------------------------------------------------------------------------


class CambStandIn:
    """A CAMB.AI API on 127.0.0.1 for tests and local DAG runs: ``with CambStandIn() as camb: ...``.

    ``storage_host`` puts the storage server (previews, result files) on another loopback address, such as
    ``127.0.0.2``: not the API's own address, so the provider's link policy refuses its links.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        preview_port: int = 0,
        storage_host: str | None = None,
        api_key: str | None = None,
        pending_seconds: float = 2.0,
        outcome: str = "SUCCESS",
        exception_reason: str | None = None,
        message: str | dict[str, Any] | None = None,
        preview_count: int = 2,
        preview_seconds: float = 1.0,
        preview_bytes: int | None = None,
        request_log_path: str | os.PathLike[str] | None = None,
        record_requests: bool = True,
    ) -> None:
        self._host = host
        self._port = port
        self._preview_port = preview_port
        self._storage_host = storage_host  # None: the API's address, named "localhost" in links
        self._api_key = api_key if api_key is not None else "standin-" + secrets.token_hex(12)
        self._tasks = Tasks(
            Settings(pending_seconds, outcome, exception_reason, message, preview_count, preview_seconds, preview_bytes)
        )
        self._request_log_path = request_log_path
        self._record = record_requests

        self._lock = threading.Lock()  # guards everything below that both threads touch
        self._faults: list[_Fault] = []
        self._key_limit: KeyRateLimit | None = None
        self._records: list[RecordedRequest | None] = []
        self._counts: Counter[str] = Counter()

        self._thread: threading.Thread | None = None
        self._start_error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._stop_event: asyncio.Event | None = None
        self._log_file: IO[str] | None = None
        self._api_runner: web.ServerRunner | None = None
        self._api_site: web.TCPSite | None = None
        self._api_server: web.Server | None = None
        self._reopen: asyncio.Task[None] | None = None
        self._busy: set[RequestHandler] = set()  # connections with a request in flight
        self._handlers: dict[str, Callable[[_Call], Reply]] = {
            "create": self._create,
            "status": self._status,
            "result": self._result,
            "bulk_result": self._bulk_result,
            "custom_voice": self._custom_voice,
            "languages": lambda call: json_reply(200, _LANGUAGES),
            "preview": self._preview,
            "media": self._media,
            "unknown": lambda call: detail(404, "Not Found"),
        }

    # --- addresses ---------------------------------------------------------------------------

    @property
    def api_key(self) -> str:
        return self._api_key

    @property
    def port(self) -> int:
        return self._port

    @property
    def preview_port(self) -> int:
        return self._preview_port

    @property
    def base_url(self) -> str:
        """The API server, e.g. ``http://127.0.0.1:43121`` (use it as the connection host)."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self._bound(self._port)}"

    @property
    def preview_base_url(self) -> str:
        """The preview (storage) server: host name ``localhost`` (or ``storage_host``), another host and port."""
        host = self._storage_host or "localhost"
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self._bound(self._preview_port)}"

    def _bound(self, port: int) -> int:
        if not port:
            raise RuntimeError("The CAMB stand-in has not been started yet.")
        return port

    def connection_json(self, conn_type: str = "camb") -> str:
        """The Airflow connection (for ``AIRFLOW_CONN_CAMB_DEFAULT``) that points at this stand-in."""
        return json.dumps({"conn_type": conn_type, "host": self.base_url, "password": self.api_key})

    # --- life cycle --------------------------------------------------------------------------

    def start(self) -> CambStandIn:
        """Start both servers in a daemon thread with its own event loop; a no-op when running."""
        if self._thread is not None:
            return self
        ready = threading.Event()
        self._start_error = None
        thread = threading.Thread(target=self._run, args=(ready,), name="camb-standin", daemon=True)
        thread.start()
        ready.wait()
        if self._start_error is not None:
            thread.join()
            raise RuntimeError(f"The CAMB stand-in could not start: {self._start_error}") from self._start_error
        self._thread = thread
        return self

    def stop(self) -> None:
        """Stop both servers and join their thread; a no-op when not running."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self.stop_serving()
        thread.join(timeout=30)

    def stop_serving(self) -> None:
        """Make ``serve()`` return (from any thread)."""
        loop, stop_event = self._loop, self._stop_event
        if loop is not None and stop_event is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                loop.call_soon_threadsafe(stop_event.set)

    def __enter__(self) -> CambStandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self, ready: threading.Event) -> None:
        try:
            asyncio.run(self.serve(ready.set))
        except BaseException as exc:  # reported by start()
            self._start_error = exc
        finally:
            ready.set()

    async def serve(self, ready: Callable[[], None] | None = None) -> None:
        """Run both servers in the running event loop until ``stop()``; ``ready()`` is called once listening.

        ``start()`` runs this in a thread; the CLI runs it in the foreground.
        """
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._stop_event = asyncio.Event()
        _raise_open_file_limit()
        self._open_request_log()
        self._api_server = web.Server(partial(self._handle, "api"), access_log=None)
        api = web.ServerRunner(self._api_server, shutdown_timeout=_SHUTDOWN_SECONDS)
        preview = web.ServerRunner(
            web.Server(partial(self._handle, "preview"), access_log=None), shutdown_timeout=_SHUTDOWN_SECONDS
        )
        self._api_runner = api
        try:
            await api.setup()
            await preview.setup()
            self._api_site = await self._listen(api, self._port)
            self._port = api.addresses[0][1]
            await self._listen(preview, self._preview_port, self._storage_host)
            self._preview_port = preview.addresses[0][1]
            if ready is not None:
                ready()
            await self._stop_event.wait()
        finally:
            if self._reopen is not None:
                self._reopen.cancel()
            await api.cleanup()
            await preview.cleanup()
            if self._log_file is not None:
                self._log_file.close()
                self._log_file = None
            self._loop = self._stop_event = None
            self._api_site = self._api_runner = self._api_server = None

    async def _listen(self, runner: web.ServerRunner, port: int, host: str | None = None) -> web.TCPSite:
        site = web.TCPSite(runner, host or self._host, port, backlog=_BACKLOG)  # the runner holds shutdown_timeout
        await site.start()
        return site

    def _open_request_log(self) -> None:
        if self._request_log_path is not None:
            self._log_file = open(self._request_log_path, "a", encoding="utf-8", buffering=1)  # noqa: SIM115

    def _in_loop(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run ``coroutine`` on the servers' loop from another thread and wait for it."""
        loop = self._loop
        if loop is None:
            coroutine.close()
            raise RuntimeError("The CAMB stand-in is not running.")
        if threading.get_ident() == self._loop_thread:
            coroutine.close()
            raise RuntimeError("Call this from another thread than the stand-in's event loop.")
        asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout=30)

    # --- control -----------------------------------------------------------------------------

    def configure(self, **settings: Any) -> None:
        """Change what tasks created from now on do (pending_seconds, outcome, exception_reason, message,
        preview_count, preview_seconds, preview_bytes, dub_video, pending_from_first_status, pending_reads,
        pending_seconds_max, outcomes: ``{marker: outcome}`` for tasks whose create body contains the marker)."""
        self._tasks.configure(**settings)

    def add_task(
        self,
        *,
        kind: str = TEXT_TO_VOICE.name,
        status: str | None = None,
        pending_seconds: float | None = None,
        outcome: str | None = None,
        exception_reason: str | None = None,
        message: str | dict[str, Any] | None = None,
        task_id: str | None = None,
        request: dict[str, Any] | None = None,
    ) -> str:
        """Create a task of ``kind`` without HTTP and return its id; ``status`` fixes what it reports from now on.

        ``request`` stands for its create body (e.g. a dubbing task's ``target_languages``).
        """
        return self._tasks.add(
            kind=kind,
            status=status,
            pending_seconds=pending_seconds,
            outcome=outcome,
            exception_reason=exception_reason,
            message=message,
            task_id=task_id,
            request=request,
        )

    def inject(self, fault: str, *, endpoint: str = "status", times: int = 1, after: int = 0, **params: Any) -> None:
        """Apply ``fault`` (one of ``FAULTS``) to the next ``times`` requests to ``endpoint`` (or ``"any"``),
        after letting ``after`` of them through.

        With ``act=True`` the endpoint acts first (a create creates its task) and the fault then decides
        what the client gets: CAMB did the work but the reply is late (``slow``), lost (``drop``), an
        error (``http_500``) or unreadable (``malformed_json``).
        """
        if not isinstance(params.get("act", False), bool):
            raise ValueError(f"act must be True or False, not {params['act']!r}")
        if fault not in _FAULT_TABLE:
            raise ValueError(f"Unknown fault {fault!r}; known faults: {', '.join(FAULTS)}")
        if endpoint not in (*ENDPOINTS, "any"):
            raise ValueError(f"Unknown endpoint {endpoint!r}; known: {', '.join(ENDPOINTS)}, any")
        if isinstance(times, bool) or not isinstance(times, int) or times < 1:
            raise ValueError(f"times must be a whole number >= 1, not {times!r}")
        if isinstance(after, bool) or not isinstance(after, int) or after < 0:
            raise ValueError(f"after must be a whole number >= 0, not {after!r}")
        _FAULT_TABLE[fault](params)  # a bad parameter fails here, not in the server
        with self._lock:
            self._faults.append(_Fault(fault, endpoint, times, dict(params), after))

    def rotate_key(self) -> str:
        """Give the API a new key and return it; the old one is refused from now on (as after a revocation)."""
        self._api_key = "standin-" + secrets.token_hex(12)
        return self._api_key

    def rate_limit(self, per_second: int | None) -> None:
        """Allow each API key ``per_second`` API requests per second, then answer 429 with Retry-After (None: off)."""
        self._key_limit = None if per_second is None else KeyRateLimit(per_second)

    def outage(self, seconds: float) -> None:
        """Close the API's listening socket and connections now; listen again on the same port after ``seconds``."""
        self._in_loop(self._begin_outage(float(seconds)))

    async def _begin_outage(self, seconds: float) -> None:
        if self._reopen is not None:
            self._reopen.cancel()
        if self._api_site is not None and self._api_server is not None:
            await self._api_site.stop()
            self._api_site = None
            for connection in self._api_server.connections:
                if connection in self._busy:
                    connection.close()  # after its reply
                else:
                    connection.force_close()
            await asyncio.sleep(0)  # let the closed sockets go before returning
        self._reopen = asyncio.get_running_loop().create_task(self._end_outage(seconds))

    async def _end_outage(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._reopen = None
        if self._api_runner is not None:
            try:
                self._api_site = await self._listen(self._api_runner, self._port)
            except OSError:
                log.exception("The CAMB stand-in could not listen on port %s again after an outage.", self._port)

    def requests(self, endpoint: str | None = None, *, kind: str | None = None) -> list[RecordedRequest]:
        """The requests received (and answered) so far, oldest first; all, or those of one endpoint and/or kind."""
        with self._lock:
            return [
                r for r in self._records if r is not None and endpoint in (None, r.endpoint) and kind in (None, r.kind)
            ]

    def request_count(self, endpoint: str | None = None) -> int:
        """How many requests arrived (control requests excepted), counted even when not recording."""
        with self._lock:
            return self._counts.total() if endpoint is None else self._counts[endpoint]

    def task_count(self) -> int:
        """How many CAMB tasks exist, created over HTTP or with ``add_task``: what CAMB would bill."""
        return self._tasks.count()

    def voice_count(self) -> int:
        """How many custom voices were created."""
        return self._tasks.voices

    def clear_requests(self) -> None:
        """Forget the recorded requests and reset the counts."""
        with self._lock:
            self._records = []
            self._counts.clear()

    # --- the one path of every request -------------------------------------------------------

    async def _handle(self, server: ServerName, request: web.BaseRequest) -> web.StreamResponse:
        """Every request of both servers comes here: control, or record, fault, auth and the endpoint's reply."""
        connection = request.protocol
        self._busy.add(connection)
        try:
            path, _, query_string = request.raw_path.partition("?")
            query = dict(parse_qsl(query_string, keep_blank_values=True))
            if server == "api" and path.startswith("/_standin/"):
                return await _send(request, await self._control(request, path.removeprefix("/_standin/"), query))
            endpoint, kind, params = _route(server, request.method, path)
            headers = {name.lower(): value for name, value in request.headers.items()}
            return await self._answer(_Call(request, server, endpoint, kind, path, params, query, headers))
        finally:
            self._busy.discard(connection)

    async def _answer(self, call: _Call) -> web.StreamResponse:
        slot = self._arrive(call)
        status = 0
        try:
            reply, behaviour = await self._decide(call)
            status = 0 if reply is None else reply.status
        finally:
            self._done(slot, call, status)  # recorded before the client can see any reply
        if reply is None:
            call.request.protocol.force_close()
            return web.Response()  # never sent: the connection is gone
        return await _send(call.request, reply, truncate=behaviour.truncate)

    async def _decide(self, call: _Call) -> tuple[Reply | None, _Behaviour]:
        """The reply (None: drop the connection) after any fault, and how to deliver it."""
        await _read_body(call)
        fault = self._take_fault(call.endpoint)
        acted = self._reply(call) if fault is not None and fault.params.get("act") else None  # the work is done
        effect = None if fault is None else _FAULT_TABLE[fault.name](fault.params)
        if isinstance(effect, Reply):
            return effect, _Behaviour()
        behaviour = effect or _Behaviour()
        if behaviour.delay > 0:
            await asyncio.sleep(behaviour.delay)
        if behaviour.drop:
            return None, behaviour
        return (acted if acted is not None else self._reply(call)), behaviour

    def _reply(self, call: _Call) -> Reply:
        """The normal reply: the key first (API server only), then the endpoint's handler."""
        if call.server == "api" and call.endpoint != "unknown":
            key = call.request.headers.get("x-api-key", "")
            if not hmac.compare_digest(key.encode(), self._api_key.encode()):
                return detail(401, "Invalid or missing API key (header x-api-key).")
            limit = self._key_limit
            if limit is not None and (retry_after := limit.take(key)) is not None:
                return json_reply(429, {"detail": "Too Many Requests"}, headers={"Retry-After": f"{retry_after:g}"})
        return self._handlers[call.endpoint](call)

    def _take_fault(self, endpoint: str) -> _Fault | None:
        if not self._faults or endpoint == "unknown":
            return None
        with self._lock:
            for fault in self._faults:
                if fault.endpoint in (endpoint, "any") and fault.after > 0:
                    fault.after -= 1
                    return None
                if fault.endpoint in (endpoint, "any"):
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _arrive(self, call: _Call) -> tuple[list[RecordedRequest | None], int] | None:
        """Count the request, log it, and keep its place in the record (filled in when answered)."""
        if self._log_file is not None:
            line = {
                "time": call.received,
                "server": call.server,
                "endpoint": call.endpoint,
                "method": call.request.method,
                "path": call.path,
                "path_id": call.path_id,
                "kind": call.kind,
                "query": call.query,
                "headers": call.headers,
            }
            self._log_file.write(json.dumps(line) + "\n")
        with self._lock:
            self._counts[call.endpoint] += 1
            if not self._record:
                return None
            self._records.append(None)
            return self._records, len(self._records) - 1

    def _done(self, slot: tuple[list[RecordedRequest | None], int] | None, call: _Call, status: int) -> None:
        if slot is None:
            return
        records, index = slot
        recorded = RecordedRequest(
            server=call.server,
            endpoint=call.endpoint,
            method=call.request.method,
            path=call.path,
            path_id=call.path_id,
            query=call.query,
            headers=call.headers,
            json=call.json,
            status=status,
            time=call.received,
            kind=call.kind,
        )
        with self._lock:
            records[index] = recorded

    # --- endpoints ---------------------------------------------------------------------------

    def _create(self, call: _Call) -> Reply:
        kind = str(call.kind)
        if call.body_error is not None:
            return invalid([error(("body",), "json_invalid", call.body_error)])
        handler = HANDLERS[kind]
        errors = handler.check(call.form if handler.multipart else call.json, call.has_file)
        if errors:
            return invalid(errors)
        request = call.json if isinstance(call.json, dict) else {}
        return json_reply(200, {"task_id": self.add_task(kind=kind, request=request)})

    def _status(self, call: _Call) -> Reply:
        if not is_int_text(call.query.get("run_id", "0")):
            return invalid([int_text_error(("query", "run_id"))])
        task_id = call.params["id"]
        now = time.monotonic()
        task = self._tasks.status_read(task_id, now)
        if task is None or task.kind != call.kind:
            return detail(404, f"{kind_of(call.kind).label.capitalize()} task {task_id!r} not found.")
        return json_reply(200, task.reply(now))

    def _result(self, call: _Call) -> Reply:
        kind = kind_of(call.kind)
        raw = call.params["id"]
        if not is_int_text(raw):
            return invalid([int_text_error(("path", "run_id"))])
        run_id = int(raw)
        run = self._tasks.run(run_id)
        if run is None:
            return detail(404, f"{kind.label.capitalize()} run {run_id} not found.")
        handler = HANDLERS[kind.name]
        if run.kind not in (handler.run_kinds or {kind.name}):
            return detail(400, f"Run {run_id} is not a {kind.label} run.")
        return handler.result(ResultCall(run_id, run, call.query, self.preview_base_url))

    def _bulk_result(self, call: _Call) -> Reply:
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
            run = self._tasks.run(run_id)
            if run is not None and run.kind in (handler.run_kinds or {kind.name}):
                values[str(run_id)] = handler.bulk(ResultCall(run_id, run, call.query, self.preview_base_url))
        return json_reply(200, values)

    def _custom_voice(self, call: _Call) -> Reply:
        errors: list[Error] = []
        if not is_int_text(call.query.get("run_id", "0")):
            errors.append(int_text_error(("query", "run_id")))
        if call.body_error is not None:
            errors.append(error(("body",), "value_error", call.body_error))
        errors += check_custom_voice(call.form, call.has_file)
        if errors:
            return invalid(errors)
        return json_reply(200, {"voice_id": self._tasks.new_voice_id()})

    def _preview(self, call: _Call) -> Reply:
        raw, index = call.params["id"], call.params["index"]
        run = self._tasks.run(int(raw)) if is_int_text(raw) else None
        if run is None or not is_int_text(index) or not 0 <= int(index) < run.previews:
            return detail(404, "No such preview.")
        if not hmac.compare_digest(call.query.get("token", "").encode(), run.token.encode()):
            return detail(403, "Invalid preview token.")
        return wav_reply(run.data_bytes, tone=int(index))

    def _media(self, call: _Call) -> Reply:
        """A result file behind a bearer link (speech, sound, dubbed audio or video): the token is the secret."""
        raw = call.params["id"]
        run = self._tasks.run(int(raw)) if is_int_text(raw) else None
        if run is None:
            return detail(404, "No such file.")
        if not hmac.compare_digest(call.query.get("token", "").encode(), run.token.encode()):
            return detail(403, "Invalid or expired link.")
        return media_file(run, call.params["name"])

    async def _control(self, request: web.BaseRequest, action: str, query: dict[str, str]) -> Reply:
        """``/_standin/...``: drive this stand-in over HTTP (no key, never recorded)."""
        try:
            body = (await request.json()) if request.method == "POST" and request.can_read_body else {}
            if not isinstance(body, dict):
                raise TypeError("The body must be a JSON object.")
            match request.method, action:
                case "POST", "configure":
                    self.configure(**body)
                    return json_reply(200, {"ok": True})
                case "POST", "tasks":
                    return json_reply(200, {"task_id": self.add_task(**body)})
                case "POST", "faults":
                    self.inject(**body)
                    return json_reply(200, {"ok": True})
                case "POST", "rotate_key":
                    return json_reply(200, {"api_key": self.rotate_key()})
                case "POST", "rate_limit":
                    self.rate_limit(body.get("per_second"))
                    return json_reply(200, {"ok": True})
                case "POST", "outage":
                    await self._begin_outage(float(body["seconds"]))
                    return json_reply(200, {"ok": True})
                case "GET", "requests":
                    return json_reply(
                        200, [asdict(r) for r in self.requests(query.get("endpoint"), kind=query.get("kind"))]
                    )
                case "DELETE", "requests":
                    self.clear_requests()
                    return json_reply(200, {"ok": True})
                case "GET", "stats":
                    with self._lock:
                        counts = dict(self._counts)
                    limit = self._key_limit
                    stats = {
                        "total": sum(counts.values()),
                        "endpoints": counts,
                        "rate_limited": 0,
                        "tasks": self.task_count(),
                        "voices": self.voice_count(),
                    }
                    if limit is not None:
                        stats["rate_limited"] = limit.refused
                    return json_reply(200, stats)
        except (TypeError, ValueError, KeyError) as exc:
            return detail(400, f"{type(exc).__name__}: {exc}")
        return detail(404, f"No stand-in control endpoint {request.method} /_standin/{action}")
