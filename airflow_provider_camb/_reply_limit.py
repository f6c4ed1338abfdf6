"""The size limit of a reply or download, applied the same way by both transports.

A JSON reply (status, create, result) is read in pieces and refused as soon as it passes the
connection's ``max_reply_bytes`` (default 1 MiB), or at once when its ``Content-Length`` says it will:
one bad reply must not take a triggerer holding thousands of waits down with it. A download is
streamed to its file, and refused the same way past the result operator's ``max_bytes``.
"""

from __future__ import annotations

from airflow_provider_camb.exceptions import CambReplyTooLargeError

#: How much a transport reads at a time.
CHUNK = 64 * 1024
#: What raises each limit, as the errors name it.
REPLY_SETTING = "the connection extra 'max_reply_bytes'"
DOWNLOAD_SETTING = "the result operator's max_bytes"


class ReplyLimit:
    """Counts the bytes of one reply and refuses it past ``limit`` (None: no limit).

    :param limit: The most bytes allowed.
    :param what: What is being read, for the error ("reading the status of ...").
    :param setting: What raises the limit, for the error (e.g. "the connection extra 'max_reply_bytes'").
    """

    def __init__(self, limit: int | None, what: str, setting: str) -> None:
        self.limit, self.what, self.setting = limit, what, setting
        self.size = 0

    def declared(self, content_length: str | int | None) -> None:
        """Refuse before reading when the reply's ``Content-Length`` is already over the limit."""
        text = str(content_length).strip() if content_length is not None else ""
        if self.limit is not None and text.isdigit() and len(text) < 30 and int(text) > self.limit:
            raise self._error(f"announces {int(text)} bytes")

    def count(self, chunk: bytes) -> bytes:
        """Add one piece; raise once the total passes the limit."""
        self.size += len(chunk)
        if self.limit is not None and self.size > self.limit:
            raise self._error(f"passed {self.limit} bytes")
        return chunk

    def _error(self, problem: str) -> CambReplyTooLargeError:
        return CambReplyTooLargeError(
            f"The reply while {self.what} {problem}, over the limit of {self.limit} bytes, so it was refused "
            f"without reading the rest. If such a reply is expected, raise {self.setting}."
        )


class ReplyBuffer(ReplyLimit):
    """A JSON reply's body, gathered piece by piece under its limit."""

    def __init__(self, limit: int | None, what: str, setting: str) -> None:
        super().__init__(limit, what, setting)
        self._pieces: list[bytes] = []

    def add(self, chunk: bytes) -> None:
        self._pieces.append(self.count(chunk))

    @property
    def body(self) -> bytes:
        return b"".join(self._pieces)
