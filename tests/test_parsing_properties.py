"""Property-based tests of reply parsing: whatever CAMB (or a proxy in front of it) sends, the provider
returns a typed result or raises one of its own typed errors (a ``CambError``), never a stray
KeyError, TypeError, AttributeError, RecursionError or a ValueError that is not ours.
"""

from __future__ import annotations

import json
import math
import time
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict
from requests.structures import CaseInsensitiveDict

from airflow_provider_camb.api import (
    ApiRequest,
    CambTaskStatus,
    TaskStatus,
    classify_reply,
    parse_status,
    parse_task_id,
    result_request,
    retry_after_seconds,
    source_languages_request,
    status_request,
)
from airflow_provider_camb.exceptions import (
    CambError,
    CambRateLimitError,
    CambResponseError,
    CambServerError,
)
from airflow_provider_camb.kinds import TEXT_TO_VOICE
from airflow_provider_camb.kinds.text_to_voice import parse_previews, parse_voice_id
from tests.shared import DESCRIPTION

PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

REQUESTS: list[ApiRequest] = [
    status_request(TEXT_TO_VOICE, "task-1"),
    result_request(TEXT_TO_VOICE, 7),
    source_languages_request(),
    TEXT_TO_VOICE.create_request({"text": "Hello there.", "voice_description": DESCRIPTION}),
]

# --- strategies -------------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
)
#: Any value ``json.loads`` can produce (it accepts NaN and Infinity, so those are included).
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5), st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)
status_strings = st.one_of(
    st.sampled_from([*sorted(TaskStatus.KNOWN), "success", " SUCCESS ", "", "  ", "QUEUED_FOR_GPU"]),
    st.text(max_size=20),
)
run_ids = st.one_of(
    st.integers(min_value=-5, max_value=2**64),
    st.sampled_from(["12", " 12 ", "1.5", "abc", "١٢", "", True, False, 3.0, None, [], {}]),
    json_values,
)
#: Status replies near the documented shape, so parsing goes past its first checks, with stray fields.
status_replies = st.fixed_dictionaries(
    {},
    optional={
        "status": st.one_of(status_strings, json_values),
        "run_id": run_ids,
        "message": json_values,
        "exception_reason": json_values,
        "extra_field": json_values,
    },
)
urls = st.one_of(
    st.text(max_size=30),
    st.builds(lambda host, path: f"https://{host}/{path}", st.text(max_size=12), st.text(max_size=12)),
    st.sampled_from(
        [
            "https://storage.example.com/p/0.wav?token=x",
            "http://127.0.0.1:1/a.wav",
            "ftp://example.com/a.wav",
            "http://[",
            "https://[::1/x",
            "http://a\uff03b/x",
            "file:///etc/passwd",
            "",
        ]
    ),
)
preview_replies = st.one_of(
    json_values,
    st.fixed_dictionaries({"previews": st.one_of(st.lists(urls, max_size=4), json_values)}),
)
id_replies = st.one_of(
    json_values,
    st.fixed_dictionaries({"task_id": json_values}),
    st.fixed_dictionaries({"voice_id": run_ids}),
)
header_values = st.one_of(
    st.text(max_size=40),
    st.integers(min_value=-(10**12), max_value=10**12).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["inf", "-inf", "nan", "1e400", "Infinity", "1e9", "Wed, 21 Oct 2015 07:28:00 GMT"]),
    st.datetimes(timezones=st.just(timezone.utc)).map(lambda d: format_datetime(d, usegmt=True)),
)
header_maps = st.dictionaries(
    st.sampled_from(["Retry-After", "X-RateLimit-Reset", "retry-after", "Content-Type", "X-Other"]),
    header_values,
    max_size=3,
)
json_bodies = json_values.map(lambda value: json.dumps(value).encode())
error_bodies = st.one_of(
    st.binary(max_size=200),
    json_bodies,
    st.fixed_dictionaries({"detail": json_values}).map(lambda value: json.dumps(value).encode()),
    st.lists(
        st.fixed_dictionaries({}, optional={"loc": json_values, "msg": json_values, "type": json_values}),
        max_size=3,
    ).map(lambda items: json.dumps({"detail": items}).encode()),
    st.sampled_from([b"", b"<html><body>502 Bad Gateway</body></html>", b"\xff\xfe\x00", b"null"]),
)
status_codes = st.one_of(
    st.sampled_from([200, 201, 204, 400, 401, 402, 403, 404, 408, 409, 422, 429, 500, 502, 503, 504]),
    st.integers(min_value=-1, max_value=1000),
)

#: The case-insensitive header mappings the two transports hand over (requests, aiohttp).
MAPPINGS: list[Any] = [CaseInsensitiveDict, CIMultiDict]

