"""One rate limit per API key across every wait in one event loop (a triggerer), over real HTTP.

The stand-in's per-key limit (N requests per second, then 429 with Retry-After) plays CAMB's
unpublished limit. Waits run as ``CambTaskTrigger.run()`` tasks of one loop, as in a triggerer.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowSensorTimeout

from airflow_provider_camb.exceptions import CambInputError, CambRateLimitError, CambWaitTimeoutError
from airflow_provider_camb.hooks import _rate_limit
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.kinds import TEXT_TO_VOICE
from airflow_provider_camb.operators.text_to_speech import CambTextToSpeechResultOperator
from airflow_provider_camb.operators.text_to_voice import TextToVoiceResultOperator
from airflow_provider_camb.sensors.camb_task import CambTaskSensor
from airflow_provider_camb.settings import CambSettings, settings_from
from airflow_provider_camb.testing import CambStandIn, RecordedRequest
from airflow_provider_camb.triggers.camb_task import CambTaskTrigger
from tests.shared import FAST_RETRIES, context, finished_run, ids
from tests.virtual_clock import VirtualClock


def connect(monkeypatch: pytest.MonkeyPatch, conn_id: str, standin: CambStandIn, **extra: Any) -> None:
    conn = json.loads(standin.connection_json())
    conn["extra"] = {**FAST_RETRIES, **extra}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn))


def count_settings_reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """Count the connection reads of the async path, per connection id."""
    reads: Counter[str] = Counter()
    read = CambHook._aread_settings

    async def counted(self: CambHook) -> CambSettings:
        reads[self.camb_conn_id] += 1
        return await read(self)

    monkeypatch.setattr(CambHook, "_aread_settings", counted)
    return reads


async def wait_for(trigger: CambTaskTrigger) -> dict[str, Any]:
    events = [event.payload async for event in trigger.run()]
    assert len(events) == 1, events
    payload: dict[str, Any] = events[0]
    return payload


def waits(task_ids: list[str], conn_id: str, **kwargs: Any) -> list[CambTaskTrigger]:
    kwargs.setdefault("wait_before_first_poll", False)
    return [
        CambTaskTrigger(camb_task_id=task_id, camb_conn_id=conn_id, kind=TEXT_TO_VOICE.name, **kwargs)
        for task_id in task_ids
    ]


def run_all(*groups: list[CambTaskTrigger], during: Callable[[], Any] | None = None) -> list[list[dict[str, Any]]]:
    """Run every trigger to its event in one loop (``during``, if given, runs alongside); events per group."""

    async def main() -> list[list[dict[str, Any]]]:
        async with asyncio.timeout(120):
            side = asyncio.ensure_future(during()) if during else None
            results = await asyncio.gather(*(wait_for(trigger) for group in groups for trigger in group))
            if side is not None:
                await side
        grouped, start = [], 0
        for group in groups:
            grouped.append(list(results[start : start + len(group)]))
            start += len(group)
        return grouped

    return asyncio.run(main())


def statuses(records: list[RecordedRequest]) -> Counter[int]:
    return Counter(record.status for record in records)


# --- the learnt limit ------------------------------------------------------------------------------


def test_320_waits_on_one_key_learn_the_servers_limit_and_all_succeed(camb_standin, monkeypatch):
    """No max_requests_per_second: after the first 429s the waits keep under the stand-in's limit."""
    connect(monkeypatch, "camb_default", camb_standin)
    reads = count_settings_reads(monkeypatch)
    camb_standin.rate_limit(100)  # 320 waits polling every second ask for 320 requests per second
    task_ids = [camb_standin.add_task(pending_seconds=3.0) for _ in range(320)]

    (events,) = run_all(waits(task_ids, "camb_default", poll_interval=1.0))

    assert [event["status"] for event in events] == ["SUCCESS"] * 320
    assert reads == {"camb_default": 1}  # one connection read for 320 waits
    records = camb_standin.requests("status")
    refused = [record for record in records if record.status == 429]
    assert refused, "the stand-in's limit was never reached: the test proves nothing"
    # Counted by the stand-in, whose one-second windows are the limit: once the limiter has learnt it (a
    # second after the first 429), few requests go beyond it. A peer without the limiter: 81 % refused.
    later = [record for record in records if record.time >= refused[0].time + 1.0]
    assert statuses(later)[429] <= 0.1 * len(later), (statuses(later), len(later))


