"""Audio separation (``POST /audio-separation``): waited on like every kind; its create and result are still to come."""

from __future__ import annotations

from airflow_provider_camb.kinds._kind import CambKind

AUDIO_SEPARATION = CambKind(
    "audio-separation",
    "audio separation",
    "/audio-separation",
    "audio-separation-result",
    "media file",
    bulk_result_path="audio-separation-results",
)
