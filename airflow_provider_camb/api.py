"""What the CAMB API says, in one place: the wire core under every kind.

Requests as plain data (``ApiRequest`` to the API, ``LinkRequest`` to a storage link), the status of a
task of any kind, the whole numbers ids are made of, and every raw reply turned into a typed result or
a typed error. The hook's sync (requests) and async (aiohttp) transports both call these functions, so
parsing and classification exist exactly once. What differs per kind (its create body, its result)
lives in its module under ``kinds``; connection settings in ``settings``.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Literal, overload
from urllib.parse import quote, urlsplit

from airflow_provider_camb import _deprecated
from airflow_provider_camb._redaction import scrub, scrub_json
from airflow_provider_camb.exceptions import (
    CambApiError,
    CambAuthError,
    CambError,
    CambInputError,
    CambLinkRefusedError,
    CambNotFoundError,
    CambNotReadableYetError,
    CambPaymentRequiredError,
    CambRateLimitError,
    CambResponseError,
    CambServerError,
    CambTaskFailedError,
    CambValidationError,
)

if TYPE_CHECKING:  # the kinds build on this module, so it never imports them at run time
    from airflow_provider_camb.kinds import CambKind
else:  # the 0.1.0 names, each with a warning once (type checkers see only the new ones)
    __getattr__ = _deprecated.module_getattr(__name__)

#: Seconds after this provider created a task in which a 404 for it is read-after-create lag, not an unknown id.
READ_AFTER_CREATE_LAG = 30.0
#: The largest whole number accepted as an id or count: a signed 64-bit integer, what CAMB's database can hold.
MAX_WHOLE_NUMBER = 2**63 - 1


class TaskStatus:
    """The status strings CAMB documents. Others may appear; they count as not yet terminal."""

    PENDING = "PENDING"
    SUCCESS = "SUCCESS"
    ERROR = "ERROR"
    TIMEOUT = "TIMEOUT"
    PAYMENT_REQUIRED = "PAYMENT_REQUIRED"

    TERMINAL = frozenset({SUCCESS, ERROR, TIMEOUT, PAYMENT_REQUIRED})
    KNOWN = TERMINAL | {PENDING}
    #: The ends of a task that a retry replaces with a new task (that is what a retry is for).
    REPLACED_BY_A_RETRY = frozenset({ERROR, TIMEOUT, PAYMENT_REQUIRED})


@dataclass(frozen=True)
class CambTaskStatus:
    """One status reply of ``GET /{kind}/{task_id}``: the same object for every CAMB task kind."""

    task_id: str
    status: str
    run_id: int | None = None
    message: str | dict[str, Any] | None = None
    exception_reason: str | None = None
    kind: CambKind = field(kw_only=True)

    @property
    def is_terminal(self) -> bool:
        return self.status in TaskStatus.TERMINAL

    @property
    def is_known(self) -> bool:
        return self.status in TaskStatus.KNOWN

    def run_id_or_raise(self) -> int:
        """Return the run id of a successful task; raise the error that explains any other end."""
        kind = self.kind
        task = f"CAMB {kind.label} task {self.task_id!r}"
        if self.status == TaskStatus.SUCCESS:
            if self.run_id is None:
                raise CambResponseError(
                    f"{task} reports SUCCESS but gave no run_id, so its result cannot be fetched. "
                    "Check the task again later or contact CAMB.AI support."
                )
            return self.run_id
        if self.status == TaskStatus.PAYMENT_REQUIRED:
            raise CambPaymentRequiredError(f"{self.reason}: the CAMB.AI account is out of credits. {self.advice}")
        if self.status not in (TaskStatus.TIMEOUT, TaskStatus.ERROR):
            raise ValueError(f"{task} has not finished (status {self.status!r}).")
        raise CambTaskFailedError(f"{self.reason}. {self.advice}")

    @property
    def reason(self) -> str:
        """What happened to a task that did not succeed: its status and CAMB's reason and message."""
        details = f"(exception_reason={self.exception_reason!r}, message={self.message!r})"
        verb = "ended with" if self.status == TaskStatus.PAYMENT_REQUIRED else "ended with status"
        return f"CAMB {self.kind.label} task {self.task_id!r} {verb} {self.status} {details}"

    @property
    def advice(self) -> str:
        """What to do about a task that ended with ERROR, TIMEOUT or PAYMENT_REQUIRED."""
        if self.status == TaskStatus.PAYMENT_REQUIRED:
            return "Add credits, then run the task again; retrying now cannot help."
        if self.status == TaskStatus.TIMEOUT:
            return "Retry the task; if it keeps timing out, contact CAMB.AI support with the task id."
        return self.kind.error_advice


