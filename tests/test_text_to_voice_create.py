"""The three operators over real HTTP to the stand-in: create (and wait), download previews, keep a voice.

Input and error checks call ``operator.execute()`` directly with a minimal context (fast); the flows,
deferral and Airflow's retry handling run real DAGs with ``dag.test()``.
"""

from __future__ import annotations

import hashlib
import http.server
import itertools
import json
import os
import threading
import tracemalloc
import uuid
import wave
from pathlib import Path
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowFailException, ObjectStoragePath

from airflow_provider_camb._storage import media_extension
from airflow_provider_camb.exceptions import (
    CambApiError,
    CambAuthError,
    CambConnectionError,
    CambInputError,
    CambNotFoundError,
    CambPaymentRequiredError,
    CambServerError,
    CambTaskFailedError,
    CambUncertainCreateError,
    CambValidationError,
    CambWaitTimeoutError,
)
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.operators.text_to_voice import (
    CambCreateCustomVoiceOperator,
    TextToVoiceOperator,
    TextToVoiceResultOperator,
)
from tests.airflow_harness import HAS_TASK_STATE_STORE

TEXT = "Hello from Airflow. This is how I sound."
DESCRIPTION = (
    "A warm, calm middle-aged female narrator with a soft British accent, speaking slowly and clearly, "
    "with a gentle and friendly tone suited to bedtime stories."
)
FAST_RETRIES = {"retries": 2, "backoff": 0.01, "backoff_max": 0.05}

_ids = itertools.count()


class FakeTaskInstance:
    """Just enough of a task instance for ``execute()``: it keeps what is pushed to XCom."""

    try_number, max_tries = 1, 0  # the first try of a task without retries

    def __init__(self) -> None:
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


def context() -> dict[str, Any]:
    return {"ti": FakeTaskInstance()}


@pytest.fixture
def camb(camb_standin, monkeypatch):
    """The stand-in as ``camb_default``, with fast retries (2 retries, tiny backoff)."""
    conn = json.loads(camb_standin.connection_json())
    conn["extra"] = FAST_RETRIES
    monkeypatch.setenv("AIRFLOW_CONN_CAMB_DEFAULT", json.dumps(conn))
    return camb_standin


def finished_run(standin) -> int:
    """A SUCCESS run on the stand-in; its run id."""
    run_id = CambHook().get_task_status("text-to-voice", standin.add_task(status="SUCCESS")).run_id
    assert isinstance(run_id, int)
    standin.clear_requests()
    return run_id


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def wav_seconds(path: Path) -> float:
    with wave.open(str(path)) as audio:
        assert (audio.getnchannels(), audio.getsampwidth(), audio.getframerate()) == (1, 2, 22050)
        return audio.getnframes() / audio.getframerate()


def memory_folder() -> str:
    """A fresh folder on fsspec's in-memory filesystem, attached to Airflow's object storage (not local)."""
    from fsspec.implementations.memory import MemoryFileSystem

    try:
        from airflow.sdk.io import attach
    except ImportError:  # Airflow 2
        from airflow.io.store import attach
    attach("memory", fs=MemoryFileSystem())
    return f"memory://camb-tests/{uuid.uuid4().hex}"


# --- TextToVoiceOperator: input is checked before anything is sent -------------------------------

BAD_CREATE_INPUT = {
    "empty text": ({"text": ""}, "text must not be empty"),
    "whitespace-only text": ({"text": " \n\t "}, "text must not be empty"),
    "text is not a string": ({"text": 42}, "text must be a string"),
    "text is None": ({"text": None}, "text must be a string"),
    "very large text": ({"text": "x" * 20_000}, "at most 10000"),
    "short description": ({"voice_description": "A calm voice."}, "at least 100 characters and 18 words"),
    "long but few words": ({"voice_description": "calm " + "x" * 150}, "at least 100 characters and 18 words"),
    "description is not a string": ({"voice_description": ["a", "list"]}, "voice_description must be a string"),
    "very large description": ({"voice_description": "word " * 5_000}, "at most 10000"),
    "empty project name": ({"project_name": "  "}, "project_name must not be empty"),
    "folder id not a number": ({"folder_id": "twelve"}, "folder_id must be a whole number"),
}


