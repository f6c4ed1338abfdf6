"""The CAMB stand-in itself, over real HTTP on loopback: the contract, the faults, the controls, the CLI, the SDK."""

from __future__ import annotations

import hashlib
import http.client
import io
import itertools
import json
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
import uuid
import wave
from typing import Any
from urllib.parse import urlsplit

import pytest
import requests

from airflow_provider_camb.testing import CambStandIn, CambStandInClient
from tests.shared import DESCRIPTION, TEXT, listening, wait_until


def key(standin: CambStandIn) -> dict[str, str]:
    return {"x-api-key": standin.api_key}


def get(standin: CambStandIn, path: str, *, timeout: float = 10, **kwargs: Any) -> requests.Response:
    return requests.get(standin.base_url + path, headers=key(standin), timeout=timeout, **kwargs)


def create(standin: CambStandIn, body: object = None, **kwargs: Any) -> requests.Response:
    body = {"text": TEXT, "voice_description": DESCRIPTION} if body is None else body
    return requests.post(standin.base_url + "/text-to-voice", json=body, headers=key(standin), timeout=10, **kwargs)


def wait_terminal(standin: CambStandIn, task_id: str, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while (status := get(standin, f"/text-to-voice/{task_id}").json())["status"] == "PENDING":
        assert time.monotonic() < deadline, "the task never left PENDING"
        time.sleep(0.05)
    return status


def success_run(standin: CambStandIn) -> int:
    run_id = get(standin, f"/text-to-voice/{standin.add_task(status='SUCCESS')}").json()["run_id"]
    assert isinstance(run_id, int)
    return run_id


# --- auth and create -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/text-to-voice"),
        ("GET", "/text-to-voice/abc"),
        ("GET", "/text-to-voice-result/1000"),
        ("POST", "/create-custom-voice"),
        ("GET", "/source-languages"),
    ],
)
@pytest.mark.parametrize("headers", [{}, {"x-api-key": "wrong"}, {"X-Api-Key": ""}])
def test_every_api_endpoint_needs_the_key(camb_standin, method, path, headers):
    reply = requests.request(method, camb_standin.base_url + path, headers=headers, timeout=10)
    assert reply.status_code == 401
    assert isinstance(reply.json()["detail"], str)
    assert camb_standin.request_count() == 1


def test_create_returns_a_uuid_task_and_records_the_body(camb_standin):
    reply = create(camb_standin, {"text": TEXT, "voice_description": DESCRIPTION, "folder_id": 3, "project_name": None})
    assert reply.status_code == 200
    task_id = reply.json()["task_id"]
    assert uuid.UUID(task_id).version == 4
    assert camb_standin.requests("create")[0].json["folder_id"] == 3
    assert get(camb_standin, f"/text-to-voice/{task_id}").json()["status"] == "PENDING"


FEW_WORDS = "Averyverylongwordthatjustkeepsgoing " * 4  # over 100 characters, 4 words


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({"voice_description": DESCRIPTION}, ["body", "text"]),
        ({"text": TEXT}, ["body", "voice_description"]),
        ({"text": 5, "voice_description": DESCRIPTION}, ["body", "text"]),
        ({"text": "", "voice_description": DESCRIPTION}, ["body", "text"]),
        ({"text": TEXT, "voice_description": ["x"]}, ["body", "voice_description"]),
        ({"text": TEXT, "voice_description": "A calm voice."}, ["body", "voice_description"]),
        ({"text": TEXT, "voice_description": FEW_WORDS}, ["body", "voice_description"]),
        ({"text": TEXT, "voice_description": DESCRIPTION, "project_name": 1}, ["body", "project_name"]),
        ({"text": TEXT, "voice_description": DESCRIPTION, "project_description": {}}, ["body", "project_description"]),
        ({"text": TEXT, "voice_description": DESCRIPTION, "folder_id": "7"}, ["body", "folder_id"]),
        ({"text": TEXT, "voice_description": DESCRIPTION, "folder_id": True}, ["body", "folder_id"]),
        (["not", "an", "object"], ["body"]),
    ],
)
def test_create_rejects_invalid_bodies_like_fastapi(camb_standin, body, loc):
    reply = create(camb_standin, body)
    assert reply.status_code == 422
    errors = reply.json()["detail"]
    assert [error["loc"] for error in errors] == [loc]
    assert all(isinstance(error["msg"], str) and isinstance(error["type"], str) for error in errors)


