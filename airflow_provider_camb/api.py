"""What the CAMB API says, in one place.

Builds every request (validating input before anything is sent), and turns every raw reply into
a typed result or a typed error. The hook's sync (requests) and async (aiohttp) transports both
call these functions, so parsing and classification exist exactly once.
"""

from __future__ import annotations

import ipaddress
import json
import math
import re
import time
import unicodedata
from contextlib import suppress
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote, urlsplit, urlunsplit

from airflow_provider_camb import _deprecated
from airflow_provider_camb._connection_form import (
    DEFAULT_BACKOFF,
    DEFAULT_BACKOFF_MAX,
    DEFAULT_BASE_URL,
    DEFAULT_MAX_REPLY_BYTES,
    DEFAULT_RETRIES,
    DEFAULT_TIMEOUT,
    MIN_REPLY_BYTES,
)
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
from airflow_provider_camb.kinds import DUB, TEXT_TO_SOUND, TEXT_TO_VOICE, TRANSLATED_TTS, TTS, CambKind

if not TYPE_CHECKING:  # the 0.1.0 names, each with a warning once (type checkers see only the new ones)
    __getattr__ = _deprecated.module_getattr(__name__)

MIN_DESCRIPTION_CHARS = 100
MIN_DESCRIPTION_WORDS = 18
MAX_INPUT_CHARS = 10_000
MAX_URL_CHARS = 4096
#: Seconds after this provider created a task in which a 404 for it is read-after-create lag, not an unknown id.
READ_AFTER_CREATE_LAG = 30.0
TRANSCRIPTION_MODES = ("fast", "slow")
_LOCALE = re.compile(r"[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{2,8})*")
_SURROGATE = re.compile("[\ud800-\udfff]")
#: The largest whole number accepted as an id or count: a signed 64-bit integer, what CAMB's database can hold.
MAX_WHOLE_NUMBER = 2**63 - 1
#: The longest sound CAMB is asked for, in seconds (its default is 8; it documents no maximum).
MAX_SOUND_SECONDS = 600.0


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
class DubbedOutput:
    """The dubbed result of one target language. The links are bearer links: never shown beyond their host."""

    audio_url: str = field(repr=False)
    video_url: str | None = field(repr=False)
    transcript: list[dict[str, Any]]


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
    max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES  # the largest JSON reply read


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

    bad = next((i for i, char in enumerate(key) if ord(char) > 0xFF or unicodedata.category(char) == "Cc"), None)
    if bad is not None:
        raise CambInputError(  # never the key itself, nor its repr: Airflow's masker hides only the plain form
            f"Connection {conn_id!r}: the API key has a control character or a character outside Latin-1 at "
            f"position {bad + 1} of {len(key)}, so it cannot be sent in a header (a bad paste?). Copy the key again "
            "from CAMB.AI's studio into the connection's Password field."
        )

    def number(name: str, default: float, minimum: float) -> float:
        value = extra.get(name)
        if value is None or value == "":  # a form field left empty: the default
            return default
        try:
            result = float(value)
        except (TypeError, ValueError):
            result = minimum - 1
        if not result >= minimum or (math.isinf(result) and name != "max_requests_per_second"):
            raise CambInputError(
                f"Connection {conn_id!r}: extra {name!r} must be a finite number >= {minimum}, got {value!r}."
            )
        return result

    reply_limit = extra.get("max_reply_bytes")
    max_reply_bytes = whole_number(
        f"Connection {conn_id!r}: extra 'max_reply_bytes'",
        None if reply_limit == "" else reply_limit,
        optional=True,
        minimum=MIN_REPLY_BYTES,
    )

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
        max_reply_bytes=DEFAULT_MAX_REPLY_BYTES if max_reply_bytes is None else max_reply_bytes,
    )


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


def whole_number(name: str, value: object, *, optional: bool = False, minimum: int = 1, hint: str = "") -> int | None:
    """A whole number from ``minimum`` (default 1) to ``MAX_WHOLE_NUMBER``; digit strings pass, booleans do not."""
    if value is None and optional:
        return None
    number = parse_whole_number(value)
    if number is None or not minimum <= number <= MAX_WHOLE_NUMBER:
        shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:60] + "..."
        raise CambInputError(f"{name} must be a whole number from {minimum} to 2**63-1{hint}, got {shown}.")
    return number


