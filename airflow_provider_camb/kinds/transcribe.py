"""Transcription (``POST /transcribe``): waited on like every kind; its create and result are still to come."""

from __future__ import annotations

from airflow_provider_camb.kinds._kind import CambKind

TRANSCRIBE = CambKind(
    "transcribe",
    "transcription",
    "/transcribe",
    "transcription-result",
    "media and language",
    bulk_result_path="transcription-results",
)
