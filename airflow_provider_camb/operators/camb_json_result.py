"""CambJsonResultOperator: save the JSON result of a CAMB run (texts, a transcript) as one file, whole or not at all."""

from __future__ import annotations

import hashlib
import json
from typing import IO, TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import ObjectStoragePath

from airflow_provider_camb._storage import write_atomically
from airflow_provider_camb.api import DownloadedFile
from airflow_provider_camb.kinds import CambKind
from airflow_provider_camb.operators.camb_result import CambResultOperator

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


def write_json(folder: ObjectStoragePath, stem: str, document: Any) -> tuple[ObjectStoragePath, DownloadedFile]:
    """Write ``document`` as ``<stem>.json`` into ``folder``, whole or not at all (also each item of a batch)."""
    data = json.dumps(document, ensure_ascii=False, indent=2).encode()

    def write(file: IO[bytes]) -> DownloadedFile:
        file.write(data)
        return DownloadedFile(len(data), hashlib.sha256(data).hexdigest(), "application/json")

    return write_atomically(folder, stem, write, lambda _: f"{stem}.json")


class CambJsonResultOperator(CambResultOperator):
    """Save the result of a CAMB run as ``camb_<media>_run_<run_id>.json``; the base of each JSON kind's result
    operator. The file is written under a temporary name and moved into place only when complete.
    Returns ``{"path", "bytes", "sha256", "content_type"}``. See ``CambResultOperator`` for the parameters.
    """

    #: The CAMB task kind whose result this operator saves.
    kind: ClassVar[CambKind]

    @staticmethod
    def document(result: Any) -> Any:
        """What is saved of the parsed result (default: the result itself), as JSON; a batch saves the same."""
        return result

    def save(self, context: Context, run_id: int, folder: ObjectStoragePath) -> dict[str, Any]:
        kind = self.kind
        document = self.document(self.hook.get_result(kind, run_id))
        final, saved = write_json(folder, f"camb_{kind.media}_run_{run_id}", document)
        self.log.info(
            "Saved the %s of CAMB %s run %s to %s (%d bytes).", kind.media, kind.label, run_id, final, saved.bytes
        )
        result = {"path": str(final), "bytes": saved.bytes, "sha256": saved.sha256, "content_type": saved.content_type}
        self.record_result(context, self.hook.settings.base_url, kind, run_id, [result])
        return result