def _required_number(name: str, value: object, minimum: int = 1, hint: str = "") -> int:
    number = whole_number(name, value, minimum=minimum, hint=hint)
    assert number is not None
    return number


def check_run_id(run_id: object) -> int:
    """A run id is a whole number from 1 (CAMB returns integers); digit strings from templates pass."""
    return _required_number("A CAMB run id", run_id, hint=" (the run_id of a SUCCESS status)")


def digits(value: object) -> int | None:
    """The number a digit string (what a template renders) spells; None for anything else."""
    return parse_whole_number(value) if isinstance(value, str) else None


def language(name: str, value: object) -> int | str:
    """A CAMB language: an integer id from 1 (digit strings pass) or a locale tag such as ``fr-fr``."""
    if parse_whole_number(value) is not None:
        return _required_number(name, value)
    if isinstance(value, str) and _LOCALE.fullmatch(value.strip()):
        return value.strip()
    raise CambInputError(f"{name} must be a CAMB language id (an integer) or a locale tag like 'fr-fr', got {value!r}.")


def visible_text(value: str) -> str:
    """``value`` without format characters (Unicode Cf: zero-width spaces, joiners, marks) and outer whitespace."""
    return "".join(char for char in value if unicodedata.category(char) != "Cf").strip()


def _check_text(name: str, value: object) -> str:
    """Text CAMB can read: a string, not empty without format characters and whitespace, no NUL or lone surrogate."""
    if not isinstance(value, str):
        raise CambInputError(f"{name} must be a string, got {type(value).__name__}.")
    if not visible_text(value):
        raise CambInputError(f"{name} must not be empty (format characters and whitespace alone do not count).")
    if len(value) > MAX_INPUT_CHARS:
        raise CambInputError(f"{name} is {len(value)} characters; at most {MAX_INPUT_CHARS} are accepted.")
    if "\x00" in value:
        raise CambInputError(f"{name} contains a NUL character (at position {value.index(chr(0))}); remove it.")
    if surrogate := _SURROGATE.search(value):
        raise CambInputError(
            f"{name} contains a lone surrogate (at position {surrogate.start()}), which is not text; it comes from "
            "decoding bytes with errors='surrogateescape'. Decode the text properly."
        )
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
    description = visible_text(body["voice_description"])  # zero-width "words" count for nothing
    words = len(description.split())
    if check_description and (len(description) < MIN_DESCRIPTION_CHARS or words < MIN_DESCRIPTION_WORDS):
        raise CambInputError(
            f"voice_description has {len(description)} characters and {words} words; CAMB needs at least "
            f"{MIN_DESCRIPTION_CHARS} characters and {MIN_DESCRIPTION_WORDS} words to design a voice. "
            "Describe the voice in more detail (age, accent, tone, pace), or pass check_description=False."
        )
    return _create(TEXT_TO_VOICE, body, project_name, project_description, folder_id)


def _create(
    kind: CambKind, body: dict[str, Any], project_name: object, project_description: object, folder_id: object
) -> ApiRequest:
    """``POST /{create path}`` of a kind, with the optional project fields every create accepts."""
    for name, value in (("project_name", project_name), ("project_description", project_description)):
        if value is not None:
            body[name] = _check_text(name, value)
    if folder_id is not None:
        body["folder_id"] = whole_number("folder_id", folder_id)
    return ApiRequest("POST", kind.create_path, f"creating a {kind.label} task", json=body)


#: Whole-number fields where 0 means something (CAMB's gender code 0: not specified; audio track 0).
_ZERO_ALLOWED = frozenset({"gender", "selected_audio_tracks"})


def _optional_numbers(body: dict[str, Any], **values: object) -> None:
    for name, value in values.items():
        if value is not None:
            body[name] = whole_number(name, value, minimum=0 if name in _ZERO_ALLOWED else 1)