@pytest.mark.parametrize("data", [b"not json", b"", b'{"text": '])
def test_create_rejects_a_body_that_is_not_json(camb_standin, data):
    reply = requests.post(
        camb_standin.base_url + "/text-to-voice",
        data=data,
        headers={**key(camb_standin), "content-type": "application/json"},
        timeout=10,
    )
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["loc"][0] == "body"


# --- status and outcomes -------------------------------------------------------------------------


def test_a_task_is_pending_then_succeeds_with_increasing_integer_run_ids(camb_standin_factory):
    standin = camb_standin_factory(pending_seconds=0.3)
    standin.configure(pending_from_first_status=True)  # however slow this machine, the first read sees PENDING
    first, second = (create(standin).json()["task_id"] for _ in range(2))
    pending = get(standin, f"/text-to-voice/{first}").json()
    assert pending == {"status": "PENDING", "run_id": None, "exception_reason": None, "message": None}
    done = wait_terminal(standin, first)
    assert done == {"status": "SUCCESS", "run_id": 1000, "exception_reason": None, "message": None}
    assert wait_terminal(standin, second)["run_id"] == 1001


def test_pending_from_the_first_status_read_means_the_first_read_always_sees_pending(camb_standin_factory):
    standin = camb_standin_factory(pending_seconds=0.3)
    from_creation = create(standin).json()["task_id"]
    standin.configure(pending_from_first_status=True)
    task_id = create(standin).json()["task_id"]
    assert wait_terminal(standin, from_creation)["status"] == "SUCCESS"  # created at the same time: over now
    assert get(standin, f"/text-to-voice/{task_id}").json()["status"] == "PENDING"
    assert wait_terminal(standin, task_id)["status"] == "SUCCESS"


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [("ERROR", "PROCESSING_ERROR"), ("PAYMENT_REQUIRED", "PAYMENT_REQUIRED"), ("TIMEOUT", None), ("CANCELLED", None)],
)
def test_each_outcome_ends_with_its_reason_and_a_message(camb_standin_factory, outcome, reason):
    standin = camb_standin_factory(pending_seconds=0.05, outcome=outcome)
    status = wait_terminal(standin, create(standin).json()["task_id"])
    assert status["status"] == outcome
    assert status["run_id"] is None
    assert status["exception_reason"] == reason
    assert isinstance(status["message"], str) and status["message"]


def test_add_task_and_configure_shape_later_tasks_only(camb_standin):
    before = camb_standin.add_task(pending_seconds=0)
    camb_standin.configure(pending_seconds=0, outcome="ERROR", exception_reason="HARMFUL_CONTENT_DETECTED")
    after = create(camb_standin).json()["task_id"]
    assert wait_terminal(camb_standin, before)["status"] == "SUCCESS"
    assert wait_terminal(camb_standin, after)["exception_reason"] == "HARMFUL_CONTENT_DETECTED"
    custom = camb_standin.add_task(status="TIMEOUT", message={"code": 7}, task_id="mine")
    assert custom == "mine"
    assert get(camb_standin, "/text-to-voice/mine").json()["message"] == {"code": 7}
    late = camb_standin.add_task(pending_seconds=-5, outcome="SUCCESS")  # a deadline already past: done at once
    assert get(camb_standin, f"/text-to-voice/{late}").json()["status"] == "SUCCESS"
    forever = camb_standin.add_task(status="PENDING", pending_seconds=0)
    assert get(camb_standin, f"/text-to-voice/{forever}").json()["status"] == "PENDING"
    with pytest.raises(TypeError, match="colour"):
        camb_standin.configure(colour="blue")
    with pytest.raises(TypeError, match="colour"):
        camb_standin.add_task(colour="blue")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="preview_count"):
        camb_standin.configure(preview_count=-1)
    with pytest.raises(ValueError, match="pending_seconds"):
        camb_standin.add_task(pending_seconds="soon")  # type: ignore[arg-type]