# --- a 429 pauses the key: every wait on it, and no other key -------------------------------------------

PAUSE = 30  # seconds a 429 asks for: far longer than each check below takes
REFUSALS = {
    "Retry-After": {"retry_after": PAUSE},
    "Retry-After as a date": {"retry_after": PAUSE, "date_form": True},
    "X-RateLimit-Reset in seconds": {"retry_after": PAUSE, "header": "X-RateLimit-Reset"},
    "X-RateLimit-Reset as an epoch time": {"retry_after": PAUSE, "header": "X-RateLimit-Reset", "date_form": True},
}


@pytest.mark.parametrize("refusal", REFUSALS.values(), ids=REFUSALS)
def test_a_429_pauses_every_connection_with_the_key_but_no_other_key(camb_standin_factory, monkeypatch, refusal):
    limited, other = camb_standin_factory(), camb_standin_factory()
    connect(monkeypatch, "camb_a", limited)
    connect(monkeypatch, "camb_a_too", limited)  # another connection holding the same key
    connect(monkeypatch, "camb_b", other)
    task, other_task = limited.add_task(status="PENDING"), other.add_task(status="PENDING")
    limited.inject("rate_limit", endpoint="status", **refusal)

    async def main() -> tuple[list[Any], list[str]]:
        first, same_key, other_key = CambHook("camb_a"), CambHook("camb_a_too"), CambHook("camb_b")
        async with first.async_session():
            with pytest.raises(CambRateLimitError):  # the 429; its wait is due long after this deadline
                await first.aget_task_status("text-to-voice", task, retry_until=time.time() + 1)
            limiters = [(await hook._akey()).limiter for hook in (first, same_key, other_key)]
            paused_for = limiters[0].paused_until - time.monotonic()
            with pytest.raises(CambRateLimitError) as held:  # the same key, another connection: held back
                await same_key.aget_task_status("text-to-voice", task, retry_until=time.time() + 1)
            status = await other_key.aget_task_status("text-to-voice", other_task, retry_until=time.time() + 1)
        return [limiters[0] is limiters[1], limiters[0] is limiters[2], paused_for, status.status], [str(held.value)]

    (shared, shared_with_other, paused_for, other_status), (held_message,) = asyncio.run(main())
    assert (shared, shared_with_other) == (True, False)  # one limiter per key, whichever connection holds it
    # The key is paused for what the header asked (a date is rounded up to the next whole second), less
    # the moments this test took so far.
    assert 0.5 * PAUSE < paused_for <= PAUSE + 1
    assert "held back reading the status of CAMB text-to-voice task" in held_message
    assert [r.status for r in limited.requests("status")] == [429]  # nothing else was sent on that key ...
    assert [r.status for r in other.requests("status")] == [200]  # ... while the other key went on
    assert other_status == "PENDING"


def test_a_wait_held_back_past_its_deadline_ends_as_a_sensor_timeout(camb_standin, monkeypatch):
    connect(monkeypatch, "camb_default", camb_standin)
    task = camb_standin.add_task(status="PENDING")
    camb_standin.inject("rate_limit", endpoint="status", retry_after=PAUSE)

    async def main() -> dict[str, Any]:
        hook = CambHook()
        async with hook.async_session():
            with pytest.raises(CambRateLimitError):
                await hook.aget_task_status("text-to-voice", task, retry_until=time.time() + 0.5)
            (trigger,) = waits([task], "camb_default", poll_interval=0.1, deadline=time.time() + 1.0)
            return await wait_for(trigger)  # in the same loop: the key is still paused for ~30 s

    event = asyncio.run(main())
    assert event["outcome"] == "deadline"
    assert "held back" in event["message"] and camb_standin.api_key not in event["message"]
    assert [r.status for r in camb_standin.requests("status")] == [429]  # the held-back wait sent nothing
    sensor = CambTaskSensor(task_id="wait", kind=TEXT_TO_VOICE, camb_task_id=task, timeout=1)
    with pytest.raises(CambWaitTimeoutError, match=r"rate limit of this API key .* held back") as caught:
        sensor.execute_complete(context(), event)
    assert isinstance(caught.value, AirflowSensorTimeout)  # Airflow's sensor timeout: no retries


