"""The arguments CAMB operators share, each taken in one place.

``CambOperator`` holds the connection (and its hook) every operator talks to CAMB through, and lineage;
``CambCreatingOperator`` the arguments of every operator that creates CAMB tasks and waits for them
(``CambTaskOperator``, ``CambBatchOperator``). Each is a ``BaseOperator``, so Airflow's ``default_args``
fill its arguments as they fill any operator's. The public operators' docstrings document these
arguments where users read them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import timedelta
from functools import cached_property
from typing import Any, ClassVar

from airflow.providers.common.compat.sdk import BaseOperator, conf

from airflow_provider_camb._lineage import CambLineageMixin
from airflow_provider_camb._waiting import DEFAULT_POLL_INTERVAL, DEFAULT_RESUME_MARGIN, DEFAULT_TIMEOUT, seconds
from airflow_provider_camb.hooks.camb import CambHook
from airflow_provider_camb.kinds import CambKind


class CambOperator(CambLineageMixin, BaseOperator):
    """An operator that talks to CAMB through one Airflow connection and reports lineage.

    :param camb_conn_id: The Airflow connection of type ``camb``.
    """

    def __init__(self, *, camb_conn_id: str = CambHook.default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.camb_conn_id = camb_conn_id

    @cached_property
    def hook(self) -> CambHook:
        return CambHook(self.camb_conn_id)

    def keep_fields(self, arguments: Mapping[str, Any], names: Iterable[str]) -> None:
        """Keep each of ``names`` that ``arguments`` holds as the attribute of that name: the fields a request is
        built from by name (``CambKind.fields_of``), from an ``__init__``'s ``locals()`` taken first thing."""
        for name in names:
            if name in arguments:
                setattr(self, name, arguments[name])


class CambCreatingOperator(CambOperator):
    """An operator that creates CAMB tasks of one kind, in a project, and waits for them.

    :param project_name: Optional CAMB project name (templated in every subclass).
    :param project_description: Optional CAMB project description (templated).
    :param folder_id: Optional CAMB folder id, an integer or digit string (templated).
    :param poll_interval: Seconds between status checks while waiting.
    :param timeout: Longest wait in seconds or a ``timedelta`` (default 24 hours).
    :param deferrable: Wait in the triggerer (default: ``[operators] default_deferrable``).
    :param retry_uncertain_create: Let Airflow's retries create anew when CAMB may have created a task
        whose id is unknown (default False: fail without retries, which never pays twice).
    :param resume_margin: Waiting deferred, a wait that resumes the task on a worker does so no sooner than
        this many seconds after it deferred (apache/airflow#72716; docs/ending-waits.md). Default 30 s.
    """

    #: The CAMB task kind this operator creates (one of ``airflow_provider_camb.kinds.KINDS``).
    kind: ClassVar[CambKind]
    #: The fields every CAMB create accepts; subclasses add them to their ``template_fields``.
    project_fields: ClassVar[tuple[str, ...]] = ("project_name", "project_description", "folder_id")
    #: The field whose start, with the project name, lets a person recognise a task in CAMB.AI.
    described_by: ClassVar[str] = "text"

    def __init__(
        self,
        *,
        project_name: str | None = None,
        project_description: str | None = None,
        folder_id: int | str | None = None,
        poll_interval: float | timedelta = DEFAULT_POLL_INTERVAL,
        timeout: float | timedelta = DEFAULT_TIMEOUT,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        retry_uncertain_create: bool = False,
        resume_margin: float | timedelta = DEFAULT_RESUME_MARGIN,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.project_name = project_name
        self.project_description = project_description
        self.folder_id = folder_id
        self.poll_interval = seconds(poll_interval, "poll_interval")
        self.timeout = seconds(timeout, "timeout")
        self.deferrable = deferrable
        self.retry_uncertain_create = retry_uncertain_create
        self.resume_margin = seconds(resume_margin, "resume_margin", zero=True)