def test_unknown_task_and_bad_run_id_query(camb_standin):
    missing = get(camb_standin, "/text-to-voice/no-such-task")
    assert missing.status_code == 404 and "no-such-task" in missing.json()["detail"]
    task_id = camb_standin.add_task()
    assert get(camb_standin, f"/text-to-voice/{task_id}", params={"run_id": "12"}).status_code == 200
    bad = get(camb_standin, f"/text-to-voice/{task_id}", params={"run_id": "x"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "run_id"]


RAW_IDS = [
    ("/text-to-voice/..", ".."),
    ("/text-to-voice/%2E%2E", ".."),
    ("/text-to-voice/a%2F..%2Fb", "a/../b"),
    ("/text-to-voice/x%20y", "x y"),
    ("/text-to-voice/%C3%BC%3F%23", "ü?#"),
    ("/text-to-voice/%252F", "%2F"),
]


@pytest.mark.parametrize(("raw_path", "task_id"), RAW_IDS)
def test_task_ids_are_decoded_exactly_once_from_the_raw_path(camb_standin, raw_path, task_id):
    camb_standin.add_task(status="SUCCESS", task_id=task_id)
    host, port = urlsplit(camb_standin.base_url).hostname, urlsplit(camb_standin.base_url).port
    connection = http.client.HTTPConnection(host, port, timeout=10)  # sends the target byte for byte
    try:
        connection.request("GET", raw_path + "?run_id=5", headers=key(camb_standin))
        reply = connection.getresponse()
        assert reply.status == 200, reply.read()
        assert json.loads(reply.read())["status"] == "SUCCESS"
    finally:
        connection.close()
    [received] = camb_standin.requests("status")
    assert (received.path, received.path_id, received.query) == (raw_path, task_id, {"run_id": "5"})


# --- results and previews ------------------------------------------------------------------------


def test_result_links_point_at_the_separate_preview_host(camb_standin_factory):
    standin = camb_standin_factory(preview_count=3)
    run_id = success_run(standin)
    previews = get(standin, f"/text-to-voice-result/{run_id}").json()["previews"]
    assert len(previews) == 3
    api, preview = urlsplit(standin.base_url), urlsplit(previews[0])
    assert preview.hostname == "localhost" != api.hostname
    assert preview.port == standin.preview_port != api.port
    assert re.fullmatch(rf"/previews/{run_id}/0\.wav", preview.path) and preview.query.startswith("token=")
    assert previews[0].startswith(standin.preview_base_url)


def test_a_preview_is_a_wav_of_the_configured_length_and_needs_no_key(camb_standin_factory):
    standin = camb_standin_factory(preview_seconds=0.5)
    url = get(standin, f"/text-to-voice-result/{success_run(standin)}").json()["previews"][1]
    reply = requests.get(url, timeout=10)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "audio/wav"
    assert int(reply.headers["content-length"]) == len(reply.content)
    with wave.open(io.BytesIO(reply.content)) as audio:
        assert (audio.getnchannels(), audio.getsampwidth(), audio.getframerate()) == (1, 2, 22050)
        assert audio.getnframes() / audio.getframerate() == pytest.approx(0.5, abs=0.01)
        assert max(audio.readframes(64)) > 0  # a tone, not silence
    [received] = standin.requests("preview")
    assert "x-api-key" not in received.headers and received.status == 200


def test_the_previews_of_a_run_are_tones_of_different_pitch(camb_standin_factory):
    standin = camb_standin_factory(preview_count=3, preview_seconds=0.5)
    urls = get(standin, f"/text-to-voice-result/{success_run(standin)}").json()["previews"]
    pitches, digests = [], set()
    for url in urls:
        data = requests.get(url, timeout=10).content
        digests.add(hashlib.sha256(data).hexdigest())
        with wave.open(io.BytesIO(data), "rb") as audio:
            frames = audio.readframes(audio.getnframes())
            seconds = audio.getnframes() / audio.getframerate()
        samples = memoryview(frames).cast("h")
        rising = sum(1 for a, b in itertools.pairwise(samples) if a < 0 <= b)  # one per cycle
        pitches.append(rising / seconds)
    assert len(digests) == 3  # a kept file tells which preview it was
    assert all(abs(a - b) > 50 for i, a in enumerate(pitches) for b in pitches[i + 1 :]), pitches


def test_preview_and_result_errors(camb_standin):
    run_id = success_run(camb_standin)
    url = get(camb_standin, f"/text-to-voice-result/{run_id}").json()["previews"][0]
    assert requests.get(url.replace("token=", "token=x"), timeout=10).status_code == 403
    assert requests.get(url.split("?")[0], timeout=10).status_code == 403
    assert requests.get(url.replace(f"/{run_id}/", "/999999/"), timeout=10).status_code == 404
    assert requests.get(url.replace("/0.wav", "/2.wav"), timeout=10).status_code == 404
    assert get(camb_standin, "/text-to-voice-result/999999").status_code == 404
    bad = get(camb_standin, "/text-to-voice-result/abc")
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["path", "run_id"]
    assert get(camb_standin, "/no/such/path").status_code == 404
    assert get(camb_standin, "/no/such/path").json() == {"detail": "Not Found"}


def test_a_large_preview_streams_with_flat_memory(camb_standin_factory):
    size = 20_000_000
    standin = camb_standin_factory(preview_bytes=size, preview_count=1)
    url = get(standin, f"/text-to-voice-result/{success_run(standin)}").json()["previews"][0]
    tracemalloc.start()
    try:
        with requests.get(url, stream=True, timeout=30) as reply:
            assert int(reply.headers["content-length"]) == size
            first = b""
            total = 0
            for chunk in reply.iter_content(1 << 20):
                first = first or chunk
                total += len(chunk)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == size
    assert first[:4] == b"RIFF" and first[8:12] == b"WAVE"
    assert int.from_bytes(first[40:44], "little") == size - 44  # the data chunk covers the rest
    assert peak < 8_000_000, f"server and client together held {peak} bytes at once"


# --- custom voice and languages ------------------------------------------------------------------


def test_create_custom_voice_takes_the_multipart_form_and_records_the_file(camb_standin):
    audio = b"RIFF" + bytes(range(256)) * 100
    reply = requests.post(
        camb_standin.base_url + "/create-custom-voice",
        params={"run_id": "1000"},
        data={"voice_name": "Narrator", "gender": "2", "age": "40", "enhance_audio": "True"},
        files={"file": ("voice.wav", audio, "audio/wav")},
        headers=key(camb_standin),
        timeout=10,
    )
    assert reply.status_code == 200
    assert isinstance(reply.json()["voice_id"], int)
    [received] = camb_standin.requests("custom_voice")
    assert received.json["voice_name"] == "Narrator" and received.json["gender"] == "2"
    assert received.json["file_bytes"] == len(audio)
    assert received.json["file_sha256"] == hashlib.sha256(audio).hexdigest()
    assert received.query == {"run_id": "1000"}


@pytest.mark.parametrize(
    ("data", "with_file", "params", "loc"),
    [
        ({"gender": "1"}, True, {}, ["body", "voice_name"]),
        ({"voice_name": "N"}, True, {}, ["body", "gender"]),
        ({"voice_name": "N", "gender": "1"}, False, {}, ["body", "file"]),
        ({"voice_name": "N", "gender": "male"}, True, {}, ["body", "gender"]),
        ({"voice_name": "N", "gender": "1", "age": "old"}, True, {}, ["body", "age"]),
        ({"voice_name": "N", "gender": "1", "language": "１"}, True, {}, ["body", "language"]),
        ({"voice_name": "N", "gender": "1", "enhance_audio": "maybe"}, True, {}, ["body", "enhance_audio"]),
        ({"voice_name": "N", "gender": "1", "publish_voice_to_market_place": "2"}, True, {}, None),
        ({"voice_name": "N", "gender": "1"}, True, {"run_id": "x"}, ["query", "run_id"]),
    ],
)
def test_create_custom_voice_rejects_invalid_forms(camb_standin, data, with_file, params, loc):
    loc = loc or ["body", "publish_voice_to_market_place"]
    files = {"file": ("v.wav", b"RIFF", "audio/wav")} if with_file else {"other": ("x", b"x")}
    reply = requests.post(
        camb_standin.base_url + "/create-custom-voice",
        params=params,
        data=data,
        files=files,
        headers=key(camb_standin),
        timeout=10,
    )
    assert reply.status_code == 422
    assert [error["loc"] for error in reply.json()["detail"]] == [loc]


def test_source_languages_have_the_sdk_shape(camb_standin):
    languages = get(camb_standin, "/source-languages").json()
    assert len(languages) >= 3
    assert all(isinstance(x["id"], int) and x["language"] and x["short_name"] for x in languages)


# --- outage, recording and control ---------------------------------------------------------------


def test_outage_refuses_connections_then_recovers_on_the_same_port(camb_standin):
    session = requests.Session()
    session.headers.update(key(camb_standin))
    assert session.get(camb_standin.base_url + "/source-languages", timeout=5).status_code == 200
    port = camb_standin.port
    camb_standin.outage(0.5)
    with pytest.raises(requests.exceptions.ConnectionError):  # even on the kept-alive connection
        session.get(camb_standin.base_url + "/source-languages", timeout=5)
    with pytest.raises(requests.exceptions.ConnectionError):
        get(camb_standin, "/source-languages")
    wait_until(lambda: listening(port), "the stand-in listening again after its outage", timeout=10)
    assert session.get(camb_standin.base_url + "/source-languages", timeout=5).status_code == 200
    assert camb_standin.port == port
    assert camb_standin.request_count("languages") == 2


def test_counts_without_recording_and_clear(camb_standin_factory):
    standin = camb_standin_factory(record_requests=False)
    get(standin, "/source-languages")
    get(standin, "/nowhere")
    assert standin.requests() == []
    assert (standin.request_count(), standin.request_count("languages"), standin.request_count("status")) == (2, 1, 0)
    standin.clear_requests()
    assert standin.request_count() == 0


def test_the_request_log_has_one_json_line_per_request_of_either_server(camb_standin_factory, tmp_path):
    path = tmp_path / "requests.jsonl"
    standin = camb_standin_factory(request_log_path=path)
    url = get(standin, f"/text-to-voice-result/{success_run(standin)}").json()["previews"][0]
    requests.get(url, headers={"X-Trace": "t1"}, timeout=10)
    CambStandInClient(standin.base_url).request_count()  # control requests are not logged
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(line["server"], line["method"]) for line in lines] == [("api", "GET"), ("api", "GET"), ("preview", "GET")]
    assert lines[0]["headers"]["x-api-key"] == standin.api_key
    assert lines[2]["headers"]["x-trace"] == "t1" and "x-api-key" not in lines[2]["headers"]
    assert lines[2]["path"].startswith("/previews/") and "token" in lines[2]["query"]


