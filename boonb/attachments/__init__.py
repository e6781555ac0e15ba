"""Images given to an agent: intake, validation, content-addressed files, thumbnails.

The kernel side of attachments (DESIGN section 3). Messages, snapshots, traces and frames
carry an :class:`AttachmentRef`; the bytes live once per project under
``<project>/.boonb/attachments/`` and are read back to build a data URI at send time or a
thumbnail for a view. ``/work/notes/attachments-interface.md`` is the guide for views.
"""

from boonb.attachments.content import MAX_IMAGE_PIXELS, magic_mime
from boonb.attachments.errors import (
    AttachmentError,
    AttachmentNotFound,
    AttachmentTooLarge,
    ImageTooManyPixels,
    UnreadableImage,
    UnsupportedAttachment,
    UploadDirUnsafe,
)
from boonb.attachments.files import SWEEP_AGE_S, AttachmentStore, default_upload_dir
from boonb.attachments.intake import ImageSource, add_image
from boonb.attachments.models import IMAGE_PART, AttachmentRef, ImageBytes, ImageMime
from boonb.attachments.tokens import image_tokens

__all__ = [
    "IMAGE_PART",
    "MAX_IMAGE_PIXELS",
    "SWEEP_AGE_S",
    "AttachmentError",
    "AttachmentNotFound",
    "AttachmentRef",
    "AttachmentStore",
    "AttachmentTooLarge",
    "ImageBytes",
    "ImageMime",
    "ImageSource",
    "ImageTooManyPixels",
    "UnreadableImage",
    "UnsupportedAttachment",
    "UploadDirUnsafe",
    "add_image",
    "default_upload_dir",
    "image_tokens",
    "magic_mime",
]
