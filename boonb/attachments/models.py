"""The reference to a stored image: what messages, snapshots, traces and frames carry.

Bytes never travel in JSON; a reference names them by content (``sha256``) and says what
they are, so any process of the project finds them under ``.boonb/attachments/``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ImageMime = Literal["image/png", "image/jpeg", "image/gif", "image/webp"]

SUPPORTED_MIMES: tuple[ImageMime, ...] = ("image/png", "image/jpeg", "image/gif", "image/webp")

IMAGE_PART = "image"
"""The ``type`` of an image part in a stored user message (``{"type": "image", "image": ref}``)."""


class AttachmentRef(BaseModel):
    """A stored image, by content. Equal bytes give an equal ``sha256`` and one file."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the bytes, hex.")
    mime: ImageMime = Field(description="The type detected from the content, not the name.")
    size_bytes: int = Field(ge=0, description="Size of the stored file in bytes.")
    width: int = Field(ge=1, description="Width in pixels (the first frame of a GIF/WebP).")
    height: int = Field(ge=1, description="Height in pixels.")
    name: str = Field(default="", description="The name it was given (display only).")

    @property
    def file_name(self) -> str:
        """The stored file's name under ``.boonb/attachments/``: the hash and its extension."""
        return f"{self.sha256}.{_EXTENSIONS[self.mime]}"

    def to_part(self) -> dict[str, Any]:
        """The part of a stored user message that stands for this image."""
        return {"type": IMAGE_PART, "image": self.model_dump(mode="json")}

    @classmethod
    def from_part(cls, part: dict[str, Any]) -> AttachmentRef | None:
        """The reference of a stored message part, or None if the part is not an image."""
        if part.get("type") != IMAGE_PART or not isinstance(part.get("image"), dict):
            return None
        return cls.model_validate(part["image"])


_EXTENSIONS: dict[str, str] = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/gif": "gif",
    "image/webp": "webp",
}


class ImageBytes(BaseModel):
    """Image bytes fetched by reference: a thumbnail or the full image."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    data: bytes = Field(description="The encoded image (PNG or JPEG for a thumbnail).")
    mime: ImageMime
    width: int
    height: int
