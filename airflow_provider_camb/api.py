"""What the CAMB API says, in one place.

Builds every request (validating input before anything is sent), and turns every raw reply into
a typed result or a typed error. The hook's sync (requests) and async (aiohttp) transports both
call these functions, so parsing and classification exist exactly once.
"""

from __future__ import annotations

import ipaddress
import json
import math
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from airflow_provider_camb._connection_form import (
    DEFAULT_BACKOFF,
    DEFAULT_BACKOFF_MAX,
    DEFAULT_BASE_URL,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
)
from airflow_provider_camb.exceptions import (
    CambApiError,
    CambAuthError,
    CambError,
    CambInputError,
    CambNotFoundError,
    CambPaymentRequiredError,
    CambRateLimitError,
    CambResponseError,
    CambServerError,
    CambTaskFailedError,
    CambValidationError,
)
from airflow_provider_camb.kinds import TEXT_TO_VOICE, CambKind, kind_of

MIN_DESCRIPTION_CHARS = 100
MIN_DESCRIPTION_WORDS = 18
MAX_INPUT_CHARS = 10_000


class TaskStatus:
    """The status strings CAMB documents. Others may appear; they count as not yet terminal."""

    PENDING = "PENDING"
    SUCCESS = "SUCCESS"
    ERROR = "ERROR"
    TIMEOUT = "TIMEOUT"
    PAYMENT_REQUIRED = "PAYMENT_REQUIRED"

    TERMINAL = frozenset({SUCCESS, ERROR, TIMEOUT, PAYMENT_REQUIRED})
    KNOWN = TERMINAL | {PENDING}


@dataclass(frozen=True)
class CambTaskStatus:
    """One status reply of ``GET /{kind}/{task_id}``: the same object for every CAMB task kind."""

    task_id: str
    status: str
    run_id: int | None = None
    message: str | dict[str, Any] | None = None
    exception_reason: str | None = None
    kind: str = TEXT_TO_VOICE.name

    @property
    def is_terminal(self) -> bool:
        return self.status in TaskStatus.TERMINAL

    @property
    def is_known(self) -> bool:
        return self.status in TaskStatus.KNOWN

    def run_id_or_raise(self) -> int:
        """Return the run id of a successful task; raise the error that explains any other end."""
        kind = kind_of(self.kind)
        task = f"CAMB {kind.label} task {self.task_id!r}"
        if self.status == TaskStatus.SUCCESS:
            if self.run_id is None:
                raise CambResponseError(
                    f"{task} reports SUCCESS but gave no run_id, so its result cannot be fetched. "
                    "Check the task again later or contact CAMB.AI support."
                )
            return self.run_id
        details = f"(exception_reason={self.exception_reason!r}, message={self.message!r})"
        if self.status == TaskStatus.PAYMENT_REQUIRED:
            raise CambPaymentRequiredError(
                f"{task} ended with PAYMENT_REQUIRED {details}: the CAMB.AI "
                "account is out of credits. Add credits, then run the task again; retrying now cannot help."
            )
        if self.status == TaskStatus.TIMEOUT:
            advice = "Retry the task; if it keeps timing out, contact CAMB.AI support with the task id."
        elif self.status == TaskStatus.ERROR:
            advice = kind.error_advice
        else:
            raise ValueError(f"{task} has not finished (status {self.status!r}).")
        raise CambTaskFailedError(f"{task} ended with status {self.status} {details}. {advice}")


#: The name 0.1.0 gave the status of a text-to-voice task; the same class serves every kind.
TextToVoiceStatus = CambTaskStatus


@dataclass(frozen=True)
class DownloadedPreview:
    """One preview audio file written by ``CambHook.download_preview``."""

    bytes: int
    sha256: str
    content_type: str | None


@dataclass(frozen=True)
class CambSettings:
    """Everything the hook needs from an Airflow connection, validated."""

    conn_id: str
    base_url: str
    api_key: str = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT
    retries: int = DEFAULT_RETRIES
    backoff: float = DEFAULT_BACKOFF
    backoff_max: float = DEFAULT_BACKOFF_MAX
    max_requests_per_second: float | None = None  # None: no cap (the shared limiter learns CAMB's limit)


@dataclass(frozen=True)
class ApiRequest:
    """One request to the CAMB API, described independently of the HTTP library that sends it."""

    method: Literal["GET", "POST"]
    path: str
    what: str
    params: dict[str, str] | None = None
    json: dict[str, Any] | None = None
    form: dict[str, str] | None = None

    @property
    def may_repeat(self) -> bool:
        """GETs are safe to repeat; a POST may start a paid task, so it is not repeated blindly."""
        return self.method == "GET"


