"""Values a template rendered to text, read back: without ``render_template_as_native_obj`` a list is text."""

from __future__ import annotations

import ast
import json
from contextlib import suppress


def rendered_value(value: object) -> object:
    """``value`` itself, or, for text, what it spells as JSON or else as a Python literal (``str(list)``)."""
    if not isinstance(value, str):
        return value
    with suppress(ValueError):
        return json.loads(value)
    with suppress(ValueError, SyntaxError, MemoryError, RecursionError):
        return ast.literal_eval(value)
    return value
