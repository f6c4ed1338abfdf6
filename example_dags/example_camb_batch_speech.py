"""Speak many texts with one CAMB.AI voice: one mapped text-to-speech task per line, all waited on in the triggerer.

The flow, with dynamic task mapping::

    lines ──> say[i]:                                   ──> list_speech
    (the        speak ──────────> save_speech               (every file
     texts      (text-to-speech;  (the speech of            saved)
     param)      waits deferred)   its run as a file)

* ``lines`` reads the ``texts`` param: a list of strings.
* The task group ``say`` is expanded over them: instance ``i`` says text ``i`` with ``voice_id`` in
  ``language``, waits in the triggerer (no worker slot held), then streams its speech into ``destination``.
  Each text moves on to its save as soon as it is spoken, whatever the others do.
* ``list_speech`` logs every file.

**Connection**: ``camb_default`` of type ``camb``, the API key in *Password* (see
``example_camb_design_keep_speak``); ``python -m airflow_provider_camb.testing`` runs a local stand-in and
prints a matching ``AIRFLOW_CONN_CAMB_DEFAULT``.

**Voice**: ``voice_id`` is a voice of the account or the library (``GET /list-voices``), or one kept with
``CambCreateCustomVoiceOperator``. **Where the files go**: the ``destination`` param; when empty, the
Variable ``camb_voice_folder``; when that is unset too, ``/tmp/camb_voices``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, task, task_group

from airflow_provider_camb.operators.text_to_speech import CambTextToSpeechOperator, CambTextToSpeechResultOperator

DESTINATION = "{{ params.destination or var.value.get('camb_voice_folder', '/tmp/camb_voices') }}/speech"

TEXTS = [
    "Platform four for the nine fifteen to Edinburgh.",
    "Please mind the gap between the train and the platform.",
    "This train is ready to depart. Please stand clear of the doors.",
]

with DAG(
    dag_id="example_camb_batch_speech",
    description="Speak many texts with one CAMB.AI voice in parallel, with dynamic task mapping.",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["example", "camb", "text-to-speech", "dynamic-task-mapping"],
    doc_md=__doc__,
    params={
        "texts": Param(TEXTS, type="array", items={"type": "string", "minLength": 1}, description="What to say."),
        "voice_id": Param(20303, type="integer", description="The CAMB voice id to speak with."),
        "language": Param(1, type="integer", description="CAMB language id of the texts (1: English, US)."),
        "destination": Param("", type="string", description="Folder or object storage URI for the speech."),
    },
) as dag:

    @task
    def lines(params: dict[str, Any] | None = None) -> list[str]:
        """The ``texts`` param, one entry per mapped ``speak``."""
        return list((params or {}).get("texts") or TEXTS)

    @task_group
    def say(text: str) -> Any:
        """One text, start to finish: speak it (waiting in the triggerer), then save the speech."""
        speak = CambTextToSpeechOperator(
            task_id="speak",
            text=text,
            voice_id="{{ params.voice_id }}",
            language="{{ params.language }}",
            wait_for_completion=True,
            deferrable=True,
            poll_interval=5,
            timeout=30 * 60,
        )
        save_speech = CambTextToSpeechResultOperator(
            task_id="save_speech", run_id=speak.output, destination=DESTINATION
        )
        return save_speech.output

    @task
    def list_speech(saved: Iterable[dict[str, Any]]) -> list[str]:
        """Log every saved speech file and return their paths."""
        for file in saved:
            print(f"{file['path']} ({file['bytes']} bytes, {file['content_type']})")
        return [file["path"] for file in saved]

    list_speech(say.expand(text=lines()))