# --- the cap ---------------------------------------------------------------------------------------


def test_max_requests_per_second_delays_polls_but_drops_none(camb_standin, monkeypatch):
    connect(monkeypatch, "camb_default", camb_standin, max_requests_per_second=10)
    camb_standin.rate_limit(20)  # the stand-in counts each second; twice the cap is a generous margin
    task_ids = [camb_standin.add_task(pending_seconds=0.5) for _ in range(30)]

    (events,) = run_all(waits(task_ids, "camb_default", poll_interval=0.2))  # 150 polls a second if uncapped

    assert [event["status"] for event in events] == ["SUCCESS"] * 30
    records = camb_standin.requests("status")
    assert statuses(records)[429] == 0  # never past twice the cap in any second the stand-in counted
    assert {record.path_id for record in records} == set(task_ids)  # every wait polled until it saw SUCCESS


# --- the worker side waits out each 429 itself --------------------------------------------------------


def gap_after_the_429(records: list[RecordedRequest]) -> float:
    """Seconds between the 429 and the request after it, on the stand-in's clock."""
    (refused,) = [index for index, record in enumerate(records) if record.status == 429]
    return records[refused + 1].time - records[refused].time


@pytest.mark.parametrize("endpoint", ["status", "result", "preview"])
def test_the_worker_side_waits_out_a_429s_retry_after(camb_standin, monkeypatch, tmp_path, endpoint):
    """Create, result, download and worker-side status calls wait the Retry-After the 429 asked for."""
    connect(monkeypatch, "camb_default", camb_standin, retries=1)
    run_id = finished_run(camb_standin)
    task_id = camb_standin.add_task(status="SUCCESS")
    camb_standin.inject("rate_limit", endpoint=endpoint, retry_after=1)
    with CambHook() as hook:
        if endpoint == "status":
            assert hook.get_task_status("text-to-voice", task_id).status == "SUCCESS"
        else:
            saved = TextToVoiceResultOperator(task_id="save", run_id=run_id, destination=tmp_path).execute(context())
            assert [entry["bytes"] for entry in saved] == [path.stat().st_size for path in sorted(tmp_path.iterdir())]
    records = camb_standin.requests(endpoint)
    assert [r.status for r in records][:2] == [429, 200]
    assert gap_after_the_429(records) >= 0.75  # the stand-in's clock: the Retry-After of 1 s, give or take


def test_speech_streamed_from_the_api_waits_out_a_429(camb_standin, monkeypatch, tmp_path):
    connect(monkeypatch, "camb_default", camb_standin, retries=1)
    run_id = finished_run(camb_standin, "tts")
    camb_standin.inject("rate_limit", endpoint="result", retry_after=1)
    saved = CambTextToSpeechResultOperator(task_id="save", run_id=run_id, destination=tmp_path).execute(context())
    assert saved["bytes"] == (tmp_path / f"camb_speech_run_{run_id}.wav").stat().st_size
    records = camb_standin.requests("result")
    assert [r.status for r in records] == [429, 200]
    assert gap_after_the_429(records) >= 0.75


POKE_DAG = """
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_camb.sensors.camb_task import CambTaskSensor

with DAG("{dag_id}", start_date=pendulum.datetime(2024, 1, 1), schedule=None) as dag:
    CambTaskSensor(task_id="wait", kind="text-to-voice", camb_task_id={task_id!r}, poll_interval=0.5, mode="poke")
"""


