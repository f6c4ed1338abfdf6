"""``CambChooseVoiceOperator``: a person listens to the previews in Airflow's UI and picks the one to keep.

Built on the standard provider's ``HITLOperator`` (Airflow 3.1+; on 3.3 the task waits in the
``awaiting_input`` state and holds no worker or triggerer). Import it from
``airflow_provider_camb.operators.text_to_voice``; before Airflow 3.1 that import raises
``CambAirflowVersionError``.
"""

from __future__ import annotations

from airflow_provider_camb.version_compat import require_airflow_3_1

require_airflow_3_1(
    "CambChooseVoiceOperator",
    "Keep a preview by its index instead: CambCreateCustomVoiceOperator(preview=0, previews=download.output, ...).",
)

from collections.abc import Sequence  # noqa: E402
from datetime import timedelta  # noqa: E402
from typing import TYPE_CHECKING, Any  # noqa: E402

from airflow.providers.common.compat.sdk import Param, SkipMixin  # noqa: E402
from airflow.providers.standard.operators.hitl import HITLOperator  # noqa: E402
from airflow.sdk import XComArg  # noqa: E402
from airflow.sdk.definitions.param import ParamsDict  # noqa: E402

from airflow_provider_camb.api import whole_number  # noqa: E402
from airflow_provider_camb.exceptions import CambInputError  # noqa: E402
from airflow_provider_camb.operators._voice_choice import (  # noqa: E402
    NONE_OF_THESE,
    VoiceChoice,
    preview_option,
)
from airflow_provider_camb.plugins._urls import ui_url  # noqa: E402

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

#: CAMB makes two or three previews; the options are made for those the download really wrote.
MAX_PREVIEWS = 9
MODES = ("by ear", "first")

DEFAULT_BODY = """\
CAMB designed the voice and made its previews. **Listen to them** in the
[CAMB files view of `{{ task.download_task_id }}`]({{ task.previews_url(ti) }}), then choose:

- **Preview 1**, **Preview 2**, ...: keep that preview as a permanent CAMB custom voice, with the name,
  gender and description below; the tasks after this one go on with it.
- **None of these**: keep nothing; every task after this one is skipped.
"""


