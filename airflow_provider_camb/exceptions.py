"""Typed errors: every failure the provider reports is one of these.

Each error says what failed, for which CAMB task or run, and what to do. ``transient`` tells
retry policies whether trying again can help; ``request_sent`` tells whether the request may
have reached CAMB (a create that may have reached CAMB is never blindly sent again).
No message ever contains the API key.
"""

from __future__ import annotations

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, AirflowSensorTimeout


class CambError(AirflowException):
    """Base class of every CAMB provider error."""

    transient: bool = False

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        retry_after: float | None = None,
        request_sent: bool = True,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status
        self.retry_after = retry_after
        self.request_sent = request_sent

    def __str__(self) -> str:
        return self.message


class CambInputError(CambError, AirflowFailException, ValueError):
    """Bad input or configuration, refused before any request was sent."""


class CambAuthError(CambError):
    """CAMB refused the API key (HTTP 401 or 403)."""


class CambLinkRefusedError(CambError):
    """A storage host answered 401/403 for a result link (a bearer link): the link expired or was refused.

    The API key plays no part in it (links are fetched without the key); fetching the result again
    gives fresh links.
    """


class CambLinkNotAllowedError(CambError):
    """A link in a CAMB reply was refused by the link policy (``_link_policy``) and nothing was sent to it.

    Only https links to public addresses are fetched (plus the local stand-in's own address); the
    message names the link's host, never the link.
    """


class CambReplyTooLargeError(CambError):
    """A reply or download was larger than its limit and was refused without reading the rest.

    JSON replies are limited by the connection extra ``max_reply_bytes`` (default 1 MiB), downloads by
    the result operator's ``max_bytes``. Not retried: the same request would bring the same reply.
    """


class CambNotFoundError(CambError):
    """CAMB does not know the task or run (HTTP 404)."""


class CambNotReadableYetError(CambNotFoundError):
    """HTTP 404 for a task this provider created moments ago: read-after-create lag, retried like a passing fault."""

    transient = True


class CambValidationError(CambError):
    """CAMB rejected the request's fields (HTTP 422); ``detail`` holds its explanation."""

    def __init__(self, message: str, *, detail: object = None, http_status: int | None = 422) -> None:
        super().__init__(message, http_status=http_status)
        self.detail = detail


class CambPaymentRequiredError(CambError, AirflowFailException):
    """The CAMB account is out of credits: retrying cannot help."""


class CambApiError(CambError):
    """Any other error reply from CAMB that retrying will not fix."""


class CambRateLimitError(CambError):
    """HTTP 429: CAMB asks to slow down; ``retry_after`` is its requested delay in seconds."""

    transient = True


class CambServerError(CambError):
    """HTTP 5xx, 408 or 409: a passing fault on CAMB's side."""

    transient = True


class CambResponseError(CambError):
    """A reply that could not be read (not JSON, or not the documented shape)."""

    transient = True


class CambConnectionError(CambError):
    """The network failed: refused, reset, timed out, or cut off mid-stream."""

    transient = True

    @classmethod
    def unreachable(cls, what: str, error: BaseException, *, sent: bool) -> CambConnectionError:
        """The error of a request that got no reply (``error`` is the HTTP library's; ``sent``: it may have left)."""
        reason = type(error).__name__ + (f": {error}" if str(error) else "")
        return cls(
            f"Could not reach CAMB while {what} ({reason}). Check the network and the connection's "
            "base URL; passing faults are retried.",
            request_sent=sent,
        )


class CambUncertainCreateError(CambError, AirflowFailException):
    """A create may have reached CAMB, and nobody knows its id; fails without retries.

    Raised when a create's request was sent but no usable reply came back, and when a try finds that an
    earlier one may have created a task it cannot name. CAMB has no idempotency key and no way to find a
    task, so a retry could pay for a second one; ``retry_uncertain_create=True`` on the operator opts in.
    """


class CambTaskFailedError(CambError):
    """A CAMB task reached a terminal status other than SUCCESS (ERROR, TIMEOUT, ...)."""


class CambBatchFailedError(CambError):
    """More items of a batch failed than its ``max_failures`` allows; every other item was finished first.

    Airflow's retries apply: a retry creates new tasks only for items whose CAMB task ended in ERROR,
    TIMEOUT or PAYMENT_REQUIRED, and downloads again only files that are not whole.
    """


class CambWaitTimeoutError(CambError, AirflowFailException, AirflowSensorTimeout):
    """The CAMB task did not finish within the waiter's ``timeout``; fails without retries.

    The same error ends every wait that runs out of time, sensor or waiting operator, in every mode.
    Retrying would create (and pay for) another CAMB task while the first may still finish.
    """


class CambAirflowVersionError(CambError, ImportError):
    """A feature of the provider needs a newer Airflow than the one installed (raised when it is imported)."""
