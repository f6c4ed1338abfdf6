"""Choosing a voice by ear, in a real deployment and a real browser: the CAMB files view and the choice step.

One deployment (API server, scheduler, triggerer, dag-processor; SQLite; the simple auth manager with an
admin and a user who has no role, so no access to any DAG) serves every case: headless Chromium logs
in, plays each preview in the download task's "CAMB files" tab, answers "Preview 2" on the Required
Actions page, and the stand-in's record of the uploaded file proves preview 2 was kept; a second run is
answered "None of these" through the REST API; previews written to S3 (moto, the ``aws`` connection
``camb_s3``) play through the operator's destination connection; then the view's refusals. Run alone:
``pytest -m deployment tests/test_choice_deployment.py``. ``CAMB_SCREENSHOTS_DIR=docs`` also writes the
README's screenshots there.
"""

from __future__ import annotations

import hashlib
import http.client
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest
import requests

from tests.deployment import DEPLOYMENT_TESTS, S3_CONN_ID, AirflowDeployment
from tests.object_storage import ACCESS_KEY, SECRET_KEY
from tests.shared import wait_until

pytestmark = DEPLOYMENT_TESTS

EXAMPLE = Path(__file__).resolve().parent.parent / "example_dags" / "example_camb_design_keep_speak.py"
DAG_ID = "example_camb_design_keep_speak"
USERS = {"admin": "ADMIN", "outsider": ""}  # an empty role: logged in, but no access to any DAG
WAIT = 120
BUCKET = "camb-choice"

S3_DAG_ID = "camb_files_on_s3"
S3_DAG = f"""
import pendulum
from airflow.sdk import DAG
from airflow_provider_camb.operators.text_to_voice import TextToVoiceOperator, TextToVoiceResultOperator

with DAG("{S3_DAG_ID}", start_date=pendulum.datetime(2025, 1, 1), schedule=None):
    design = TextToVoiceOperator(
        task_id="design",
        text="Hello from Airflow. This is how I sound.",
        voice_description=(
            "A bright young male radio presenter with an upbeat tempo and a light Irish lilt, crisp "
            "consonants and a playful, confident delivery suited to morning traffic updates."
        ),
        wait_for_completion=True,
        deferrable=True,
        poll_interval=1,
        timeout=600,
    )
    TextToVoiceResultOperator(
        task_id="download",
        run_id=design.output,
        destination="s3://{BUCKET}/previews/{{{{ run_id }}}}",
        destination_conn_id="{S3_CONN_ID}",
    )
"""


@pytest.fixture(scope="module")
def airflow(request: pytest.FixtureRequest) -> Iterator[AirflowDeployment]:
    if "deployment" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("a real deployment takes a minute or two: run with -m deployment")
    deployment = AirflowDeployment(
        dags=[EXAMPLE], pending_seconds=2, database="sqlite", users=USERS, object_storage=True
    )
    deployment.add_dag(f"{S3_DAG_ID}.py", S3_DAG)
    try:
        yield deployment.start()
    finally:
        deployment.stop()