def create_tts_request(
    text: object,
    voice_id: object,
    language_id: object,
    *,
    gender: object = None,
    age: object = None,
    project_name: str | None = None,
    project_description: str | None = None,
    folder_id: int | None = None,
) -> ApiRequest:
    """``POST /tts``: speak ``text`` with ``voice_id`` in ``language_id`` (integers; digit strings pass)."""
    body: dict[str, Any] = {
        "text": _check_text("text", text),
        "voice_id": _required_number("voice_id", voice_id),
        "language": _required_number("language", language_id),
    }
    _optional_numbers(body, gender=gender, age=age)
    return _create(TTS, body, project_name, project_description, folder_id)


def create_translated_tts_request(
    text: object,
    voice_id: object,
    source_language: object,
    target_language: object,
    *,
    gender: object = None,
    age: object = None,
    formality: object = None,
    chosen_dictionaries: object = None,
    project_name: str | None = None,
    project_description: str | None = None,
    folder_id: int | None = None,
) -> ApiRequest:
    """``POST /translated-tts``: speak ``text`` translated from ``source_language`` into ``target_language``."""
    body: dict[str, Any] = {
        "text": _check_text("text", text),
        "voice_id": _required_number("voice_id", voice_id),
        "source_language": _required_number("source_language", source_language),
        "target_language": _required_number("target_language", target_language),
    }
    _optional_numbers(body, gender=gender, age=age, formality=formality)
    if chosen_dictionaries is not None:
        body["chosen_dictionaries"] = _number_list("chosen_dictionaries", chosen_dictionaries)
    return _create(TRANSLATED_TTS, body, project_name, project_description, folder_id)


def _number_list(name: str, values: object) -> list[int]:
    if not isinstance(values, (list, tuple)):
        raise CambInputError(f"{name} must be a list of whole numbers, got {values!r}.")
    minimum = 0 if name in _ZERO_ALLOWED else 1
    return [_required_number(f"{name}[{index}]", value, minimum) for index, value in enumerate(values)]


def check_media_url(name: str, url: object) -> str:
    """A public http(s) media URL; errors show only its host (it may be a signed link)."""
    if not isinstance(url, str) or not url.strip():
        raise CambInputError(f"{name} must be a non-empty http(s) URL, got {type(url).__name__}.")
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        raise CambInputError(f"{name} is not a valid URL.") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CambInputError(
            f"{name} must be a public http(s) URL CAMB can fetch, got one with scheme {parts.scheme!r}."
        )
    if len(url) > MAX_URL_CHARS:
        raise CambInputError(f"{name} is {len(url)} characters long; at most {MAX_URL_CHARS} are accepted.")
    return url


def create_dub_request(
    video_url: object,
    source_language: object,
    target_languages: object,
    *,
    selected_audio_tracks: object = None,
    add_output_as_an_audio_track: object = None,
    chosen_dictionaries: object = None,
    ai_optimization: object = None,
    transcription_mode: object = None,
    source_transcript: object = None,
    target_transcripts: object = None,
    project_name: str | None = None,
    project_description: str | None = None,
    folder_id: int | None = None,
) -> ApiRequest:
    """``POST /dub``: dub the media at ``video_url`` into each target language (ids or locale tags)."""
    targets = target_languages if isinstance(target_languages, (list, tuple)) else [target_languages]
    if not targets:
        raise CambInputError("target_languages must name at least one language.")
    body: dict[str, Any] = {
        "video_url": check_media_url("video_url", video_url),
        "source_language": language("source_language", source_language),
        "target_languages": [language(f"target_languages[{i}]", value) for i, value in enumerate(targets)],
    }
    if len(set(body["target_languages"])) != len(targets):
        raise CambInputError(f"target_languages names a language twice: {body['target_languages']!r}.")
    for name, values in (
        ("selected_audio_tracks", selected_audio_tracks),
        ("chosen_dictionaries", chosen_dictionaries),
    ):
        if values is not None:
            body[name] = _number_list(name, values)
    for name, flag in (
        ("add_output_as_an_audio_track", add_output_as_an_audio_track),
        ("ai_optimization", ai_optimization),
    ):
        if flag is not None:
            if not isinstance(flag, bool):
                raise CambInputError(f"{name} must be True or False, got {flag!r}.")
            body[name] = flag
    if transcription_mode is not None:
        if transcription_mode not in TRANSCRIPTION_MODES:
            raise CambInputError(
                f"transcription_mode must be one of {TRANSCRIPTION_MODES}, got {transcription_mode!r}."
            )
        body["transcription_mode"] = transcription_mode
    if source_transcript is not None:
        if not isinstance(source_transcript, dict):
            raise CambInputError("source_transcript must be a JSON object (CAMB's SRT input).")
        body["source_transcript"] = source_transcript
    if target_transcripts is not None:
        if not isinstance(target_transcripts, (list, tuple)) or not all(
            isinstance(t, dict) for t in target_transcripts
        ):
            raise CambInputError("target_transcripts must be a list of JSON objects, one per target language.")
        body["target_transcripts"] = list(target_transcripts)
    return _create(DUB, body, project_name, project_description, folder_id)


