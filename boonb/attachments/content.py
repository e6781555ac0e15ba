"""Recognising an image by its content, never its name, and refusing everything else.

The first bytes say what a file is (magic bytes); Pillow then reads the header to get the
size in pixels, and the pixel count is checked before anything is decoded, so a small file
that would inflate to gigabytes (a decompression bomb) is refused cheaply.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from PIL import Image, UnidentifiedImageError

from boonb.attachments.errors import ImageTooManyPixels, UnreadableImage, UnsupportedAttachment
from boonb.attachments.models import ImageMime

MAX_IMAGE_PIXELS = 50_000_000
"""The most pixels an image may decode to (e.g. 8660 x 5773); more is a decompression bomb.

Pillow's own guard (``Image.MAX_IMAGE_PIXELS``, about 89 M, a warning then an error at
twice that) is global to the process and only warns below 179 M pixels; ours is checked
on every image from its header, before any pixel is decoded.
"""

SUPPORTED = "PNG, JPEG, GIF or WebP"

_PILLOW_FORMATS: dict[str, ImageMime] = {
    "PNG": "image/png",
    "JPEG": "image/jpeg",
    "GIF": "image/gif",
    "WEBP": "image/webp",
}


@dataclass(frozen=True)
class Sniffed:
    """What an image's header says: its type and its size in pixels."""

    mime: ImageMime
    width: int
    height: int


def magic_mime(head: bytes) -> ImageMime | None:
    """The supported image type the first bytes announce, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    return None


def describe(head: bytes) -> str:
    """A short name for unsupported content, for the error message."""
    stripped = head.lstrip()
    lowered = stripped[:1024].lower()
    known = [
        (b"%PDF", "a PDF document"),
        (b"PK\x03\x04", "a ZIP archive (or an Office document)"),
        (b"BM", "a BMP image"),
        (b"II*\x00", "a TIFF image"),
        (b"MM\x00*", "a TIFF image"),
        (b"\x00\x00\x01\x00", "an ICO icon"),
    ]
    for magic, name in known:
        if stripped.startswith(magic):
            return name
    if b"<svg" in lowered or (lowered.startswith(b"<?xml") and b"svg" in lowered):
        return "an SVG image (vector graphics; export it as PNG first)"
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftypavif"):
        return "a HEIC/AVIF image"
    if not head:
        return "an empty file"
    if all(32 <= b < 127 or b in (9, 10, 13) for b in head[:512]):
        return "text"
    return "unrecognised binary data"


def sniff(stream: IO[bytes], *, name: str, max_pixels: int = MAX_IMAGE_PIXELS) -> Sniffed:
    """Recognise a supported image in ``stream`` and check its pixel count; decode nothing.

    Raises :class:`UnsupportedAttachment` for anything but PNG, JPEG, GIF and WebP,
    :class:`ImageTooManyPixels` past ``max_pixels``, :class:`UnreadableImage` if the header
    is broken. ``name`` is only used in the messages.
    """
    head = stream.read(1024)
    stream.seek(0)
    mime = magic_mime(head)
    if mime is None:
        raise UnsupportedAttachment(
            f"{name!r} is {describe(head)}, not an image boonb can send; attach a {SUPPORTED} "
            "file (the type is read from the content, so renaming does not help)"
        )
    with warnings.catch_warnings(record=True) as warned:
        warnings.simplefilter("always", Image.DecompressionBombWarning)
        image = _open(stream, name=name, mime=mime)
    width, height = image.size
    if any(issubclass(w.category, Image.DecompressionBombWarning) for w in warned):
        # Pillow's own limit (its warning) is lower than ours: refuse at Pillow's.
        max_pixels = min(max_pixels, Image.MAX_IMAGE_PIXELS or max_pixels, width * height - 1)
    check_pixels(width, height, name=name, max_pixels=max_pixels)
    return Sniffed(mime=mime, width=width, height=height)


def check_pixels(width: int, height: int, *, name: str, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise UnreadableImage(f"{name!r} has no pixels ({width} x {height}); attach another image")
    if width * height > max_pixels:
        raise ImageTooManyPixels(_too_many(name, width * height, max_pixels, (width, height)))


def verify(path: Path, *, name: str) -> None:
    """Check that the whole file decodes (a truncated or corrupt image is refused).

    Pillow's ``verify`` checks a PNG's chunk checksums without decoding; for JPEG, GIF and
    WebP it checks nothing, so those are decoded (the first frame), which the pixel limit
    checked by :func:`sniff` keeps bounded.
    """
    try:
        with _pillow_guard(name), Image.open(path, formats=list(_PILLOW_FORMATS)) as image:
            if image.format == "PNG":
                image.verify()
            else:
                image.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise UnreadableImage(
            f"{name!r} looks like an image but cannot be read ({exc}); it may be truncated "
            "or corrupt: save it again and attach the new file"
        ) from None


def _open(stream: IO[bytes], *, name: str, mime: ImageMime) -> Image.Image:
    try:
        image = Image.open(stream, formats=list(_PILLOW_FORMATS))
    except Image.DecompressionBombError as exc:  # past twice Pillow's limit
        raise ImageTooManyPixels(
            f"{name!r} was refused by Pillow as a decompression bomb ({exc}); "
            "attach a smaller image"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UnreadableImage(
            f"{name!r} starts like a {mime} image but its header cannot be read ({exc}); "
            "save it again and attach the new file"
        ) from None
    if _PILLOW_FORMATS.get(image.format or "") != mime:
        raise UnsupportedAttachment(
            f"{name!r} announces {mime} but decodes as {image.format}; attach a {SUPPORTED} file"
        )
    return image


@contextmanager
def _pillow_guard(name: str) -> Iterator[None]:
    """Turn Pillow's decompression-bomb warning and error into our refusal."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            yield
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise ImageTooManyPixels(
            f"{name!r} was refused by Pillow as a decompression bomb ({exc}); "
            "attach a smaller image"
        ) from None


def _too_many(name: str, pixels: int, limit: int, size: tuple[int, int]) -> str:
    return (
        f"{name!r} is {size[0]} x {size[1]} = {pixels:,} pixels, more than the limit of "
        f"{limit:,} (a possible decompression bomb); scale it down and attach it again"
    )


def open_bytes(data: bytes) -> Image.Image:
    """An image from bytes already checked by :func:`sniff` (for thumbnails)."""
    return Image.open(io.BytesIO(data), formats=list(_PILLOW_FORMATS))
