"""The stand-in serves every CAMB task kind from the kinds table; the official SDK and CambTaskSensor run against it."""

from __future__ import annotations

import io
import time
import wave

import pytest
import requests

from airflow_provider_camb.kinds import KINDS
from tests.shared import ids, logged, pending_after_first_check, run_id_of, waited_in_the_triggerer


def api(standin, method: str, path: str, **kwargs):  # type: ignore[no-untyped-def]
    headers = {"x-api-key": standin.api_key}
    return requests.request(method, standin.base_url + path, headers=headers, timeout=10, **kwargs)


@pytest.mark.parametrize("kind", KINDS.values(), ids=list(KINDS))
def test_every_kind_has_its_status_and_result_routes(camb_standin, kind):
    task_id = camb_standin.add_task(kind=kind.name, status="SUCCESS", request={"target_languages": ["fr-fr"]})
    status = api(camb_standin, "GET", f"/{kind.name}/{task_id}")
    assert status.status_code == 200 and status.json()["status"] == "SUCCESS"
    result = api(camb_standin, "GET", f"/{kind.result_path}/{status.json()['run_id']}")
    assert result.status_code == 200
    result_kind = next(k.name for k in KINDS.values() if k.result_path == kind.result_path)  # tts-result: "tts"
    assert [(r.endpoint, r.kind) for r in camb_standin.requests()] == [("status", kind.name), ("result", result_kind)]
    other = next(name for name in KINDS if name != kind.name)
    assert api(camb_standin, "GET", f"/{other}/{task_id}").status_code == 404  # a task belongs to its kind


@pytest.mark.parametrize(
    ("path", "body", "loc"),
    [
        ("/tts", {"text": "Hi", "voice_id": 1}, ["body", "language"]),
        ("/tts", {"text": " ", "voice_id": 1, "language": 1}, ["body", "text"]),
        ("/translated-tts", {"text": "Hi", "voice_id": 1, "source_language": 1, "target_language": "fr"}, None),
        ("/dub", {"video_url": "https://v.example/a.mp4", "source_language": 1}, ["body", "target_languages"]),
        ("/dub", {"video_url": "https://v", "source_language": 1, "target_languages": [1.5]}, None),
        ("/text-to-sound", {"prompt": "rain", "duration": "long"}, ["body", "duration"]),
    ],
)
def test_create_bodies_are_validated_like_camb(camb_standin, path, body, loc):
    reply = api(camb_standin, "POST", path, json=body)
    assert reply.status_code == 422
    if loc is not None:
        assert loc in [error["loc"] for error in reply.json()["detail"]]


def test_multipart_kinds_take_a_file_or_a_media_url(camb_standin):
    transcribe = api(camb_standin, "POST", "/transcribe", data={"language": "auto"}, files={"file": ("a.wav", b"RIFF")})
    separate = api(camb_standin, "POST", "/audio-separation", files={"media_file": ("a.wav", b"RIFF")})
    assert transcribe.status_code == separate.status_code == 200
    assert api(camb_standin, "POST", "/transcribe", data={"media_url": "https://m/a.wav"}).status_code == 422
    assert [r.kind for r in camb_standin.requests("create")] == ["transcribe", "audio-separation", "transcribe"]


def test_a_results_output_type_is_checked(camb_standin):
    task_id = camb_standin.add_task(kind="tts", status="SUCCESS")
    run_id = api(camb_standin, "GET", f"/tts/{task_id}").json()["run_id"]
    assert api(camb_standin, "GET", f"/tts-result/{run_id}", params={"output_type": "MP3"}).status_code == 422
    assert api(camb_standin, "GET", f"/text-to-sound-result/{run_id}").status_code == 400  # a TTS run


