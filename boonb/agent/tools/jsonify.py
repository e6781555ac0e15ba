"""Convert whatever a tool returns into a JSON value the model can be sent."""

from __future__ import annotations

from typing import Any, cast

from pydantic import JsonValue
from pydantic_core import to_jsonable_python


def to_json_value(value: Any) -> JsonValue:
    """Pydantic models, dataclasses, paths, datetimes, sets ... become plain JSON values.

    Anything pydantic does not know is shown as ``str(value)`` rather than failing the call:
    the tool did its work, and a readable string is better than losing the result.
    """
    return cast(JsonValue, to_jsonable_python(value, fallback=str))
