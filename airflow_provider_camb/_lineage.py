"""Lineage of every CAMB operator: what it read and wrote, for OpenLineage and for Airflow asset events.

An operator records in ``execute()`` what it did (``CambLineageMixin.record_lineage``, or for a result
operator the one call ``record_result``); ``get_openlineage_facets_on_complete`` then reports it. CAMB
tasks, runs and voices are datasets in the ``camb://<api host>`` namespace, named
``<kind>/task/<task_id>``, ``<kind>/run/<run_id>`` and ``voice/<voice_id>``; a written file is a dataset
in its storage's namespace, named after OpenLineage's conventions (``file`` + absolute path,
``s3://bucket`` + key, ...). So the job that creates a task, the one that downloads its run and the one
that keeps a voice join up in a lineage graph.

Reporting does no I/O: by default OpenLineage calls ``get_openlineage_facets_on_complete`` in a forked
child of the task process, where reading an XCom or a connection hangs until OpenLineage's
``execution_timeout`` and the event is lost. So ``execute()`` records everything, the API host included.

``apache-airflow-providers-openlineage`` is optional: it is imported only when OpenLineage asks for
facets, and without it nothing fails and nothing is logged.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from airflow_provider_camb.kinds import CambKind

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

_LOCAL_SCHEMES = frozenset({"", "file", "local"})


@dataclass(frozen=True)
class LineageDataset:
    """One dataset as OpenLineage names it; ``size`` is the byte count of a written file."""

    namespace: str
    name: str
    size: int | None = None


def camb_namespace(base_url: str) -> str:
    """``camb://<host[:port]>`` of the API a connection talks to (no credentials, no path)."""
    return f"camb://{urlsplit(base_url).netloc.rpartition('@')[2].lower()}"


def camb_task(base_url: str, kind: CambKind, task_id: str) -> LineageDataset:
    """A CAMB task of ``kind``: ``<kind>/task/<task_id>``."""
    return LineageDataset(camb_namespace(base_url), f"{kind.name}/task/{task_id}")


def camb_run(base_url: str, kind: CambKind, run_id: int) -> LineageDataset:
    """The result of a CAMB run of ``kind``: ``<kind>/run/<run_id>``."""
    return LineageDataset(camb_namespace(base_url), f"{kind.name}/run/{run_id}")


def camb_voice(base_url: str, voice_id: int) -> LineageDataset:
    """A custom voice kept in the CAMB account: ``voice/<voice_id>``."""
    return LineageDataset(camb_namespace(base_url), f"voice/{voice_id}")


def stored_file(path: str | os.PathLike[str], size: int | None = None) -> LineageDataset:
    """A file in local or object storage: namespace ``file`` (local) or ``<scheme>://<bucket>``, name the path/key."""
    parts = urlsplit(os.fspath(path) if isinstance(path, os.PathLike) else str(path))
    if parts.scheme.lower() in _LOCAL_SCHEMES:
        return LineageDataset("file", os.path.abspath(unquote(parts.path)), size)
    # s3://aws_conn@bucket/key names a connection before the bucket; memory:///bucket/key has the bucket in the path
    where = parts.netloc.rpartition("@")[2] + parts.path if parts.netloc else parts.path.lstrip("/")
    bucket, _, key = where.partition("/")
    return LineageDataset(f"{parts.scheme.lower()}://{bucket}", key, size)


class CambLineageMixin:
    """Reports to OpenLineage what ``execute()`` recorded with ``record_lineage`` or ``record_result``.

    Put it before ``BaseOperator`` in the bases: ``class SpeechResultOperator(CambLineageMixin, BaseOperator)``.
    """

    _camb_lineage: tuple[tuple[LineageDataset, ...], tuple[LineageDataset, ...]] | None = None

    def record_lineage(self, *, inputs: Iterable[LineageDataset] = (), outputs: Iterable[LineageDataset] = ()) -> None:
        """Keep what this run of the task read and wrote (recorded again by a retry or a resumed task)."""
        self._camb_lineage = (tuple(inputs), tuple(outputs))

    def record_task(self, base_url: str, kind: CambKind, task_id: str, run_id: int | None = None) -> None:
        """A create operator's call: the CAMB task it started and, once waited for, its run."""
        created = [camb_task(base_url, kind, task_id)]
        if run_id is not None:
            created.append(camb_run(base_url, kind, run_id))
        self.record_lineage(outputs=created)

    def record_result(
        self, context: Context, base_url: str, kind: CambKind, run_id: int, files: Sequence[Mapping[str, Any]]
    ) -> None:
        """A result operator's one call: the run it read, the files it wrote, and its outlets' asset event extras.

        ``files`` are the operator's return value: one ``{"path", "bytes", "sha256", ...}`` per file written.
        """
        self.record_lineage(
            inputs=[camb_run(base_url, kind, run_id)],
            outputs=[stored_file(file["path"], file.get("bytes")) for file in files],
        )
        attach_asset_extras(
            getattr(self, "outlets", ()),
            context,
            {
                "camb_kind": kind.name,
                "camb_run_id": run_id,
                "files": [
                    {"path": file["path"], "sha256": file["sha256"], "bytes": file.get("bytes")} for file in files
                ],
            },
        )

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage's ``OperatorLineage`` for what ``execute()`` recorded; None when nothing was."""
        if self._camb_lineage is None:
            return None
        inputs, outputs = self._camb_lineage
        return operator_lineage(inputs, outputs)


def operator_lineage(inputs: Sequence[LineageDataset], outputs: Sequence[LineageDataset]) -> Any:
    """An ``OperatorLineage``; None, silently, without the OpenLineage provider (only it asks for one)."""
    try:
        from airflow.providers.common.compat.openlineage.facet import (
            Dataset,
            OutputDataset,
            OutputStatisticsOutputDatasetFacet,
        )
        from airflow.providers.openlineage.extractors import OperatorLineage
    except ImportError:
        return None
    return OperatorLineage(
        inputs=[Dataset(namespace=item.namespace, name=item.name) for item in inputs],
        outputs=[
            OutputDataset(
                namespace=item.namespace,
                name=item.name,
                outputFacets=(
                    {}
                    if item.size is None
                    else {"outputStatistics": OutputStatisticsOutputDatasetFacet(size=item.size, fileCount=1)}
                ),
            )
            for item in outputs
        ],
    )


def attach_asset_extras(outlets: Iterable[object], context: Context, extra: Mapping[str, Any]) -> None:
    """Add ``extra`` to the asset event of every asset among ``outlets`` (asset aliases are left alone)."""
    from airflow.providers.common.compat.sdk import Asset

    assets = [outlet for outlet in outlets if isinstance(outlet, Asset)]
    if not assets:
        return
    events = context["outlet_events"]
    for asset in assets:
        events[asset].extra.update(extra)