# --- settings ---------------------------------------------------------------------------------


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def base_url_from(host: str | None, port: int | None, conn_id: str) -> str:
    """The API base URL from a connection's host (a URL or a bare host name) and port."""
    host = (host or "").strip()
    if not host:
        return DEFAULT_BASE_URL
    parts = urlsplit(host if "://" in host else f"https://{host}")
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise CambInputError(
            f"Connection {conn_id!r}: base URL {host!r} is not an http(s) URL. "
            f"Set its Host to a URL such as {DEFAULT_BASE_URL}, or leave it empty."
        )
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise CambInputError(
            f"Connection {conn_id!r}: base URL {host!r} uses plain http to a host that is not local, "
            "which would send the API key unencrypted. Use https (plain http is allowed only for loopback)."
        )
    netloc = parts.netloc
    if port and parts.port is None:
        netloc = f"{netloc}:{port}"
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def settings_from(
    conn_id: str, host: str | None, port: int | None, api_key: str | None, extra: dict[str, Any]
) -> CambSettings:
    """Validate a connection's fields into ``CambSettings``; refuse what cannot work."""
    key = (api_key or "").strip()
    if not key:
        raise CambInputError(
            f"Connection {conn_id!r} has no API key: put your CAMB.AI API key in its "
            "Password field (shown as 'API key')."
        )

    def number(name: str, default: float, minimum: float) -> float:
        value = extra.get(name)
        if value is None or value == "":  # a form field left empty: the default
            return default
        try:
            result = float(value)
        except (TypeError, ValueError):
            result = minimum - 1
        if result < minimum or result != result:
            raise CambInputError(
                f"Connection {conn_id!r}: extra {name!r} must be a number >= {minimum}, got {value!r}."
            )
        return result

    cap = number("max_requests_per_second", math.inf, 0.001)
    if not math.isfinite(cap) and extra.get("max_requests_per_second") not in (None, ""):
        raise CambInputError(
            f"Connection {conn_id!r}: extra 'max_requests_per_second' must be a finite number of requests per "
            f"second, got {extra['max_requests_per_second']!r}; leave it empty for no cap."
        )

    return CambSettings(
        conn_id=conn_id,
        base_url=base_url_from(host, port, conn_id),
        api_key=key,
        timeout=number("timeout", DEFAULT_TIMEOUT, 0.001),
        retries=int(number("retries", DEFAULT_RETRIES, 0)),
        backoff=number("backoff", DEFAULT_BACKOFF, 0),
        backoff_max=number("backoff_max", DEFAULT_BACKOFF_MAX, 0),
        max_requests_per_second=cap if math.isfinite(cap) else None,
    )


# --- requests (input is checked here, before anything is sent) ------------------------------


def _path_segment(value: str) -> str:
    """Percent-encode an id for one path segment, dots included, so no id can escape its path."""
    return quote(value, safe="").replace(".", "%2E")


def check_task_id(task_id: object) -> str:
    if not isinstance(task_id, str) or not task_id.strip():
        raise CambInputError(f"A CAMB task id must be a non-empty string, got {task_id!r}.")
    if len(task_id) > 1024:
        raise CambInputError(f"A CAMB task id is at most 1024 characters, got {len(task_id)}.")
    return task_id


def check_run_id(run_id: object) -> int:
    """A run id is a positive whole number (CAMB returns integers); digit strings from templates pass."""
    value: int | None = None
    if isinstance(run_id, int) and not isinstance(run_id, bool):
        value = run_id
    elif isinstance(run_id, str) and run_id.strip().isascii() and run_id.strip().isdigit():
        value = int(run_id.strip())
    if value is None or value < 0:
        raise CambInputError(f"A CAMB run id must be a whole number (the run_id of a SUCCESS status), got {run_id!r}.")
    return value


def _check_text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise CambInputError(f"{name} must be a string, got {type(value).__name__}.")
    if not value.strip():
        raise CambInputError(f"{name} must not be empty.")
    if len(value) > MAX_INPUT_CHARS:
        raise CambInputError(f"{name} is {len(value)} characters; at most {MAX_INPUT_CHARS} are accepted.")
    return value


