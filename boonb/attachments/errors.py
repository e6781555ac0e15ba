"""The errors of image intake and the attachment store, all under ``AttachmentError``.

Each names what was detected and the limit, and says what to do next; when one is raised
nothing has been stored and nothing sent.
"""

from __future__ import annotations

from boonb.errors import AttachmentError

__all__ = [
    "AttachmentError",
    "AttachmentNotFound",
    "AttachmentTooLarge",
    "ImageTooManyPixels",
    "UnreadableImage",
    "UnsupportedAttachment",
    "UploadDirUnsafe",
]


class UnsupportedAttachment(AttachmentError):
    """The content is not a PNG, JPEG, GIF or WebP image (whatever its name says)."""


class AttachmentTooLarge(AttachmentError):
    """The file is larger than ``MAX_ATTACHMENT_SIZE_MB``."""


class ImageTooManyPixels(AttachmentError):
    """The image would decode to more pixels than the limit (a decompression bomb)."""


class UnreadableImage(AttachmentError):
    """The content claims a supported type but Pillow cannot decode it (truncated, corrupt)."""


class AttachmentNotFound(AttachmentError):
    """A reference whose bytes are not in this project's attachments folder."""


class UploadDirUnsafe(AttachmentError):
    """The upload folder is not this user's alone (another owner, a link, writable by others)."""