@dataclass(frozen=True)
class DownloadedFile:
    """One file streamed by the hook (a preview, speech, sound, a dubbed track): its size, digest and type."""

    bytes: int
    sha256: str
    content_type: str | None


@dataclass(frozen=True)
class ApiRequest:
    """One request to the CAMB API, described independently of the HTTP library that sends it."""

    method: Literal["GET", "POST"]
    path: str
    what: str
    params: dict[str, str] | None = None
    json: dict[str, Any] | None = None
    form: dict[str, str] | None = None
    #: Epoch seconds until which a 404 is read-after-create lag (a passing fault), not an unknown id.
    not_found_until: float | None = None
    #: A POST that only reads (the bulk results): safe to repeat like a GET.
    reads_only: bool = False

    @property
    def may_repeat(self) -> bool:
        """GETs are safe to repeat; a POST may start a paid task, so it is not repeated blindly."""
        return self.method == "GET" or self.reads_only


@dataclass(frozen=True)
class LinkRequest:
    """A GET of a result link on a storage host (a preview, ``output_url``, ``audio_url``): a bearer link,
    fetched without the API key and shown nowhere beyond its host."""

    url: str = field(repr=False)
    what: str
    method: Literal["GET"] = "GET"
    not_found_until: None = None  # a link is never read-after-create lag
    may_repeat: bool = True  # a GET

    @classmethod
    def of(cls, url: str, what: str) -> LinkRequest:
        """The request for ``url``, described by ``what`` it holds and its host alone."""
        return cls(url, f"downloading {what} from {url_host(url)}")


# --- requests (input is checked here, before anything is sent) ------------------------------


def _path_segment(value: str) -> str:
    """Percent-encode an id for one path segment, dots included, so no id can escape its path."""
    return quote(value, safe="").replace(".", "%2E")


#: What a task id reads as when the XCom that should hold it was empty (a template rendered nothing).
_MISSING_IDS = frozenset({"", "none", "null", "[]", "{}"})


def check_task_id(task_id: object) -> str:
    if not isinstance(task_id, str) or task_id.strip().lower() in _MISSING_IDS:
        raise CambInputError(
            f"A CAMB task id must be a non-empty string, got {task_id!r}: the upstream XCom that should hold "
            "it is probably missing (did the create task return the id, and does the template pull the right task?)."
        )
    if len(task_id) > 1024:
        raise CambInputError(f"A CAMB task id is at most 1024 characters, got {len(task_id)}.")
    return task_id