def create_text_to_voice_request(
    text: object,
    voice_description: object,
    *,
    project_name: str | None = None,
    project_description: str | None = None,
    folder_id: int | None = None,
    check_description: bool = True,
) -> ApiRequest:
    """``POST /text-to-voice``; refuses input CAMB would reject, before it is sent."""
    body: dict[str, Any] = {
        "text": _check_text("text", text),
        "voice_description": _check_text("voice_description", voice_description),
    }
    description = body["voice_description"].strip()
    words = len(description.split())
    if check_description and (len(description) < MIN_DESCRIPTION_CHARS or words < MIN_DESCRIPTION_WORDS):
        raise CambInputError(
            f"voice_description has {len(description)} characters and {words} words; CAMB needs at least "
            f"{MIN_DESCRIPTION_CHARS} characters and {MIN_DESCRIPTION_WORDS} words to design a voice. "
            "Describe the voice in more detail (age, accent, tone, pace), or pass check_description=False."
        )
    for name, value in (("project_name", project_name), ("project_description", project_description)):
        if value is not None:
            body[name] = _check_text(name, value)
    if folder_id is not None:
        if isinstance(folder_id, bool) or not isinstance(folder_id, int):
            raise CambInputError(f"folder_id must be an integer, got {folder_id!r}.")
        body["folder_id"] = folder_id
    return ApiRequest("POST", "/text-to-voice", "creating a text-to-voice task", json=body)


def status_request(kind: str | CambKind, task_id: object) -> ApiRequest:
    """``GET /{kind}/{task_id}``."""
    camb_kind = kind_of(kind)
    task_id = check_task_id(task_id)
    return ApiRequest(
        "GET",
        camb_kind.status_path(_path_segment(task_id)),
        f"reading the status of CAMB {camb_kind.label} task {task_id!r}",
    )


def result_request(kind: str | CambKind, run_id: object, params: dict[str, str] | None = None) -> ApiRequest:
    """``GET /{result path}/{run_id}`` of a kind (e.g. ``/text-to-voice-result/{run_id}``)."""
    camb_kind = kind_of(kind)
    run = check_run_id(run_id)
    return ApiRequest(
        "GET", camb_kind.result_url_path(run), f"fetching the result of CAMB {camb_kind.label} run {run}", params=params
    )


def source_languages_request() -> ApiRequest:
    """``GET /source-languages``: free and authenticated, so it serves as a connection test."""
    return ApiRequest("GET", "/source-languages", "listing source languages")


# --- replies --------------------------------------------------------------------------------


def retry_after_seconds(headers: Any, now: float | None = None) -> float | None:
    """The delay a 429/503 asks for: ``Retry-After`` (seconds or HTTP date) or ``X-RateLimit-Reset``."""
    now = time.time() if now is None else now
    value = headers.get("Retry-After")
    if value is not None:
        try:
            delay = float(value)
        except ValueError:
            try:
                delay = parsedate_to_datetime(value).timestamp() - now
            except (TypeError, ValueError, IndexError, OverflowError):
                return None
        return max(0.0, delay) if math.isfinite(delay) else None  # "inf"/"nan" must not mean wait for ever
    reset = headers.get("X-RateLimit-Reset")
    if reset is not None:
        try:
            seconds = float(reset)
        except ValueError:
            return None
        if not math.isfinite(seconds):
            return None
        # An epoch timestamp or a delay in seconds: both appear in the wild.
        return max(0.0, seconds - now) if seconds > 1e9 else max(0.0, seconds)
    return None


