"""Design several voices at once with CAMB.AI: one mapped task per description, all waited on in the triggerer.

The flow, with dynamic task mapping: the task group ``design_voice`` is expanded once per voice::

    voice_requests ──> design_voice[i]:                                                  ──> list_previews
    (the voices           create_voice ──> wait_for_voice ──> download_previews          (every file
     param)               (a CAMB task)    (deferrable: in      (into <destination>/       downloaded)
                                            the triggerer)       voice_<i>)

* ``voice_requests`` reads the ``voices`` param: a list of ``{"text", "voice_description"}``.
* ``design_voice`` is expanded over that list (``expand_kwargs``): instance ``i`` creates voice ``i``,
  waits for it and downloads its previews. Every ``wait_for_voice[i]`` checks once, then defers, so a
  hundred voices wait in the triggerer without holding a hundred worker slots; each voice moves on to
  its download as soon as it is ready, whatever the others do.
* ``list_previews`` receives every instance's downloads (a lazy list of lists) and logs each file.

**Connection**: ``camb_default`` of type ``camb``, the API key in *Password* (see
``example_camb_text_to_voice``). ``python -m airflow_provider_camb.testing`` runs a local stand-in of the
API and prints a matching ``AIRFLOW_CONN_CAMB_DEFAULT``.

**Where the files go**: the ``destination`` param; when empty, the Variable ``camb_voice_folder``; when
that is unset too, ``/tmp/camb_voices``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, task, task_group

from airflow_provider_camb.operators.text_to_voice import TextToVoiceOperator, TextToVoiceResultOperator
from airflow_provider_camb.sensors.text_to_voice import TextToVoiceStatusSensor

#: One folder per voice under the destination: the param, else a Variable, else /tmp.
DESTINATION = (
    "{{ params.destination or var.value.get('camb_voice_folder', '/tmp/camb_voices') }}/voice_{{ ti.map_index }}"
)

VOICES = [
    {
        "text": "Good evening, and welcome to the late news.",
        "voice_description": "A deep, authoritative male news anchor in his fifties with a measured pace, crisp "
        "diction and a neutral American accent, serious but never cold.",
    },
    {
        "text": "Once upon a time, in a forest full of whispering trees, there lived a curious fox.",
        "voice_description": "A gentle, playful young female storyteller with a bright, smiling tone and a light "
        "Irish lilt, slowing down for suspense the way a bedtime story is read aloud.",
    },
    {
        "text": "Your order has shipped and will arrive on Thursday.",
        "voice_description": "A friendly, efficient customer service voice, gender neutral, mid twenties, with an "
        "upbeat but calm delivery, clear articulation and a slight Australian accent.",
    },
]

with DAG(
    dag_id="example_camb_batch_voices",
    description="Design many CAMB.AI voices in parallel with dynamic task mapping and deferrable waits.",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["example", "camb", "text-to-voice", "dynamic-task-mapping"],
    doc_md=__doc__,
    params={
        "voices": Param(
            VOICES,
            type="array",
            items={
                "type": "object",
                "properties": {"text": {"type": "string"}, "voice_description": {"type": "string", "minLength": 100}},
                "required": ["text", "voice_description"],
            },
            description="The voices to design: a list of {text, voice_description}.",
        ),
        "destination": Param(
            "",
            type="string",
            description="Folder or object storage URI for the previews (empty: Variable camb_voice_folder).",
        ),
    },
) as dag:

    @task
    def voice_requests(params: dict[str, Any] | None = None) -> list[dict[str, str]]:
        """The ``voices`` param as ``design_voice``'s keyword arguments, one dict per voice."""
        voices = (params or {}).get("voices") or VOICES
        return [{"text": voice["text"], "voice_description": voice["voice_description"]} for voice in voices]

    @task_group
    def design_voice(text: str, voice_description: str) -> Any:
        """One voice, start to finish: create it, wait for it in the triggerer, download its previews."""
        create_voice = TextToVoiceOperator(task_id="create_voice", text=text, voice_description=voice_description)
        wait_for_voice = TextToVoiceStatusSensor(
            task_id="wait_for_voice",
            camb_task_id=create_voice.output,
            poll_interval=5,
            deferrable=True,
            timeout=30 * 60,
        )
        download_previews = TextToVoiceResultOperator(
            task_id="download_previews",
            run_id=wait_for_voice.output,
            destination=DESTINATION,
        )
        return download_previews.output

    @task
    def list_previews(downloads: Iterable[list[dict[str, Any]]]) -> list[str]:
        """Log every downloaded preview and return all their paths."""
        paths = []
        for voice, files in enumerate(downloads):
            for file in files:
                print(f"voice {voice}: {file['path']} ({file['bytes']} bytes, {file['content_type']})")
                paths.append(file["path"])
        return paths

    list_previews(design_voice.expand_kwargs(voice_requests()))