@pytest.mark.parametrize(("options", "message"), BAD_CREATE_INPUT.values(), ids=BAD_CREATE_INPUT)
def test_bad_create_input_is_refused_before_any_request(camb, options, message):
    arguments = {"text": TEXT, "voice_description": DESCRIPTION, **options}
    operator = TextToVoiceOperator(task_id="create", **arguments)
    with pytest.raises(CambInputError, match=message) as error:
        operator.execute(context())
    assert isinstance(error.value, AirflowFailException)  # retrying cannot fix bad input
    assert camb.request_count("create") == 0
    assert camb.request_count() == 0


@pytest.mark.parametrize("setting", [{"poll_interval": 0}, {"timeout": -1}, {"timeout": "soon"}])
def test_nonsense_wait_settings_are_refused_when_the_dag_is_written(setting):
    with pytest.raises(CambInputError, match="positive number of seconds"):
        TextToVoiceOperator(task_id="create", text=TEXT, voice_description=DESCRIPTION, **setting)


def test_create_returns_the_task_id_and_sends_the_fields(camb):
    ctx = context()
    operator = TextToVoiceOperator(
        task_id="create",
        text=TEXT,
        voice_description=DESCRIPTION,
        project_name="demo",
        project_description="a demo project",
        folder_id="12",  # what a template renders
    )
    camb_task_id = operator.execute(ctx)
    assert isinstance(camb_task_id, str) and camb_task_id
    assert ctx["ti"].xcoms == {"task_id": camb_task_id}
    (sent,) = camb.requests("create")
    assert sent.json == {
        "text": TEXT,
        "voice_description": DESCRIPTION,
        "project_name": "demo",
        "project_description": "a demo project",
        "folder_id": 12,
    }
    assert camb.request_count("status") == 0  # no waiting unless asked


def test_check_description_false_sends_it_and_camb_answers_422(camb):
    operator = TextToVoiceOperator(
        task_id="create", text=TEXT, voice_description="A calm voice.", check_description=False
    )
    with pytest.raises(CambValidationError, match="voice_description"):
        operator.execute(context())
    assert camb.request_count("create") == 1


def test_a_wrong_key_is_an_auth_error(camb_standin, monkeypatch):
    conn = {"conn_type": "camb", "host": camb_standin.base_url, "password": "wrong-key-0123456789"}
    monkeypatch.setenv("AIRFLOW_CONN_CAMB_DEFAULT", json.dumps(conn))
    with pytest.raises(CambAuthError, match="camb_default") as error:
        TextToVoiceOperator(task_id="create", text=TEXT, voice_description=DESCRIPTION).execute(context())
    assert "wrong-key-0123456789" not in str(error.value)
    assert camb_standin.requests("create")[0].status == 401


def test_a_create_that_failed_on_the_server_is_not_sent_again(camb):
    camb.inject("http_500", endpoint="create", times=5)
    with pytest.raises(CambUncertainCreateError, match="HTTP 500"):  # fails without retries
        TextToVoiceOperator(task_id="create", text=TEXT, voice_description=DESCRIPTION).execute(context())
    assert camb.request_count("create") == 1  # it may have started a paid task: never blindly repeated


