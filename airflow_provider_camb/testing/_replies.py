"""What the stand-in answers: a ``Reply`` (status, headers, a body whole or streamed), its forms, and ``send``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from airflow_provider_camb.testing._validation import Error


@dataclass(frozen=True)
class Reply:
    """What the stand-in answers: a status, headers and a body, given whole or as a stream of chunks."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    stream: Callable[[], Iterator[bytes]] | None = None
    length: int = 0  # Content-Length of a streamed body

    @property
    def size(self) -> int:
        return self.length if self.stream is not None else len(self.body)

    def chunks(self) -> Iterator[bytes]:
        return self.stream() if self.stream is not None else iter((self.body,))


def json_reply(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(status, json.dumps(payload).encode(), headers=headers or {})


def detail(status: int, message: str) -> Reply:
    return json_reply(status, {"detail": message})


def invalid(errors: list[Error]) -> Reply:
    return json_reply(422, {"detail": errors})


async def send(request: web.BaseRequest, reply: Reply, *, truncate: bool = False) -> web.StreamResponse:
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
