"""What the kinds whose result is one media file (speech, sound) share: their output types and result parser."""

from __future__ import annotations

from typing import Any

from airflow_provider_camb.api import result_link, result_what, unreadable
from airflow_provider_camb.kinds._kind import CambKind

#: The result output types of the kinds whose result is one media file.
MEDIA_OUTPUT_TYPES = ("RAW_BYTES", "FILE_URL")


def parse_media_result(body: Any, kind: CambKind, run_id: int) -> str:
    """The link (a bearer link) of a ``FILE_URL`` result: ``{"output_url": link}``, or a bulk reply's link itself."""
    what = result_what(kind, run_id)
    if isinstance(body, str):
        return result_link(body, what, "an output_url")
    if not isinstance(body, dict) or "output_url" not in body:
        raise unreadable(what, "no output_url")
    return result_link(body["output_url"], what, "an output_url")