class _FixedReply(http.server.BaseHTTPRequestHandler):
    """A real HTTP server that answers every request with one status (the stand-in has no 402 fault)."""

    status = 402

    def _reply(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = json.dumps({"detail": "Not enough credits"}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _reply

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def payment_required_server(monkeypatch):
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FixedReply)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    conn = {"conn_type": "camb", "host": f"http://127.0.0.1:{server.server_port}", "password": "k"}
    monkeypatch.setenv("AIRFLOW_CONN_CAMB_DEFAULT", json.dumps(conn))
    yield server
    server.shutdown()
    server.server_close()


def test_a_402_fails_without_retries(payment_required_server, tmp_path):
    with pytest.raises(CambPaymentRequiredError, match="Add credits") as error:
        TextToVoiceOperator(task_id="create", text=TEXT, voice_description=DESCRIPTION).execute(context())
    assert isinstance(error.value, AirflowFailException)
    with pytest.raises(CambPaymentRequiredError):
        TextToVoiceResultOperator(task_id="download", run_id=1, destination=str(tmp_path)).execute(context())
    assert list(tmp_path.iterdir()) == []


# --- TextToVoiceOperator: waiting from the worker ----------------------------------------------


def waiting_operator(**options: Any) -> TextToVoiceOperator:
    return TextToVoiceOperator(
        task_id="create",
        text=TEXT,
        voice_description=DESCRIPTION,
        wait_for_completion=True,
        deferrable=False,
        poll_interval=0.1,
        **options,
    )


def test_waiting_in_the_worker_returns_the_run_id(camb):
    ctx = context()
    run_id = waiting_operator().execute(ctx)
    assert isinstance(run_id, int)
    assert ctx["ti"].xcoms == {"task_id": ctx["ti"].xcoms["task_id"], "run_id": run_id}
    assert camb.request_count("create") == 1
    assert camb.request_count("status") >= 2  # PENDING for 0.5 s, then SUCCESS


def test_waiting_in_the_worker_rides_out_passing_faults(camb):
    camb.inject("http_503", endpoint="status", times=4)  # more than one check's retries
    run_id = waiting_operator().execute(context())
    assert isinstance(run_id, int)
    assert camb.request_count("status") >= 5


@pytest.mark.parametrize(("outcome", "advice"), [("ERROR", "Review the inputs"), ("TIMEOUT", "contact CAMB.AI")])
def test_waiting_in_the_worker_fails_on_error_and_timeout_statuses(camb, outcome, advice):
    camb.configure(outcome=outcome, exception_reason="PROCESSING_ERROR")
    with pytest.raises(CambTaskFailedError, match=advice) as error:
        waiting_operator().execute(context())
    assert not isinstance(error.value, AirflowFailException)  # Airflow's retries apply
    assert "PROCESSING_ERROR" in str(error.value)


def test_waiting_in_the_worker_fails_without_retries_on_payment_required(camb):
    camb.configure(outcome="PAYMENT_REQUIRED")
    with pytest.raises(CambPaymentRequiredError, match="Add credits") as error:
        waiting_operator().execute(context())
    assert isinstance(error.value, AirflowFailException)


def test_waiting_in_the_worker_stops_at_its_timeout(camb):
    camb.configure(pending_seconds=120)
    ctx = context()
    with pytest.raises(CambWaitTimeoutError, match="did not finish before the deadline") as error:
        waiting_operator(timeout=1).execute(ctx)
    assert isinstance(error.value, AirflowFailException)  # a retry would create a second, paid task
    assert "last status PENDING" in str(error.value)
    assert ctx["ti"].xcoms["task_id"] in str(error.value)
    assert 3 <= camb.request_count("status") <= 20


def test_a_404_moments_after_the_create_is_read_again(camb):
    camb.inject("not_found", endpoint="status", times=2)  # read-after-create lag: the task is not readable yet
    assert isinstance(waiting_operator().execute(context()), int)
    assert camb.request_count("create") == 1
    assert [r.status for r in camb.requests("status")][:3] == [404, 404, 200]


# --- TextToVoiceResultOperator -----------------------------------------------------------------


def download(run_id: Any, destination: Any) -> list[dict[str, Any]]:
    return TextToVoiceResultOperator(task_id="download", run_id=run_id, destination=destination).execute(context())


def test_previews_are_saved_as_wav_files_with_stable_names(camb, tmp_path):
    run_id = finished_run(camb)
    saved = download(str(run_id), tmp_path / "voices")  # a run id rendered by a template is a string
    folder = tmp_path / "voices"
    assert [entry["path"] for entry in saved] == [
        str(folder / f"camb_run_{run_id}_preview_{index}.wav") for index in range(2)
    ]
    for entry in saved:
        path = Path(entry["path"])
        assert set(entry) == {"path", "bytes", "sha256", "content_type"}
        assert entry["bytes"] == path.stat().st_size
        assert entry["sha256"] == sha256_of(path)
        assert entry["content_type"] == "audio/wav"
        assert wav_seconds(path) == pytest.approx(1.0, abs=0.01)
    assert sorted(p.name for p in folder.iterdir()) == [Path(e["path"]).name for e in saved]  # no temp files
    assert "http" not in json.dumps(saved) and "token" not in json.dumps(saved)


def test_a_file_uri_destination_works_too(camb, tmp_path):
    run_id = finished_run(camb)
    saved = download(run_id, (tmp_path / "uri").as_uri())
    assert [entry["path"] for entry in saved] == [
        f"{(tmp_path / 'uri').as_uri()}/camb_run_{run_id}_preview_{index}.wav" for index in range(2)
    ]
    for entry in saved:
        path = Path(ObjectStoragePath(entry["path"]).path)
        assert entry["sha256"] == sha256_of(path)
        assert wav_seconds(path) == pytest.approx(1.0, abs=0.01)


def test_an_object_storage_destination_gets_whole_objects_and_no_temp_objects(camb):
    run_id = finished_run(camb)
    folder = memory_folder()
    saved = download(run_id, folder)
    assert len(saved) == 2
    stored = ObjectStoragePath(folder)
    assert sorted(p.name for p in stored.iterdir()) == [f"camb_run_{run_id}_preview_{i}.wav" for i in range(2)]
    for entry in saved:
        data = ObjectStoragePath(entry["path"]).read_bytes()
        assert len(data) == entry["bytes"] and hashlib.sha256(data).hexdigest() == entry["sha256"]


def test_previews_are_fetched_without_the_api_key_and_links_stay_out_of_logs(camb, tmp_path, capfd):
    run_id = finished_run(camb)
    download(run_id, tmp_path)
    (result,) = camb.requests("result")
    assert result.headers.get("x-api-key") == camb.api_key
    previews = camb.requests("preview")
    assert len(previews) == 2
    for request in previews:
        assert request.server == "preview"  # another host and port than the API
        assert "x-api-key" not in request.headers
        assert camb.api_key not in json.dumps(request.headers)
    output = capfd.readouterr()
    logs = output.out + output.err
    for request in previews:
        assert request.query["token"] not in logs
    assert camb.api_key not in logs


def test_a_cut_off_preview_leaves_no_file_under_its_name_nor_a_temp_file(camb, tmp_path):
    run_id = finished_run(camb)
    camb.inject("truncate", endpoint="preview", times=3)  # every attempt of the first preview (1 + 2 retries)
    with pytest.raises(CambConnectionError, match="localhost"):
        download(run_id, tmp_path)
    assert camb.request_count("preview") == 3
    assert list(tmp_path.iterdir()) == []


def test_a_cut_off_preview_is_fetched_again_from_the_start(camb, tmp_path):
    run_id = finished_run(camb)
    camb.inject("truncate", endpoint="preview", times=1)
    saved = download(run_id, tmp_path)
    assert camb.request_count("preview") == 3
    for entry in saved:
        assert wav_seconds(Path(entry["path"])) == pytest.approx(1.0, abs=0.01)
        assert sha256_of(Path(entry["path"])) == entry["sha256"]
    assert len(list(tmp_path.iterdir())) == 2


def test_a_failure_keeps_the_previous_complete_file(camb, tmp_path):
    run_id = finished_run(camb)
    first = download(run_id, tmp_path)
    camb.inject("truncate", endpoint="preview", times=3)
    with pytest.raises(CambConnectionError):
        download(run_id, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(Path(e["path"]).name for e in first)
    assert sha256_of(Path(first[0]["path"])) == first[0]["sha256"]


def test_a_rerun_writes_the_same_files_again_atomically(camb, tmp_path):
    run_id = finished_run(camb)
    first = download(run_id, tmp_path)
    inodes = {entry["path"]: os.stat(entry["path"]).st_ino for entry in first}
    second = download(run_id, tmp_path)
    assert second == first  # same paths, sizes, hashes, types
    assert len(list(tmp_path.iterdir())) == 2
    for entry in second:
        assert os.stat(entry["path"]).st_ino != inodes[entry["path"]]  # replaced by a rename, not rewritten in place


def test_a_large_preview_streams_with_flat_memory(camb, tmp_path):
    camb.configure(preview_bytes=50_000_000, preview_count=1)
    run_id = finished_run(camb)
    tracemalloc.start()
    try:
        (entry,) = download(run_id, tmp_path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert entry["bytes"] >= 49_999_000
    assert peak < 20_000_000, f"peak traced memory {peak / 1e6:.1f} MB for a 50 MB preview"
    assert sha256_of(Path(entry["path"])) == entry["sha256"]
    assert wav_seconds(Path(entry["path"])) == pytest.approx((entry["bytes"] - 44) / 44100, abs=0.01)


def test_a_result_without_previews_fails_clearly(camb, tmp_path):
    camb.configure(preview_count=0)
    run_id = finished_run(camb)
    with pytest.raises(CambApiError, match=f"CAMB run {run_id} has no previews"):
        download(run_id, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_run_is_not_found(camb, tmp_path):
    with pytest.raises(CambNotFoundError, match="987654"):
        download(987654, tmp_path)


def test_server_errors_are_retried_then_reported(camb, tmp_path):
    run_id = finished_run(camb)
    camb.inject("http_502", endpoint="result", times=3)
    with pytest.raises(CambServerError, match="HTTP 502"):
        download(run_id, tmp_path)
    assert camb.request_count("result") == 3  # 1 + 2 retries
    camb.inject("http_503", endpoint="result", times=2)
    assert len(download(run_id, tmp_path)) == 2


@pytest.mark.parametrize(
    ("run_id", "destination", "message"),
    [
        ("12abc", "{tmp}", "run id must be a whole number"),
        (None, "{tmp}", "run id must be a whole number"),
        (1000, "", "destination must be a local path"),
        (1000, None, "destination must be a local path"),
        (1000, "{tmp}/a-file", "is not a folder"),
        (1000, "nosuchscheme://bucket/x", "cannot be used"),
    ],
)
def test_bad_result_input_is_refused_before_any_request(camb, tmp_path, run_id, destination, message):
    (tmp_path / "a-file").write_bytes(b"x")
    if isinstance(destination, str):
        destination = destination.replace("{tmp}", str(tmp_path))
    with pytest.raises(CambInputError, match=message):
        download(run_id, destination)
    assert camb.request_count() == 0


@pytest.mark.parametrize(
    ("content_type", "url", "extension"),
    [
        ("audio/wav", "https://h/x", "wav"),
        ("audio/x-wav; charset=binary", "https://h/x.mp3", "wav"),
        ("audio/mpeg", "https://h/x", "mp3"),
        ("AUDIO/FLAC", "https://h/x", "flac"),
        ("audio/ogg", "https://h/x", "ogg"),
        ("application/octet-stream", "https://h/voices/a.FLAC?sig=1", "flac"),
        (None, "https://h/voices/a.mp3?token=x#y", "mp3"),
        (None, "https://h/voices/a", "bin"),
        ("text/html", "https://h/voices/a.p/hp?x", "bin"),
        (None, "https://h/a.wav%2F..%2Fevil", "bin"),
    ],
)
def test_the_extension_comes_from_the_content_type_then_the_link(content_type, url, extension):
    assert media_extension(content_type, url) == extension


# --- CambCreateCustomVoiceOperator -------------------------------------------------------------


def keep(**options: Any) -> int:
    arguments = {"voice_name": "Narrator", "gender": 2, **options}
    return CambCreateCustomVoiceOperator(task_id="keep", **arguments).execute(context())


@pytest.mark.parametrize("how", ["index", "index from a template", "dict", "path", "file uri"])
def test_keeping_a_preview_uploads_exactly_that_file(camb, tmp_path, how):
    run_id = finished_run(camb)
    saved = download(run_id, tmp_path)
    chosen = saved[1]
    options: dict[str, Any] = {
        "index": {"preview": 1, "previews": saved},
        "index from a template": {"preview": "1", "previews": json.dumps(saved)},
        "dict": {"preview": chosen},
        "path": {"preview": chosen["path"]},
        "file uri": {"preview": Path(chosen["path"]).as_uri()},
    }[how]
    voice_id = keep(run_id=str(run_id), gender="1", age="40", language=1, description="kept", **options)
    assert isinstance(voice_id, int)
    (sent,) = camb.requests("custom_voice")
    assert sent.status == 200
    assert sent.json["file_sha256"] == chosen["sha256"] == sha256_of(Path(chosen["path"]))
    assert sent.json["file_bytes"] == chosen["bytes"]
    assert sent.json["file_name"] == f"camb_run_{run_id}_preview_1.wav"
    assert {k: sent.json[k] for k in ("voice_name", "gender", "age", "language", "description")} == {
        "voice_name": "Narrator",
        "gender": "1",
        "age": "40",
        "language": "1",
        "description": "kept",
    }
    assert sent.query == {"run_id": str(run_id)}


def test_a_preview_in_object_storage_is_copied_locally_first(camb):
    run_id = finished_run(camb)
    saved = download(run_id, memory_folder())
    voice_id = keep(preview=0, previews=saved)
    assert isinstance(voice_id, int)
    (sent,) = camb.requests("custom_voice")
    assert sent.json["file_sha256"] == saved[0]["sha256"]
    assert sent.json["file_name"] == f"camb_run_{run_id}_preview_0.wav"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"preview": 2, "previews": [{"path": "/a.wav"}, {"path": "/b.wav"}]}, "out of range"),
        ({"preview": -1, "previews": [{"path": "/a.wav"}]}, "out of range"),
        ({"preview": 0}, "An index preview needs previews"),
        ({"preview": 0, "previews": "not a list"}, "An index preview needs previews"),
        ({"preview": {"bytes": 3}}, "needs a 'path' string"),
        ({"preview": ""}, "preview must be a path"),
        ({"preview": True}, "preview must be a path"),
        ({"preview": "{tmp}/missing.wav"}, "does not exist"),
        ({"preview": "memory://camb-tests/missing.wav"}, "does not exist"),
        ({"preview": "{tmp}/voice.wav", "gender": "female"}, "gender must be a whole number"),
        ({"preview": "{tmp}/voice.wav", "gender": None}, "gender must be a whole number"),
        ({"preview": "{tmp}/voice.wav", "age": "forty"}, "age must be a whole number"),
        ({"preview": "{tmp}/voice.wav", "voice_name": " "}, "voice_name must not be empty"),
        ({"preview": "{tmp}/voice.wav", "run_id": "1/../2"}, "run id must be a whole number"),
        ({"preview": "{tmp}/voice.wav", "description": 5}, "description must be a string"),
    ],
)
def test_bad_custom_voice_input_is_refused_before_any_request(camb, tmp_path, options, message):
    (tmp_path / "voice.wav").write_bytes(b"RIFF")
    memory_folder()  # attaches the memory:// filesystem
    options = {k: v.replace("{tmp}", str(tmp_path)) if isinstance(v, str) else v for k, v in options.items()}
    with pytest.raises(CambInputError, match=message):
        keep(**options)
    assert camb.request_count() == 0


