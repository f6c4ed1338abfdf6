"""CambHook: the ``camb`` connection type and every call to the CAMB.AI API."""

from __future__ import annotations

import asyncio
import mimetypes
import os
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from functools import cached_property
from pathlib import Path
from typing import IO, Any, TypeVar

import aiohttp
import requests
from airflow.providers.common.compat.connection import get_async_connection, get_async_extra_dejson
from airflow.providers.common.compat.sdk import BaseHook, ObjectStoragePath, mask_secret
from tenacity import AsyncRetrying, Retrying

from airflow_provider_camb._connection_form import UI_FIELD_BEHAVIOUR, connection_form_widgets
from airflow_provider_camb._deprecated import HookMethods
from airflow_provider_camb._link_policy import LinkPolicy
from airflow_provider_camb._storage import write_atomically
from airflow_provider_camb.api import (
    BULK_RESULTS_MAX,
    ApiRequest,
    CambTaskStatus,
    DownloadedFile,
    LinkRequest,
    bulk_results_request,
    check_run_id,
    classify_link_reply,
    classify_reply,
    parse_bulk_results,
    parse_languages,
    parse_status,
    parse_task_id,
    result_request,
    source_languages_request,
    status_request,
    whole_number,
)
from airflow_provider_camb.exceptions import (
    CambAuthError,
    CambError,
    CambInputError,
    CambRateLimitError,
    CambResponseError,
)
from airflow_provider_camb.hooks._async_http import request_json
from airflow_provider_camb.hooks._per_kind import KindMethods
from airflow_provider_camb.hooks._rate_limit import KeyLimiter, KeyState, key_state
from airflow_provider_camb.hooks._retry import retry_policy, should_retry
from airflow_provider_camb.hooks._shared_session import shared_session
from airflow_provider_camb.hooks._sync_http import api_url, download, new_session, send_json
from airflow_provider_camb.kinds import CambKind, kind_of
from airflow_provider_camb.kinds._fields import check_media
from airflow_provider_camb.kinds.text_to_voice import parse_voice_id
from airflow_provider_camb.settings import CambSettings, settings_from

_KEY_CHANGED = (
    "CAMB refused the API key of connection %r, which holds another key now (rotated?): sending again with it."
)
T = TypeVar("T")


