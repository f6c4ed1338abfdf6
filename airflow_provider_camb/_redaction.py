"""What never leaves the provider in a message: the API key, and links beyond their host.

- ``scrub`` and ``scrub_json`` take the connection's key out of any text a reply brought, before it
  becomes part of an exception, a log line or a trigger event (Airflow stores events in its database,
  where its secrets masker does not reach).
- ``links_hidden()`` marks a stretch of code (every sync request the hook sends) during which the HTTP
  libraries' own loggers (urllib3, requests, aiohttp) may not write a URL beyond its host: their DEBUG
  lines would otherwise show a bearer link's path and query. Records outside it are left alone.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

#: What a scrubbed key reads as.
HIDDEN = "***"
#: The loggers of the HTTP libraries the hook uses, as they name themselves.
LIBRARY_LOGGERS = (
    "urllib3",
    "urllib3.connectionpool",
    "urllib3.connection",
    "urllib3.poolmanager",
    "urllib3.response",
    "urllib3.util.retry",
    "requests",
    "aiohttp.client",
    "aiohttp.internal",
)

_hiding = ContextVar("camb_links_hidden", default=False)
_URL = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s?#'\"]+)[/?#][^\s'\"]*")
_PATH = re.compile(r"(?<=[\s'\"=(])/[^\s'\"]*")


def scrub(text: str, secret: str) -> str:
    """``text`` without ``secret`` (the API key) in it."""
    return text.replace(secret, HIDDEN) if secret and secret in text else text


def scrub_json(value: Any, secret: str) -> Any:
    """Parsed JSON with ``secret`` taken out of every string in it, keys included."""
    if not secret:
        return value
    if isinstance(value, str):
        return scrub(value, secret)
    if isinstance(value, list):
        return [scrub_json(item, secret) for item in value]
    if isinstance(value, dict):
        return {scrub(str(key), secret): scrub_json(item, secret) for key, item in value.items()}
    return value


def hide_links(text: str) -> str:
    """``text`` with every URL cut to its scheme and host, and every request path cut to ``/…``."""
    return _PATH.sub("/…", _URL.sub(r"\1/…", text))


class _HideLinks(logging.Filter):
    installed = False

    def filter(self, record: logging.LogRecord) -> bool:
        if _hiding.get():
            message = record.getMessage()
            hidden = hide_links(message)
            if hidden != message:
                record.msg, record.args = hidden, None
        return True


_FILTER = _HideLinks()


@contextmanager
def links_hidden() -> Iterator[None]:
    """While inside, the HTTP libraries' log records show no URL beyond its host."""
    if not _FILTER.installed:
        for name in LIBRARY_LOGGERS:
            logging.getLogger(name).addFilter(_FILTER)
        _FILTER.installed = True
    token = _hiding.set(True)
    try:
        yield
    finally:
        _hiding.reset(token)
