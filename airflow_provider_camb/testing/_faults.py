"""The stand-in's fault switches: what ``CambStandIn.inject`` can do to the next replies of an endpoint.

A fault either replaces the normal reply (an HTTP error, a body in the wrong shape) or changes how it is
delivered (late, never, cut short: a ``Behaviour``). Each is one row of ``_FAULT_TABLE``; ``FAULTS`` names them.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from airflow_provider_camb.testing._endpoints import ENDPOINTS, UNKNOWN
from airflow_provider_camb.testing._replies import Reply, detail, json_reply


@dataclass(frozen=True)
class Behaviour:
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

_FAULT_TABLE: dict[str, Callable[[Mapping[str, Any]], Reply | Behaviour]] = {
    "http_500": lambda p: detail(500, "Internal Server Error"),
    "http_502": lambda p: detail(502, "Bad Gateway"),
    "http_503": lambda p: detail(503, "Service Unavailable"),
    "rate_limit": _rate_limited,
    "slow": lambda p: Behaviour(delay=float(p.get("delay", 1.0))),
    "drop": lambda p: Behaviour(drop=True),
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
    "truncate": lambda p: Behaviour(truncate=True),
}
#: The fault names ``inject`` accepts.
FAULTS: tuple[str, ...] = tuple(_FAULT_TABLE)


@dataclass
class Fault:
    """One injected fault and how many more matching requests it applies to."""

    name: str
    endpoint: str
    remaining: int
    params: dict[str, Any]
    after: int = 0  # matching requests let through before the fault applies

    def effect(self) -> Reply | Behaviour:
        return _FAULT_TABLE[self.name](self.params)


class Faults:
    """The faults injected into one stand-in, applied in the order given; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._faults: list[Fault] = []

    def inject(self, fault: str, endpoint: str, times: int, after: int, params: dict[str, Any]) -> None:
        """Check a fault (see ``CambStandIn.inject``) and queue it; a bad parameter fails here, not in the server."""
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
        queued = Fault(fault, endpoint, times, dict(params), after)
        queued.effect()
        with self._lock:
            self._faults.append(queued)

    def take(self, endpoint: str) -> Fault | None:
        """The fault that applies to this request to ``endpoint``, if any, counted as used."""
        if not self._faults or endpoint == UNKNOWN:
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


async def apply(fault: Fault | None, answer: Callable[[], Reply]) -> tuple[Reply | None, Behaviour]:
    """The reply after ``fault`` (None: drop the connection) and how to deliver it; ``answer()`` is the normal one.

    With ``act=True`` the endpoint answers first (its work is done) and the fault then decides what is sent.
    """
    acted = answer() if fault is not None and fault.params.get("act") else None
    effect = Behaviour() if fault is None else fault.effect()
    if isinstance(effect, Reply):
        return effect, Behaviour()
    if effect.delay > 0:
        await asyncio.sleep(effect.delay)
    if effect.drop:
        return None, effect
    return (acted if acted is not None else answer()), effect