class CambChooseVoiceOperator(HITLOperator, SkipMixin):
    """Ask a person which preview of a CAMB voice design to keep; return their ``VoiceChoice``.

    The options are made when the task runs, from the previews the download actually wrote:
    ``"Preview 1"``, ``"Preview 2"`` (``"Preview 3"``...) and ``"None of these"``. The body (Markdown,
    templated) links to the "CAMB files" view of the download task, where each preview plays. The form
    asks for the kept voice's ``voice_name``, ``gender`` and ``description``, filled in from the
    arguments. ``"None of these"`` skips every task downstream and says so in the log.

    Returns ``{"preview": index from 0 or None, "option", "file": the preview's XCom entry, "voice_name",
    "gender", "description", "responded_by"}``; give it to ``CambCreateCustomVoiceOperator(choice=...)``.

    :param previews: The download's XCom, e.g. ``TextToVoiceResultOperator(...).output`` (templated).
    :param voice_name: The kept voice's name, as the form first shows it (templated).
    :param gender: CAMB's gender code (1 male, 2 female), as the form first shows it (templated).
    :param description: The kept voice's description, optional (templated).
    :param download_task_id: The download task, for the body's link; by default the task ``previews`` comes from.
    :param choose: ``"by ear"`` (ask a person, the default) or ``"first"`` (keep Preview 1 without asking,
        for unattended runs) (templated).
    :param subject: The headline of the question (templated).
    :param body: The Markdown shown with it (templated; ``task.previews_url(ti)`` is the view's link).
    :param defaults: The option(s) taken when ``response_timeout`` passes; other arguments of ``HITLOperator``
        (``response_timeout``, ``notifiers``, ``assigned_users``) pass through.
    """

    inherits_from_skipmixin = True
    template_fields: Sequence[str] = (
        "subject",
        "body",
        "previews",
        "voice_name",
        "gender",
        "description",
        "choose",
    )
    template_fields_renderers = {"body": "md"}  # noqa: RUF012  # BaseOperator's own attribute
    ui_color = "#fde8d7"

    def __init__(
        self,
        *,
        previews: Any,
        voice_name: str,
        gender: int | str,
        description: str | None = None,
        download_task_id: str | None = None,
        choose: str = "by ear",
        subject: str = "Which preview of the voice should be kept?",
        body: str = DEFAULT_BODY,
        defaults: str | list[str] | None = None,
        response_timeout: timedelta | None = None,
        **kwargs: Any,
    ) -> None:
        if isinstance(previews, XComArg) and download_task_id is None:
            download_task_id = next(iter(previews.iter_references()))[0].task_id
        if not download_task_id:
            raise CambInputError("CambChooseVoiceOperator needs download_task_id when previews is not a task's output.")
        for name in ("options", "multiple"):
            if name in kwargs:
                raise CambInputError(f"CambChooseVoiceOperator makes its own {name}; do not pass it.")
        kwargs.pop("params", None)  # the DAG's params, which Airflow hands every task: the form is ours alone
        super().__init__(
            subject=subject,
            body=body,
            options=[*map(preview_option, range(MAX_PREVIEWS)), NONE_OF_THESE],
            defaults=defaults,
            multiple=False,
            # The form is made once the templates are rendered (its fields would shadow the DAG's params there).
            params=None,
            response_timeout=response_timeout,
            **kwargs,
        )
        self.previews = previews
        self.voice_name = voice_name
        self.gender = gender
        self.description = description
        self.download_task_id = download_task_id
        self.choose = choose

    def previews_url(self, ti: Any) -> str:
        """The download task's "CAMB files" view in the Airflow UI (same map index as this task)."""
        return ui_url(ti.dag_id, ti.run_id, self.download_task_id, ti.map_index)

    def execute(self, context: Context) -> Any:
        files = self._preview_files()
        if self.choose not in MODES:
            raise CambInputError(f"choose must be one of {MODES}, got {self.choose!r}.")
        self.params = self._rendered_form()
        if self.choose == "first":
            self.log.info("choose='first': keeping Preview 1 of %d without asking anyone.", len(files))
            return self._choice(0, files, self.params, responded_by=None)
        self.options = [*map(preview_option, range(len(files))), NONE_OF_THESE]
        if self.defaults and not set(self.defaults) <= set(self.options):
            raise CambInputError(
                f"defaults {self.defaults} name a preview the download did not write (it wrote {len(files)})."
            )
        self.log.info(
            "Asking which of %d previews to keep (options %s). Listen to them at %s",
            len(files),
            self.options,
            self.previews_url(context["ti"]),
        )
        return super().execute(context)

    def execute_complete(self, context: Context, event: dict[str, Any]) -> VoiceChoice:
        self.params = self._rendered_form()  # what the form offered; the answer's fields go over it
        answer = super().execute_complete(context, event)
        option = answer["chosen_options"][0]
        user = answer.get("responded_by_user") or {}
        responded_by = (user.get("name") or user.get("id")) if isinstance(user, dict) else None
        params = {key: self.params[key] for key in self.params}
        if option == NONE_OF_THESE:
            later = [task for task in context["task"].get_flat_relatives(upstream=False) if not task.is_teardown]
            self.log.info(
                "%s chose %r: no preview is kept; skipping %s.",
                responded_by or "The answer",
                NONE_OF_THESE,
                sorted(task.task_id for task in later) or "nothing (no task follows)",
            )
            if later:
                self.skip(ti=context["ti"], tasks=later)
            return self._choice(None, [], params, responded_by)
        files = self._preview_files()
        index = int(option.rsplit(" ", 1)[1]) - 1
        if index >= len(files):
            raise CambInputError(f"{option!r} was chosen but the download wrote {len(files)} previews.")
        self.log.info("%s chose %s: %s.", responded_by or "The answer", option, files[index]["path"])
        return self._choice(index, files, params, responded_by)

    def _rendered_form(self) -> ParamsDict:
        gender = whole_number("gender", self.gender, optional=False)
        assert gender is not None
        return _form(self.voice_name, gender, self.description)

    def _preview_files(self) -> list[dict[str, Any]]:
        files = self.previews
        if not isinstance(files, list) or not files or not all(isinstance(f, dict) and "path" in f for f in files):
            raise CambInputError(
                "previews must be the list TextToVoiceResultOperator returns (one dict with 'path' per preview), "
                f"got {str(files)[:200]!r}."
            )
        if len(files) > MAX_PREVIEWS:
            raise CambInputError(f"The download wrote {len(files)} previews; at most {MAX_PREVIEWS} can be offered.")
        return files

    @staticmethod
    def _choice(index: int | None, files: list[dict[str, Any]], params: Any, responded_by: str | None) -> VoiceChoice:
        description = params["description"] or None
        gender = whole_number("gender", params["gender"], optional=False)
        assert gender is not None
        return {
            "preview": index,
            "option": NONE_OF_THESE if index is None else preview_option(index),
            "file": None if index is None else files[index],
            "voice_name": str(params["voice_name"]),
            "gender": gender,
            "description": None if description is None else str(description),
            "responded_by": responded_by,
        }


def _form(voice_name: str, gender: int, description: str | None) -> ParamsDict:
    """The form a person fills in: the kept voice's name, gender and description."""
    return ParamsDict(
        {
            "voice_name": Param(
                voice_name, type="string", minLength=1, description="Name of the kept voice.", source="task"
            ),
            "gender": Param(gender, type="integer", description="CAMB gender code (1 male, 2 female).", source="task"),
            "description": Param(
                description, type=["null", "string"], description="Optional description of the voice.", source="task"
            ),
        }
    )
