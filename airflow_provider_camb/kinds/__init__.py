"""The CAMB task kinds: one module each, holding its row, its create request builder and its result parser.

Every long-running CAMB operation is a task: ``POST /{create}`` starts it, ``GET /{kind}/{task_id}``
reports the same status object until a terminal status, and on SUCCESS its ``run_id`` leads to
``GET /{result}/{run_id}``. A kind's module (``kinds/tts.py``, ...) defines its ``CambKind`` row, its
``...Fields`` (the create fields, typed), the builder that checks them into a request before anything
is sent, and the parser of its result. ``KINDS`` is found here by reading those modules, so the waiting
core, the hook, the provider info and the stand-in all serve a new kind without a list to edit.
Shared checks are in ``_fields``, the media kinds' shared result in ``_media``.
"""

from __future__ import annotations

import importlib
import pkgutil

from airflow_provider_camb.exceptions import CambInputError
from airflow_provider_camb.kinds._kind import CambKind
from airflow_provider_camb.kinds._media import MEDIA_OUTPUT_TYPES
from airflow_provider_camb.kinds.audio_separation import AUDIO_SEPARATION
from airflow_provider_camb.kinds.dub import DUB
from airflow_provider_camb.kinds.text_to_sound import TEXT_TO_SOUND
from airflow_provider_camb.kinds.text_to_voice import TEXT_TO_VOICE
from airflow_provider_camb.kinds.transcribe import TRANSCRIBE
from airflow_provider_camb.kinds.translated_tts import TRANSLATED_TTS
from airflow_provider_camb.kinds.tts import TTS

__all__ = [  # the kinds of 0.2.0 by name, as before; a new kind is imported from its own module
    "AUDIO_SEPARATION",
    "DUB",
    "KINDS",
    "MEDIA_OUTPUT_TYPES",
    "TEXT_TO_SOUND",
    "TEXT_TO_VOICE",
    "TRANSCRIBE",
    "TRANSLATED_TTS",
    "TTS",
    "CambKind",
    "kind_of",
]


def _kinds_of_the_package() -> dict[str, CambKind]:
    """Every ``CambKind`` that a public module of this package defines, by name: those of 0.2.0 first, in
    their order (the stand-in serves a shared result path, ``tts-result``, with the first kind), then the rest."""
    of_0_2_0 = (TEXT_TO_VOICE, TTS, TRANSLATED_TTS, DUB, TEXT_TO_SOUND, TRANSCRIBE, AUDIO_SEPARATION)
    found = {kind.name: kind for kind in of_0_2_0}
    for module in pkgutil.iter_modules(__path__):
        if module.name.startswith("_"):
            continue
        for value in vars(importlib.import_module(f"{__name__}.{module.name}")).values():
            if isinstance(value, CambKind) and found.setdefault(value.name, value) is not value:
                raise RuntimeError(f"Two kind modules define the CAMB kind {value.name!r}.")
    return found


#: Every kind by its name.
KINDS: dict[str, CambKind] = _kinds_of_the_package()


def kind_of(name: object) -> CambKind:
    """The kind called ``name``; a ``CambInputError`` naming the known kinds for anything else."""
    if isinstance(name, CambKind):
        return name
    kind = KINDS.get(name) if isinstance(name, str) else None
    if kind is None:
        raise CambInputError(f"Unknown CAMB task kind {name!r}; the kinds are: {', '.join(KINDS)}.")
    return kind