def test_a_refused_key_on_upload_is_an_auth_error(camb, tmp_path):
    audio = tmp_path / "voice.wav"
    audio.write_bytes(b"RIFF")
    camb.inject("unauthorized", endpoint="custom_voice", times=1)
    with pytest.raises(CambAuthError):
        keep(preview=str(audio))
    assert camb.request_count("custom_voice") == 1


# --- real DAG runs ------------------------------------------------------------------------------

FLOW_DAG = """
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_camb.operators.text_to_voice import (
    CambCreateCustomVoiceOperator,
    TextToVoiceOperator,
    TextToVoiceResultOperator,
)

with DAG(
    "{dag_id}",
    start_date=pendulum.datetime(2024, 1, 1),
    schedule=None,
    params={{"text": {text!r}, "description": {description!r}, "destination": {destination!r}, "gender": 2}},
) as dag:
    create = TextToVoiceOperator(
        task_id="create",
        text="{{{{ params.text }}}}",
        voice_description="{{{{ params.description }}}}",
        wait_for_completion=True,
        poll_interval=0.3,
        {options}
    )
    download = TextToVoiceResultOperator(
        task_id="download", run_id=create.output, destination="{{{{ params.destination }}}}"
    )
    CambCreateCustomVoiceOperator(
        task_id="keep",
        preview=1,
        previews=download.output,
        run_id=create.output,
        voice_name="Narrator",
        gender="{{{{ params.gender }}}}",
    )
"""