# --- helpers ----------------------------------------------------------------------------------------


def typed_or_camb_error(call: Any) -> tuple[bool, Any]:
    """Run ``call``; return (True, result), or (False, error) for a CambError; anything else fails the test."""
    try:
        result = call()
    except CambError as error:
        caught = error
    else:
        return True, result
    assert str(caught), "a typed error must carry a message"
    return False, caught


# --- classify_reply ----------------------------------------------------------------------------------


@PROPERTY
@given(
    request=st.sampled_from(REQUESTS),
    status=status_codes,
    headers=header_maps,
    body=st.one_of(error_bodies, json_bodies),
)
@example(request=REQUESTS[0], status=422, headers={}, body=b'{"detail": [{"loc": 5, "msg": "bad"}]}')
@example(request=REQUESTS[0], status=422, headers={}, body=b'{"detail": [{"loc": null}]}')
@example(request=REQUESTS[0], status=200, headers={}, body=b"[" * 100_000)
@example(request=REQUESTS[0], status=500, headers={}, body=b"[" * 100_000)
def test_classify_reply_returns_json_or_raises_a_camb_error(
    request: ApiRequest, status: int, headers: dict[str, str], body: bytes
) -> None:
    ok, outcome = typed_or_camb_error(lambda: classify_reply(request, status, headers, body, "camb_default"))
    if ok:
        assert 200 <= status < 300
        assert outcome == json.loads(body) or outcome != outcome  # NaN is never equal to itself


@PROPERTY
@given(
    request=st.sampled_from(REQUESTS),
    status=status_codes.filter(lambda code: not 200 <= code < 300),
    headers=header_maps,
    body=error_bodies,
)
def test_every_error_status_raises_and_only_passing_faults_are_transient(
    request: ApiRequest, status: int, headers: dict[str, str], body: bytes
) -> None:
    with pytest.raises(CambError) as raised:
        classify_reply(request, status, headers, body, "camb_default")
    assert raised.value.transient == (status in (408, 409, 429) or status >= 500)
    assert request.what in str(raised.value)


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


@PROPERTY
@given(
    request=st.sampled_from(REQUESTS),
    status=st.integers(200, 299),
    body=st.binary(max_size=200).filter(lambda body: not _is_json(body)),
)
def test_a_success_status_with_a_body_that_is_not_json_is_a_transient_response_error(
    request: ApiRequest, status: int, body: bytes
) -> None:
    with pytest.raises(CambResponseError) as raised:
        classify_reply(request, status, {}, body, "camb_default")
    assert raised.value.transient
    assert f"CAMB replied to {request.what} with HTTP {status} but a body that is not JSON" in str(raised.value)


def test_a_reply_nested_too_deeply_to_parse_is_a_typed_error_not_a_recursion_error() -> None:
    with pytest.raises(CambResponseError):
        classify_reply(REQUESTS[0], 200, {}, b"[" * 100_000, "camb_default")
    with pytest.raises(CambServerError):
        classify_reply(REQUESTS[0], 502, {}, b"[" * 100_000, "camb_default")


def test_a_validation_detail_with_a_non_list_loc_still_gives_a_readable_error() -> None:
    with pytest.raises(CambError, match="bad"):
        classify_reply(REQUESTS[3], 422, {}, b'{"detail": [{"loc": 5, "msg": "bad"}]}', "camb_default")


# --- parse_status ------------------------------------------------------------------------------------


@PROPERTY
@given(body=st.one_of(status_replies, json_values))
def test_parse_status_gives_a_well_formed_status_or_a_response_error(body: Any) -> None:
    ok, outcome = typed_or_camb_error(lambda: parse_status(body, "task-1", TEXT_TO_VOICE))
    if not ok:
        assert isinstance(outcome, CambResponseError)
        return
    status: CambTaskStatus = outcome
    assert status.task_id == "task-1"
    assert isinstance(status.status, str) and status.status == status.status.strip().upper() and status.status
    assert status.run_id is None or (isinstance(status.run_id, int) and status.run_id >= 0)
    assert status.message is None or isinstance(status.message, (str, dict))
    assert status.exception_reason is None or isinstance(status.exception_reason, str)


@PROPERTY
@given(body=status_replies)
def test_a_terminal_status_always_yields_a_run_id_or_a_camb_error(body: Any) -> None:
    ok, status = typed_or_camb_error(lambda: parse_status(body, "task-1", TEXT_TO_VOICE))
    if ok and status.is_terminal:
        ok, run_id = typed_or_camb_error(status.run_id_or_raise)
        if ok:
            assert status.status == TaskStatus.SUCCESS and run_id == status.run_id


