"""One rate limit per API key across every wait in one event loop (a triggerer), over real HTTP.

The stand-in's per-key limit (N requests per second, then 429 with Retry-After) plays CAMB's
unpublished limit. Waits run as ``TextToVoiceTrigger.run()`` tasks of one loop, as in a triggerer.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_camb.api import CambSettings, settings_from
from airflow_provider_camb.exceptions import CambInputError
from airflow_provider_camb.hooks import _rate_limit
from airflow_provider_camb.hooks._rate_limit import KeyLimiter
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.testing import CambStandIn, RecordedRequest
from airflow_provider_camb.triggers.text_to_voice import TextToVoiceTrigger

FAST = {"backoff": 0.05, "backoff_max": 0.2}


def connect(monkeypatch: pytest.MonkeyPatch, conn_id: str, standin: CambStandIn, **extra: Any) -> None:
    conn = json.loads(standin.connection_json())
    conn["extra"] = {**FAST, **extra}
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


async def wait_for(trigger: TextToVoiceTrigger) -> dict[str, Any]:
    events = [event.payload async for event in trigger.run()]
    assert len(events) == 1, events
    payload: dict[str, Any] = events[0]
    return payload


def waits(task_ids: list[str], conn_id: str, **kwargs: Any) -> list[TextToVoiceTrigger]:
    kwargs.setdefault("wait_before_first_poll", False)
    return [TextToVoiceTrigger(camb_task_id=task_id, camb_conn_id=conn_id, **kwargs) for task_id in task_ids]


def run_all(*groups: list[TextToVoiceTrigger], during: Callable[[], Any] | None = None) -> list[list[dict[str, Any]]]:
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
    """No max_requests_per_second: after the first 429s the waits keep under the limit (<= 2% refused)."""
    connect(monkeypatch, "camb_default", camb_standin)
    reads = count_settings_reads(monkeypatch)
    camb_standin.rate_limit(100)  # 320 waits polling every second ask for 320 requests per second
    task_ids = [camb_standin.add_task(pending_seconds=3.0) for _ in range(320)]

    (events,) = run_all(waits(task_ids, "camb_default", poll_interval=1.0))

    assert [event["status"] for event in events] == ["SUCCESS"] * 320
    assert reads == {"camb_default": 1}  # one connection read for 320 waits
    records = camb_standin.requests("status")
    first = min(record.time for record in records)
    early = [record for record in records if record.time < first + 1.0]
    later = [record for record in records if record.time >= first + 1.0]
    assert statuses(early)[429] > 0, "the stand-in's limit was never reached: the test proves nothing"
    refused = statuses(later)[429]
    assert refused <= 0.02 * len(later), (refused, len(later))


def test_a_retry_after_holds_back_every_wait_on_the_key_but_not_another_connection(camb_standin_factory, monkeypatch):
    """A 429 with Retry-After: 3 to one poll pauses every wait on that key; the other key's waits go on."""
    limited, other = camb_standin_factory(pending_seconds=5.0), camb_standin_factory(pending_seconds=5.0)
    connect(monkeypatch, "camb_a", limited)
    connect(monkeypatch, "camb_b", other)
    a_ids = [limited.add_task(pending_seconds=5.0) for _ in range(20)]
    b_ids = [other.add_task(pending_seconds=5.0) for _ in range(20)]

    async def refuse_one_poll_a_second_in() -> None:
        await asyncio.sleep(1.0)
        limited.inject("rate_limit", endpoint="status", times=1, retry_after=3)

    a_events, b_events = run_all(
        waits(a_ids, "camb_a", poll_interval=0.2),
        waits(b_ids, "camb_b", poll_interval=0.2),
        during=refuse_one_poll_a_second_in,
    )

    assert [e["status"] for e in a_events + b_events] == ["SUCCESS"] * 40
    a_records, b_records = limited.requests("status"), other.requests("status")
    (refused,) = [record for record in a_records if record.status == 429]
    # Polls already on the wire when the 429 came may still land just after it; then nothing for 3 s.
    held = (refused.time + 0.5, refused.time + 2.9)
    assert [r for r in a_records if held[0] <= r.time < held[1]] == []
    assert len([r for r in b_records if held[0] <= r.time < held[1]]) >= 20  # the other key kept polling
    resumed = sorted(r.time for r in a_records if r.time >= held[1])
    assert resumed and resumed[0] >= refused.time + 2.9  # the refused poll's wait honoured it too


# --- the cap ---------------------------------------------------------------------------------------


def test_max_requests_per_second_delays_polls_but_drops_none(camb_standin, monkeypatch):
    connect(monkeypatch, "camb_default", camb_standin, max_requests_per_second=10)
    task_ids = [camb_standin.add_task(pending_seconds=0.5) for _ in range(30)]

    (events,) = run_all(waits(task_ids, "camb_default", poll_interval=0.2))

    assert [event["status"] for event in events] == ["SUCCESS"] * 30
    records = camb_standin.requests("status")
    assert statuses(records)[429] == 0
    assert len(records) >= 30  # every wait polled until it saw SUCCESS
    per_second = Counter(math.floor(record.time - records[0].time) for record in records)
    assert max(per_second.values()) <= 11  # 10 per second, evenly spaced (one more at a window's edge)


