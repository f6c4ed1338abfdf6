"""Design a voice from a text description with CAMB.AI, wait for it in the triggerer, download the samples.

The flow, one task per step::

    create_voice ──> wait_for_voice ──> download_previews
    (POST a task)    (deferrable:       (save each preview as a file,
                      no worker held)    announce them on an asset)

* ``create_voice`` sends the ``text`` and ``voice_description`` params to CAMB and returns the CAMB task id.
* ``wait_for_voice`` checks the task once, then defers: the triggerer polls CAMB every few seconds while no
  worker slot is held. It returns the CAMB ``run_id`` when the voices are ready.
* ``download_previews`` streams every preview (the sample voices CAMB generated) into ``destination``, a
  local folder or an object storage URI (``s3://bucket/voices``, ...), and returns one
  ``{"path", "bytes", "sha256", "content_type"}`` per file. It updates the asset ``camb_voice_previews``
  with the run id and each path and sha256, which ``example_camb_voice_assets`` is scheduled on.

Each task hands its result to the next through XCom (``operator.output``), so the wiring is the data flow.
The run creates nothing permanent in the CAMB account; ``example_camb_design_keep_speak`` keeps a preview
as a voice of your own and speaks with it.

**Connection**: ``camb_default``, of type ``camb``: the API key in *Password*; *Host* is optional (the
default is https://client.camb.ai/apis). From the environment, for example::

    export AIRFLOW_CONN_CAMB_DEFAULT='{"conn_type": "camb", "password": "<your CAMB.AI API key>"}'

To try it without an account, ``python -m airflow_provider_camb.testing`` starts a local stand-in of the
API and prints the ``AIRFLOW_CONN_CAMB_DEFAULT`` that points at it.

**Where the files go**: the ``destination`` param; when empty, the Airflow Variable ``camb_voice_folder``;
when that is unset too, ``/tmp/camb_voices``.
"""

from __future__ import annotations

from airflow.providers.common.compat.sdk import DAG, Asset, Param

from airflow_provider_camb.operators.text_to_voice import TextToVoiceOperator, TextToVoiceResultOperator
from airflow_provider_camb.sensors.text_to_voice import TextToVoiceStatusSensor

#: The folder (or object storage URI) the previews go to: the param, else a Variable, else /tmp.
DESTINATION = "{{ params.destination or var.value.get('camb_voice_folder', '/tmp/camb_voices') }}"
#: Updated by every download, with the run id and each file's path and sha256 in the event's extra.
VOICE_PREVIEWS = Asset("camb_voice_previews")

with DAG(
    dag_id="example_camb_text_to_voice",
    description="Design a voice with CAMB.AI from a description, wait without a worker, download the samples.",
    schedule=None,  # manual runs only
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
