"""Images for the widgets: uploads in chunks, and stored images read back by reference.

The chat view uploads a file in chunks (``UploadRequest``, each chunk a binary buffer of
its comm message), assembled here in a staged file and stored once whole. The chat view and
the trace viewer show an attachment as a thumbnail (and the full image in a lightbox): the
view sends an ``ImageRequest`` and gets the bytes as the reply's binary buffer. Never base64
in the JSON.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from boonb.attachments import AttachmentError, AttachmentStore
from boonb.attachments.files import STAGED_PREFIX
from boonb.widgets.chat_protocol import ImageReply, ImageRequest, UploadReply, UploadRequest
from boonb.widgets.common import ChatWidget
from boonb.widgets.protocol import ErrorReply

if TYPE_CHECKING:
    from boonb.runtime import Runtime

log = logging.getLogger("boonb.widgets")

__all__ = [
    "ChunkedUploads",
    "StagedUpload",
    "attachment_store",
    "finish_upload",
    "read_image",
    "reply_in_background",
]


@dataclass
class StagedUpload:
    """A file arriving in chunks, appended to a staged file until it is whole."""

    path: Path
    name: str
    size: int
    received: int = 0


class ChunkedUploads:
    """The uploads of one view whose chunks are still coming, by ``upload_id``.

    Chunks are appended on the kernel's main thread as they arrive, in order (each is at
    most ``UPLOAD_CHUNK_BYTES``, a quick write). The staged file is named like the store's
    own staged uploads, so an upload abandoned halfway (page closed, kernel busy) is
    removed by the store's sweep.
    """

    def __init__(self) -> None:
        self._open: dict[str, StagedUpload] = {}
        self._lock = threading.Lock()

    def receive(self, store: AttachmentStore, request: UploadRequest, chunk: Any) -> StagedUpload:
        """Append a chunk; the upload, whole when ``received == size`` (then no longer open).

        Raises an ``AttachmentError`` (the upload is dropped) for a file declared too large,
        a chunk out of order, or more bytes than declared.
        """
        data = memoryview(chunk).cast("B")
        with self._lock:
            upload = self._open.pop(request.upload_id, None)
        name = request.name or "the image"
        if upload is None:
            if request.offset != 0:
                raise AttachmentError(
                    f"the upload of {name!r} is not open in this kernel any more (the kernel "
                    "restarted?); attach it again"
                )
            store.check_size(request.size, name=name)  # before the rest is sent
            # This user's private folder, checked: another could swap a staged file.
            path = store.staging_dir() / f"{STAGED_PREFIX}chat-{uuid.uuid4().hex}"
            upload = StagedUpload(path=path, name=request.name, size=request.size)
        problem = None
        if request.offset != upload.received:
            problem = f"a chunk of {name!r} arrived out of order"
        elif upload.received + data.nbytes > upload.size:
            problem = f"{name!r} sent more than the {upload.size} bytes it declared"
        if problem is not None:
            upload.path.unlink(missing_ok=True)
            raise AttachmentError(f"{problem}; attach it again")
        try:
            with upload.path.open("ab") as out:
                out.write(data)
        except OSError as exc:  # a full disk: say so, keep nothing half-written
            upload.path.unlink(missing_ok=True)
            raise AttachmentError(
                f"{name!r} could not be staged in {upload.path.parent} ({exc.strerror}); "
                "free some space there (or set UPLOAD_DIR) and attach it again"
            ) from None
        upload.received += data.nbytes
        if upload.received < upload.size:
            with self._lock:
                self._open[request.upload_id] = upload
        return upload

    def discard(self) -> None:
        """Remove the staged files of uploads that will not be finished (view closed)."""
        with self._lock:
            open_uploads, self._open = list(self._open.values()), {}
        for upload in open_uploads:
            upload.path.unlink(missing_ok=True)


def finish_upload(
    store: AttachmentStore, request: UploadRequest, upload: StagedUpload
) -> UploadReply | ErrorReply:
    """Check and store a whole upload (off the main thread: hashing, Pillow's checks)."""
    try:
        with upload.path.open("rb") as stream:
            ref = store.add_stream(stream, name=upload.name)
    except AttachmentError as exc:
        return ErrorReply(request_id=request.request_id, message=str(exc))
    except OSError as exc:  # a full disk while storing: nothing is half-written
        name = upload.name or "the image"
        message = f"{name} could not be stored ({exc.strerror}); attach it again"
        return ErrorReply(request_id=request.request_id, message=message)
    finally:
        upload.path.unlink(missing_ok=True)
    return UploadReply(request_id=request.request_id, received=upload.received, attachment=ref)


def attachment_store(runtime: Runtime) -> AttachmentStore:
    """The kernel's attachment store (``boonb.api.attachments``), for the widgets' requests."""
    from boonb.api import attachments

    return attachments(runtime)


def read_image(
    store: AttachmentStore, request: ImageRequest
) -> tuple[ImageReply | ErrorReply, list[bytes]]:
    """A stored image's bytes (a thumbnail, or the full image) as the reply's buffer."""
    try:
        image = store.image(request.attachment, max_width=request.max_width)
    except AttachmentError as exc:  # gone: the view shows a broken image with Retry
        return ErrorReply(request_id=request.request_id, message=str(exc)), []
    reply = ImageReply(
        request_id=request.request_id,
        sha256=request.attachment.sha256,
        mime=image.mime,
        width=image.width,
        height=image.height,
    )
    return reply, [image.data]


def reply_in_background(
    widget: ChatWidget, request_id: str, work: Callable[[], tuple[BaseModel, list[bytes]]]
) -> None:
    """Run ``work`` off the kernel's main thread and send its reply with its buffers.

    Storing an upload (hashing, Pillow's checks) and thumbnailing are file I/O that can
    take a moment on a 20 MB photo; on a worker thread of the engine, cells keep running.
    """

    def send(future: concurrent.futures.Future[tuple[BaseModel, list[bytes]]]) -> None:
        if future.cancelled():
            return
        error = future.exception()
        reply: BaseModel
        buffers: list[bytes]
        if error is not None:  # a bug, not a refusal: into the log, and the view is told
            log.error("%r: a request with image bytes failed", widget, exc_info=error)
            reply, buffers = ErrorReply(request_id=request_id, message=str(error)), []
        else:
            reply, buffers = future.result()
        with widget._send_lock:
            widget.send(reply.model_dump(mode="json"), buffers=buffers or None)

    future = widget._runtime.engine.submit(asyncio.to_thread(work))
    future.add_done_callback(send)
