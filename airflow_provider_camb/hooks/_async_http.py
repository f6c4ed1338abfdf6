"""The async (aiohttp) transport: one JSON request, whole within ``timeout`` and read under ``max_reply_bytes``.

aiohttp's ``total`` timeout is already one deadline per request, trickling replies included. The body is
read in pieces and refused past the limit (``_reply_limit``); the HTTP libraries' log records show no
URL beyond its host (``_redaction``). The caller classifies the reply (``api.classify_reply``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
from yarl import URL

from airflow_provider_camb._redaction import links_hidden
from airflow_provider_camb._reply_limit import CHUNK, REPLY_SETTING, ReplyBuffer
from airflow_provider_camb.api import ApiRequest
from airflow_provider_camb.exceptions import CambConnectionError, CambReplyTooLargeError
from airflow_provider_camb.settings import CambSettings


async def request_json(
    session: aiohttp.ClientSession, request: ApiRequest, settings: CambSettings
) -> tuple[int, Any, bytes]:
    """Send one API request; return its status, headers and whole body (or raise ``CambConnectionError``)."""
    try:
        with links_hidden():
            async with session.request(
                request.method,
                URL(settings.base_url + request.path, encoded=True),
                params=request.params,
                json=request.json,
                headers={"x-api-key": settings.api_key, "Accept": "application/json"},
                timeout=aiohttp.ClientTimeout(total=settings.timeout, sock_connect=min(10.0, settings.timeout)),
                allow_redirects=False,
            ) as response:
                body = ReplyBuffer(settings.max_reply_bytes, request.what, REPLY_SETTING)
                try:
                    body.declared(response.headers.get("Content-Length"))
                    if response.content_length is not None:  # within the limit, and aiohttp reads no more
                        body.add(await response.read())
                    else:
                        async for chunk in response.content.iter_chunked(CHUNK):
                            body.add(chunk)
                except CambReplyTooLargeError:
                    response.close()  # the rest is never read: the connection goes, not back to the pool
                    raise
                return response.status, response.headers, body.body
    except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as error:
        raise CambConnectionError.unreachable(request.what, error, sent=False) from error
    except (aiohttp.ClientError, asyncio.TimeoutError) as error:
        raise CambConnectionError.unreachable(request.what, error, sent=True) from error