def create_text_to_sound_request(
    prompt: object,
    *,
    duration: object = None,
    audio_type: object = None,
    project_name: str | None = None,
    project_description: str | None = None,
    folder_id: int | None = None,
) -> ApiRequest:
    """``POST /text-to-sound``: a sound effect or music from ``prompt``; ``duration`` in seconds."""
    body: dict[str, Any] = {"prompt": _check_text("prompt", prompt)}
    if duration is not None:
        seconds: float | None = None
        if isinstance(duration, (int, float)) and not isinstance(duration, bool):
            seconds = float(duration)
        elif isinstance(duration, str):
            with suppress(ValueError):
                seconds = float(duration)
        if seconds is None or not math.isfinite(seconds) or not 0 < seconds <= MAX_SOUND_SECONDS:
            raise CambInputError(
                f"duration must be a positive number of seconds, at most {MAX_SOUND_SECONDS:g}, got {duration!r}."
            )
        body["duration"] = seconds
    if audio_type is not None:
        if not isinstance(audio_type, str) or not audio_type.strip():
            raise CambInputError(
                f"audio_type must be a non-empty string such as 'sound' or 'music', got {audio_type!r}."
            )
        body["audio_type"] = audio_type.strip()
    return _create(TEXT_TO_SOUND, body, project_name, project_description, folder_id)


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


def result_request(kind: CambKind, run_id: object, params: dict[str, str] | None = None) -> ApiRequest:
    """``GET /{result path}/{run_id}`` of a kind (e.g. ``/text-to-voice-result/{run_id}``)."""
    run = check_run_id(run_id)
    return ApiRequest(
        "GET", kind.result_url_path(run), f"fetching the result of CAMB {kind.label} run {run}", params=params
    )


def check_output_type(kind: CambKind, output_type: object) -> str:
    """The ``output_type`` of a kind whose result is one media file (``RAW_BYTES`` or ``FILE_URL``)."""
    if not kind.output_types:
        raise CambInputError(f"A CAMB {kind.label} result is not one media file; it has no output_type.")
    if output_type not in kind.output_types:
        raise CambInputError(f"output_type must be one of {kind.output_types}, got {output_type!r}.")
    return str(output_type)


def media_result_request(kind: CambKind, run_id: object, output_type: object = "RAW_BYTES") -> ApiRequest:
    """``GET /{result path}/{run_id}?output_type=...`` of a kind whose result is one media file."""
    return result_request(kind, run_id, {"output_type": check_output_type(kind, output_type)})


def create_custom_voice_request(
    voice_name: object,
    gender: object,
    *,
    run_id: object = None,
    age: object = None,
    description: object = None,
    language: object = None,
) -> ApiRequest:
    """``POST /create-custom-voice``: keep a preview as a voice (the hook adds the audio as the ``file`` part)."""
    form = {"voice_name": _check_text("voice_name", voice_name), "gender": str(_required_number("gender", gender, 0))}
    for name, value in (("age", age), ("language", language)):
        if value is not None:
            form[name] = str(_required_number(name, value))
    if description is not None:
        form["description"] = _check_text("description", description)
    params = None if run_id is None else {"run_id": str(check_run_id(run_id))}
    return ApiRequest("POST", "/create-custom-voice", f"creating custom voice {voice_name!r}", params=params, form=form)


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
        raise _unreadable(f"fetching the results of CAMB {kind.label} runs", "expected a JSON object")
    return {run_id: body[str(run_id)] for run_id in run_ids if body.get(str(run_id)) is not None}


