"""The defaults the README promises, and the retry delays themselves (growth, jitter, cap).

- a connection with no extra: ``timeout`` 60 s, ``retries`` 3, ``backoff`` 1 s, ``backoff_max`` 30 s, no
  ``max_requests_per_second``; a failing request is then tried 4 times, over real HTTP, with the delays
  recorded instead of slept;
- every wait (sensors and waiting operators) lasts at most 24 hours unless told otherwise, and
  ``deferrable`` follows ``[operators] default_deferrable``.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from typing import Any

import pytest
import tenacity
from tenacity import RetryCallState

from airflow_provider_camb import _waiting
from airflow_provider_camb.api import status_request
from airflow_provider_camb.exceptions import CambRateLimitError, CambServerError
from airflow_provider_camb.hooks import camb as camb_hook_module
from airflow_provider_camb.hooks._retry import MAX_RETRY_AFTER, retry_policy
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.kinds import TTS
from airflow_provider_camb.operators.dubbing import CambDubbingOperator
from airflow_provider_camb.operators.text_to_sound import CambTextToSoundOperator
from airflow_provider_camb.operators.text_to_speech import CambTextToSpeechOperator, CambTranslatedTextToSpeechOperator
from airflow_provider_camb.operators.text_to_voice import TextToVoiceOperator
from airflow_provider_camb.sensors.camb_task import CambTaskSensor
from airflow_provider_camb.sensors.text_to_voice import TextToVoiceStatusSensor
from airflow_provider_camb.settings import settings_from
from tests.shared import DESCRIPTION, TEXT

DAY = 24 * 3600.0

#: One of each waiter: the sensors, and every create operator (which waits with wait_for_completion=True).
WAITERS: dict[str, Any] = {
    "CambTaskSensor": lambda: CambTaskSensor(task_id="w", kind="tts", camb_task_id="t"),
    "TextToVoiceStatusSensor": lambda: TextToVoiceStatusSensor(task_id="w", camb_task_id="t"),
    "TextToVoiceOperator": lambda: TextToVoiceOperator(task_id="c", text=TEXT, voice_description=DESCRIPTION),
    "CambTextToSpeechOperator": lambda: CambTextToSpeechOperator(task_id="c", text=TEXT, voice_id=1, language=1),
    "CambTranslatedTextToSpeechOperator": lambda: CambTranslatedTextToSpeechOperator(
        task_id="c", text=TEXT, voice_id=1, source_language=1, target_language=76
    ),
    "CambDubbingOperator": lambda: CambDubbingOperator(
        task_id="c", video_url="https://media.example.com/a.mp4", source_language=1, target_languages=[76]
    ),
    "CambTextToSoundOperator": lambda: CambTextToSoundOperator(task_id="c", prompt="Rain"),
}


# --- the connection ----------------------------------------------------------------------------------


def test_a_connection_without_extras_gets_the_documented_defaults(camb_standin, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_CAMB_PLAIN", camb_standin.connection_json())  # no extra at all
    settings = CambHook("camb_plain").settings
    assert (settings.timeout, settings.retries, settings.backoff, settings.backoff_max) == (60.0, 3, 1.0, 30.0)
    assert settings.max_requests_per_second is None
    assert settings_from("c", None, None, "key", {}).base_url == "https://client.camb.ai/apis"


def test_with_the_defaults_a_failing_request_is_tried_four_times_with_growing_delays(camb_standin, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_CAMB_PLAIN", camb_standin.connection_json())
    slept: list[float] = []
    monkeypatch.setattr(camb_hook_module, "Retrying", functools.partial(tenacity.Retrying, sleep=slept.append))
    camb_standin.inject("http_503", endpoint="status", times=10)
    with CambHook("camb_plain") as hook, pytest.raises(CambServerError, match="HTTP 503"):
        hook.get_task_status("text-to-voice", camb_standin.add_task())
    assert camb_standin.request_count("status") == 4  # 1 + retries (3)
    # backoff 1 s doubling, plus up to one backoff of jitter: 1-2 s, 2-3 s, 4-5 s
    assert len(slept) == 3
    for delay, (low, high) in zip(slept, [(1, 2), (2, 3), (4, 5)], strict=True):
        assert low <= delay <= high, slept


# --- the retry delays themselves ----------------------------------------------------------------------


def delays(settings: Any, attempt: int, error: BaseException, samples: int = 300) -> list[float]:
    """The waits ``retry_policy`` asks for after failed attempt number ``attempt``."""
    wait = retry_policy(status_request(TTS, "t"), settings, log=None)["wait"]
    found = []
    for _ in range(samples):
        state = RetryCallState(retry_object=tenacity.Retrying(), fn=None, args=(), kwargs={})
        state.attempt_number = attempt
        state.set_exception((type(error), error, None))
        found.append(wait(state))
    return found


SETTINGS = settings_from("c", None, None, "key", {"backoff": 0.5, "backoff_max": 4})
PASSING = CambServerError("HTTP 503", http_status=503)


@pytest.mark.parametrize(("attempt", "base"), [(1, 0.5), (2, 1.0), (3, 2.0)])
def test_each_delay_doubles_with_up_to_one_backoff_of_jitter(attempt, base):
    found = delays(SETTINGS, attempt, PASSING)
    assert all(base <= delay <= base + SETTINGS.backoff for delay in found)
    assert max(found) - min(found) > 0.8 * SETTINGS.backoff  # the jitter spreads them over the whole range
    assert len(set(found)) > 250  # not a few fixed values: waits started together drift apart


@pytest.mark.parametrize("attempt", [4, 5, 12, 60])
def test_no_delay_exceeds_backoff_max(attempt):
    found = delays(SETTINGS, attempt, PASSING)
    assert max(found) <= SETTINGS.backoff_max
    if attempt >= 5:  # 0.5 * 2**4 = 8 s > 4 s: capped every time
        assert set(found) == {SETTINGS.backoff_max}


def test_a_servers_retry_after_replaces_the_backoff_up_to_a_cap():
    assert set(delays(SETTINGS, 1, CambRateLimitError("429", retry_after=12.5), samples=5)) == {12.5}
    assert set(delays(SETTINGS, 1, CambRateLimitError("429", retry_after=10**9), samples=5)) == {MAX_RETRY_AFTER}


def test_the_default_backoff_is_capped_at_30_seconds():
    defaults = settings_from("c", None, None, "key", {})
    assert set(delays(defaults, 20, PASSING, samples=20)) == {30.0}


# --- waits ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("make", WAITERS.values(), ids=WAITERS)
def test_every_wait_lasts_24_hours_by_default(make):
    waiter = make()
    assert waiter.wait_timeout == DAY
    trigger = _waiting.trigger_for(waiter, "t")  # what a deferral stores in the trigger row
    assert DAY - 60 < trigger.deadline - time.time() <= DAY


def test_a_wait_started_in_the_triggerer_also_lasts_24_hours_by_default():
    sensor = CambTaskSensor(task_id="w", kind="tts", camb_task_id="t", start_from_trigger=True)
    assert sensor.start_trigger_args.timeout == timedelta(hours=24)
    assert sensor.start_trigger_args.trigger_kwargs["timeout"] == DAY


DEFERRABLE_BY_DEFAULT = """
import json
from airflow_provider_camb.operators.dubbing import CambDubbingOperator
from airflow_provider_camb.operators.text_to_sound import CambTextToSoundOperator
from airflow_provider_camb.operators.text_to_speech import CambTextToSpeechOperator
from airflow_provider_camb.operators.text_to_voice import TextToVoiceOperator
from airflow_provider_camb.sensors.camb_task import CambTaskSensor
from airflow_provider_camb.sensors.text_to_voice import TextToVoiceStatusSensor