def run_flow(run_dag, destination: str, options: str, text: str = TEXT):
    source = FLOW_DAG.format(
        dag_id=f"operators_flow_{next(_ids)}",
        text=text,
        description=DESCRIPTION,
        destination=destination,
        options=options,
    )
    return run_dag.run(source)


def check_flow_outcome(result, standin) -> None:
    """Every task succeeded, the run id went everywhere, the files are real, the kept voice is the chosen file."""
    assert result.task_states == {"create": "success", "download": "success", "keep": "success"}
    run_id = result.xcom("create")
    assert isinstance(run_id, int)
    assert result.xcom("create", "run_id") == run_id
    camb_task_id = result.xcom("create", "task_id")
    assert {r.path_id for r in standin.requests("status")} == {camb_task_id}
    assert standin.request_count("create") == 1  # also when resumed after deferral
    saved = result.xcom("download")
    assert [Path(ObjectStoragePath(e["path"]).path).name for e in saved] == [
        f"camb_run_{run_id}_preview_{i}.wav" for i in range(2)
    ]
    for entry in saved:
        path = Path(ObjectStoragePath(entry["path"]).path)
        assert sha256_of(path) == entry["sha256"]
        assert wav_seconds(path) == pytest.approx(1.0, abs=0.01)
    assert isinstance(result.xcom("keep"), int)
    (sent,) = standin.requests("custom_voice")
    assert sent.json["file_sha256"] == saved[1]["sha256"]
    assert sent.json["gender"] == "2"
    assert sent.query == {"run_id": str(run_id)}


