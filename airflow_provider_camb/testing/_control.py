"""The stand-in's control API: ``/_standin/...`` on the API server, driving it over HTTP (no key, never recorded).

Each action is one public method of ``CambStandIn``, called as a test's own thread would call it;
``CambStandInClient`` is its client. A bad argument answers 400 with the error, an unknown action 404.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from aiohttp import web

from airflow_provider_camb.testing._replies import Reply, detail, json_reply

if TYPE_CHECKING:
    from airflow_provider_camb.testing.server import CambStandIn

#: The prefix of every control path.
PREFIX = "/_standin/"

_Action = Callable[["CambStandIn", dict[str, Any], dict[str, str]], Any]  # (stand-in, JSON body, query) -> reply
_OK = {"ok": True}


def _configure(standin: CambStandIn, body: dict[str, Any], query: dict[str, str]) -> Any:
    standin.configure(**body)
    return _OK


def _inject(standin: CambStandIn, body: dict[str, Any], query: dict[str, str]) -> Any:
    standin.inject(**body)
    return _OK


def _rate_limit(standin: CambStandIn, body: dict[str, Any], query: dict[str, str]) -> Any:
    standin.rate_limit(body.get("per_second"))
    return _OK


def _outage(standin: CambStandIn, body: dict[str, Any], query: dict[str, str]) -> Any:
    standin.outage(float(body["seconds"]))
    return _OK


def _requests(standin: CambStandIn, body: dict[str, Any], query: dict[str, str]) -> Any:
    return [asdict(r) for r in standin.requests(query.get("endpoint"), kind=query.get("kind"))]


def _clear_requests(standin: CambStandIn, body: dict[str, Any], query: dict[str, str]) -> Any:
    standin.clear_requests()
    return _OK


_ACTIONS: dict[tuple[str, str], _Action] = {
    ("POST", "configure"): _configure,
    ("POST", "tasks"): lambda standin, body, query: {"task_id": standin.add_task(**body)},
    ("POST", "faults"): _inject,
    ("POST", "rotate_key"): lambda standin, body, query: {"api_key": standin.rotate_key()},
    ("POST", "rate_limit"): _rate_limit,
    ("POST", "outage"): _outage,
    ("GET", "requests"): _requests,
    ("DELETE", "requests"): _clear_requests,
    ("GET", "stats"): lambda standin, body, query: standin.stats(),
}


async def control(standin: CambStandIn, request: web.BaseRequest, action: str, query: dict[str, str]) -> Reply:
    """Answer the control request ``action`` (its path after ``PREFIX``) by calling its method of ``standin``."""
    act = _ACTIONS.get((request.method, action))
    if act is None:
        return detail(404, f"No stand-in control endpoint {request.method} {PREFIX}{action}")
    try:
        body = (await request.json()) if request.method == "POST" and request.can_read_body else {}
        if not isinstance(body, dict):
            raise TypeError("The body must be a JSON object.")
        return json_reply(200, await asyncio.to_thread(act, standin, body, query))
    except (TypeError, ValueError, KeyError) as exc:
        return detail(400, f"{type(exc).__name__}: {exc}")