def test_a_poke_mode_sensor_waits_out_a_429(run_dag, camb_standin, monkeypatch):
    connect(monkeypatch, "camb_default", camb_standin, retries=1)
    task_id = camb_standin.add_task(status="SUCCESS")
    camb_standin.inject("rate_limit", endpoint="status", retry_after=1)
    result = run_dag.run(POKE_DAG.format(dag_id=f"rate_limited_poke_{next(ids)}", task_id=task_id))
    assert result.task_states == {"wait": "success"}
    assert result.tries["wait"] == 1  # waited out inside the poke, not by failing the try
    records = camb_standin.requests("status")
    assert [r.status for r in records] == [429, 200]
    assert gap_after_the_429(records) >= 0.75


# --- settings: read once per key, re-read after a while ------------------------------------------------


def test_waits_on_one_connection_read_it_once(camb_standin, monkeypatch):
    connect(monkeypatch, "camb_default", camb_standin)
    reads = count_settings_reads(monkeypatch)
    task_ids = [camb_standin.add_task(pending_seconds=0.3) for _ in range(50)]

    (events,) = run_all(waits(task_ids, "camb_default", poll_interval=0.1))

    assert [event["status"] for event in events] == ["SUCCESS"] * 50
    assert reads == {"camb_default": 1}


def test_a_rotated_key_is_picked_up_after_the_settings_expire(monkeypatch):
    clock = VirtualClock()  # the settings' clock: moved by hand, no test time spent waiting
    monkeypatch.setattr(_rate_limit, "time", clock)

    def use_key(key: str) -> None:
        monkeypatch.setenv("AIRFLOW_CONN_CAMB_ROTATING", json.dumps({"conn_type": "camb", "password": key}))

    async def keys_seen() -> list[str]:
        hook, seen = CambHook("camb_rotating"), []
        use_key("old-key")
        seen.append((await hook.asettings()).api_key)
        use_key("new-key")
        clock.now += _rate_limit.SETTINGS_TTL - 1
        seen.append((await hook.asettings()).api_key)  # still the cached settings
        clock.now += 2
        seen.append((await hook.asettings()).api_key)
        return seen

    assert asyncio.run(keys_seen()) == ["old-key", "old-key", "new-key"]


def test_a_failed_re_read_keeps_the_running_waits_on_the_settings_read_before(monkeypatch):
    clock = VirtualClock()
    monkeypatch.setattr(_rate_limit, "time", clock)
    monkeypatch.setenv("AIRFLOW_CONN_CAMB_GOING", json.dumps({"conn_type": "camb", "password": "the-key"}))

    async def keys_seen() -> list[str]:
        hook = CambHook("camb_going")
        seen = [(await hook.asettings()).api_key]
        monkeypatch.delenv("AIRFLOW_CONN_CAMB_GOING")  # the connection cannot be read any more
        clock.now += _rate_limit.SETTINGS_TTL + 1
        seen.append((await hook.asettings()).api_key)
        return seen

    assert asyncio.run(keys_seen()) == ["the-key", "the-key"]


# --- the connection extra ----------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [(None, None), ("", None), (5, 5.0), ("2.5", 2.5), (0.5, 0.5)])
def test_max_requests_per_second_is_read_from_the_extra(value, expected):
    extra = {} if value is None else {"max_requests_per_second": value}
    assert settings_from("c", None, None, "key", extra).max_requests_per_second == expected


@pytest.mark.parametrize("value", [0, -1, "fast", "inf", "nan", [5]])
def test_a_bad_max_requests_per_second_is_refused_naming_the_extra(value):
    with pytest.raises(CambInputError, match="max_requests_per_second"):
        settings_from("c", None, None, "key", {"max_requests_per_second": value})


@pytest.mark.parametrize("name", ["timeout", "retries", "backoff", "backoff_max"])
def test_an_empty_form_field_means_the_default(name):
    defaults = settings_from("c", None, None, "key", {})
    for empty in (None, ""):
        assert getattr(settings_from("c", None, None, "key", {name: empty}), name) == getattr(defaults, name)