def parse_result_link(value: Any, kind: CambKind, run_id: int) -> str:
    """One media result link of a bulk reply: the link itself, or ``{"output_url": link}``."""
    return parse_output_url({"output_url": value} if isinstance(value, str) else value, kind, run_id)


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
    request: ApiRequest, status: int, headers: Any, body: bytes, conn_id: str, *, secret: str = ""
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
    request: ApiRequest, status: int, headers: Any, body: bytes, conn_id: str, *, secret: str = ""
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


def _unreadable(what: str, problem: str) -> CambResponseError:
    return CambResponseError(f"CAMB's reply to {what} is not in the documented shape: {problem}.")


def parse_task_id(body: Any, kind: CambKind) -> str:
    """The ``task_id`` of a create reply."""
    task_id = body.get("task_id") if isinstance(body, dict) else None
    if not isinstance(task_id, (str, int)) or isinstance(task_id, bool) or not str(task_id).strip():
        raise _unreadable(f"creating a {kind.label} task", f"no task_id in {str(body)[:200]!r}")
    return str(task_id)


def parse_status(body: Any, task_id: str, kind: CambKind) -> CambTaskStatus:
    """A status reply of any kind; unknown fields are ignored, unknown status strings pass through."""
    what = f"reading the status of CAMB {kind.label} task {task_id!r}"
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
        kind=kind,
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
    return [_link(url, what, "a preview link") for url in previews]


def _link(url: object, what: str, name: str) -> str:
    """A result link CAMB sent; its problems are told without the link itself (it may be a bearer link)."""
    if not isinstance(url, str):
        raise _unreadable(what, f"{name} that is not a string")
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. "http://[": urlsplit refuses it
        raise _unreadable(what, f"{name} that is not a valid URL") from None
    if parts.scheme not in ("http", "https"):
        raise _unreadable(what, f"{name} with scheme {parts.scheme!r}")
    return url


def parse_output_url(body: Any, kind: CambKind, run_id: int) -> str:
    """The ``output_url`` of a ``FILE_URL`` result (a bearer link)."""
    what = result_request(kind, run_id).what
    if not isinstance(body, dict) or "output_url" not in body:
        raise _unreadable(what, "no output_url")
    return _link(body["output_url"], what, "an output_url")


def parse_dub_result(body: Any, run_id: int) -> dict[str | None, DubbedOutput]:
    """The dubbed outputs of a run: ``{None: output}`` for the one-object shape, else ``{language: output}``."""
    what = result_request(DUB, run_id).what
    if not isinstance(body, dict) or not body:
        raise _unreadable(what, "expected a JSON object")
    if "audio_url" in body:
        return {None: _dubbed(body, what, "")}
    return {str(lang): _dubbed(result, what, f" for language {str(lang)[:50]!r}") for lang, result in body.items()}


def _dubbed(result: Any, what: str, where: str) -> DubbedOutput:
    if not isinstance(result, dict):
        raise _unreadable(what, f"a result{where} that is not an object")
    video = result.get("video_url")
    transcript = result.get("transcript", [])
    if not isinstance(transcript, list) or not all(isinstance(line, dict) for line in transcript):
        raise _unreadable(what, f"a transcript{where} that is not a list of objects")
    return DubbedOutput(
        audio_url=_link(result.get("audio_url"), what, f"an audio_url{where}"),
        video_url=None if video is None else _link(video, what, f"a video_url{where}"),
        transcript=transcript,
    )


def parse_voice_id(body: Any) -> int:
    """The ``voice_id`` of a create-custom-voice reply."""
    voice_id = body.get("voice_id") if isinstance(body, dict) else None
    try:
        return _required_number("voice_id", voice_id)
    except CambInputError:
        raise _unreadable("creating a custom voice", f"no integer voice_id in {str(body)[:200]!r}") from None


def parse_languages(body: Any) -> list[Any]:
    if not isinstance(body, list):
        raise _unreadable(source_languages_request().what, "expected a JSON list")
    return body


def url_host(url: str) -> str:
    """Only the host of a URL: preview links can be bearer links, so logs show no more."""
    return urlsplit(url).hostname or "?"
