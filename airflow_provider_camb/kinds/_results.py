"""Steps the kinds' result parsers share."""

from __future__ import annotations

from typing import Any

from airflow_provider_camb.api import unreadable


def string_list(body: Any, key: str, what: str, items: str) -> list[str]:
    """``body[key]`` of a result reply (``what``): a list of strings (``items``, in the error), else unreadable."""
    values = body.get(key) if isinstance(body, dict) else None
    if not isinstance(values, list) or not all(isinstance(value, str) for value in values):
        raise unreadable(what, f"no list of {items}")
    return values
