"""The attachment store: staged uploads in ``UPLOAD_DIR``, stored images by content.

Every intake goes the same way: the bytes are written to a staged file (streamed, the size
checked as they come, so an oversized upload is refused before it is all held), the staged
file is recognised and checked (:mod:`boonb.attachments.content`), then moved into
``<project>/.boonb/attachments/<sha256>.<ext>`` with a temp file and a rename, so a reader
never sees half a file. The staged file is removed whatever happens; :meth:`sweep` removes
the ones a crash left behind.
"""

from __future__ import annotations

import base64
import copy
import errno
import getpass
import hashlib
import os
import stat
import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO

from PIL import Image

from boonb.attachments import content
from boonb.attachments.errors import AttachmentNotFound, AttachmentTooLarge, UploadDirUnsafe
from boonb.attachments.models import AttachmentRef, ImageBytes

CHUNK = 1 << 20
STAGED_PREFIX = "boonb-upload-"
SWEEP_AGE_S = 300.0
"""Staged files older than this (5 minutes) are leftovers of a crash and are removed."""


def default_upload_dir() -> Path:
    """The current user's staging folder in the system temp dir (``boonb-uploads-<uid>``).

    Per user: the temp dir is shared, and a folder another user made first would be
    theirs (unwritable for us, or open for them to read or swap a staged image).
    """
    getuid = getattr(os, "getuid", None)
    user = str(getuid()) if getuid is not None else getpass.getuser()
    return Path(tempfile.gettempdir()) / f"boonb-uploads-{user}"