def parse_whole_number(value: object) -> int | None:
    """The one parser of whole numbers: an int, or a digit string (what templates render); None otherwise.

    Booleans are not numbers here. Range checks are ``whole_number``'s.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and (text := value.strip()).isascii() and text.isdigit() and len(text) <= 100:
        return int(text)
    return None


@overload
def whole_number(name: str, value: object, *, minimum: int = 1, hint: str = "") -> int: ...
@overload
def whole_number(name: str, value: object, *, optional: bool, minimum: int = 1, hint: str = "") -> int | None: ...
def whole_number(name: str, value: object, *, optional: bool = False, minimum: int = 1, hint: str = "") -> int | None:
    """A whole number from ``minimum`` (default 1) to ``MAX_WHOLE_NUMBER`` (``parse_whole_number``'s; booleans
    are not), or None for None when ``optional``; a ``CambInputError`` naming ``name`` otherwise."""
    if value is None and optional:
        return None
    number = parse_whole_number(value)
    if number is None or not minimum <= number <= MAX_WHOLE_NUMBER:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:60] + "..."
        raise CambInputError(f"{name} must be a whole number from {minimum} to 2**63-1{hint}, got {shown}.")
    return number


def check_run_id(run_id: object) -> int:
    """A run id is a whole number from 1 (CAMB returns integers); digit strings from templates pass."""
    return whole_number("A CAMB run id", run_id, hint=" (the run_id of a SUCCESS status)")


def status_request(kind: CambKind, task_id: object, *, created_at: float | None = None) -> ApiRequest:
    """``GET /{kind}/{task_id}``; ``created_at`` (epoch seconds, when this provider created the task) makes
    a 404 within ``READ_AFTER_CREATE_LAG`` seconds of it a passing fault."""
    task_id = check_task_id(task_id)
    return ApiRequest(
        "GET",
        kind.status_path(_path_segment(task_id)),
        f"reading the status of CAMB {kind.label} task {task_id!r}",
        not_found_until=None if created_at is None else created_at + READ_AFTER_CREATE_LAG,
    )


def result_what(kind: CambKind, run_id: int) -> str:
    """What fetching the result of a run is, in errors and logs."""
    return f"fetching the result of CAMB {kind.label} run {run_id}"


def result_request(kind: CambKind, run_id: object, output_type: object = None) -> ApiRequest:
    """``GET /{result path}/{run_id}`` of a kind; a media kind's takes ``output_type`` (default ``FILE_URL``)."""
    run = check_run_id(run_id)
    params = None
    if kind.output_types or output_type is not None:
        params = {"output_type": check_output_type(kind, "FILE_URL" if output_type is None else output_type)}
    return ApiRequest("GET", kind.result_url_path(run), result_what(kind, run), params=params)


def check_output_type(kind: CambKind, output_type: object) -> str:
    """The ``output_type`` of a kind whose result is one media file (``RAW_BYTES`` or ``FILE_URL``)."""
    if not kind.output_types:
        raise CambInputError(f"A CAMB {kind.label} result is not one media file; it has no output_type.")
    if output_type not in kind.output_types:
        raise CambInputError(f"output_type must be one of {kind.output_types}, got {output_type!r}.")
    return str(output_type)


#: Run ids per bulk result request: keeps each reply small (camb-api.md, section 11).
BULK_RESULTS_MAX = 100


def bulk_results_request(kind: CambKind, run_ids: object) -> ApiRequest:
    """``POST /{bulk result path}`` with ``{"run_ids": [...]}``: the results of up to ``BULK_RESULTS_MAX`` runs."""
    if not kind.bulk_result_path:
        raise CambInputError(f"CAMB has no bulk result endpoint for {kind.label} runs.")
    if not isinstance(run_ids, (list, tuple)) or not 0 < len(run_ids) <= BULK_RESULTS_MAX:
        raise CambInputError(f"A bulk result request takes 1 to {BULK_RESULTS_MAX} run ids, got {run_ids!r}.")
    runs = [check_run_id(run_id) for run_id in run_ids]
    return ApiRequest(
        "POST",
        f"/{kind.bulk_result_path}",
        f"fetching the results of {len(runs)} CAMB {kind.label} runs",
        json={"run_ids": runs},
        reads_only=True,
    )


def parse_bulk_results(body: Any, kind: CambKind, run_ids: list[int]) -> dict[int, Any]:
    """The values of a bulk result reply by run id; runs missing from it are left out (ask again later)."""
    if not isinstance(body, dict):
        raise unreadable(f"fetching the results of CAMB {kind.label} runs", "expected a JSON object")
    return {run_id: body[str(run_id)] for run_id in run_ids if body.get(str(run_id)) is not None}


_LISTING_LANGUAGES = "listing source languages"


def source_languages_request() -> ApiRequest:
    """``GET /source-languages``: free and authenticated, so it serves as a connection test."""
    return ApiRequest("GET", "/source-languages", _LISTING_LANGUAGES)


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


def _detail(body: bytes, secret: str = "") -> tuple[str, object]:
    """A short explanation from an error body (JSON ``detail``, or the start of the text), without ``secret``."""
    try:
        parsed = scrub_json(json.loads(body), secret)
    except (ValueError, RecursionError):  # RecursionError: nested too deeply to parse
        text = " ".join(scrub(body.decode("utf-8", "replace"), secret).split())
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
        return scrub("; ".join(parts), secret)[:500], detail
    return scrub(str(detail), secret)[:500], detail