@PROPERTY
@given(
    status=st.text(min_size=1, max_size=20).filter(lambda s: s.strip()),
    extra=st.dictionaries(st.text(max_size=10).filter(lambda k: k not in {"status", "run_id"}), json_values),
)
def test_unknown_status_strings_and_extra_fields_pass_through(status: str, extra: dict[str, Any]) -> None:
    parsed = parse_status({**extra, "status": status}, "task-1", TEXT_TO_VOICE)
    assert parsed.status == status.strip().upper()
    assert parsed.is_terminal == (parsed.status in TaskStatus.TERMINAL)


# --- parse_previews, parse_task_id, parse_voice_id ---------------------------------------------------


@PROPERTY
@given(body=preview_replies)
@example(body={"previews": ["http://["]})
@example(body={"previews": ["http://a\uff03b/x"]})
def test_parse_previews_gives_http_urls_or_a_camb_error(body: Any) -> None:
    ok, previews = typed_or_camb_error(lambda: parse_previews(body, TEXT_TO_VOICE, 7))
    if ok:
        assert previews and all(isinstance(url, str) for url in previews)
        assert all(url.split(":", 1)[0].lower() in ("http", "https") for url in previews)


@pytest.mark.parametrize("url", ["http://[", "https://[::1/x", "http://a\uff03b/x"])
def test_a_preview_link_that_is_not_a_valid_url_is_a_response_error(url: str) -> None:
    with pytest.raises(CambResponseError):
        parse_previews({"previews": [url]}, TEXT_TO_VOICE, 7)


@PROPERTY
@given(body=id_replies)
def test_parse_task_id_gives_a_non_empty_string_or_a_response_error(body: Any) -> None:
    ok, outcome = typed_or_camb_error(lambda: parse_task_id(body, TEXT_TO_VOICE))
    if ok:
        assert isinstance(outcome, str) and outcome.strip()
    else:
        assert isinstance(outcome, CambResponseError)


@PROPERTY
@given(body=id_replies)
def test_parse_voice_id_gives_a_whole_number_or_a_response_error(body: Any) -> None:
    ok, outcome = typed_or_camb_error(lambda: parse_voice_id(body))
    if ok:
        assert isinstance(outcome, int) and not isinstance(outcome, bool) and outcome >= 0
    else:
        assert isinstance(outcome, CambResponseError)


# --- retry_after_seconds -----------------------------------------------------------------------------


@PROPERTY
@given(
    headers=header_maps,
    mapping=st.sampled_from(MAPPINGS),
    now=st.floats(min_value=0, max_value=4e9),
)
@example(headers={"Retry-After": "inf"}, mapping=CaseInsensitiveDict, now=time.time())
@example(headers={"X-RateLimit-Reset": "inf"}, mapping=CaseInsensitiveDict, now=time.time())
@example(headers={"Retry-After": "nan"}, mapping=CaseInsensitiveDict, now=time.time())
def test_retry_after_is_none_or_a_finite_non_negative_delay(headers: dict[str, str], mapping: Any, now: float) -> None:
    ok, delay = typed_or_camb_error(lambda: retry_after_seconds(mapping(headers), now=now))
    assert ok, "retry_after_seconds never raises"
    assert delay is None or (isinstance(delay, float) and math.isfinite(delay) and delay >= 0)


@pytest.mark.parametrize("value", ["inf", "Infinity", "1e400", "nan"])
def test_a_retry_after_that_is_not_a_finite_number_is_ignored_not_an_endless_wait(value: str) -> None:
    assert retry_after_seconds({"Retry-After": value}) is None
    assert retry_after_seconds({"X-RateLimit-Reset": value}) is None


@PROPERTY
@given(seconds=st.integers(min_value=0, max_value=86_400))
def test_retry_after_in_seconds_is_read_exactly(seconds: int) -> None:
    assert retry_after_seconds(CaseInsensitiveDict({"retry-after": str(seconds)})) == seconds


@PROPERTY
@given(seconds=st.integers(min_value=0, max_value=86_400))
def test_retry_after_as_an_http_date_is_the_time_until_then(seconds: int) -> None:
    now = 1_700_000_000.0
    when = format_datetime(datetime.fromtimestamp(now + seconds, tz=timezone.utc), usegmt=True)
    assert retry_after_seconds(CIMultiDict({"Retry-After": when}), now=now) == pytest.approx(seconds, abs=1)


@PROPERTY
@given(request=st.sampled_from(REQUESTS), seconds=st.integers(min_value=0, max_value=3600))
def test_a_429_carries_the_delay_it_asked_for(request: ApiRequest, seconds: int) -> None:
    headers = CaseInsensitiveDict({"Retry-After": str(seconds)})
    with pytest.raises(CambRateLimitError) as raised:
        classify_reply(request, 429, headers, b"slow down", "camb_default")
    assert raised.value.retry_after == seconds and raised.value.transient
