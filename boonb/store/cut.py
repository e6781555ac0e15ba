"""Large trace values in pages: a value over :data:`CUT_ABOVE_BYTES` comes as its size and start.

A page (and a tree) must stay small whatever the tools returned; the whole value is had
from :meth:`boonb.store.TraceStore.detail`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel
from pydantic_core import from_json

CUT_ABOVE_BYTES = 4096
"""An input or output whose JSON text is longer than this comes in a page as a preview."""
PREVIEW_CHARS = 2000
"""Characters of a cut value a page carries."""


class CutValue(BaseModel):
    """A trace's input or output too large for a page: its size and its start."""

    bytes: int
    """Size of the whole value as stored (its JSON text, UTF-8)."""
    kind: Literal["string", "json"]
    """``string``: the value is a string and ``preview`` is its start; ``json``: the value
    is an object, array or number and ``preview`` is the start of its JSON text."""
    preview: str


def cut_value(size: int, head: str) -> CutValue:
    """The preview of a value whose JSON text is ``size`` bytes and starts with ``head``."""
    if not head.startswith('"'):
        return CutValue(bytes=size, kind="json", preview=head[:PREVIEW_CHARS])
    # A JSON string: show its text, not its escapes. The cut may fall inside an escape
    # (at most 6 characters, ``\\uXXXX``), so drop characters until what is left decodes.
    text = head
    for end in range(len(text), max(0, len(text) - 7), -1):
        try:
            decoded = from_json(text[:end] + '"')
        except ValueError:
            continue
        if isinstance(decoded, str):
            return CutValue(bytes=size, kind="string", preview=decoded[:PREVIEW_CHARS])
    return CutValue(bytes=size, kind="json", preview=head[:PREVIEW_CHARS])
