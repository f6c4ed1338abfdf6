"""``CambSettings``: what the hook needs from an Airflow connection of type ``camb``, validated.

``settings_from`` refuses what cannot work (no key, a key that cannot go in a header, plain http to a
host that is not local, bad extras) before any request is sent.
"""

from __future__ import annotations

import ipaddress
import math
import unicodedata
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from airflow_provider_camb._connection_form import (
    DEFAULT_BACKOFF,
    DEFAULT_BACKOFF_MAX,
    DEFAULT_BASE_URL,
    DEFAULT_MAX_REPLY_BYTES,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    MIN_REPLY_BYTES,
)
from airflow_provider_camb.api import whole_number
from airflow_provider_camb.exceptions import CambInputError


@dataclass(frozen=True)
class CambSettings:
    """Everything the hook needs from an Airflow connection, validated."""

    conn_id: str
    base_url: str
    api_key: str = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    backoff: float = DEFAULT_BACKOFF
    backoff_max: float = DEFAULT_BACKOFF_MAX
    max_requests_per_second: float | None = None  # None: no cap (the shared limiter learns CAMB's limit)
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES  # the largest JSON reply read


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def base_url_from(host: str | None, port: int | None, conn_id: str) -> str:
    """The API base URL from a connection's host (a URL or a bare host name) and port."""
    host = (host or "").strip()
    if not host:
        return DEFAULT_BASE_URL
    parts = urlsplit(host if "://" in host else f"https://{host}")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise CambInputError(
            f"Connection {conn_id!r}: base URL {host!r} is not an http(s) URL. "
            f"Set its Host to a URL such as {DEFAULT_BASE_URL}, or leave it empty."
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise CambInputError(
            f"Connection {conn_id!r}: base URL {host!r} uses plain http to a host that is not local, "
            "which would send the API key unencrypted. Use https (plain http is allowed only for loopback)."
        )
    netloc = parts.netloc
    if port and parts.port is None:
        netloc = f"{netloc}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def settings_from(
    conn_id: str, host: str | None, port: int | None, api_key: str | None, extra: dict[str, Any]
) -> CambSettings:
    """Validate a connection's fields into ``CambSettings``; refuse what cannot work."""
    key = (api_key or "").strip()
    if not key:
        raise CambInputError(
            f"Connection {conn_id!r} has no API key: put your CAMB.AI API key in its "
            "Password field (shown as 'API key')."
        )

    bad = next((i for i, char in enumerate(key) if ord(char) > 0xFF or unicodedata.category(char) == "Cc"), None)
    if bad is not None:
        raise CambInputError(  # never the key itself, nor its repr: Airflow's masker hides only the plain form
            f"Connection {conn_id!r}: the API key has a control character or a character outside Latin-1 at "
            f"position {bad + 1} of {len(key)}, so it cannot be sent in a header (a bad paste?). Copy the key again "
            "from CAMB.AI's studio into the connection's Password field."
        )

    def number(name: str, default: float, minimum: float) -> float:
        value = extra.get(name)
        if value is None or value == "":  # a form field left empty: the default
            return default
        try:
            result = float(value)
        except (TypeError, ValueError):
            result = minimum - 1
        if not result >= minimum or (math.isinf(result) and name != "max_requests_per_second"):
            raise CambInputError(
                f"Connection {conn_id!r}: extra {name!r} must be a finite number >= {minimum}, got {value!r}."
            )
        return result

    reply_limit = extra.get("max_reply_bytes")
    max_reply_bytes = whole_number(
        f"Connection {conn_id!r}: extra 'max_reply_bytes'",
        None if reply_limit == "" else reply_limit,
        optional=True,
        minimum=MIN_REPLY_BYTES,
    )

    cap = number("max_requests_per_second", math.inf, 0.001)
    if not math.isfinite(cap) and extra.get("max_requests_per_second") not in (None, ""):
        raise CambInputError(
            f"Connection {conn_id!r}: extra 'max_requests_per_second' must be a finite number of requests per "
            f"second, got {extra['max_requests_per_second']!r}; leave it empty for no cap."
        )

    return CambSettings(
        conn_id=conn_id,
        base_url=base_url_from(host, port, conn_id),
        api_key=key,
        timeout=number("timeout", DEFAULT_TIMEOUT, 0.001),
        retries=int(number("retries", DEFAULT_RETRIES, 0)),
        backoff=number("backoff", DEFAULT_BACKOFF, 0),
        backoff_max=number("backoff_max", DEFAULT_BACKOFF_MAX, 0),
        max_requests_per_second=cap if math.isfinite(cap) else None,
        max_reply_bytes=DEFAULT_MAX_REPLY_BYTES if max_reply_bytes is None else max_reply_bytes,
    )
