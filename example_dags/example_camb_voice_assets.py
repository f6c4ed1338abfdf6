"""React to new CAMB.AI voice previews: a DAG scheduled on the asset the text-to-voice example updates.

The flow::

    camb_voice_previews ──> list_new_previews
    (asset, updated by        (reads the run id, paths and sha256 from the asset
     download_previews in      events that triggered this run: no file is opened)
     example_camb_text_to_voice)

A ``TextToVoiceResultOperator`` given ``outlets=[Asset(...)]`` puts into each asset event's ``extra``::

    {"camb_kind": "text-to-voice", "camb_run_id": 1234,
     "files": [{"path": "/tmp/camb_voices/camb_run_1234_preview_0.wav", "sha256": "…", "bytes": 44144}, …]}

so a downstream DAG knows which files are new, and can check them, without listing a folder. This DAG
runs once after every successful ``download_previews`` of ``example_camb_text_to_voice``.

**Connection**: none; it reads Airflow's asset events only. The upstream DAG uses ``camb_default`` (the
CAMB.AI API key in *Password*; see ``example_camb_text_to_voice``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Asset, task

#: The asset ``example_camb_text_to_voice`` updates after each download.
VOICE_PREVIEWS = Asset("camb_voice_previews")


def new_previews(events: Mapping[Any, Sequence[Any]]) -> list[dict[str, Any]]:
    """Every file the triggering asset events announce, with its CAMB run id: read from the extras only."""
    return [
        {"camb_run_id": event.extra["camb_run_id"], **file}
        for asset_events in events.values()
        for event in asset_events
        for file in event.extra.get("files", [])
    ]


with DAG(
    dag_id="example_camb_voice_assets",
    description="Scheduled on the CAMB.AI voice previews asset: list the new files from the asset events.",
    schedule=[VOICE_PREVIEWS],
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["example", "camb", "text-to-voice", "assets"],
    doc_md=__doc__,
) as dag:

    @task
    def list_new_previews(
        triggering_asset_events: Mapping[Any, Sequence[Any]] | None = None,
        triggering_dataset_events: Mapping[Any, Sequence[Any]] | None = None,  # the name on Airflow 2
    ) -> list[dict[str, Any]]:
        """Log each new preview (run id, path, sha256) and return them."""
        previews = new_previews(triggering_asset_events or triggering_dataset_events or {})
        for preview in previews:
            print(f"CAMB run {preview['camb_run_id']}: {preview['path']} (sha256 {preview['sha256']})")
        return previews

    list_new_previews()
