"""Design a voice, keep it, and speak with it: CAMB.AI text-to-voice, custom voice and text-to-speech in one DAG.

The flow, one task per step::

    design_voice ──> download_previews ──> choose_voice ──> keep_voice ──> speak ──> save_speech
    (text-to-voice;   (the sample voices     (a person        (the chosen    (text-to-speech   (the speech as a
     waits in the      as files)              listens and      preview as a   with the kept     file named after
     triggerer)                               picks one)       custom voice)  voice; waits)     its run)

* ``design_voice`` designs a voice from ``voice_description`` and waits for it (deferrable: no worker is
  held while CAMB works); it returns the CAMB ``run_id``.
* ``download_previews`` streams the sample voices into ``destination``. Its "CAMB files" tab in the
  Airflow UI plays each of them.
* ``choose_voice`` (Airflow 3.1+) asks a person, on the UI's Required Actions page, which preview to
  keep, and the voice's name and gender. With the param ``choose="first"`` it keeps Preview 1 without
  asking (for unattended runs); "None of these" skips every later task. Before Airflow 3.1 there is no
  ``choose_voice`` and ``choose`` can only be ``"first"``.
* ``keep_voice`` turns the chosen preview into a permanent custom voice and returns its ``voice_id``.
* ``speak`` says ``text`` in ``language`` with that voice (``voice_id=keep_voice.output``) and waits.
* ``save_speech`` streams the speech into ``destination`` as ``camb_speech_run_<run_id>.<ext>`` and returns
  ``{"path", "bytes", "sha256", "content_type"}``.

This run keeps a voice in the CAMB account each time: a permanent, named voice.

**Connection**: ``camb_default`` of type ``camb``, the API key in *Password*, e.g.
``export AIRFLOW_CONN_CAMB_DEFAULT='{"conn_type": "camb", "password": "<your CAMB.AI API key>"}'``.
``python -m airflow_provider_camb.testing`` runs a local stand-in of the API and prints a matching one.

**Where the files go**: the ``destination`` param; when empty, the Variable ``camb_voice_folder``; when that
is unset too, ``/tmp/camb_voices``.
"""

from __future__ import annotations

from airflow.providers.common.compat.sdk import DAG, Param

from airflow_provider_camb.exceptions import CambAirflowVersionError
from airflow_provider_camb.operators.text_to_speech import CambTextToSpeechOperator, CambTextToSpeechResultOperator
from airflow_provider_camb.operators.text_to_voice import (
    CambCreateCustomVoiceOperator,
    TextToVoiceOperator,
    TextToVoiceResultOperator,
)

try:
    from airflow_provider_camb.operators.text_to_voice import CambChooseVoiceOperator
except CambAirflowVersionError:  # Airflow before 3.1: no human-in-the-loop, the first preview is kept
    CambChooseVoiceOperator = None
CHOICES = ["by ear", "first"] if CambChooseVoiceOperator is not None else ["first"]

#: The voice to design, in words (CAMB needs at least 100 characters and 18 words): one for the text it says.
ANNOUNCER = (
    "A clear, calm station announcer, a woman in her forties with a soft Scottish accent, a measured pace "
    "and crisp diction, easy to follow over the noise of a busy railway platform."
)
#: The folder (or object storage URI) for previews and speech: the param, else a Variable, else /tmp.
DESTINATION = "{{ params.destination or var.value.get('camb_voice_folder', '/tmp/camb_voices') }}"

with DAG(
    dag_id="example_camb_design_keep_speak",
    # design_voice and speak create their CAMB task, then wait for it in the triggerer (no worker held)
    default_args={"wait_for_completion": True, "deferrable": True, "poll_interval": 5, "timeout": 30 * 60},
    description="Design a CAMB.AI voice, keep it as a custom voice, and speak a text with it.",
    schedule=None,  # manual runs only
    tags=["example", "camb", "text-to-voice", "text-to-speech", "human-in-the-loop"],
    doc_md=__doc__,
    params={
        "voice_description": Param(ANNOUNCER, type="string", minLength=100, description="The voice to design."),
        "sample_text": Param("Welcome aboard. Sit back and relax.", type="string", minLength=1),
        "voice_name": Param("Airflow example narrator", type="string", description="Name of the kept voice."),
        "gender": Param(2, type="integer", description="CAMB gender code of the kept voice (1 male, 2 female)."),
        "text": Param(
            "Good morning. Your train to Edinburgh departs from platform four at nine fifteen.",
            type="string",
            minLength=1,
            description="What the kept voice says.",
        ),
        "language": Param(1, type="integer", description="CAMB language id of the text (1: English, US)."),
        "destination": Param("", type="string", description="Folder or object storage URI for the files."),
        "choose": Param(
            CHOICES[0],
            enum=CHOICES,
            description="'by ear': a person listens and picks the preview to keep (Airflow 3.1+); 'first': Preview 1.",
        ),
    },
) as dag:
    design_voice = TextToVoiceOperator(
        task_id="design_voice", text="{{ params.sample_text }}", voice_description="{{ params.voice_description }}"
    )
    download_previews = TextToVoiceResultOperator(
        task_id="download_previews", run_id=design_voice.output, destination=DESTINATION
    )

    if CambChooseVoiceOperator is not None:
        choose_voice = CambChooseVoiceOperator(
            task_id="choose_voice",
            previews=download_previews.output,
            voice_name="{{ params.voice_name }}",
            gender="{{ params.gender }}",
            choose="{{ params.choose }}",
        )
        keep_voice = CambCreateCustomVoiceOperator(
            task_id="keep_voice", choice=choose_voice.output, run_id=design_voice.output
        )
    else:
        keep_voice = CambCreateCustomVoiceOperator(
            task_id="keep_voice",
            preview=0,
            previews=download_previews.output,
            run_id=design_voice.output,
            voice_name="{{ params.voice_name }}",
            gender="{{ params.gender }}",
        )

    speak = CambTextToSpeechOperator(
        task_id="speak", text="{{ params.text }}", voice_id=keep_voice.output, language="{{ params.language }}"
    )
    save_speech = CambTextToSpeechResultOperator(task_id="save_speech", run_id=speak.output, destination=DESTINATION)
