"""A local, contract-true stand-in of the CAMB.AI API: two real aiohttp servers on loopback.

The API server answers every CAMB task kind of ``camb-api.md`` and a small control API under
``/_standin/`` (``_control``); a second server, on another host name and port, serves previews and result
files like a storage host (bearer links, no API key). Every request of both passes through
``CambStandIn._handle``, which records it (``_recording``), applies any injected fault (``_faults``),
checks the key and the per-key rate limit, and asks its endpoint's handler (``_endpoints``) for a ``Reply``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import secrets
import threading
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any, Unpack
from urllib.parse import parse_qsl

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from airflow_provider_camb.testing import _endpoints, _faults
from airflow_provider_camb.testing._control import PREFIX, control
from airflow_provider_camb.testing._endpoints import ENDPOINTS, UNKNOWN, Call, ServerName
from airflow_provider_camb.testing._faults import FAULTS, Faults
from airflow_provider_camb.testing._rate_limit import KeyRateLimit
from airflow_provider_camb.testing._recording import RecordedRequest, Recorder
from airflow_provider_camb.testing._replies import Reply, detail, json_reply, send
from airflow_provider_camb.testing._tasks import NewTask, Settings, Tasks

__all__ = ["ENDPOINTS", "FAULTS", "CambStandIn", "RecordedRequest"]

log = logging.getLogger(__name__)

_BACKLOG = 4096  # thousands of pollers may connect at once
_SHUTDOWN_SECONDS = 0.5  # how long stop() lets in-flight requests finish


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
        self._faults = Faults()
        self._recorder = Recorder(record=record_requests, log_path=request_log_path)
        self._key_limit: KeyRateLimit | None = None

        self._thread: threading.Thread | None = None
        self._start_error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread = 0
        self._stop_event: asyncio.Event | None = None
        self._api_runner: web.ServerRunner | None = None
        self._api_site: web.TCPSite | None = None
        self._api_server: web.Server | None = None
        self._reopen: asyncio.Task[None] | None = None
        self._busy: set[RequestHandler] = set()  # connections with a request in flight

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
        self._recorder.open_log()
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
            self._recorder.close_log()
            self._loop = self._stop_event = None
            self._api_site = self._api_runner = self._api_server = None

    async def _listen(self, runner: web.ServerRunner, port: int, host: str | None = None) -> web.TCPSite:
        site = web.TCPSite(runner, host or self._host, port, backlog=_BACKLOG)  # the runner holds shutdown_timeout
        await site.start()
        return site

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

    def add_task(self, **task: Unpack[NewTask]) -> str:
        """Create a task without HTTP and return its id: ``kind`` (default text-to-voice), ``status`` (fixes
        what it reports from now on), ``pending_seconds``, ``outcome``, ``exception_reason``, ``message``,
        ``task_id``, and ``request``, which stands for its create body (e.g. a dubbing task's ``target_languages``).
        """
        return self._tasks.add(**task)

    def inject(self, fault: str, *, endpoint: str = "status", times: int = 1, after: int = 0, **params: Any) -> None:
        """Apply ``fault`` (one of ``FAULTS``) to the next ``times`` requests to ``endpoint`` (or ``"any"``),
        after letting ``after`` of them through.

        With ``act=True`` the endpoint acts first (a create creates its task) and the fault then decides
        what the client gets: CAMB did the work but the reply is late (``slow``), lost (``drop``), an
        error (``http_500``) or unreadable (``malformed_json``).
        """
        self._faults.inject(fault, endpoint, times, after, params)

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
        return self._recorder.requests(endpoint, kind)

    def request_count(self, endpoint: str | None = None) -> int:
        """How many requests arrived (control requests excepted), counted even when not recording."""
        counts = self._recorder.counts()
        return sum(counts.values()) if endpoint is None else counts.get(endpoint, 0)

    def task_count(self) -> int:
        """How many CAMB tasks exist, created over HTTP or with ``add_task``: what CAMB would bill."""
        return self._tasks.count()

    def voice_count(self) -> int:
        """How many custom voices were created."""
        return self._tasks.voices

    def stats(self) -> dict[str, Any]:
        """``{"total", "endpoints": {endpoint: n}, "rate_limited", "tasks", "voices"}``: what the stand-in counted."""
        counts = self._recorder.counts()
        limit = self._key_limit
        return {
            "total": sum(counts.values()),
            "endpoints": counts,
            "rate_limited": 0 if limit is None else limit.refused,
            "tasks": self.task_count(),
            "voices": self.voice_count(),
        }

    def clear_requests(self) -> None:
        """Forget the recorded requests and reset the counts."""
        self._recorder.clear()

    # --- the one path of every request -------------------------------------------------------

    async def _handle(self, server: ServerName, request: web.BaseRequest) -> web.StreamResponse:
        """Every request of both servers comes here: control, or record, fault, auth and the endpoint's reply."""
        connection = request.protocol
        self._busy.add(connection)
        try:
            path, _, query_string = request.raw_path.partition("?")
            query = dict(parse_qsl(query_string, keep_blank_values=True))
            if server == "api" and path.startswith(PREFIX):
                return await send(request, await control(self, request, path.removeprefix(PREFIX), query))
            call = _endpoints.receive(request, server, path, query, self.preview_base_url)
            return await self._answer(call)
        finally:
            self._busy.discard(connection)

    async def _answer(self, call: Call) -> web.StreamResponse:
        slot = self._recorder.arrive(call)
        status = 0
        try:
            await _endpoints.read_body(call)
            reply, behaviour = await _faults.apply(self._faults.take(call.endpoint), partial(self._reply, call))
            status = 0 if reply is None else reply.status
        finally:
            self._recorder.done(slot, call, status)  # recorded before the client can see any reply
        if reply is None:
            call.request.protocol.force_close()
            return web.Response()  # never sent: the connection is gone
        return await send(call.request, reply, truncate=behaviour.truncate)

    def _reply(self, call: Call) -> Reply:
        """The normal reply: the key and its rate limit first (API server only), then the endpoint's handler."""
        if call.server == "api" and call.endpoint != UNKNOWN:
            key = call.request.headers.get("x-api-key", "")
            if not hmac.compare_digest(key.encode(), self._api_key.encode()):
                return detail(401, "Invalid or missing API key (header x-api-key).")
            limit = self._key_limit
            if limit is not None and (retry_after := limit.take(key)) is not None:
                return json_reply(429, {"detail": "Too Many Requests"}, headers={"Retry-After": f"{retry_after:g}"})
        return _endpoints.answer(self._tasks, call)
