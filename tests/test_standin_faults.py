"""The stand-in's fault switches, over real HTTP on loopback: each fault's reply, once, in order, per endpoint."""

from __future__ import annotations

import email.utils

import pytest
import requests

from airflow_provider_camb.testing import FAULTS, CambStandIn
from tests.shared import DESCRIPTION, TEXT


def key(standin: CambStandIn) -> dict[str, str]:
    return {"x-api-key": standin.api_key}


def get(standin: CambStandIn, path: str, *, timeout: float = 10, **kwargs: object) -> requests.Response:
    return requests.get(standin.base_url + path, headers=key(standin), timeout=timeout, **kwargs)  # type: ignore[arg-type]


def create(standin: CambStandIn) -> requests.Response:
    body = {"text": TEXT, "voice_description": DESCRIPTION}
    return requests.post(standin.base_url + "/text-to-voice", json=body, headers=key(standin), timeout=10)


def success_run(standin: CambStandIn) -> int:
    run_id = get(standin, f"/text-to-voice/{standin.add_task(status='SUCCESS')}").json()["run_id"]
    assert isinstance(run_id, int)
    return run_id


def test_faults_lists_every_fault_and_rejects_unknown_ones(camb_standin):
    assert set(FAULTS) == {
        "http_500", "http_502", "http_503", "rate_limit", "slow", "drop", "malformed_json",
        "html_error", "empty_body", "json_body", "unknown_status", "unauthorized", "payment_required", "forbidden",
        "redirect", "not_found", "truncate",
    }  # fmt: skip
    with pytest.raises(ValueError, match="Unknown fault"):
        camb_standin.inject("gremlins")
    with pytest.raises(ValueError, match="endpoint"):
        camb_standin.inject("http_500", endpoint="everything")
    with pytest.raises(ValueError, match="times"):
        camb_standin.inject("http_500", times=0)
    with pytest.raises(ValueError, match="location"):
        camb_standin.inject("redirect")  # a redirect needs somewhere to point
    with pytest.raises(ValueError, match="header"):
        camb_standin.inject("rate_limit", header="Retry-Later")
    with pytest.raises(ValueError, match="payload"):
        camb_standin.inject("json_body")


@pytest.mark.parametrize(
    ("fault", "params", "status", "content_type", "body"),
    [
        ("http_500", {}, 500, "application/json", None),
        ("http_502", {}, 502, "application/json", None),
        ("http_503", {}, 503, "application/json", None),
        ("malformed_json", {}, 200, "application/json", b'{"status": "PEN'),
        ("html_error", {}, 502, "text/html", None),
        ("empty_body", {}, 200, None, b""),
        ("unauthorized", {}, 401, "application/json", None),
        ("payment_required", {}, 402, "application/json", None),
        ("forbidden", {}, 403, "application/json", None),
        ("not_found", {}, 404, "application/json", None),
        ("unknown_status", {}, 200, "application/json", None),
        ("unknown_status", {"status": "WARMING_UP"}, 200, "application/json", None),
        ("json_body", {"payload": {"odd": [1]}}, 200, "application/json", b'{"odd": [1]}'),
        ("json_body", {"payload": "x", "status": 418}, 418, "application/json", b'"x"'),
    ],
)
def test_each_reply_fault_replaces_the_next_reply_once(camb_standin, fault, params, status, content_type, body):
    task_id = camb_standin.add_task(status="SUCCESS")
    camb_standin.inject(fault, **params)
    reply = get(camb_standin, f"/text-to-voice/{task_id}")
    assert reply.status_code == status
    if content_type:
        assert reply.headers["content-type"].startswith(content_type)
    if body is not None:
        assert reply.content == body
    if content_type == "application/json" and status != 200 and fault != "json_body":
        assert isinstance(reply.json()["detail"], str)
    if fault == "html_error":
        assert reply.text.lstrip().startswith("<html")
    if fault == "unknown_status":
        assert reply.json() == {
            "status": params.get("status", "QUEUED_FOR_GPU"),
            "run_id": None,
            "exception_reason": None,
            "message": None,
        }
    assert get(camb_standin, f"/text-to-voice/{task_id}").json()["status"] == "SUCCESS"  # used up
    assert [r.status for r in camb_standin.requests("status")] == [status, 200]


