"""``CambKind``: what one CAMB task kind is, as data, with its create request builder and result parser."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import InitVar, dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_camb.exceptions import CambInputError

if TYPE_CHECKING:
    from airflow_provider_camb.api import ApiRequest

#: Builds the create request of a kind from its fields by name, refusing bad input (``CambInputError``).
Builder = Callable[[Mapping[str, Any]], "ApiRequest"]
#: Reads a result reply (or one value of a bulk reply) of a kind's run: ``(body, kind, run_id)``.
ResultParser = Callable[[Any, "CambKind", int], Any]


@dataclass(frozen=True)
class CambKind:
    """What one CAMB task kind is called, where it lives, how it is created and what its result is.

    :param name: The kind as CAMB spells it in the status path ``/{name}/{task_id}``.
    :param label: Human words for the kind, used in logs and errors ("text-to-speech").
    :param create_path: Where a POST starts a task.
    :param result_path: Where ``/{result_path}/{run_id}`` gives the result of a run.
    :param inputs: What to review when a task of this kind ends with ERROR.
    :param output_types: The ``output_type`` values its result endpoint takes (empty: a JSON result only).
        ``RAW_BYTES`` streams the media itself from the API host; ``FILE_URL`` answers a bearer link to it.
    :param media: What its result holds when it is media (file names and log lines say so), e.g. ``speech``.
    :param bulk_result_path: Where ``POST /{bulk_result_path}`` with ``{"run_ids": [...]}`` gives the results
        of many runs at once. By default its result path in the plural, as CAMB names most (``tts-results``);
        empty: the kind has no bulk endpoint.
    :param create_fields: Its create fields, its module's ``...Fields`` TypedDict; ``fields`` holds their names.
    :param build: Its create request builder over those fields (None: the provider cannot create it yet).
    :param parse_result: Its result parser (None: the provider cannot read its result yet).
    :param upload: The file part that carries its media when it is uploaded (empty: it uploads nothing); a
        create with neither that part nor a ``media_url`` is refused before anything is sent.
    """

    name: str
    label: str
    create_path: str
    result_path: str
    inputs: str
    output_types: tuple[str, ...] = ()
    media: str = ""
    bulk_result_path: str | None = None
    create_fields: InitVar[type[Any] | None] = None
    build: Builder | None = field(default=None, repr=False, compare=False)
    parse_result: ResultParser | None = field(default=None, repr=False, compare=False)
    upload: str = ""
    #: The names of its create fields, in the order of ``create_fields``.
    fields: tuple[str, ...] = field(init=False, default=())

    def __post_init__(self, create_fields: type[Any] | None) -> None:
        if self.bulk_result_path is None:
            object.__setattr__(self, "bulk_result_path", f"{self.result_path}s")
        if create_fields is not None:
            object.__setattr__(self, "fields", tuple(create_fields.__annotations__))

    def status_path(self, encoded_task_id: str) -> str:
        return f"/{self.name}/{encoded_task_id}"

    def result_url_path(self, run_id: int) -> str:
        return f"/{self.result_path}/{run_id}"

    @property
    def error_advice(self) -> str:
        return (
            f"Review the inputs ({self.inputs}) and run it again; "
            "contact CAMB.AI support with the task id if they look right."
        )

    def create_request(self, fields: Mapping[str, Any]) -> ApiRequest:
        """The checked create request of ``fields``; an unknown field or bad input is refused before any request."""
        if self.build is None:
            raise CambInputError(f"This provider cannot create CAMB {self.label} tasks yet; wait for them only.")
        unknown = sorted(str(name) for name in fields if name not in self.fields)
        if unknown:
            raise CambInputError(
                f"A CAMB {self.label} task has no field(s) {', '.join(unknown)}; "
                f"its fields are {', '.join(self.fields)}."
            )
        return self.build(fields)

    def fields_of(self, source: object) -> dict[str, Any]:
        """This kind's create fields as attributes of ``source`` (an operator's own fields), by name."""
        return {name: getattr(source, name) for name in self.fields if hasattr(source, name)}

    def parse(self, body: Any, run_id: int) -> Any:
        """The result of run ``run_id`` from its reply (or its value in a bulk reply)."""
        if self.parse_result is None:
            raise CambInputError(f"This provider cannot read the results of CAMB {self.label} runs yet.")
        return self.parse_result(body, self, run_id)