@pytest.fixture(scope="module")
def voices(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("voices")


def start_asking(airflow: AirflowDeployment, voices: Path, name: str) -> str:
    """Trigger a run that asks a person; return its run id once ``choose_voice`` awaits input.

    And once the scheduler has read the report of the worker that parked it: an answer before that is
    failed by Airflow itself (apache/airflow#72716 on 3.3's awaiting_input path; README, "Choosing a voice
    by ear"). A person takes longer than that; a test answering through the API must wait for it too.
    """
    conf = {"destination": str(voices), "choose": "by ear", "voice_name": name}
    run_id = airflow.trigger(DAG_ID, conf, via="api")
    airflow.wait_for_task_state(DAG_ID, run_id, "choose_voice", "awaiting_input", timeout=240)
    report = f"task_id='choose_voice', run_id='{run_id}', try_number=1"
    wait_until(
        lambda: any(
            "Received executor event with state success" in line and report in line
            for line in airflow.component_log("scheduler").splitlines()
        ),
        "the scheduler to read the report of the worker that asked",
        timeout=120,
        poll=0.5,
    )
    return run_id


@pytest.fixture(scope="module")
def asking(airflow: AirflowDeployment, voices: Path) -> str:
    """A run waiting at ``choose_voice``: answered by the browser test."""
    return start_asking(airflow, voices, "Chosen by ear")


def custom_voices(airflow: AirflowDeployment) -> list[dict[str, Any]]:
    """The stand-in's record of every custom voice upload (the form, and the file's name, size and sha256)."""
    assert airflow.standin is not None
    return airflow.standin.client.requests("custom_voice")


def view_path(run_id: str, task_id: str = "download_previews", map_index: str = "-1") -> str:
    return f"/camb/files/{DAG_ID}/{quote(run_id, safe='')}/{task_id}/{map_index}"


def screenshot(driver: Any, name: str, tmp_path: Path) -> None:
    driver.save_screenshot(str(tmp_path / name))
    if folder := os.environ.get("CAMB_SCREENSHOTS_DIR"):
        driver.save_screenshot(str(Path(folder) / name))


def test_the_view_is_listed_by_the_plugins_api_with_the_task_instance_tokens(airflow: AirflowDeployment) -> None:
    plugins = {plugin["name"]: plugin for plugin in airflow.api("GET", "/plugins")["plugins"]}
    (view,) = plugins["camb_files"]["external_views"]
    assert view["destination"] == "task_instance"
    assert view["href"] == "/camb/files/{DAG_ID}/{RUN_ID}/{TASK_ID}/{MAP_INDEX}"
    assert plugins["camb_files"]["fastapi_apps"][0]["url_prefix"] == "/camb"
    assert airflow.api("GET", "/plugins/importErrors")["total_entries"] == 0


def test_a_person_listens_in_the_browser_and_keeps_preview_2(
    airflow: AirflowDeployment, asking: str, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    from tests.browser import chromium

    downloads = airflow.xcom(DAG_ID, asking, "download_previews")
    assert len(downloads) == 2 and downloads[0]["sha256"] != downloads[1]["sha256"]
    links = airflow.api("GET", f"/dags/{DAG_ID}/dagRuns/{asking}/taskInstances/download_previews/links")
    page = f"{airflow.api_url}/dags/{DAG_ID}/runs/{asking}/tasks/download_previews/plugin/camb-files"
    assert links["extra_links"] == {"CAMB files": page}

    with chromium() as driver:
        wait = WebDriverWait(driver, WAIT)
        driver.get(airflow.api_url + "/")
        wait.until(ready.presence_of_element_located((By.NAME, "username"))).send_keys("admin")
        driver.find_element(By.NAME, "password").send_keys(airflow.password("admin"))
        wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, "button[type=submit]"))).click()
        wait.until(lambda d: "/auth/login" not in d.current_url)

        driver.get(page)  # the download task's "CAMB files" tab: the view in an iframe of the UI
        wait.until(ready.frame_to_be_available_and_switch_to_it((By.CSS_SELECTOR, "iframe[title='CAMB files']")))
        players = "[...document.querySelectorAll('audio')]"
        wait.until(lambda d: d.execute_script(f"return {players}.length") == 2)
        wait.until(lambda d: d.execute_script(f"return {players}.every(a => a.readyState >= 2 && a.duration > 0)"))
        wait.until(lambda d: "…" not in d.find_element(By.TAG_NAME, "tbody").text)  # durations filled in
        text = driver.find_element(By.TAG_NAME, "body").text
        assert "Preview 1" in text and "Preview 2" in text
        assert downloads[1]["sha256"] in text and "1.00 s" in text
        driver.switch_to.default_content()
        screenshot(driver, "choosing-a-voice-view.png", tmp_path)

        driver.get(f"{airflow.api_url}/dags/{DAG_ID}/runs/{asking}/tasks/choose_voice/required_actions")
        preview_2 = (By.CSS_SELECTOR, "button[data-testid='hitl-option-Preview 2']")
        wait.until(ready.element_to_be_clickable(preview_2))
        assert driver.find_element(By.NAME, "element_voice_name").get_attribute("value") == "Chosen by ear"
        screenshot(driver, "choosing-a-voice-choice.png", tmp_path)
        driver.find_element(*preview_2).click()
        assert airflow.wait_for_run(DAG_ID, asking, timeout=300) == "success"

    (kept,) = [r["json"] for r in custom_voices(airflow) if r["json"]["voice_name"] == "Chosen by ear"]
    assert kept["file_sha256"] == downloads[1]["sha256"]  # the stand-in's tones differ per preview
    assert kept["gender"] == "2"
    choice = airflow.xcom(DAG_ID, asking, "choose_voice")
    assert (choice["preview"], choice["option"], choice["responded_by"]) == (1, "Preview 2", "admin")
    assert airflow.task_states(DAG_ID, asking)["save_speech"] == "success"


def test_none_of_these_through_the_rest_api_skips_the_keep_and_everything_after_it(
    airflow: AirflowDeployment, voices: Path
) -> None:
    run_id = start_asking(airflow, voices, "Never kept")
    airflow.api(
        "PATCH",
        f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/choose_voice/-1/hitlDetails",
        json={"chosen_options": ["None of these"], "params_input": {}},
    )
    assert airflow.wait_for_run(DAG_ID, run_id, timeout=300) == "success"
    states = airflow.task_states(DAG_ID, run_id)
    assert states["choose_voice"] == "success"
    assert [states[task] for task in ("keep_voice", "speak", "save_speech")] == ["skipped"] * 3
    assert not [r for r in custom_voices(airflow) if r["json"]["voice_name"] == "Never kept"]
    assert "chose 'None of these': no preview is kept" in airflow.task_log(DAG_ID, run_id, "choose_voice")