def test_rate_limit_sends_retry_after_in_seconds_or_as_a_date(camb_standin):
    task_id = camb_standin.add_task()
    camb_standin.inject("rate_limit")
    camb_standin.inject("rate_limit", retry_after=3)
    camb_standin.inject("rate_limit", retry_after=30, date_form=True)
    assert [get(camb_standin, f"/text-to-voice/{task_id}").headers["retry-after"] for _ in range(2)] == ["1", "3"]
    dated = get(camb_standin, f"/text-to-voice/{task_id}")
    assert dated.status_code == 429
    # Both times come from the stand-in's clock: the date asked for is 30 s after the reply's own Date
    # (each rounded to whole seconds), however long the reply took to arrive here.
    asked = email.utils.parsedate_to_datetime(dated.headers["retry-after"]).timestamp()
    sent = email.utils.parsedate_to_datetime(dated.headers["date"]).timestamp()
    assert 30 <= asked - sent <= 32


def test_rate_limit_can_send_x_ratelimit_reset_instead_as_seconds_or_an_epoch_time(camb_standin):
    task_id = camb_standin.add_task()
    camb_standin.inject("rate_limit", retry_after=4, header="X-RateLimit-Reset")
    camb_standin.inject("rate_limit", retry_after=40, header="X-RateLimit-Reset", date_form=True)
    seconds = get(camb_standin, f"/text-to-voice/{task_id}")
    assert (seconds.status_code, seconds.headers["x-ratelimit-reset"]) == (429, "4")
    assert "retry-after" not in seconds.headers
    epoch = get(camb_standin, f"/text-to-voice/{task_id}")
    sent = email.utils.parsedate_to_datetime(epoch.headers["date"]).timestamp()
    assert 40 <= int(epoch.headers["x-ratelimit-reset"]) - sent <= 42
    assert "retry-after" not in epoch.headers


def test_redirect_answers_307_to_the_location_given(camb_standin_factory):
    standin, elsewhere = camb_standin_factory(), camb_standin_factory()
    task_id = standin.add_task(status="SUCCESS")
    target = f"{elsewhere.base_url}/text-to-voice/{task_id}"
    standin.inject("redirect", location=target)
    reply = get(standin, f"/text-to-voice/{task_id}", allow_redirects=False)
    assert (reply.status_code, reply.headers["location"]) == (307, target)
    assert [r.status for r in standin.requests("status")] == [307]
    assert elsewhere.requests() == []  # nothing follows it by itself
    assert get(standin, f"/text-to-voice/{task_id}").status_code == 200  # used up


def test_slow_delays_then_replies_normally(camb_standin):
    task_id = camb_standin.add_task(status="SUCCESS")
    camb_standin.inject("slow", delay=30)
    with pytest.raises(requests.exceptions.ReadTimeout):  # the reply is held longer than the client waits
        get(camb_standin, f"/text-to-voice/{task_id}", timeout=0.5)
    camb_standin.inject("slow", delay=0.2)
    assert get(camb_standin, f"/text-to-voice/{task_id}").json()["status"] == "SUCCESS"  # late, then normal
    assert camb_standin.request_count("status") == 2


def test_drop_closes_the_connection_without_a_reply(camb_standin):
    camb_standin.inject("drop", endpoint="create")
    with pytest.raises(requests.exceptions.ConnectionError):
        create(camb_standin)
    assert create(camb_standin).status_code == 200
    assert [r.status for r in camb_standin.requests("create")] == [0, 200]


def test_truncate_cuts_a_preview_short_after_a_full_content_length(camb_standin):
    url = get(camb_standin, f"/text-to-voice-result/{success_run(camb_standin)}").json()["previews"][0]
    camb_standin.inject("truncate", endpoint="preview")
    sizes: list[int] = []
    with requests.get(url, stream=True, timeout=10) as reply:
        expected = int(reply.headers["content-length"])
        with pytest.raises((requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError)):
            sizes.extend(len(chunk) for chunk in reply.iter_content(4096))  # keeps what arrived before the error
    assert 0 < sum(sizes) < expected
    assert len(requests.get(url, timeout=10).content) == expected  # used up


def test_faults_match_their_endpoint_in_fifo_order_and_any_matches_all(camb_standin):
    task_id = camb_standin.add_task(status="SUCCESS")
    camb_standin.inject("http_500", endpoint="languages")
    camb_standin.inject("http_502", times=2)
    camb_standin.inject("http_503")
    camb_standin.inject("not_found", endpoint="any")
    assert [get(camb_standin, f"/text-to-voice/{task_id}").status_code for _ in range(4)] == [502, 502, 503, 404]
    assert get(camb_standin, "/source-languages").status_code == 500
    assert get(camb_standin, "/source-languages").status_code == 200
