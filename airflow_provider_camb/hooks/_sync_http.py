"""The sync (requests) transport: one JSON request or one download, with its guards.

- Every request has one deadline (``_deadline``): a JSON request must be whole within the connection's
  ``timeout``, a download must have its reply headers by then. A download's body then has a stall
  timeout: no byte for ``timeout`` seconds ends it (``requests``' own timeout, which counts each read).
- JSON replies are read in pieces under ``max_reply_bytes``; downloads under ``max_bytes`` (``_reply_limit``).
- Links go through ``_link_policy``: checked before anything is sent, each redirect hop checked again
  (never https to http), and the socket connected to an address the policy allowed.
- While a request runs, the HTTP libraries' log records show no URL beyond its host (``_redaction``).
"""

from __future__ import annotations

import hashlib
import socket
from collections.abc import Callable
from typing import IO, Any, ClassVar
from urllib.parse import urlencode, urljoin

import requests
import urllib3.exceptions
from requests.adapters import HTTPAdapter
from requests.utils import select_proxy
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.util.connection import create_connection

from airflow_provider_camb import __version__
from airflow_provider_camb._link_policy import LinkPolicy
from airflow_provider_camb._redaction import links_hidden
from airflow_provider_camb._reply_limit import CHUNK, DOWNLOAD_SETTING, REPLY_SETTING, ReplyBuffer, ReplyLimit
from airflow_provider_camb.api import ApiRequest, DownloadedFile, LinkRequest, classify_reply
from airflow_provider_camb.exceptions import CambConnectionError, CambLinkNotAllowedError
from airflow_provider_camb.hooks._deadline import deadline, watch
from airflow_provider_camb.settings import CambSettings

#: How many redirects a link may take before it is refused.
MAX_REDIRECTS = 5
_ERROR_BODY_BYTES = 4096
_DOWNLOAD_CHUNK = 1024 * 1024  # at most; read1 returns what has arrived
_NETWORK_ERRORS = (requests.RequestException, urllib3.exceptions.HTTPError, OSError)

Classify = Callable[..., Any]


# --- connections: the deadline sees their sockets, links connect only where the policy allows ----


