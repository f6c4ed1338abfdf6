"""Design several voices at once with CAMB.AI: one mapped task group per description, all waiting in the triggerer.

The flow, with dynamic task mapping: the task group ``voice`` is expanded once per description::

    voice_requests ──> voice[i]:                              ──> list_previews
    (the voices          design ──────────> download_previews      (every file
     param)              (creates, then      (into <destination>/    downloaded)
                          waits deferred)     voice_<i>)

* ``voice_requests`` reads the ``voices`` param: a list of ``{"text", "voice_description"}``.
* ``voice`` is expanded over that list (``expand_kwargs``): instance ``i`` designs voice ``i`` and
  downloads its previews. Every ``design[i]`` creates its CAMB task, checks it once, then defers, so a
  hundred voices wait in the triggerer without holding a hundred worker slots; each voice moves on to
  its download as soon as it is ready, whatever the others do.
* ``list_previews`` receives every instance's downloads (a lazy list of lists) and logs each file.

Two tasks per voice: ``design`` creates and waits in one operator (``wait_for_completion=True`` in the
DAG's ``default_args``); ``example_camb_text_to_voice`` shows the same steps with a separate sensor.

**Connection**: ``camb_default`` of type ``camb``, the API key in *Password* (see
``example_camb_text_to_voice``). ``python -m airflow_provider_camb.testing`` runs a local stand-in of the
API and prints a matching ``AIRFLOW_CONN_CAMB_DEFAULT``.

**Where the files go**: the ``destination`` param; when empty, the Variable ``camb_voice_folder``; when
that is unset too, ``/tmp/camb_voices``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, task, task_group

from airflow_provider_camb.operators.text_to_voice import TextToVoiceOperator, TextToVoiceResultOperator

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
    # each design creates its CAMB task, then waits for it in the triggerer (no worker held)
    default_args={"wait_for_completion": True, "deferrable": True, "poll_interval": 5, "timeout": 30 * 60},
    description="Design many CAMB.AI voices in parallel with dynamic task mapping and deferrable waits.",
    schedule=None,  # manual runs only
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
        """The ``voices`` param as ``voice``'s keyword arguments, one dict per voice."""
        voices = (params or {}).get("voices") or VOICES
        return [{"text": each["text"], "voice_description": each["voice_description"]} for each in voices]

    @task_group
    def voice(text: str, voice_description: str) -> Any:
        """One voice, start to finish: design it (waiting in the triggerer), then download its previews."""
        design = TextToVoiceOperator(task_id="design", text=text, voice_description=voice_description)
        download_previews = TextToVoiceResultOperator(
            task_id="download_previews", run_id=design.output, destination=DESTINATION
        )
        return download_previews.output

    @task
    def list_previews(downloads: Iterable[list[dict[str, Any]]]) -> list[str]:
        """Log every downloaded preview and return all their paths."""
        paths = []
        for index, files in enumerate(downloads):
            for file in files:
                print(f"voice {index}: {file['path']} ({file['bytes']} bytes, {file['content_type']})")
                paths.append(file["path"])
        return paths

    list_previews(voice.expand_kwargs(voice_requests()))