waiters = [
    CambTaskSensor(task_id="a", kind="tts", camb_task_id="t"),
    TextToVoiceStatusSensor(task_id="b", camb_task_id="t"),
    TextToVoiceOperator(task_id="c", text="Hi.", voice_description="x"),
    CambTextToSpeechOperator(task_id="d", text="Hi.", voice_id=1, language=1),
    CambDubbingOperator(task_id="e", video_url="https://m.example.com/a.mp4", source_language=1, target_languages=[2]),
    CambTextToSoundOperator(task_id="f", prompt="Rain"),
]
print(json.dumps([waiter.deferrable for waiter in waiters]))
"""


@pytest.mark.parametrize("make", WAITERS.values(), ids=WAITERS)
def test_without_default_deferrable_waits_poll_from_the_worker(make):
    from airflow.providers.common.compat.sdk import conf

    assert conf.getboolean("operators", "default_deferrable") is False  # Airflow's own default, here unset
    assert make().deferrable is False


def test_with_default_deferrable_every_wait_defers(airflow_home, monkeypatch):
    monkeypatch.setenv("AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE", "True")
    child = subprocess.run(  # a fresh interpreter: the default is read when the classes are defined
        [sys.executable, "-c", textwrap.dedent(DEFERRABLE_BY_DEFAULT)], capture_output=True, text=True, check=False
    )
    assert child.returncode == 0, child.stderr[-3000:]
    assert json.loads(child.stdout.strip().splitlines()[-1]) == [True] * 6