class AttachmentStore:
    """One project's images: intake (bytes, files, streams), lookup by reference, thumbnails.

    Thread-safe: files are only ever created by rename, and a name is the content's hash.
    """

    def __init__(
        self,
        project: Path,
        *,
        upload_dir: Path | None = None,
        max_size_mb: float = 20,
        max_pixels: int = content.MAX_IMAGE_PIXELS,
    ) -> None:
        self.folder = Path(project) / ".boonb" / "attachments"
        self.upload_dir = Path(upload_dir) if upload_dir is not None else default_upload_dir()
        # The default folder is boonb's own: kept private (0o700). A folder the user chose
        # is left as it is, unless others could write to it.
        self._own_upload_dir = upload_dir is None
        self._held: list[tuple[Path, AttachmentRef]] | None = None  # see all_or_nothing
        self.max_size_mb = max_size_mb
        self.max_bytes = int(max_size_mb * 1024 * 1024)
        self.max_pixels = max_pixels

    # Intake.

    def check_size(self, size: int, *, name: str) -> None:
        """Refuse a declared size before any byte is received (e.g. from a browser)."""
        if size > self.max_bytes:
            raise AttachmentTooLarge(self._too_large(name, size))

    def add_bytes(self, data: bytes | bytearray | memoryview, *, name: str) -> AttachmentRef:
        """Store an image given as bytes (e.g. a comm buffer); returns its reference.

        Raises an :class:`~boonb.errors.AttachmentError` naming what was detected and the
        limit; then nothing is stored.
        """
        view = memoryview(data)
        self.check_size(view.nbytes, name=name)
        return self._add_chunks(_chunks_of(view), name=name)

    def add_path(self, path: str | os.PathLike[str], *, name: str | None = None) -> AttachmentRef:
        """Store an image file; its size is checked before it is read."""
        source = Path(path).expanduser()
        shown = Path(name).name if name else source.name
        try:
            size = source.stat().st_size
            if not source.is_file():
                raise AttachmentNotFound(
                    f"{str(source)!r} is not a file; give an image file's path"
                )
            self.check_size(size, name=shown)
            with source.open("rb") as stream:
                return self.add_stream(stream, name=shown)
        except FileNotFoundError:
            raise AttachmentNotFound(
                f"no file {str(source)!r}; check the path (relative paths start at the "
                f"kernel's working directory, {Path.cwd()})"
            ) from None

    def add_stream(self, stream: IO[bytes], *, name: str) -> AttachmentRef:
        """Store an image read from a binary stream, stopping as soon as it is too large."""
        return self._add_chunks(iter(lambda: stream.read(CHUNK), b""), name=name)

    def _add_chunks(self, chunks: Iterable[bytes | memoryview], *, name: str) -> AttachmentRef:
        with self._staged() as staged:
            digest = hashlib.sha256()
            size = 0
            with staged.open("wb") as out:
                for chunk in chunks:
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise AttachmentTooLarge(self._too_large(name, None))
                    digest.update(chunk)
                    out.write(chunk)
            with staged.open("rb") as stream:
                found = content.sniff(stream, name=name, max_pixels=self.max_pixels)
            content.verify(staged, name=name)
            ref = AttachmentRef(
                sha256=digest.hexdigest(),
                mime=found.mime,
                size_bytes=size,
                width=found.width,
                height=found.height,
                name=name,
            )
            self._keep(staged, ref)
            return ref

    def staging_dir(self) -> Path:
        """The upload folder, made if needed (0o700) and checked to be this user's alone.

        Raises :class:`UploadDirUnsafe` if another user owns it, it is a symbolic link, or
        (for a folder set with ``UPLOAD_DIR``) others may write to it: they could swap a
        staged image between its check and its storing.
        """
        folder = self.upload_dir
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        getuid = getattr(os, "getuid", None)
        if getuid is None:  # Windows: the temp dir is per user already
            return folder
        info = folder.lstat()
        mode = stat.S_IMODE(info.st_mode)
        problem = None
        if not stat.S_ISDIR(info.st_mode):
            problem = "is not a folder (a symbolic link or a file)"
        elif info.st_uid != getuid():
            problem = f"belongs to another user (uid {info.st_uid})"
        elif self._own_upload_dir and mode & 0o077:
            folder.chmod(0o700)  # ours, made with a looser mode (e.g. by a plain mkdir)
        elif mode & 0o022:
            problem = f"can be written by other users (mode {mode:o})"
        if problem is not None:
            raise UploadDirUnsafe(
                f"the upload folder {folder} {problem}, so another user could read or swap a "
                "staged image; nothing was stored. Remove that folder, or set UPLOAD_DIR to a "
                "folder of your own (UPLOAD_DIR, or %boonb config upload_dir=PATH)."
            )
        return folder

    @contextmanager
    def _staged(self) -> Iterator[Path]:
        staged = self.staging_dir() / f"{STAGED_PREFIX}{uuid.uuid4().hex}"
        try:
            yield staged
        finally:
            staged.unlink(missing_ok=True)

    @contextmanager
    def all_or_nothing(self) -> Iterator[AttachmentStore]:
        """A view of this store that keeps the images added through it only if all are good.

        Each is checked as it is added; the checked files wait in the upload folder and are
        stored when the block ends without error, so a bad image in a batch leaves none of
        the others stored.
        """
        batch = copy.copy(self)
        batch._held = []
        try:
            yield batch
            for staged, ref in batch._held:
                self._keep(staged, ref)
        finally:
            for staged, _ in batch._held:
                staged.unlink(missing_ok=True)

    def _keep(self, staged: Path, ref: AttachmentRef) -> None:
        if self._held is not None:  # a batch: keep it staged (the sweep removes leftovers)
            held = staged.with_name(f"{staged.name}-held")
            os.replace(staged, held)
            self._held.append((held, ref))
            return
        target = self.folder / ref.file_name
        if target.exists():  # the same bytes were stored before: content-addressed, once
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(staged, "rb+") as written:
            os.fsync(written.fileno())
        try:  # the staged file is complete and checked: on the same file system, move it
            os.replace(staged, target)
            return
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
        # Staging is on another file system (/tmp): copy into the folder, then rename.
        temporary = self.folder / f".{ref.sha256}.{uuid.uuid4().hex}.tmp"
        try:
            with staged.open("rb") as source, temporary.open("wb") as out:
                while chunk := source.read(CHUNK):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        finally:
            temporary.unlink(missing_ok=True)

    def _too_large(self, name: str, size: int | None) -> str:
        shown = f"{size / 1024 / 1024:.1f} MB" if size is not None else "larger than that"
        return (
            f"{name!r} is {shown}; the limit is {self.max_size_mb:g} MB "
            "(MAX_ATTACHMENT_SIZE_MB); scale it down or compress it (e.g. save as JPEG) first"
        )

    # Lookup.

    def path_of(self, ref: AttachmentRef) -> Path:
        """The stored file of ``ref``; raises :class:`AttachmentNotFound` if it is missing."""
        path = self.folder / ref.file_name
        if not path.is_file():
            raise AttachmentNotFound(
                f"the image {ref.name or ref.sha256[:12]!r} ({ref.sha256[:12]}…) is not in "
                f"{self.folder}; it was deleted or the chat came from another project: "
                "attach the image again"
            )
        return path

    def read(self, ref: AttachmentRef) -> bytes:
        return self.path_of(ref).read_bytes()

    def data_uri(self, ref: AttachmentRef) -> str:
        """The image as a base64 data URI, built for sending; never store it."""
        encoded = base64.b64encode(self.read(ref)).decode("ascii")
        return f"data:{ref.mime};base64,{encoded}"

    def image(self, ref: AttachmentRef, *, max_width: int | None = None) -> ImageBytes:
        """The image, or a thumbnail at most ``max_width`` pixels wide (aspect kept).

        Thumbnails are PNG (JPEG for a JPEG) and cached under ``thumbs/``; the full image is
        returned as stored when ``max_width`` is None or not smaller than its width.
        """
        if max_width is not None and max_width < 1:
            raise ValueError(f"max_width must be a positive number of pixels, got {max_width}")
        if max_width is None or max_width >= ref.width:
            return ImageBytes(
                data=self.read(ref), mime=ref.mime, width=ref.width, height=ref.height
            )
        height = max(1, round(ref.height * max_width / ref.width))
        jpeg = ref.mime == "image/jpeg"
        cached = self.folder / "thumbs" / f"{ref.sha256}-w{max_width}.{'jpg' if jpeg else 'png'}"
        if not cached.is_file():
            data = make_thumbnail(self.path_of(ref), (max_width, height), jpeg=jpeg)
            _write_atomic(cached, data)
        else:
            data = cached.read_bytes()
        return ImageBytes(
            data=data, mime="image/jpeg" if jpeg else "image/png", width=max_width, height=height
        )

    # Housekeeping.

    def sweep(self, *, older_than_s: float = SWEEP_AGE_S, now: float | None = None) -> int:
        """Remove staged files older than ``older_than_s``; returns how many went."""
        now = time.time() if now is None else now
        removed = 0
        with suppress(FileNotFoundError):
            for staged in self.upload_dir.glob(f"{STAGED_PREFIX}*"):
                with suppress(FileNotFoundError):
                    if now - staged.stat().st_mtime > older_than_s:
                        staged.unlink()
                        removed += 1
        return removed


def make_thumbnail(path: Path, size: tuple[int, int], *, jpeg: bool) -> bytes:
    import io

    with Image.open(path) as image:
        if jpeg:
            image.draft("RGB", size)  # let the JPEG decoder scale down: far less to decode
        image.thumbnail(size, Image.Resampling.LANCZOS)
        out = io.BytesIO()
        if jpeg:
            image.convert("RGB").save(out, "JPEG", quality=85)
        else:
            keep = image.convert("RGBA") if image.mode in ("P", "LA", "PA") else image
            keep.save(out, "PNG", optimize=False)
        return out.getvalue()


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        temporary.write_bytes(data)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def _chunks_of(view: memoryview) -> Iterator[memoryview]:
    flat = view.cast("B")
    for start in range(0, flat.nbytes, CHUNK):
        yield flat[start : start + CHUNK]