def test_the_control_client_drives_a_stand_in_over_http(camb_standin):
    client = CambStandInClient(camb_standin.base_url)
    client.configure(pending_seconds=0, outcome="ERROR")
    assert wait_terminal(camb_standin, create(camb_standin).json()["task_id"])["status"] == "ERROR"
    client.clear_requests()
    assert client.request_count() == 0 == len(client.requests())
    task_id = client.add_task(status="SUCCESS", task_id="a/b")
    assert task_id == "a/b"
    client.inject("http_503", endpoint="status", times=2)
    assert [get(camb_standin, "/text-to-voice/a%2Fb").status_code for _ in range(3)] == [503, 503, 200]
    assert [r["path_id"] for r in client.requests("status")] == ["a/b"] * 3
    assert client.request_count("status") == 3 and client.request_count() == 3
    with pytest.raises(ValueError, match="gremlins"):
        client.inject("gremlins")
    with pytest.raises(ValueError, match="colour"):
        client.configure(colour="red")
    with pytest.raises(ValueError, match="colour"):
        client.add_task(colour="red")
    assert client.stats() == camb_standin.stats()
    assert client.stats()["endpoints"] == {"status": 3} and client.stats()["tasks"] == 2
    assert requests.get(camb_standin.base_url + "/_standin/gremlins", timeout=10).status_code == 404
    client.outage(0.3)
    with pytest.raises(requests.exceptions.ConnectionError):
        get(camb_standin, "/source-languages")
    wait_until(lambda: listening(camb_standin.port), "the stand-in listening again after its outage", timeout=10)
    assert get(camb_standin, "/source-languages").status_code == 200