def classify_reply(
    request: ApiRequest | LinkRequest, status: int, headers: Any, body: bytes, conn_id: str, *, secret: str = ""
) -> Any:
    """Return the parsed JSON of a successful reply, or raise the typed error it means.

    ``secret`` (the connection's API key) is taken out of everything the reply brought, before it can
    reach a message, a log line or a trigger event.
    """
    what = request.what
    if 200 <= status < 300:
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            snippet, _ = _detail(body, secret)
            raise CambResponseError(
                f"CAMB replied to {what} with HTTP {status} but a body that is not JSON: {snippet}",
                http_status=status,
            ) from None
        # Only a body with the key in it, an escape that could spell it or a UTF-16/32 encoding needs the walk.
        walk = secret and (secret.encode() in body or b"\\" in body or b"\0" in body)
        return scrub_json(parsed, secret) if walk else parsed
    message, detail = _detail(body, secret)
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
    elif status == 404 and request.not_found_until is not None and time.time() < request.not_found_until:
        error = CambNotReadableYetError(
            f"CAMB does not know the task yet while {what} (HTTP 404: {message}), moments after it was created: "
            "read-after-create lag, read again.",
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


def classify_link_reply(
    request: LinkRequest, status: int, headers: Any, body: bytes, conn_id: str, *, secret: str = ""
) -> Any:
    """``classify_reply`` for a bearer link on a storage host: there 401/403 mean the link, never the key."""
    if status in (401, 403):
        raise CambLinkRefusedError(
            f"The storage host refused the link while {request.what} (HTTP {status}): the link expired or "
            "was refused. The API key is never sent to storage hosts, so it is not the cause; fetch the "
            "result again for fresh links (run this task again).",
            http_status=status,
        )
    return classify_reply(request, status, headers, body, conn_id, secret=secret)


def unreadable(what: str, problem: str) -> CambResponseError:
    return CambResponseError(f"CAMB's reply to {what} is not in the documented shape: {problem}.")


def parse_task_id(body: Any, kind: CambKind) -> str:
    """The ``task_id`` of a create reply."""
    task_id = body.get("task_id") if isinstance(body, dict) else None
    if not isinstance(task_id, (str, int)) or isinstance(task_id, bool) or not str(task_id).strip():
        raise unreadable(f"creating a {kind.label} task", f"no task_id in {str(body)[:200]!r}")
    return str(task_id)


def parse_status(body: Any, task_id: str, kind: CambKind) -> CambTaskStatus:
    """A status reply of any kind; unknown fields are ignored, unknown status strings pass through."""
    what = f"reading the status of CAMB {kind.label} task {task_id!r}"
    if not isinstance(body, dict):
        raise unreadable(what, f"expected a JSON object, got {type(body).__name__}")
    status = body.get("status")
    if not isinstance(status, str) or not status.strip():
        raise unreadable(what, f"no status string in {str(body)[:200]!r}")
    raw_run_id = body.get("run_id")
    run_id: int | None = None
    if raw_run_id is not None:
        try:
            run_id = check_run_id(raw_run_id)
        except CambInputError:
            raise unreadable(what, f"run_id {raw_run_id!r} is not a whole number") from None
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
        kind=kind,
    )


def result_link(url: object, what: str, name: str) -> str:
    """A result link CAMB sent; its problems are told without the link itself (it may be a bearer link)."""
    if not isinstance(url, str):
        raise unreadable(what, f"{name} that is not a string")
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. "http://[": urlsplit refuses it
        raise unreadable(what, f"{name} that is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise unreadable(what, f"{name} with scheme {parts.scheme!r}")
    return url


def parse_languages(body: Any) -> list[Any]:
    if not isinstance(body, list):
        raise unreadable(_LISTING_LANGUAGES, "expected a JSON list")
    return body


def url_host(url: str) -> str:
    """Only the host of a URL: preview links can be bearer links, so logs show no more."""
    return urlsplit(url).hostname or "?"