def wait(poll, task_id: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + 5
    while (status := poll(task_id)).status == "PENDING":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    return status


def test_the_official_sdk_runs_its_text_to_speech_flow_unchanged(camb_standin):
    from camb.client import CambAI

    client = CambAI(api_key=camb_standin.api_key, base_url=camb_standin.base_url, timeout=10)
    task_id = client.text_to_speech.create_tts(text="Hello there.", voice_id=5000, language=1).task_id
    status = wait(client.text_to_speech.get_tts_result, task_id)
    assert status.status == "SUCCESS" and isinstance(status.run_id, int)
    link = client.text_to_speech.get_tts_run_info(status.run_id, output_type="FILE_URL").output_url
    with wave.open(io.BytesIO(requests.get(link, timeout=10).content)) as audio:
        assert audio.getnframes() == 22050
    # The SDK's typed get_tts_run_info parses every reply as JSON, so RAW_BYTES (audio) is read through
    # the SDK's own HTTP client: same base URL, same key header, same path and query.
    http = client._client_wrapper.httpx_client
    with http.stream(f"tts-result/{status.run_id}", method="GET", params={"output_type": "RAW_BYTES"}) as reply:
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "audio/wav"
        with wave.open(io.BytesIO(reply.read())) as audio:
            assert audio.getnframes() == 22050
    assert [(r.endpoint, r.kind) for r in camb_standin.requests() if r.server == "api"][-2:] == [
        ("result", "tts"),
        ("result", "tts"),
    ]
    (storage,) = camb_standin.requests("media")
    assert "x-api-key" not in storage.headers


def test_the_official_sdk_runs_its_dubbing_flow_unchanged_in_both_result_shapes(camb_standin):
    from camb.client import CambAI
    from camb.types.dubbing_result import DubbingResult

    client = CambAI(api_key=camb_standin.api_key, base_url=camb_standin.base_url, timeout=10)
    many = client.dub.create_dub(video_url="https://v.example/a.mp4", source_language=1, target_languages=[76, 31])
    status = wait(client.dub.get_dubbing_status, many.task_id)
    by_language = client.dub.get_dubbed_run_info(status.run_id)
    assert isinstance(by_language, dict) and set(by_language) == {"76", "31"}
    one = client.dub.create_dub(video_url="https://v.example/a.mp4", source_language="en-us", target_language="fr-fr")
    result = client.dub.get_dubbed_run_info(wait(client.dub.get_dubbing_status, one.task_id).run_id)
    assert isinstance(result, DubbingResult)
    assert result.transcript[0].speaker == "SPEAKER_0"
    assert requests.get(result.audio_url, timeout=10).headers["content-type"] == "audio/wav"
    assert requests.get(str(result.video_url), timeout=10).content[4:8] == b"ftyp"


SENSOR_DAG = """
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_camb.sensors.camb_task import CambTaskSensor

with DAG("{dag_id}", start_date=pendulum.datetime(2024, 1, 1), schedule=None) as dag:
    CambTaskSensor(task_id="wait", kind={kind!r}, camb_task_id={task_id!r}, poll_interval=0.5, {options})
"""


@pytest.mark.parametrize(
    ("kind", "options"),
    [("tts", "deferrable=True"), ("dub", "deferrable=False, mode='poke'"), ("text-to-sound", "deferrable=True")],
)
def test_the_generic_sensor_waits_for_each_kind(run_dag, camb_connection, capfd, kind, options):
    pending_after_first_check(camb_connection)  # the sensor's first check sees PENDING: it has to wait
    task_id = camb_connection.add_task(kind=kind)
    source = SENSOR_DAG.format(dag_id=f"kind_sensor_{next(ids)}", kind=kind, task_id=task_id, options=options)
    result = run_dag.run(source)
    assert result.task_states == {"wait": "success"}
    assert {r.path for r in camb_connection.requests("status")} == {f"/{kind}/{task_id}"}
    assert result.xcom("wait") == run_id_of(task_id, kind)
    assert waited_in_the_triggerer(logged(capfd), task_id) is ("deferrable=True" in options)


def test_the_generic_sensor_fails_an_error_of_its_kind_with_that_kinds_advice(run_dag, camb_connection, capfd):
    task_id = camb_connection.add_task(kind="dub", status="ERROR")
    source = SENSOR_DAG.format(dag_id=f"kind_sensor_{next(ids)}", kind="dub", task_id=task_id, options="")
    result = run_dag.run(source)
    assert result.task_states == {"wait": "failed"}
    output = capfd.readouterr()
    assert "CAMB dubbing task" in output.out + output.err
    assert "video_url and languages" in output.out + output.err


def test_the_http_control_client_filters_recorded_requests_by_kind(camb_standin):
    from airflow_provider_camb.testing import CambStandInClient

    for kind in ("tts", "dub"):
        api(camb_standin, "GET", f"/{kind}/{camb_standin.add_task(kind=kind)}")
    client = CambStandInClient(camb_standin.base_url)
    try:
        assert [r["path"].split("/")[1] for r in client.requests("status", kind="dub")] == ["dub"]
        assert len(client.requests("status")) == 2
    finally:
        client.close()
