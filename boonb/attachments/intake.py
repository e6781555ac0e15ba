"""Anything a notebook user may call an image, turned into a stored reference.

A path (``str`` or ``Path``), bytes, a PIL image, a matplotlib figure (rendered to PNG) or
any object with ``_repr_png_`` (IPython's rich display protocol). Matplotlib is not
imported: a figure is recognised by its ``savefig`` method.
"""

from __future__ import annotations

import io
import os
from typing import Any

from boonb.attachments.errors import UnsupportedAttachment
from boonb.attachments.files import AttachmentStore
from boonb.attachments.models import AttachmentRef

ImageSource = Any
"""A path, bytes, a PIL image, a matplotlib figure, or an object with ``_repr_png_``."""


def add_image(
    store: AttachmentStore, source: ImageSource, *, name: str | None = None
) -> AttachmentRef:
    """Store ``source`` and return its reference (see :data:`ImageSource`)."""
    if isinstance(source, AttachmentRef):
        store.path_of(source)  # already stored: only check it is still there
        return source
    if isinstance(source, str | os.PathLike):
        return store.add_path(source, name=name)
    if isinstance(source, bytes | bytearray | memoryview):
        return store.add_bytes(source, name=name or "image")
    shown = name or _describe(source)
    if _is_pil_image(source):
        return store.add_bytes(_pil_png(source), name=shown)
    if callable(getattr(source, "savefig", None)):  # a matplotlib Figure
        out = io.BytesIO()
        source.savefig(out, format="png", bbox_inches="tight")
        return store.add_bytes(out.getbuffer(), name=shown)
    if callable(getattr(source, "_repr_png_", None)):
        data = source._repr_png_()
        if isinstance(data, tuple):  # (data, metadata), as IPython allows
            data = data[0]
        if isinstance(data, bytes | bytearray | memoryview):
            return store.add_bytes(data, name=shown)
    raise UnsupportedAttachment(
        f"cannot attach {shown} as an image; give a file path, bytes, a PIL image, a "
        "matplotlib figure, or an object with _repr_png_"
    )


def _is_pil_image(source: object) -> bool:
    from PIL import Image

    return isinstance(source, Image.Image)


def _pil_png(image: Any) -> memoryview:
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getbuffer()


def _describe(source: object) -> str:
    kind = type(source)
    return (
        f"a {kind.__module__}.{kind.__qualname__}"
        if kind.__module__ != "builtins"
        else (f"a {kind.__qualname__}")
    )
