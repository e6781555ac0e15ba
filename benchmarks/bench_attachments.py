"""Attachment intake, kernel side: a 20 MB JPEG from bytes to a stored reference and a
thumbnail, against plain Pillow doing the same in the same process.

Run: .venv/bin/python -m benchmarks.bench_attachments
Figures are printed, never asserted. What is measured (median of RUNS, fresh folders
each run, so nothing is deduplicated or cached unless said):

- intake: ``AttachmentStore.add_bytes`` (stage in UPLOAD_DIR, SHA-256, magic bytes, Pillow
  header and pixel check, ``verify``, copy into .boonb/attachments with fsync + rename);
- thumbnail: ``AttachmentStore.image(ref, max_width=600)`` the first time (decode, scale,
  encode, write the cache file) and again (read from the cache);
- data URI: the base64 string a request carries, built at send time;
- baselines: the bytes written to a file and hashed (what intake cannot do without), and
  plain Pillow ``open`` + ``thumbnail`` + JPEG encode of the same bytes, without and with
  ``draft`` (the JPEG decoder's own downscaling, which boonb uses).
"""

from __future__ import annotations

import hashlib
import io
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from PIL import Image

from boonb.attachments import AttachmentStore

RUNS = 5
TARGET_BYTES = 20 * 1024 * 1024 - 512 * 1024  # just under the 20 MB default limit


def big_jpeg() -> bytes:
    """A noisy JPEG of about 19.5 MB (noise does not compress: size grows with pixels)."""
    width = 3000
    while True:
        height = width * 2 // 3
        bands = [Image.effect_noise((width, height), 90) for _ in range(3)]
        out = io.BytesIO()
        Image.merge("RGB", bands).save(out, "JPEG", quality=98)
        data = out.getvalue()
        if len(data) >= TARGET_BYTES * 0.95:
            return data
        width = int(width * (TARGET_BYTES / len(data)) ** 0.5) + 8


def timed(action: Callable[[], object]) -> float:
    began = time.perf_counter()
    action()
    return time.perf_counter() - began


def median_ms(samples: list[float]) -> str:
    return f"{statistics.median(samples) * 1000:8.1f} ms"


def pillow_thumbnail(data: bytes, *, draft: bool) -> bytes:
    with Image.open(io.BytesIO(data)) as image:
        if draft:
            image.draft("RGB", (600, 600))
        image.thumbnail((600, 600))
        out = io.BytesIO()
        image.convert("RGB").save(out, "JPEG", quality=85)
        return out.getvalue()


def main() -> None:
    data = big_jpeg()
    with Image.open(io.BytesIO(data)) as image:
        size = image.size
    print(f"input: JPEG {size[0]} x {size[1]}, {len(data) / 1024 / 1024:.1f} MB, {RUNS} runs")
    intake, first_thumb, cached_thumb, uri, write_hash, plain, drafted = ([] for _ in range(7))
    thumb_bytes = uri_chars = 0
    for _ in range(RUNS):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            store = AttachmentStore(root / "project", upload_dir=root / "uploads")
            began = time.perf_counter()
            ref = store.add_bytes(data, name="photo.jpg")
            intake.append(time.perf_counter() - began)
            began = time.perf_counter()
            thumb = store.image(ref, max_width=600)
            first_thumb.append(time.perf_counter() - began)
            thumb_bytes = len(thumb.data)
            cached_thumb.append(timed(lambda: store.image(ref, max_width=600)))  # noqa: B023
            began = time.perf_counter()
            uri_chars = len(store.data_uri(ref))
            uri.append(time.perf_counter() - began)

            def write_and_hash(target: Path = root / "raw.jpg") -> None:
                target.write_bytes(data)
                hashlib.sha256(data).hexdigest()

            write_hash.append(timed(write_and_hash))
        plain.append(timed(lambda: pillow_thumbnail(data, draft=False)))
        drafted.append(timed(lambda: pillow_thumbnail(data, draft=True)))
    print(f"boonb intake (bytes -> stored ref)      {median_ms(intake)}")
    print(f"  baseline: write file + sha256         {median_ms(write_hash)}")
    print(f"boonb thumbnail 600 px, first           {median_ms(first_thumb)}  ({thumb_bytes:,} B)")
    print(f"boonb thumbnail 600 px, cached          {median_ms(cached_thumb)}")
    print(f"  baseline: Pillow open+thumbnail       {median_ms(plain)}")
    print(f"  baseline: Pillow open+draft+thumbnail {median_ms(drafted)}")
    total = [a + b for a, b in zip(intake, first_thumb, strict=True)]
    print(f"boonb bytes -> ref -> thumbnail, total  {median_ms(total)}")
    print(f"data URI at send time                   {median_ms(uri)}  ({uri_chars:,} characters)")


if __name__ == "__main__":
    main()