def raw_get(airflow: AirflowDeployment, path: str, token: str | None = None) -> tuple[int, bytes]:
    """A GET with the path sent exactly as given (no client folds ``..`` away)."""
    address = urlsplit(airflow.api_url)
    connection = http.client.HTTPConnection(address.hostname or "127.0.0.1", address.port, timeout=30)
    try:
        connection.request("GET", path, headers={"Authorization": f"Bearer {token}"} if token else {})
        reply = connection.getresponse()
        return reply.status, reply.read()
    finally:
        connection.close()


def test_the_view_refuses_without_a_session_without_access_and_for_anything_the_xcom_does_not_list(
    airflow: AirflowDeployment, asking: str
) -> None:
    downloads = airflow.xcom(DAG_ID, asking, "download_previews")
    name = Path(downloads[0]["path"]).name
    page, first = view_path(asking), f"{view_path(asking)}/0/{name}"
    admin, outsider = airflow.token(), airflow.token("outsider")

    for path in (page, first):
        assert raw_get(airflow, path)[0] == 401  # no session, no token
        assert raw_get(airflow, path, outsider)[0] == 403  # logged in, no access to the DAG
    assert raw_get(airflow, page, admin)[0] == 200
    status, body = raw_get(airflow, first, admin)
    assert status == 200 and body == Path(downloads[0]["path"]).read_bytes()

    refusals = {
        "another index": f"{page}/1/{name}",  # a listed number, but not under that name
        "an index past the list": f"{page}/7/{name}",
        "another file name": f"{page}/0/camb_run_1_preview_0.wav",
        "a path outside the XCom": f"{page}/0/%2Fetc%2Fpasswd",
        "dot-dot in the name": f"{page}/0/..",
        "dot-dot segments": f"{page}/0/../../../../../etc/passwd",
        "a task that is no CAMB result": f"{view_path(asking, 'choose_voice')}/0/{name}",
        "another map index": f"{view_path(asking, map_index='3')}/0/{name}",
    }
    answers = {what: raw_get(airflow, path, admin) for what, path in refusals.items()}
    assert {what: status for what, (status, _) in answers.items()} == dict.fromkeys(refusals, 404)
    assert len({body for _, body in answers.values()}) == 1  # the same words, whatever exists there

    reply = requests.get(
        airflow.api_url + first, headers={"Authorization": f"Bearer {admin}", "Range": "bytes=10-19"}, timeout=30
    )
    assert reply.status_code == 206 and reply.headers["Content-Range"] == f"bytes 10-19/{downloads[0]['bytes']}"
    assert reply.content == Path(downloads[0]["path"]).read_bytes()[10:20]

    html = raw_get(airflow, page, admin)[1].decode()
    assert airflow.standin is not None and airflow.standin.api_key not in html
    assert "token=" not in html and airflow.standin.preview_base_url not in html  # no bearer link
    assert "not a CAMB result operator" in raw_get(airflow, view_path(asking, "choose_voice"), admin)[1].decode()


def test_previews_on_s3_stream_through_the_destination_connection_and_no_secret_reaches_the_browser(
    airflow: AirflowDeployment,
) -> None:
    assert airflow.s3 is not None and airflow.standin is not None
    airflow.s3.create_bucket(BUCKET)
    run_id = airflow.trigger(S3_DAG_ID, via="api")
    assert airflow.wait_for_run(S3_DAG_ID, run_id, timeout=300) == "success", airflow.diagnostics()
    saved = airflow.xcom(S3_DAG_ID, run_id, "download")
    assert len(saved) == 2 and all(entry["path"].startswith(f"s3://{S3_CONN_ID}@{BUCKET}/") for entry in saved)

    bearer = {"Authorization": f"Bearer {airflow.token()}"}
    page = f"{airflow.api_url}/camb/files/{S3_DAG_ID}/{quote(run_id, safe='')}/download/-1"
    listing = requests.get(page, headers=bearer, timeout=30)
    assert listing.status_code == 200
    replies = [listing]
    for number, entry in enumerate(saved):
        name = entry["path"].rsplit("/", 1)[1]
        assert f'src="-1/{number}/{name}"' in listing.text and entry["sha256"] in listing.text
        whole = requests.get(f"{page}/{number}/{name}", headers=bearer, timeout=30)
        assert whole.status_code == 200 and len(whole.content) == entry["bytes"]
        assert hashlib.sha256(whole.content).hexdigest() == entry["sha256"]
        part = requests.get(f"{page}/{number}/{name}", headers={**bearer, "Range": "bytes=100-1099"}, timeout=30)
        assert part.status_code == 206 and part.headers["Content-Range"] == f"bytes 100-1099/{entry['bytes']}"
        assert part.content == whole.content[100:1100]
        replies += [whole, part]

    # moto's keys, the CAMB key, a bearer link, and where the bytes are kept: the browser gets the bytes only.
    never_shown = (ACCESS_KEY, SECRET_KEY, airflow.standin.api_key, airflow.standin.preview_base_url, "token=")
    never_shown += ("s3://", airflow.s3.endpoint_url)
    for reply in replies:
        seen = reply.content + "\n".join(f"{key}: {value}" for key, value in reply.headers.items()).encode()
        assert [text for text in never_shown if text.encode() in seen] == [], reply.url