class _GuardedConnection(HTTPConnection):
    link_policy: ClassVar[LinkPolicy | None] = None
    link_scheme: ClassVar[str] = "http"

    def _new_conn(self) -> socket.socket:
        policy = self.link_policy
        if policy is None or self.proxy is not None or self._tunnel_host:  # through a proxy: it connects
            sock = super()._new_conn()
        else:
            sock = self._connect_allowed(policy)
        watch(sock)
        return sock

    def _connect_allowed(self, policy: LinkPolicy) -> socket.socket:
        """Resolve once, connect only to an address the policy allowed: no second DNS answer is asked."""
        try:
            allowed = policy.addresses(self._dns_host, self.port, self.link_scheme)
        except socket.gaierror as error:
            raise urllib3.exceptions.NameResolutionError(self.host, self, error) from error
        failure: Exception | None = None
        for info in allowed:
            try:
                return create_connection(
                    (str(info[4][0]), self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except TimeoutError as error:
                failure = urllib3.exceptions.ConnectTimeoutError(self, f"Connection to {self.host} timed out.")
                failure.__cause__ = error
            except OSError as error:
                failure = urllib3.exceptions.NewConnectionError(self, f"Failed to establish a new connection: {error}")
        assert failure is not None  # addresses() returns at least one
        raise failure

    def request(self, *args: Any, **kwargs: Any) -> None:
        if self.sock is not None:  # a kept-alive connection: its socket is this request's too
            watch(self.sock)
        super().request(*args, **kwargs)


class _GuardedHTTPSConnection(_GuardedConnection, HTTPSConnection):
    link_scheme = "https"


def _pool_classes(policy: LinkPolicy | None) -> dict[str, type[HTTPConnectionPool]]:
    """Connection pools whose connections carry ``policy`` (None: API requests, only the deadline applies)."""
    http = type("CambHTTPConnection", (_GuardedConnection,), {"link_policy": policy})
    https = type("CambHTTPSConnection", (_GuardedHTTPSConnection,), {"link_policy": policy})
    return {
        "http": type("CambHTTPConnectionPool", (HTTPConnectionPool,), {"ConnectionCls": http}),
        "https": type("CambHTTPSConnectionPool", (HTTPSConnectionPool,), {"ConnectionCls": https}),
    }


class _GuardedAdapter(HTTPAdapter):
    def __init__(self, policy: LinkPolicy | None) -> None:
        self.link_policy = policy
        self._pools = _pool_classes(policy)
        super().__init__()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._pools

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS has connection classes of its own
            manager.pool_classes_by_scheme = self._pools
        return manager

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        proxies = kwargs.get("proxies")
        if self.link_policy is not None and request.url and proxies and select_proxy(request.url, proxies):
            # A proxy resolves the host itself, so the link is checked here, on this process's own answer.
            parts = self.link_policy.check_url(request.url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
            self.link_policy.addresses(str(parts.hostname), port, parts.scheme)
        return super().send(request, *args, **kwargs)


def new_session(policy: LinkPolicy | None = None) -> requests.Session:
    """A session for API requests (``policy`` None) or for links (every connection checked by ``policy``)."""
    session = requests.Session()
    session.headers["User-Agent"] = f"airflow-provider-camb/{__version__}"
    adapter = _GuardedAdapter(policy)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


# --- JSON requests -------------------------------------------------------------------------------


def api_url(settings: CambSettings, request: ApiRequest) -> str:
    """The full URL of an API request (path already percent-encoded)."""
    return settings.base_url + request.path + (f"?{urlencode(request.params)}" if request.params else "")


def _timed_out(request: ApiRequest | LinkRequest, settings: CambSettings, part: str) -> CambConnectionError:
    return CambConnectionError(
        f"{_capital(request.what)} did not finish: {part} had not arrived within {settings.timeout:g} s "
        "(the connection's timeout). Passing faults are retried.",
    )


def _was_sent(error: BaseException) -> bool:
    """False when the request failed before it left (refused, DNS, connect timeout)."""
    if isinstance(error, (requests.ConnectTimeout, urllib3.exceptions.ConnectTimeoutError)):
        return False
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return not isinstance(reason, urllib3.exceptions.ConnectTimeoutError)  # NewConnectionError is one too


def send_json(session: requests.Session, settings: CambSettings, request: ApiRequest, files: dict[str, Any]) -> Any:
    """Send one API request and return its parsed reply (or raise its typed error); whole within ``timeout``."""
    url = api_url(settings, request)
    prepared = session.prepare_request(
        requests.Request(
            request.method,
            url,
            json=request.json,
            data=request.form,
            files=files or None,
            headers={"x-api-key": settings.api_key, "Accept": "application/json"},
        )
    )
    prepared.url = url  # requests would decode %2E back into "." and let an id like ".." leave its path
    body = ReplyBuffer(settings.max_reply_bytes, request.what, REPLY_SETTING)
    with links_hidden(), deadline(settings.timeout) as clock:
        try:
            response = session.send(
                prepared,
                timeout=(min(10.0, settings.timeout), settings.timeout),
                allow_redirects=False,  # the key must never follow a redirect to another host
                **session.merge_environment_settings(url, {}, True, None, None),  # stream: read in pieces
            )
            with response:
                body.declared(response.headers.get("Content-Length"))
                for chunk in response.iter_content(CHUNK):
                    body.add(chunk)
        except _NETWORK_ERRORS as error:
            if clock.expired:
                raise _timed_out(request, settings, "the whole reply") from None
            raise CambConnectionError.unreachable(request.what, error, sent=_was_sent(error)) from error
        if clock.expired:  # a reply without a length ends early when its socket is shut: not whole
            raise _timed_out(request, settings, "the whole reply")
    return classify_reply(
        request, response.status_code, response.headers, body.body, settings.conn_id, secret=settings.api_key
    )


# --- downloads -----------------------------------------------------------------------------------


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _open(
    session: requests.Session, url: str, headers: dict[str, str], settings: CambSettings, policy: LinkPolicy | None
) -> requests.Response:
    """A download's reply headers; a link's redirects are followed one hop at a time, each checked by the policy."""
    timeout = (min(10.0, settings.timeout), settings.timeout)
    previous: str | None = None
    for _ in range(MAX_REDIRECTS + 1):
        if policy is not None:
            policy.check_url(url, redirected_from=previous)
        # Nothing is followed by requests itself: with the key, it must never reach another host;
        # a link's next hop is checked by the policy first.
        response = session.get(url, headers=headers, stream=True, timeout=timeout, allow_redirects=False)
        if policy is None or not response.is_redirect:
            return response
        location = response.headers.get("Location", "")
        response.close()
        previous, url = url, urljoin(url, location)
    raise CambLinkNotAllowedError(f"A link redirected more than {MAX_REDIRECTS} times; it was not followed further.")


def download(
    session: requests.Session,
    request: ApiRequest | LinkRequest,
    url: str,
    headers: dict[str, str],
    target: IO[bytes],
    settings: CambSettings,
    classify: Classify,
    *,
    policy: LinkPolicy | None = None,
    max_bytes: int | None = None,
) -> DownloadedFile:
    """Stream one download into ``target``: headers within ``timeout``, then no stall longer than ``timeout``."""
    digest, limit = hashlib.sha256(), ReplyLimit(max_bytes, request.what, DOWNLOAD_SETTING)
    with links_hidden(), deadline(settings.timeout) as clock:
        try:
            with _open(session, url, headers, settings, policy) as response:
                if response.status_code != 200:  # its error body is read within the deadline too
                    body = response.raw.read(_ERROR_BODY_BYTES)
                    if clock.expired:  # what came before the socket was shut is not the whole error
                        raise _timed_out(request, settings, "the error reply")
                    classify(
                        request, response.status_code, response.headers, body, settings.conn_id, secret=settings.api_key
                    )
                limit.declared(response.headers.get("Content-Length"))
                clock.stop()  # the headers are in: from here on the body has a stall timeout instead
                # read1: whatever has arrived, so the count is exact and each wait is one read of the socket
                while chunk := response.raw.read1(_DOWNLOAD_CHUNK, decode_content=True):
                    target.write(limit.count(chunk))
                    digest.update(chunk)
                expected = response.headers.get("Content-Length")
                encoded = bool(response.headers.get("Content-Encoding"))
                content_type = response.headers.get("Content-Type")
        except _NETWORK_ERRORS as error:
            if clock.expired:
                raise _timed_out(request, settings, "the reply's headers") from None
            # The libraries' messages hold the whole link, which may be a bearer link: report only the cause.
            stalled = isinstance(error, (requests.ReadTimeout, urllib3.exceptions.ReadTimeoutError, TimeoutError))
            cut_off = limit.size > 0 or isinstance(
                error, (requests.exceptions.ChunkedEncodingError, urllib3.exceptions.ProtocolError)
            )
            if stalled:
                cause = f"no byte arrived for {settings.timeout:g} s, the connection's timeout"
            else:
                cause = "the stream was cut off" if cut_off else type(error).__name__
            raise CambConnectionError(
                f"{_capital(request.what)} failed after {limit.size} bytes ({cause}); passing faults are retried.",
                request_sent=_was_sent(error),
            ) from None
    if expected is not None and expected.isdigit() and not encoded and int(expected) != limit.size:
        raise CambConnectionError(f"{_capital(request.what)}: cut off after {limit.size} of {expected} bytes.")
    return DownloadedFile(bytes=limit.size, sha256=digest.hexdigest(), content_type=content_type)