def test_a_wait_whose_turn_comes_after_its_deadline_ends_as_a_timeout(camb_standin, monkeypatch):
    connect(monkeypatch, "camb_default", camb_standin, max_requests_per_second=1)
    task_ids = [camb_standin.add_task(pending_seconds=60) for _ in range(6)]

    (events,) = run_all(waits(task_ids, "camb_default", poll_interval=0.2, deadline=time.time() + 2.0))

    assert [event["outcome"] for event in events] == ["deadline"] * 6
    held_back = [event for event in events if "rate limit" in event["message"]]
    assert held_back, [event["message"] for event in events]
    assert "held back" in held_back[0]["message"] and camb_standin.api_key not in held_back[0]["message"]
    assert camb_standin.request_count("status") <= 4  # 1 per second for 2 s, never a burst past the cap


# --- the limiter's rules -----------------------------------------------------------------------------


def test_a_burst_of_429s_to_polls_sent_together_cuts_the_rate_once():
    async def burst() -> tuple[float, float, float]:
        limiter = KeyLimiter()
        for _ in range(50):
            limiter.answered()  # CAMB answered 50 polls in the last second
        sent_in = limiter.epoch
        limiter.refused(2.0, sent_in)
        after_first = limiter.rate
        for _ in range(30):  # the other polls of the same burst
            limiter.refused(2.0, sent_in)
        pause = limiter.paused_until - time.monotonic()
        return after_first, limiter.rate, pause

    after_first, after_burst, pause = asyncio.run(burst())
    assert after_first == pytest.approx(50 * _rate_limit.CUT)
    assert after_burst == after_first
    assert 1.9 < pause <= 2.0


def test_a_limit_is_active_only_after_a_429_or_with_a_cap():
    async def intervals() -> tuple[float, float, float]:
        free, capped = KeyLimiter(), KeyLimiter(cap=4.0)
        for _ in range(100):
            free.answered()
        before = free.interval
        free.refused(None, free.epoch)
        return before, free.interval, capped.interval

    before, after_429, capped = asyncio.run(intervals())
    assert before == 0.0  # no limit: polls pass without waiting
    assert after_429 == pytest.approx(1 / (100 * _rate_limit.CUT))
    assert capped == 0.25


# --- settings: read once per key, re-read after a while ------------------------------------------------


def test_waits_on_one_connection_read_it_once(camb_standin, monkeypatch):
    connect(monkeypatch, "camb_default", camb_standin)
    reads = count_settings_reads(monkeypatch)
    task_ids = [camb_standin.add_task(pending_seconds=0.3) for _ in range(50)]

    (events,) = run_all(waits(task_ids, "camb_default", poll_interval=0.1))

    assert [event["status"] for event in events] == ["SUCCESS"] * 50
    assert reads == {"camb_default": 1}


def test_a_rotated_key_is_picked_up_after_the_settings_expire(monkeypatch):
    monkeypatch.setattr(_rate_limit, "SETTINGS_TTL", 0.3)

    def use_key(key: str) -> None:
        monkeypatch.setenv("AIRFLOW_CONN_CAMB_ROTATING", json.dumps({"conn_type": "camb", "password": key}))

    async def keys_seen() -> list[str]:
        hook, seen = CambHook("camb_rotating"), []
        use_key("old-key")
        seen.append((await hook.asettings()).api_key)
        use_key("new-key")
        seen.append((await hook.asettings()).api_key)  # still the cached settings
        await asyncio.sleep(0.4)
        seen.append((await hook.asettings()).api_key)
        return seen

    assert asyncio.run(keys_seen()) == ["old-key", "old-key", "new-key"]


def test_a_failed_re_read_keeps_the_running_waits_on_the_settings_read_before(monkeypatch):
    monkeypatch.setattr(_rate_limit, "SETTINGS_TTL", 0.2)
    monkeypatch.setenv("AIRFLOW_CONN_CAMB_GOING", json.dumps({"conn_type": "camb", "password": "the-key"}))

    async def keys_seen() -> list[str]:
        hook = CambHook("camb_going")
        seen = [(await hook.asettings()).api_key]
        monkeypatch.delenv("AIRFLOW_CONN_CAMB_GOING")  # the connection cannot be read any more
        await asyncio.sleep(0.3)
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


def test_the_worker_side_keeps_honouring_retry_after(camb_standin, monkeypatch):
    """The sync path (create, result, download, worker-side status) waits out a 429's Retry-After itself."""
    connect(monkeypatch, "camb_default", camb_standin, retries=1)
    camb_standin.inject("rate_limit", endpoint="status", times=1, retry_after=1)
    task_id = camb_standin.add_task(status="SUCCESS")
    with CambHook() as hook:
        assert hook.get_task_status("text-to-voice", task_id).status == "SUCCESS"
    first, second = camb_standin.requests("status")
    assert (first.status, second.status) == (429, 200)
    assert second.time - first.time >= 1.0
