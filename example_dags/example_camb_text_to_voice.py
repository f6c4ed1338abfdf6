"""Design a voice from a text description with CAMB.AI, wait for it in the triggerer, download the samples.

The flow, one task per step::

    create_voice ──> wait_for_voice ──> download_previews ──> keep_voice_requested ──> keep_voice
    (POST a task)    (deferrable:       (save each preview    (short-circuit:          (optional: turn the
                      no worker held)    as a file)            the keep_voice param)    first preview into
                                                                                        a permanent voice)

* ``create_voice`` sends the ``text`` and ``voice_description`` params to CAMB and returns the CAMB task id.
* ``wait_for_voice`` checks the task once, then defers: the triggerer polls CAMB every few seconds while no
  worker slot is held. It returns the CAMB ``run_id`` when the voices are ready.
* ``download_previews`` streams every preview (the sample voices CAMB generated) into ``destination``, a
  local folder or an object storage URI (``s3://bucket/voices``, ...), and returns one
  ``{"path", "bytes", "sha256", "content_type"}`` per file. It updates the asset ``camb_voice_previews``
  with the run id and each path and sha256, which ``example_camb_voice_assets`` is scheduled on.
* ``keep_voice_requested`` lets the run go on only when triggered with ``{"keep_voice": true}``; by default
  the run ends after the download and creates nothing permanent in the CAMB account.
* ``keep_voice`` uploads the first preview as a custom voice named ``voice_name`` and returns its voice id.

Each task hands its result to the next through XCom (``operator.output``), so the wiring is the data flow.

**Connection**: ``camb_default``, of type ``camb``: the API key in *Password*; *Host* is optional (the
default is https://client.camb.ai/apis). From the environment, for example::

    export AIRFLOW_CONN_CAMB_DEFAULT='{"conn_type": "camb", "password": "<your CAMB.AI API key>"}'

To try it without an account, ``python -m airflow_provider_camb.testing`` starts a local stand-in of the
API and prints the ``AIRFLOW_CONN_CAMB_DEFAULT`` that points at it.

**Where the files go**: the ``destination`` param; when empty, the Airflow Variable ``camb_voice_folder``;
when that is unset too, ``/tmp/camb_voices``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from airflow.providers.common.compat.sdk import DAG, Asset, Param, task

from airflow_provider_camb.operators.text_to_voice import (
    CambCreateCustomVoiceOperator,
    TextToVoiceOperator,
    TextToVoiceResultOperator,
)
from airflow_provider_camb.sensors.text_to_voice import TextToVoiceStatusSensor

#: The folder (or object storage URI) the previews go to: the param, else a Variable, else /tmp.
DESTINATION = "{{ params.destination or var.value.get('camb_voice_folder', '/tmp/camb_voices') }}"
#: Updated by every download, with the run id and each file's path and sha256 in the event's extra.
VOICE_PREVIEWS = Asset("camb_voice_previews")

with DAG(
    dag_id="example_camb_text_to_voice",
    description="Design a voice with CAMB.AI from a description, wait without a worker, download the samples.",
    schedule=None,
    start_date=datetime(2025, 1, 1),
    catchup=False,
    tags=["example", "camb", "text-to-voice"],
    doc_md=__doc__,
    params={
        "text": Param(
            "Welcome aboard. Sit back, relax, and enjoy the journey with us today.",
            type="string",
            minLength=1,
            description="What the sample voices say.",
        ),
        "voice_description": Param(
            "A warm and friendly middle-aged female narrator with a calm, steady pace, a soft British accent "
            "and a clear, reassuring tone, suited to travel announcements and audiobooks.",
            type="string",
            minLength=100,
            description="The voice to design (CAMB needs at least 100 characters and 18 words).",
        ),
        "destination": Param(
            "",
            type="string",
            description="Folder or object storage URI for the previews (empty: Variable camb_voice_folder).",
        ),
        "keep_voice": Param(False, type="boolean", description="Also keep the first preview as a custom voice."),
        "voice_name": Param("Airflow example narrator", type="string", description="Name of the kept voice."),
        "gender": Param(2, type="integer", description="CAMB gender code of the kept voice (1 male, 2 female)."),
    },
) as dag:
    create_voice = TextToVoiceOperator(
        task_id="create_voice",
        text="{{ params.text }}",
        voice_description="{{ params.voice_description }}",
    )

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
        outlets=[VOICE_PREVIEWS],
    )

    @task.short_circuit
    def keep_voice_requested(params: dict[str, Any] | None = None) -> bool:
        """Continue to ``keep_voice`` only for runs triggered with ``keep_voice: true``."""
        return bool(params and params["keep_voice"])

    keep_voice = CambCreateCustomVoiceOperator(
        task_id="keep_voice",
        preview=0,
        previews=download_previews.output,
        run_id=wait_for_voice.output,
        voice_name="{{ params.voice_name }}",
        gender="{{ params.gender }}",
    )

    download_previews >> keep_voice_requested() >> keep_voice