def test_the_whole_flow_waiting_in_the_worker(run_dag, camb_connection, tmp_path, capfd):
    result = run_flow(run_dag, str(tmp_path / "voices"), "deferrable=False,")
    check_flow_outcome(result, camb_connection)
    assert camb_connection.request_count("status") >= 2  # PENDING first
    output = capfd.readouterr()
    logs = output.out + output.err
    for request in camb_connection.requests("preview"):
        assert request.query["token"] not in logs
    assert camb_connection.api_key not in logs


def test_the_whole_flow_deferring_to_the_triggerer(run_dag, camb_connection, tmp_path):
    camb_connection.configure(pending_seconds=2)
    result = run_flow(run_dag, (tmp_path / "voices").as_uri(), "deferrable=True,")
    check_flow_outcome(result, camb_connection)
    assert camb_connection.request_count("status") >= 2  # the check before deferring, then the trigger's


def test_a_task_already_done_is_not_deferred(run_dag, camb_connection, tmp_path):
    camb_connection.configure(pending_seconds=-1)  # terminal as soon as it is created
    result = run_flow(run_dag, str(tmp_path), "deferrable=True,")
    check_flow_outcome(result, camb_connection)
    assert camb_connection.request_count("status") == 1  # the one check; no trigger ran


CREATE_DAG = """
import pendulum
from datetime import timedelta
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_camb.operators.text_to_voice import TextToVoiceOperator

with DAG("{dag_id}", start_date=pendulum.datetime(2024, 1, 1), schedule=None, params={{"text": {text!r}}}) as dag:
    TextToVoiceOperator(
        task_id="create",
        text="{{{{ params.text }}}}",
        voice_description={description!r},
        wait_for_completion=True,
        deferrable=True,
        poll_interval=0.3,
        retries={retries},
        retry_delay=timedelta(seconds=0),
        {options}
    )
"""