def test_start_is_idempotent_and_stop_releases_the_port(camb_standin_factory):
    standin = camb_standin_factory(api_key="fixed-key")
    assert standin.start() is standin
    assert json.loads(standin.connection_json()) == {
        "conn_type": "camb",
        "host": standin.base_url,
        "password": "fixed-key",
    }
    assert standin.base_url == f"http://127.0.0.1:{standin.port}"
    standin.stop()
    standin.stop()
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(standin.base_url, timeout=2)
    assert CambStandIn().api_key.startswith("standin-") and CambStandIn().api_key != CambStandIn().api_key


# --- the CLI and the official SDK ----------------------------------------------------------------


def read_lines(process: subprocess.Popen[str], count: int, timeout: float = 120.0) -> list[str]:
    """The first ``count`` lines the process prints, read in a thread so a silent process cannot hang the test.

    The deadline is generous: on a loaded machine the CLI takes long to import Airflow before it prints.
    """
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: [lines.put(line.rstrip("\n")) for line in stdout], daemon=True).start()
    return [lines.get(timeout=timeout) for _ in range(count)]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_cli_prints_its_addresses_serves_and_exits_cleanly(signum):
    command = [sys.executable, "-m", "airflow_provider_camb.testing", "--port", "0", "--api-key", "cli-key"]
    with subprocess.Popen([*command, "--pending-seconds", "0"], stdout=subprocess.PIPE, text=True) as process:
        try:
            lines = read_lines(process, 4)
            api = re.fullmatch(r"CAMB stand-in API:      (http://127\.0\.0\.1:\d+)", lines[0])
            assert api, lines
            assert re.fullmatch(r"CAMB stand-in previews: http://localhost:\d+", lines[1]), lines
            assert lines[2] == "API key:                cli-key"
            connection = json.loads(lines[3].removeprefix("AIRFLOW_CONN_CAMB_DEFAULT='").removesuffix("'"))
            assert connection == {"conn_type": "camb", "host": api[1], "password": "cli-key"}
            client = CambStandInClient(api[1])
            task_id = client.add_task(status="SUCCESS")
            reply = requests.get(f"{api[1]}/text-to-voice/{task_id}", headers={"x-api-key": "cli-key"}, timeout=5)
            assert reply.json()["run_id"] == 1000
            assert client.request_count("status") == 1
        finally:
            process.send_signal(signum)
            assert process.wait(timeout=60) == 0


def test_the_official_camb_sdk_runs_a_whole_task_against_the_stand_in(camb_standin):
    from camb.client import CambAI

    client = CambAI(api_key=camb_standin.api_key, base_url=camb_standin.base_url, timeout=10)
    task_id = client.text_to_voice.create_text_to_voice(text=TEXT, voice_description=DESCRIPTION).task_id
    assert task_id
    deadline = time.monotonic() + 5
    while (status := client.text_to_voice.get_text_to_voice_status(task_id)).status == "PENDING":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert status.status == "SUCCESS" and isinstance(status.run_id, int)
    previews = client.text_to_voice.get_text_to_voice_result(status.run_id).previews
    assert len(previews) == 2
    with wave.open(io.BytesIO(requests.get(previews[0], timeout=10).content)) as audio:
        assert audio.getnframes() == 22050
    assert client.languages.get_source_languages()[0].short_name == "en-us"
    assert {r.endpoint for r in camb_standin.requests()} == {"create", "status", "result", "preview", "languages"}
    assert all(r.headers["x-api-key"] == camb_standin.api_key for r in camb_standin.requests() if r.server == "api")
