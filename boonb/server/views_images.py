"""Stored images for the trace viewer in a side panel (a cell's view gets them over its comm).

The view knows an image by its reference (``AttachmentRef``: hash, type, size); the bytes
are the project's content-addressed file, or a thumbnail of it, read as a kernel reads them.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from boonb.attachments import AttachmentRef, AttachmentStore, ImageBytes
from boonb.attachments.content import sniff
from boonb.attachments.errors import AttachmentError, AttachmentNotFound
from boonb.store import InvalidQuery

THUMBNAIL_WIDTHS = frozenset({600})
"""The thumbnail widths the views ask for (``THUMB_FETCH_PX`` in labextension/src/shared/
images.ts): each one asked is cached on disk, so no other width is made."""


class InvalidImage(InvalidQuery):
    """The image's reference or the thumbnail's width is not valid."""


class ImageNotFound(AttachmentNotFound, LookupError):
    """No stored file for that reference (deleted, or another project's)."""


def read_image(
    project: Path,
    sha256: str,
    *,
    mime: str,
    size_bytes: int,
    width: int,
    height: int,
    max_width: int | None,
) -> ImageBytes:
    """The image's bytes, or a thumbnail at most ``max_width`` wide (blocking file I/O).

    The reference must be the stored file's own (its type, size and pixels, as the trace
    that shows it recorded them): the answer's sizes and a cached thumbnail's shape come
    from the file, never from what a request claims.
    """
    if max_width is not None and max_width not in THUMBNAIL_WIDTHS:
        widths = ", ".join(str(w) for w in sorted(THUMBNAIL_WIDTHS))
        raise InvalidImage(f"max_width must be one of {widths} (a view's thumbnail), or none")
    try:
        ref = AttachmentRef.model_validate(
            {
                "sha256": sha256,
                "mime": mime,
                "size_bytes": size_bytes,
                "width": width,
                "height": height,
            }
        )
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        where = ".".join(str(part) for part in error["loc"])
        raise InvalidImage(f"the image's {where}: {error['msg']}") from None
    store = AttachmentStore(project)
    try:
        _check_stored(store, ref)
        return store.image(ref, max_width=max_width)
    except AttachmentNotFound as exc:
        raise ImageNotFound(str(exc)) from None


def _check_stored(store: AttachmentStore, ref: AttachmentRef) -> None:
    """Refuse a reference whose type, size or pixels are not the stored file's."""
    path = store.path_of(ref)
    try:
        with path.open("rb") as stream:
            found = sniff(stream, name=ref.sha256[:12])
    except AttachmentError as exc:  # the stored file is not an image boonb reads
        raise InvalidImage(str(exc)) from None
    stored = (found.mime, path.stat().st_size, found.width, found.height)
    if (ref.mime, ref.size_bytes, ref.width, ref.height) != stored:
        mime, size, width, height = stored
        raise InvalidImage(
            f"the reference does not match the stored image ({mime}, {size} bytes, "
            f"{width} x {height}); take it from the trace that shows the image"
        )