def run_create(run_dag, *, text: str = TEXT, retries: int = 0, options: str = ""):
    dag_id = f"operators_create_{next(_ids)}"
    source = CREATE_DAG.format(dag_id=dag_id, text=text, description=DESCRIPTION, retries=retries, options=options)
    return run_dag.run(source)


def test_a_template_that_renders_blank_text_fails_without_retries_or_requests(run_dag, camb_connection, capfd):
    result = run_create(run_dag, text="   ", retries=2)
    assert result.task_states == {"create": "failed"}
    assert result.tries["create"] == 1
    output = capfd.readouterr()
    assert "text must not be empty" in output.out + output.err
    assert camb_connection.request_count() == 0


def test_an_error_status_after_deferral_fails_and_is_retried(run_dag, camb_connection, capfd):
    camb_connection.configure(pending_seconds=2, outcome="ERROR", exception_reason="HARMFUL_CONTENT_DETECTED")
    result = run_create(run_dag, retries=1)
    assert result.task_states == {"create": "failed"}
    assert result.tries["create"] == 2
    output = capfd.readouterr()
    logs = output.out + output.err
    assert "CambTaskFailedError" in logs and "HARMFUL_CONTENT_DETECTED" in logs
    if HAS_TASK_STATE_STORE:  # the retry replaces the task that ended in ERROR; resuming never created one
        assert camb_connection.request_count("create") == 2
    else:  # before Airflow 3.3 the retry cannot know what try 1 created: it fails closed
        assert camb_connection.request_count("create") == 1
        assert "CambUncertainCreateError" in logs


def test_payment_required_after_deferral_fails_without_retries(run_dag, camb_connection, capfd):
    camb_connection.configure(pending_seconds=2, outcome="PAYMENT_REQUIRED")
    result = run_create(run_dag, retries=2)
    assert result.task_states == {"create": "failed"}
    assert result.tries["create"] == 1
    assert camb_connection.request_count("create") == 1
    output = capfd.readouterr()
    assert "Add credits" in output.out + output.err


def test_our_timeout_after_deferral_fails_without_retries_and_says_so(run_dag, camb_connection, capfd):
    camb_connection.configure(pending_seconds=120)
    result = run_create(run_dag, retries=2, options="timeout=2,")
    assert result.task_states == {"create": "failed"}
    assert result.tries["create"] == 1
    assert camb_connection.request_count("create") == 1
    output = capfd.readouterr()
    logs = output.out + output.err
    assert "CambWaitTimeoutError" in logs and "did not finish before the deadline" in logs
