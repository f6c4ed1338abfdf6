"""Drive a stand-in running in another process (``python -m airflow_provider_camb.testing``) over HTTP."""

from __future__ import annotations

from typing import Any

import requests


class CambStandInClient:
    """The control methods of ``CambStandIn``, sent to ``<base_url>/_standin/...``."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._session = requests.Session()

    def _call(
        self, method: str, action: str, body: dict[str, Any] | None = None, params: dict[str, str] | None = None
    ) -> Any:
        response = self._session.request(
            method, f"{self.base_url}/_standin/{action}", json=body, params=params, timeout=self.timeout
        )
        if response.status_code == 400:
            raise ValueError(response.json().get("detail", response.text))
        response.raise_for_status()
        return response.json()

    def configure(self, **settings: Any) -> None:
        self._call("POST", "configure", settings)

    def add_task(self, **kwargs: Any) -> str:
        return str(self._call("POST", "tasks", kwargs)["task_id"])

    def inject(self, fault: str, *, endpoint: str = "status", times: int = 1, **params: Any) -> None:
        self._call("POST", "faults", {"fault": fault, "endpoint": endpoint, "times": times, **params})

    def rotate_key(self) -> str:
        """Give the API a new key and return it; the old one is refused from now on."""
        return str(self._call("POST", "rotate_key")["api_key"])

    def rate_limit(self, per_second: int | None) -> None:
        """Allow each API key ``per_second`` requests per second, then 429 with Retry-After (None: off)."""
        self._call("POST", "rate_limit", {"per_second": per_second})

    def outage(self, seconds: float) -> None:
        self._call("POST", "outage", {"seconds": seconds})

    def requests(self, endpoint: str | None = None, *, kind: str | None = None) -> list[dict[str, Any]]:
        """The recorded requests as dicts (the fields of ``RecordedRequest``); all, or of one endpoint and/or kind."""
        params = {name: value for name, value in (("endpoint", endpoint), ("kind", kind)) if value}
        found: list[dict[str, Any]] = self._call("GET", "requests", params=params or None)
        return found

    def request_count(self, endpoint: str | None = None) -> int:
        stats = self._call("GET", "stats")
        return int(stats["total"] if endpoint is None else stats["endpoints"].get(endpoint, 0))

    def task_count(self) -> int:
        """How many CAMB tasks exist: what CAMB would bill."""
        return int(self._call("GET", "stats")["tasks"])

    def voice_count(self) -> int:
        """How many custom voices were created."""
        return int(self._call("GET", "stats")["voices"])

    def stats(self) -> dict[str, Any]:
        """``{"total", "endpoints": {endpoint: n}, "rate_limited", "tasks", "voices"}``: what the stand-in counted."""
        found: dict[str, Any] = self._call("GET", "stats")
        return found

    def rate_limited_count(self) -> int:
        """How many requests the per-key rate limit (``rate_limit``) refused with 429."""
        return int(self._call("GET", "stats")["rate_limited"])

    def clear_requests(self) -> None:
        self._call("DELETE", "requests")

    def close(self) -> None:
        self._session.close()
