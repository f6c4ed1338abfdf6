"""An audiobook chapter in one Airflow task: a JSON Lines file of lines in, speech and a manifest out.

The flow::

    chapter ──> speak_chapter ──> report
    (the JSON    (one CAMB text-to-speech    (the counts and
     Lines file)  task per line, all waited   the manifest)
                  for in one trigger)

* ``chapter`` gives the JSON Lines file of the chapter: the ``lines_uri`` param (a local path or an object
  storage URI), or, when empty, a short sample chapter it writes to a temporary file. Each line is an
  object such as ``{"key": "ch01-0001", "text": "It was a bright cold day in April."}``; a line may also
  set its own ``voice_id`` (a second narrator) or ``language``.
* ``speak_chapter`` (``CambTextToSpeechBatchOperator``) checks every line first (nothing is sent if one is
  bad), creates the CAMB tasks at most ``max_in_flight`` at a time, waits for all of them in one trigger,
  and saves ``<key>.<ext>`` for each line plus ``camb_batch_speak_chapter.manifest.jsonl`` into
  ``destination``. Run it again over the same destination and nothing is paid twice: done lines are
  kept, only lines that failed at CAMB get a new task.
* ``report`` logs how many lines succeeded, failed or were skipped, and where the manifest is.

**When to batch rather than map**: a mapped create -> wait -> download costs the scheduler three task
instances and some 2.6 CPU-seconds per line (``benchmarks/results/deployment.md``); a batch is one task
instance for the whole chapter. Map when each line needs its own downstream tasks (the pattern of
``example_camb_batch_voices``, with ``CambTextToSpeechOperator`` and ``CambTextToSpeechResultOperator``);
batch a catalogue. One run at a time (``max_active_runs=1``): the manifest in ``destination`` is what a
rerun reads to pay nothing twice, and two runs at once would both write it.

**Connection**: ``camb_default`` of type ``camb``, the API key in *Password*;
``python -m airflow_provider_camb.testing`` runs a local stand-in and prints a matching
``AIRFLOW_CONN_CAMB_DEFAULT``. **Where the files go**: the ``destination`` param; when empty, the
Variable ``camb_voice_folder``; when unset, ``/tmp/camb_voices``.
"""

from __future__ import annotations

import json
import tempfile
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Param, task

from airflow_provider_camb.operators.batch import CambTextToSpeechBatchOperator

DESTINATION = "{{ params.destination or var.value.get('camb_voice_folder', '/tmp/camb_voices') }}/audiobook"

SAMPLE_CHAPTER = [
    "Chapter one. The lighthouse keeper rose before the sun, as he had every day for thirty years.",
    "He climbed the hundred and twelve steps, counting each one under his breath.",
    "At the top, the sea lay grey and still, and far out a single boat was making for the harbour.",
    "He wiped the great lens clean, and waited for the morning to come.",
]

with DAG(
    dag_id="example_camb_batch_audiobook",
    description="Speak an audiobook chapter (a JSON Lines file of lines) in one batch task, with a manifest.",
    schedule=None,  # manual runs only
    max_active_runs=1,  # two runs at once would both write the one manifest in the destination
    tags=["example", "camb", "text-to-speech", "batch"],
    doc_md=__doc__,
    params={
        "lines_uri": Param("", type="string", description="JSON Lines file of the chapter; empty: a sample."),
        "voice_id": Param(20303, type="integer", description="The CAMB voice of every line without its own."),
        "language": Param(1, type="integer", description="CAMB language id of the lines (1: English, US)."),
        "destination": Param("", type="string", description="Folder or object storage URI for speech and manifest."),
    },
) as dag:

    @task
    def chapter(params: dict[str, Any] | None = None) -> str:
        """The chapter's JSON Lines file: the ``lines_uri`` param, else a sample chapter written for this run."""
        given = str((params or {}).get("lines_uri") or "")
        if given:
            return given
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", prefix="camb-chapter-", delete=False) as file:
            for number, text in enumerate(SAMPLE_CHAPTER, start=1):
                file.write(json.dumps({"key": f"ch01-{number:04d}", "text": text}) + "\n")
        return file.name

    speak_chapter = CambTextToSpeechBatchOperator(
        task_id="speak_chapter",
        items_uri=chapter(),
        voice_id="{{ params.voice_id }}",
        language="{{ params.language }}",
        destination=DESTINATION,
        max_in_flight=100,
        poll_interval=5,
        deferrable=True,
        retries=2,
    )

    @task
    def report(result: dict[str, Any]) -> dict[str, Any]:
        """Log what the batch did."""
        print(
            f"{result['succeeded']} lines spoken, {result['failed']} failed, {result['skipped']} skipped; "
            f"manifest: {result['manifest']}"
        )
        return result

    report(speak_chapter.output)