class CambHook(KindMethods, HookMethods, BaseHook):
    """Talk to the CAMB.AI API through an Airflow connection of type ``camb``.

    One path serves every CAMB task kind (``airflow_provider_camb.kinds``): ``create(kind, fields)``,
    ``get_task_status(kind, task_id)``, ``get_result(kind, run_id)`` and ``get_results(kind, run_ids)``;
    ``create_tts``, ``get_dub_result`` and the like are thin typed forms of it (``_per_kind.KindMethods``).
    The 0.1.0 methods ``get_text_to_voice_status``, ``aget_text_to_voice_status`` and ``download_preview``
    still work, with a ``DeprecationWarning`` (``_deprecated.HookMethods``). The connection: README,
    "Connection" (Password: the API key; Host: the base URL; Extra: ``timeout``, ``retries``, ``backoff``,
    ``backoff_max``, ``max_requests_per_second``, ``max_reply_bytes``; defaults in ``settings.py``).
    Sync calls share one ``requests.Session`` for the API and one for links (``_link_policy``); async
    calls share one aiohttp session per event loop, and async status polls share one rate limiter and
    one settings read per connection and loop. A refused key (401/403) has the connection read once
    more and, if its key changed (rotated), the request sent again with the new one.

    :param camb_conn_id: The Airflow connection id.
    """

    conn_name_attr = "camb_conn_id"
    default_conn_name = "camb_default"
    conn_type = "camb"
    hook_name = "CAMB.AI"

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """The connection form (Airflow 2; Airflow 3 reads the same from the provider info)."""
        return UI_FIELD_BEHAVIOUR

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The extras as typed fields (Airflow 2; Airflow 3 reads ``conn-fields`` from the provider info)."""
        return connection_form_widgets()

    def __init__(self, camb_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.camb_conn_id = camb_conn_id
        self._settings: CambSettings | None = None
        self._key: KeyState | None = None  # this connection's shared state in the running loop
        self._session: requests.Session | None = None
        self._link_session: requests.Session | None = None
        self._created: dict[str, float] = {}  # CAMB task id -> epoch seconds this provider created it

    def __repr__(self) -> str:
        return f"CambHook(camb_conn_id={self.camb_conn_id!r})"

    # --- configuration -------------------------------------------------------------------

    def _settings_of(self, conn: Any, extra: dict[str, Any]) -> CambSettings:
        if conn.password:
            mask_secret(conn.password)
        return settings_from(self.camb_conn_id, conn.host, conn.port, conn.password, extra)

    @property
    def settings(self) -> CambSettings:
        """The validated connection settings (read once per hook)."""
        if self._settings is None:
            conn = self.get_connection(self.camb_conn_id)
            self._settings = self._settings_of(conn, conn.extra_dejson)
        return self._settings

    async def _aread_settings(self) -> CambSettings:
        conn = await get_async_connection(self.camb_conn_id, hook=self)
        return self._settings_of(conn, await get_async_extra_dejson(conn))

    async def _akey(self) -> KeyState:
        """The connection's state shared in the running loop: settings (re-read every minute) and limiter."""
        key = self._key
        if key is None or not key.fresh_in(asyncio.get_running_loop()):
            key = self._key = await key_state(self.camb_conn_id, self._aread_settings)
        return key

    async def asettings(self) -> CambSettings:
        """The settings, read without blocking the event loop: once per connection and loop, for a minute."""
        return (await self._akey()).settings

    def _with_the_newest_key(self, send: Callable[[CambSettings], T]) -> T:
        """``send(settings)``; when CAMB refuses the key, read the connection once more and, if it holds
        another key now (it was rotated), send once more with that one. A key still refused fails."""
        settings = self.settings
        try:
            return send(settings)
        except CambAuthError:
            self._settings = None
            try:
                fresh = self.settings
            except Exception as error:  # the refusal is the news, not a failed read
                self.log.warning("Could not read connection %r again: %s", self.camb_conn_id, error)
                fresh = self._settings = settings
            if fresh.api_key == settings.api_key:
                raise
        self.log.warning(_KEY_CHANGED, self.camb_conn_id)
        return send(fresh)

    async def _akey_again(self, refused: CambSettings) -> KeyState | None:
        """After a refused key: the connection's state read again (shared by every wait refused alike), or
        None when it still holds the refused key."""
        key = self._key = await key_state(self.camb_conn_id, self._aread_settings, refused_key=refused.api_key)
        if key.settings.api_key == refused.api_key:
            return None
        self.log.warning(_KEY_CHANGED, self.camb_conn_id)
        return key

    # --- tasks this hook created ---------------------------------------------------------

    def note_created(self, task_id: str, at: float) -> None:
        """Remember that this provider created ``task_id`` at ``at`` (epoch seconds): a 404 soon after is lag."""
        self._created[task_id] = at

    def created_at(self, task_id: str) -> float | None:
        """When this provider created ``task_id`` (epoch seconds), if this hook knows."""
        return self._created.get(task_id)

    # --- sync transport ------------------------------------------------------------------

    @property
    def session(self) -> requests.Session:
        """One ``requests.Session`` for the API host, for the hook's lifetime: connections are reused."""
        if self._session is None:
            self._session = new_session()
        return self._session

    @cached_property
    def link_policy(self) -> LinkPolicy:
        """Which result links this connection may fetch (see ``_link_policy``)."""
        return LinkPolicy(self.settings.base_url)

    @property
    def link_session(self) -> requests.Session:
        """One ``requests.Session`` for result links: every connection is checked by the link policy."""
        if self._link_session is None:
            self._link_session = new_session(self.link_policy)
        return self._link_session

    def close(self) -> None:
        for session in (self._session, self._link_session):
            if session is not None:
                session.close()
        self._session = self._link_session = None

    def __enter__(self) -> CambHook:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, request: ApiRequest, *, rate_limits: bool = True, **files: Any) -> Any:
        return self._with_the_newest_key(lambda settings: self._send_retrying(request, settings, files, rate_limits))

    def _send_retrying(
        self, request: ApiRequest, settings: CambSettings, files: dict[str, Any], rate_limits: bool = True
    ) -> Any:
        for attempt in Retrying(**retry_policy(request, settings, self.log, rate_limits=rate_limits)):
            with attempt:
                return self._send_once(request, settings, files)
        raise AssertionError("unreachable")  # pragma: no cover

    def _send_once(self, request: ApiRequest, settings: CambSettings, files: dict[str, Any]) -> Any:
        for value in files.values():  # a retried upload starts from the beginning of the file
            value[1].seek(0)
        return send_json(self.session, settings, request, files)

    # --- async transport -----------------------------------------------------------------

    @asynccontextmanager
    async def async_session(self) -> AsyncIterator[aiohttp.ClientSession]:
        """Hold the loop's shared aiohttp session (e.g. for a whole wait); released on every exit."""
        async with shared_session() as session:
            yield session

    async def _asend(self, request: ApiRequest, *, retry_until: float | None = None, limited: bool = False) -> Any:
        """Send with retries; ``limited`` requests (status polls) pass through the key's shared rate limiter.

        When CAMB refuses the key, the connection is read again once and, if it holds another key now,
        the request goes again with that one.
        """
        key = await self._akey()
        settings = key.settings
        try:
            return await self._asend_retrying(request, settings, key.limiter if limited else None, retry_until)
        except CambAuthError:
            fresh = await self._akey_again(settings)
            if fresh is None:
                raise
        return await self._asend_retrying(request, fresh.settings, fresh.limiter if limited else None, retry_until)

    async def _asend_retrying(
        self, request: ApiRequest, settings: CambSettings, limiter: KeyLimiter | None, retry_until: float | None
    ) -> Any:
        async with shared_session() as session:
            try:  # one plain attempt first: tenacity allocates more per call than the request itself
                return await self._asend_once(session, request, settings, limiter, retry_until)
            except CambError as error:
                if not should_retry(error, request.may_repeat):
                    raise
                first_failure: CambError | None = error
            policy = retry_policy(request, settings, self.log, retry_until=retry_until)
            async for attempt in AsyncRetrying(**policy):
                with attempt:
                    if first_failure is not None:  # replay the failed try as attempt 1: same logs, waits and stop
                        failure, first_failure = first_failure, None
                        raise failure
                    return await self._asend_once(session, request, settings, limiter, retry_until)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _asend_once(
        self,
        session: aiohttp.ClientSession,
        request: ApiRequest,
        settings: CambSettings,
        limiter: KeyLimiter | None = None,
        retry_until: float | None = None,
    ) -> Any:
        if limiter is not None and limiter.interval:
            await limiter.admit(retry_until, request.what)
        epoch = limiter.epoch if limiter is not None else 0
        status, headers, body = await request_json(session, request, settings)
        reply = (request, status, headers, body, settings.conn_id)
        if limiter is None:
            return classify_reply(*reply, secret=settings.api_key)
        try:
            parsed = classify_reply(*reply, secret=settings.api_key)
        except CambRateLimitError as error:
            limiter.refused(error.retry_after, epoch)
            raise
        limiter.answered()
        return parsed

    # --- the API -------------------------------------------------------------------------

    def get_task_status(self, kind: str | CambKind, task_id: str) -> CambTaskStatus:
        """The current status of a CAMB task of any kind (``GET /{kind}/{task_id}``).

        A 404 within 30 s after this provider created the task (``note_created``) is read-after-create
        lag: retried like a passing fault.
        """
        camb_kind, request = self._status_request(kind, task_id)
        return parse_status(self._send(request), task_id, camb_kind)

    async def aget_task_status(
        self, kind: str | CambKind, task_id: str, *, retry_until: float | None = None
    ) -> CambTaskStatus:
        """The current status of a CAMB task of any kind, without blocking the loop.

        :param kind: The CAMB task kind, e.g. ``"tts"``.
        :param task_id: The CAMB task id.
        :param retry_until: Retry passing faults until this epoch time (``math.inf``: for ever)
            instead of the connection's retry count.
        """
        camb_kind, request = self._status_request(kind, task_id)
        return parse_status(await self._asend(request, retry_until=retry_until, limited=True), task_id, camb_kind)

    def _status_request(self, kind: str | CambKind, task_id: str) -> tuple[CambKind, ApiRequest]:
        camb_kind = kind_of(kind)  # a name from a user's call; everything below takes the CambKind
        return camb_kind, status_request(camb_kind, task_id, created_at=self.created_at(task_id))

    def list_source_languages(self) -> list[Any]:
        """The languages CAMB accepts (a free, authenticated read)."""
        return parse_languages(self._send(source_languages_request()))

    def download_link(
        self,
        url: str,
        target: str | os.PathLike[str] | IO[bytes],
        *,
        what: str = "a result file",
        max_bytes: int | None = None,
    ) -> DownloadedFile:
        """Stream a result link (a preview, ``output_url``, ``audio_url``, ``video_url``) in chunks.

        Links are bearer links on storage hosts: they are fetched WITHOUT the API key, only as the link
        policy allows (https to public addresses; ``CambLinkNotAllowedError`` otherwise, before anything
        is sent), and only their host appears in logs and errors. A 401/403 from the storage host raises
        ``CambLinkRefusedError`` (the link expired or was refused). Passing faults are retried from the
        start when the target can be rewound; a path is written whole or left as it was.

        :param url: The link.
        :param target: A path or a writable binary file.
        :param what: What the link holds, for logs and errors ("a preview", "the dubbed audio").
        :param max_bytes: Refuse the download past this many bytes (``CambReplyTooLargeError``); None: no limit.
        """
        request = LinkRequest.of(url, what)
        return self._download(request, target, max_bytes)

    def download_result(
        self,
        kind: str | CambKind,
        run_id: int | str,
        target: str | os.PathLike[str] | IO[bytes],
        *,
        max_bytes: int | None = None,
    ) -> DownloadedFile:
        """Stream the media result of a run (``GET /{result}/{run_id}?output_type=RAW_BYTES``) from the API host.

        For the kinds whose result is one media file (``tts``, ``translated-tts``, ``text-to-sound``).
        The reply is the audio itself; it is sent with the API key to the API host only, never redirected.
        """
        kind = kind_of(kind)  # a name from a user's call; everything below takes the CambKind
        request = result_request(kind, run_id, "RAW_BYTES")
        downloaded = self._with_the_newest_key(lambda _: self._download(request, target, max_bytes))
        if (downloaded.content_type or "").split(";")[0].strip().lower() == "application/json":
            raise CambResponseError(
                f"CAMB answered JSON instead of audio while {request.what} (output_type=RAW_BYTES). "
                "Check the run id; contact CAMB.AI support if it is right."
            )
        return downloaded

    def _download(
        self, request: ApiRequest | LinkRequest, target: str | os.PathLike[str] | IO[bytes], max_bytes: int | None
    ) -> DownloadedFile:
        """One download with retries: a link without the key, through the link policy; a result from the API host."""
        settings = self.settings
        if max_bytes is not None:
            max_bytes = whole_number("max_bytes", max_bytes)
        if isinstance(target, (str, os.PathLike)):
            path = Path(os.path.abspath(target))
            _, downloaded = write_atomically(
                ObjectStoragePath(str(path.parent)),
                path.name,
                lambda file: self._download(request, file, max_bytes),
                lambda _: path.name,
            )
            return downloaded
        classify: Callable[..., Any]
        if isinstance(request, LinkRequest):
            url, headers, classify, policy = request.url, {}, classify_link_reply, self.link_policy
        else:
            url, headers, classify, policy = (
                api_url(settings, request),
                {"x-api-key": settings.api_key},
                classify_reply,
                None,
            )
        session = self.session if policy is None else self.link_session
        rewindable = target.seekable()
        for attempt in Retrying(**retry_policy(request, settings, self.log, may_repeat=rewindable)):
            with attempt:
                if rewindable:
                    target.seek(0)
                    target.truncate()
                return download(
                    session, request, url, headers, target, settings, classify, policy=policy, max_bytes=max_bytes
                )
        raise AssertionError("unreachable")  # pragma: no cover

    # --- any kind: create and result (each kind's builder and parser are in its module under kinds/) ---

    def create(self, kind: str | CambKind, fields: Mapping[str, Any], *, wait_out_rate_limits: bool = True) -> str:
        """Start a CAMB task of ``kind`` from its create fields (checked by the kind's builder before anything is
        sent: an unknown field or a bad value raises ``CambInputError``; ``kinds.<kind>.<Kind>Fields`` lists them).
        Returns its task id.

        :param kind: The CAMB task kind or its name, e.g. ``"tts"``.
        :param fields: The create fields by name, e.g. ``{"text": ..., "voice_id": 7, "language": 1}``.
        :param wait_out_rate_limits: See ``create_task``.
        """
        camb_kind = kind_of(kind)
        request = camb_kind.create_request(fields)
        return self.create_task(request, camb_kind, wait_out_rate_limits=wait_out_rate_limits)

    def create_task(
        self, request: ApiRequest, kind: str | CambKind, *, wait_out_rate_limits: bool = True, **files: Any
    ) -> str:
        """Start a CAMB task from a create request built (and so checked) by its kind; return its task id.

        :param request: The create request, e.g. ``kinds.TTS.create_request(fields)``, of the CAMB ``kind``.
        :param wait_out_rate_limits: Wait out a 429 and send again (default); False raises ``CambRateLimitError``
            instead, for a caller that paces its creates itself (the batch operators). ``files``: its file parts
            (an uploading kind's media, refused before sending when missing).
        """
        camb_kind = kind_of(kind)
        check_media(camb_kind, request, files)
        task_id = parse_task_id(self._send(request, rate_limits=wait_out_rate_limits, **files), camb_kind)
        self.note_created(task_id, time.time())
        self.log.info("Created CAMB %s task %s.", camb_kind.label, task_id)
        return task_id

    def get_result(self, kind: str | CambKind, run_id: int | str) -> Any:
        """The result of a successful run, as its kind's parser reads it: the preview links of a text-to-voice
        run, ``{language: DubbedOutput}`` of a dub, the link (``output_type=FILE_URL``) of speech or sound."""
        camb_kind = kind_of(kind)
        run = check_run_id(run_id)
        return camb_kind.parse(self._send(result_request(camb_kind, run)), run)

    async def aget_result(self, kind: str | CambKind, run_id: int | str) -> Any:
        """``get_result`` without blocking the loop."""
        camb_kind = kind_of(kind)
        run = check_run_id(run_id)
        return camb_kind.parse(await self._asend(result_request(camb_kind, run)), run)

    def get_results(self, kind: str | CambKind, run_ids: Iterable[int | str]) -> dict[int, Any]:
        """The results of many runs by run id, as ``get_result`` reads each.

        Asked in bulk where the kind has a bulk endpoint (``POST /tts-results``, ``/dubbing-results``, ...),
        100 runs a request; a run the bulk reply leaves out, and every run of a kind without one, is asked alone.
        """
        camb_kind = kind_of(kind)
        runs = list(dict.fromkeys(check_run_id(run_id) for run_id in run_ids))
        if not camb_kind.bulk_result_path:
            return {run: self.get_result(camb_kind, run) for run in runs}
        found: dict[int, Any] = {}
        for start in range(0, len(runs), BULK_RESULTS_MAX):
            chunk = runs[start : start + BULK_RESULTS_MAX]
            values = parse_bulk_results(self._send(bulk_results_request(camb_kind, chunk)), camb_kind, chunk)
            for run in chunk:
                found[run] = camb_kind.parse(values[run], run) if run in values else self.get_result(camb_kind, run)
        return found

    def create_voice(self, request: ApiRequest, audio: str | os.PathLike[str]) -> int:
        """Keep ``audio`` as a custom voice; return its ``voice_id``.

        :param request: The request built (and so checked) by ``kinds.text_to_voice.custom_voice_request``.
        :param audio: Path of the audio file, sent as the ``file`` part.
        """
        path = Path(audio)
        if not path.is_file():
            raise CambInputError(f"The audio file {str(path)!r} does not exist.")
        content_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        with path.open("rb") as file:
            voice_id = parse_voice_id(self._send(request, file=(path.name, file, content_type)))
        self.log.info("Created CAMB custom voice %s (%s).", voice_id, (request.form or {}).get("voice_name"))
        return voice_id

    # --- connection test -----------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Check the key with a free authenticated read (``GET /source-languages``)."""
        try:
            languages = self.list_source_languages()
        except CambError as error:
            return False, str(error)
        return True, f"Connected to CAMB.AI at {self.settings.base_url}: {len(languages)} source languages."