def _detail(body: bytes) -> tuple[str, object]:
    """A short, readable explanation from an error body (JSON ``detail``, or the start of the text)."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply to parse
        text = " ".join(body.decode("utf-8", "replace").split())
        return (text[:200] + ("..." if len(text) > 200 else "")) or "(empty body)", None
    detail = parsed.get("detail", parsed) if isinstance(parsed, dict) else parsed
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                raw_loc = item.get("loc")
                loc = ".".join(str(p) for p in raw_loc if p != "body") if isinstance(raw_loc, list) else ""
                parts.append(f"{loc}: {item.get('msg', item)}" if loc else str(item.get("msg", item)))
            else:
                parts.append(str(item))
        return "; ".join(parts)[:500], detail
    return str(detail)[:500], detail


def classify_reply(request: ApiRequest, status: int, headers: Any, body: bytes, conn_id: str) -> Any:
    """Return the parsed JSON of a successful reply, or raise the typed error it means."""
    what = request.what
    if 200 <= status < 300:
        try:
            return json.loads(body)
        except (ValueError, RecursionError):
            snippet, _ = _detail(body)
            raise CambResponseError(
                f"CAMB replied to {what} with HTTP {status} but a body that is not JSON: {snippet}",
                http_status=status,
            ) from None
    message, detail = _detail(body)
    error: CambError
    if status in (401, 403):
        error = CambAuthError(
            f"CAMB refused the API key while {what} (HTTP {status}: {message}). Check the API key "
            f"(Password field) of Airflow connection {conn_id!r}.",
            http_status=status,
        )
    elif status == 402:
        error = CambPaymentRequiredError(
            f"CAMB says payment is required while {what} (HTTP 402: {message}). Add credits to the "
            "CAMB.AI account; retrying cannot help until then.",
            http_status=status,
        )
    elif status == 404:
        error = CambNotFoundError(
            f"CAMB found nothing while {what} (HTTP 404: {message}). Check the id, and that connection "
            f"{conn_id!r} uses the account that created it.",
            http_status=status,
        )
    elif status == 422:
        error = CambValidationError(
            f"CAMB rejected the request while {what} (HTTP 422): {message}. Fix the input and try again.",
            detail=detail,
        )
    elif status == 429:
        delay = retry_after_seconds(headers)
        error = CambRateLimitError(
            f"CAMB is rate limiting requests while {what} (HTTP 429"
            + (f", retry after {delay:.0f} s" if delay is not None else "")
            + ").",
            http_status=status,
            retry_after=delay,
            request_sent=False,
        )
    elif status in (408, 409) or status >= 500:
        error = CambServerError(
            f"CAMB had a server error while {what} (HTTP {status}: {message}).",
            http_status=status,
            retry_after=retry_after_seconds(headers),
        )
    else:
        error = CambApiError(f"CAMB replied HTTP {status} while {what}: {message}.", http_status=status)
    raise error


def _unreadable(what: str, problem: str) -> CambResponseError:
    return CambResponseError(f"CAMB's reply to {what} is not in the documented shape: {problem}.")


def parse_task_id(body: Any, kind: str | CambKind = TEXT_TO_VOICE) -> str:
    """The ``task_id`` of a create reply."""
    task_id = body.get("task_id") if isinstance(body, dict) else None
    if not isinstance(task_id, (str, int)) or isinstance(task_id, bool) or not str(task_id).strip():
        raise _unreadable(f"creating a {kind_of(kind).label} task", f"no task_id in {str(body)[:200]!r}")
    return str(task_id)


def parse_status(body: Any, task_id: str, kind: str | CambKind = TEXT_TO_VOICE) -> CambTaskStatus:
    """A status reply of any kind; unknown fields are ignored, unknown status strings pass through."""
    camb_kind = kind_of(kind)
    what = f"reading the status of CAMB {camb_kind.label} task {task_id!r}"
    if not isinstance(body, dict):
        raise _unreadable(what, f"expected a JSON object, got {type(body).__name__}")
    status = body.get("status")
    if not isinstance(status, str) or not status.strip():
        raise _unreadable(what, f"no status string in {str(body)[:200]!r}")
    raw_run_id = body.get("run_id")
    run_id: int | None = None
    if raw_run_id is not None:
        try:
            run_id = check_run_id(raw_run_id)
        except CambInputError:
            raise _unreadable(what, f"run_id {raw_run_id!r} is not a whole number") from None
    message = body.get("message")
    if message is not None and not isinstance(message, (str, dict)):
        message = json.dumps(message)
    reason = body.get("exception_reason")
    if reason is not None and not isinstance(reason, str):
        reason = json.dumps(reason)
    return CambTaskStatus(
        task_id=task_id,
        status=status.strip().upper(),
        run_id=run_id,
        message=message,
        exception_reason=reason,
        kind=camb_kind.name,
    )


def parse_previews(body: Any, run_id: int) -> list[str]:
    """The preview URLs of a result reply; a result without previews is an error."""
    what = result_request(TEXT_TO_VOICE, run_id).what
    previews = body.get("previews") if isinstance(body, dict) else None
    if not isinstance(previews, list) or not all(isinstance(url, str) for url in previews):
        raise _unreadable(what, "no list of preview URLs")
    if not previews:
        raise CambApiError(
            f"CAMB run {run_id} has no previews. Create the task again; contact CAMB.AI support if it repeats."
        )
    for url in previews:
        try:
            scheme = urlsplit(url).scheme
        except ValueError:  # e.g. "http://[": urlsplit refuses it
            raise _unreadable(what, "a preview link that is not a valid URL") from None
        if scheme not in ("http", "https"):
            raise _unreadable(what, f"a preview link with scheme {scheme!r}")
    return previews


def parse_voice_id(body: Any) -> int:
    """The ``voice_id`` of a create-custom-voice reply."""
    voice_id = body.get("voice_id") if isinstance(body, dict) else None
    try:
        return check_run_id(voice_id)
    except CambInputError:
        raise _unreadable("creating a custom voice", f"no integer voice_id in {str(body)[:200]!r}") from None


def parse_languages(body: Any) -> list[Any]:
    if not isinstance(body, list):
        raise _unreadable(source_languages_request().what, "expected a JSON list")
    return body


def url_host(url: str) -> str:
    """Only the host of a URL: preview links can be bearer links, so logs show no more."""
    return urlsplit(url).hostname or "?"
