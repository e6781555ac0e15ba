"""Image intake: recognised by content, refused with a clear message, stored once, swept."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import tempfile
import time
from pathlib import Path

import pytest
from PIL import Image

from boonb.attachments import (
    AttachmentError,
    AttachmentNotFound,
    AttachmentStore,
    AttachmentTooLarge,
    ImageTooManyPixels,
    UnreadableImage,
    UnsupportedAttachment,
    UploadDirUnsafe,
    add_image,
    image_tokens,
)


def encoded(fmt: str, size: tuple[int, int] = (64, 48), color: str = "teal") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, fmt)
    return out.getvalue()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    path = tmp_path / "project"
    path.mkdir()
    return path


@pytest.fixture
def uploads(tmp_path: Path) -> Path:
    return tmp_path / "uploads"


@pytest.fixture
def store(project: Path, uploads: Path) -> AttachmentStore:
    return AttachmentStore(project, upload_dir=uploads)


def stored_files(store: AttachmentStore) -> list[Path]:
    return sorted(store.folder.glob("*")) if store.folder.exists() else []


def staged_files(uploads: Path) -> list[Path]:
    return sorted(uploads.glob("*")) if uploads.exists() else []


@pytest.mark.parametrize(
    ("fmt", "mime", "ext"),
    [
        ("PNG", "image/png", "png"),
        ("JPEG", "image/jpeg", "jpg"),
        ("GIF", "image/gif", "gif"),
        ("WEBP", "image/webp", "webp"),
    ],
)
def test_supported_image_is_stored_by_content_hash(
    store: AttachmentStore, uploads: Path, fmt: str, mime: str, ext: str
) -> None:
    data = encoded(fmt)
    ref = store.add_bytes(data, name=f"picture.{ext}")
    assert ref.mime == mime
    assert (ref.width, ref.height) == (64, 48)
    assert ref.size_bytes == len(data)
    assert ref.sha256 == hashlib.sha256(data).hexdigest()
    assert (store.folder / f"{ref.sha256}.{ext}").read_bytes() == data
    assert staged_files(uploads) == []  # the staged copy is gone once stored


def test_same_bytes_twice_are_stored_once(store: AttachmentStore) -> None:
    data = encoded("PNG")
    first = store.add_bytes(data, name="a.png")
    second = store.add_bytes(memoryview(data), name="b.png")
    assert first.sha256 == second.sha256
    assert [p.name for p in stored_files(store)] == [first.file_name]


def test_type_is_read_from_content_not_name(store: AttachmentStore) -> None:
    ref = store.add_bytes(encoded("PNG"), name="holiday.jpg")
    assert ref.mime == "image/png"
    assert ref.file_name.endswith(".png")


def test_path_intake_names_the_file(store: AttachmentStore, tmp_path: Path) -> None:
    path = tmp_path / "plots" / "loss.jpeg"
    path.parent.mkdir()
    path.write_bytes(encoded("JPEG"))
    ref = store.add_path(path)
    assert (ref.name, ref.mime) == ("loss.jpeg", "image/jpeg")


# Bad inputs: each refused with its message; nothing stored, nothing left staged.


def assert_nothing_kept(store: AttachmentStore, uploads: Path) -> None:
    assert stored_files(store) == []
    assert staged_files(uploads) == []


def test_oversized_file_is_refused_before_it_is_read(
    project: Path, uploads: Path, tmp_path: Path
) -> None:
    store = AttachmentStore(project, upload_dir=uploads, max_size_mb=20)
    big = tmp_path / "huge.png"
    with big.open("wb") as out:  # a sparse 21 MB file: a PNG header, then holes
        out.write(encoded("PNG"))
        out.truncate(21 * 1024 * 1024)
    with pytest.raises(AttachmentTooLarge) as caught:
        store.add_path(big)
    message = str(caught.value)
    assert "21.0 MB" in message and "20 MB" in message and "MAX_ATTACHMENT_SIZE_MB" in message
    assert_nothing_kept(store, uploads)


def test_oversized_stream_stops_at_the_limit(project: Path, uploads: Path) -> None:
    store = AttachmentStore(project, upload_dir=uploads, max_size_mb=1)
    read = 0

    class Endless(io.RawIOBase):
        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            nonlocal read
            read += size
            return b"\x89PNG\r\n\x1a\n".ljust(size, b"\0")

    with pytest.raises(AttachmentTooLarge, match="limit is 1 MB"):
        store.add_stream(Endless(), name="pipe")  # type: ignore[arg-type]
    assert read <= 2 * 1024 * 1024  # it stopped just past the limit, not at the end
    assert_nothing_kept(store, uploads)


def test_declared_size_is_refused_before_receiving(store: AttachmentStore) -> None:
    with pytest.raises(AttachmentTooLarge, match="25.0 MB; the limit is 20 MB"):
        store.check_size(25 * 1024 * 1024, name="drop.png")


def test_pdf_renamed_png_is_refused(store: AttachmentStore, uploads: Path) -> None:
    pdf = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer\n%%EOF\n"
    with pytest.raises(UnsupportedAttachment) as caught:
        store.add_bytes(pdf, name="scan.png")
    message = str(caught.value)
    assert "'scan.png' is a PDF document" in message
    assert "PNG, JPEG, GIF or WebP" in message and "renaming does not help" in message
    assert_nothing_kept(store, uploads)


def test_svg_is_refused(store: AttachmentStore, uploads: Path) -> None:
    svg = b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10"/>'
    with pytest.raises(UnsupportedAttachment, match="an SVG image .*export it as PNG"):
        store.add_bytes(svg, name="logo.svg")
    assert_nothing_kept(store, uploads)


def test_decompression_bomb_is_refused(store: AttachmentStore, uploads: Path) -> None:
    out = io.BytesIO()
    Image.new("1", (10_000, 10_000)).save(out, "PNG")  # 100 M pixels in a few kB
    assert len(out.getvalue()) < 100_000
    with pytest.raises(ImageTooManyPixels) as caught:
        store.add_bytes(out.getvalue(), name="bomb.png")
    message = str(caught.value)
    assert "10000 x 10000 = 100,000,000 pixels" in message and "50,000,000" in message
    assert_nothing_kept(store, uploads)


def test_pillow_bomb_error_becomes_our_refusal(
    store: AttachmentStore, uploads: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pillow's own guard, set lower than ours (as another library in the kernel might).
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ImageTooManyPixels, match="refused by Pillow as a decompression bomb"):
        store.add_bytes(encoded("PNG", (64, 48)), name="tile.png")
    assert_nothing_kept(store, uploads)


def test_truncated_image_is_refused(store: AttachmentStore, uploads: Path) -> None:
    data = encoded("PNG", (300, 300), "white")
    noisy = io.BytesIO()
    Image.effect_noise((300, 300), 80).save(noisy, "PNG")
    data = noisy.getvalue()
    with pytest.raises(UnreadableImage, match="truncated or corrupt"):
        store.add_bytes(data[: len(data) // 2], name="cut.png")
    assert_nothing_kept(store, uploads)


def test_missing_path_says_where_it_looked(store: AttachmentStore, tmp_path: Path) -> None:
    with pytest.raises(AttachmentNotFound, match="no file .*nope.png.*working directory"):
        store.add_path(tmp_path / "nope.png")


# Notebook objects.


def test_pil_image_is_stored_as_png(store: AttachmentStore) -> None:
    ref = add_image(store, Image.new("RGBA", (30, 20), (255, 0, 0, 128)))
    assert (ref.mime, ref.width, ref.height) == ("image/png", 30, 20)
    assert ref.name == "a PIL.Image.Image"


def test_matplotlib_figure_is_rendered_to_png(store: AttachmentStore) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 3), dpi=50)
    ax.plot([1, 2, 3], [3, 1, 2])
    ref = add_image(store, fig, name="fig")
    plt.close(fig)
    assert ref.mime == "image/png" and ref.name == "fig"
    assert ref.width > 100 and ref.height > 80


def test_object_with_repr_png_is_stored(store: AttachmentStore) -> None:
    png = encoded("PNG", (12, 8))

    class Chart:
        def _repr_png_(self) -> bytes:
            return png

    ref = add_image(store, Chart())
    assert store.read(ref) == png


def test_object_that_is_no_image_is_refused(store: AttachmentStore) -> None:
    with pytest.raises(UnsupportedAttachment, match="cannot attach a int as an image"):
        add_image(store, 42)


def test_errors_share_the_attachment_group(store: AttachmentStore) -> None:
    with pytest.raises(AttachmentError):
        store.add_bytes(b"hello", name="note.txt")


# Fetching by reference.


def test_thumbnail_keeps_aspect_and_is_cached(store: AttachmentStore) -> None:
    ref = store.add_bytes(encoded("PNG", (1200, 800)), name="wide.png")
    thumb = store.image(ref, max_width=600)
    assert (thumb.mime, thumb.width, thumb.height) == ("image/png", 600, 400)
    assert Image.open(io.BytesIO(thumb.data)).size == (600, 400)
    cached = list((store.folder / "thumbs").iterdir())
    assert [p.name for p in cached] == [f"{ref.sha256}-w600.png"]
    assert store.image(ref, max_width=600).data == thumb.data


def test_jpeg_thumbnail_is_jpeg(store: AttachmentStore) -> None:
    ref = store.add_bytes(encoded("JPEG", (800, 1600)), name="tall.jpg")
    thumb = store.image(ref, max_width=200)
    assert (thumb.mime, thumb.width, thumb.height) == ("image/jpeg", 200, 400)
    assert thumb.data[:3] == b"\xff\xd8\xff"


def test_full_image_is_the_stored_bytes(store: AttachmentStore) -> None:
    data = encoded("GIF", (40, 30))
    ref = store.add_bytes(data, name="a.gif")
    assert store.image(ref).data == data
    assert store.image(ref, max_width=4000).data == data  # no upscaling


def test_missing_bytes_raise_not_found(store: AttachmentStore) -> None:
    ref = store.add_bytes(encoded("PNG"), name="gone.png")
    (store.folder / ref.file_name).unlink()
    with pytest.raises(AttachmentNotFound, match="'gone.png'.*attach the image again"):
        store.image(ref, max_width=10)


# Staging and the sweep.


def test_sweep_removes_old_staged_files_only(store: AttachmentStore, uploads: Path) -> None:
    uploads.mkdir()
    old = uploads / "boonb-upload-old"
    new = uploads / "boonb-upload-new"
    other = uploads / "someone-elses.txt"
    for path in (old, new, other):
        path.write_bytes(b"x")
    ten_minutes_ago = time.time() - 600
    os.utime(old, (ten_minutes_ago, ten_minutes_ago))
    os.utime(other, (ten_minutes_ago, ten_minutes_ago))
    assert store.sweep(older_than_s=300) == 1
    assert sorted(p.name for p in uploads.iterdir()) == ["boonb-upload-new", "someone-elses.txt"]


def test_sweep_of_a_missing_upload_dir_is_a_no_op(store: AttachmentStore) -> None:
    assert store.sweep() == 0


# Token counting (OpenAI's tile rule, as its vision guide works it through).


@pytest.mark.parametrize(
    ("size", "tokens"),
    [((1024, 1024), 765), ((2048, 4096), 1105), ((512, 512), 255), ((64, 48), 255)],
)
def test_image_tokens_follow_openai_tile_rule(size: tuple[int, int], tokens: int) -> None:
    assert image_tokens(*size) == tokens


def test_kernel_store_sweeps_leftovers_and_uses_the_settings(tmp_path: Path) -> None:
    from boonb import api, config
    from boonb.runtime import Runtime

    project, uploads = tmp_path / "p", tmp_path / "staging"
    project.mkdir()
    uploads.mkdir()
    leftover = uploads / "boonb-upload-crashed"
    leftover.write_bytes(b"half an upload")
    an_hour_ago = time.time() - 3600
    os.utime(leftover, (an_hour_ago, an_hour_ago))
    runtime = Runtime(
        config.Settings(project=project, upload_dir=uploads, max_attachment_size_mb=0.5)
    )
    try:
        store = api.attachments(runtime)
        assert not leftover.exists()
        assert store.folder == project / ".boonb" / "attachments"
        with pytest.raises(AttachmentTooLarge, match="limit is 0.5 MB"):
            api.add_images([b"\x89PNG\r\n\x1a\n" + bytes(600_000)], runtime=runtime)
        assert api.attachments(runtime) is store
    finally:
        runtime.shutdown()


@pytest.mark.parametrize("fmt", ["JPEG", "GIF"])
def test_truncated_jpeg_and_gif_are_refused(
    store: AttachmentStore, uploads: Path, fmt: str
) -> None:
    noisy = io.BytesIO()
    Image.effect_noise((300, 300), 80).convert("RGB").save(noisy, fmt)
    data = noisy.getvalue()
    with pytest.raises(UnreadableImage, match="truncated or corrupt"):
        store.add_bytes(data[: len(data) // 2], name=f"cut.{fmt.lower()}")
    assert_nothing_kept(store, uploads)


# The upload folder: one per user, private; a sweep that fails says so and goes on.


@pytest.fixture
def temp_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The system temp dir, as the default upload folder sees it."""
    shared = tmp_path / "tmp"
    shared.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    return shared


def test_default_upload_dir_is_per_user_and_private(project: Path, temp_dir: Path) -> None:
    store = AttachmentStore(project)
    store.add_bytes(encoded("PNG"), name="a.png")
    assert store.upload_dir == temp_dir / f"boonb-uploads-{os.getuid()}"
    assert stat.S_IMODE(store.upload_dir.stat().st_mode) == 0o700


def test_default_upload_dir_made_too_open_by_us_is_made_private(
    project: Path, temp_dir: Path
) -> None:
    folder = temp_dir / f"boonb-uploads-{os.getuid()}"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    AttachmentStore(project).add_bytes(encoded("PNG"), name="a.png")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


def test_upload_dir_of_another_user_is_refused_and_nothing_is_stored(
    project: Path, temp_dir: Path
) -> None:
    folder = temp_dir / f"boonb-uploads-{os.getuid()}"
    folder.mkdir()
    folder.chmod(0o777)
    os.chown(folder, 65534, 65534)  # nobody's, as if another user had made it first
    store = AttachmentStore(project)
    with pytest.raises(UploadDirUnsafe, match="belongs to another user.*UPLOAD_DIR"):
        store.add_bytes(encoded("PNG"), name="a.png")
    assert stored_files(store) == [] and list(folder.iterdir()) == []


def test_upload_dir_that_is_a_link_or_open_for_writing_is_refused(
    project: Path, tmp_path: Path, temp_dir: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (temp_dir / f"boonb-uploads-{os.getuid()}").symlink_to(elsewhere)
    with pytest.raises(UploadDirUnsafe, match="not a folder"):
        AttachmentStore(project).add_bytes(encoded("PNG"), name="a.png")
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(UploadDirUnsafe, match="written by other users"):
        AttachmentStore(project, upload_dir=shared).add_bytes(encoded("PNG"), name="a.png")


def test_a_sweep_that_fails_is_logged_and_the_store_still_works(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from boonb import api, config
    from boonb.runtime import Runtime

    project, uploads = tmp_path / "p", tmp_path / "staging"
    project.mkdir()
    stuck = uploads / "boonb-upload-a-folder"  # unlink() refuses a folder: an OSError
    stuck.mkdir(parents=True)
    an_hour_ago = time.time() - 3600
    os.utime(stuck, (an_hour_ago, an_hour_ago))
    runtime = Runtime(config.Settings(project=project, upload_dir=uploads))
    try:
        with caplog.at_level("WARNING", logger="boonb.attachments"):
            store = api.attachments(runtime)
        assert "could not sweep the staged uploads" in caplog.text
        assert store.add_bytes(encoded("PNG"), name="a.png").mime == "image/png"
    finally:
        runtime.shutdown()


# A batch is kept whole or not at all.


def test_a_bad_image_in_a_batch_leaves_none_of_the_others_stored(
    store: AttachmentStore, uploads: Path
) -> None:
    with (
        pytest.raises(UnsupportedAttachment, match="'scan.png' is a PDF"),
        store.all_or_nothing() as batch,
    ):
        add_image(batch, encoded("PNG"), name="good.png")
        add_image(batch, b"%PDF-1.7\n%%EOF\n", name="scan.png")
    assert_nothing_kept(store, uploads)
    with store.all_or_nothing() as batch:
        ref = add_image(batch, encoded("PNG"), name="good.png")
    assert store.read(ref) == encoded("PNG")
    assert staged_files(uploads) == []


def test_add_images_refuses_a_model_that_cannot_see_before_storing(tmp_path: Path) -> None:
    from boonb import api, config
    from boonb.providers import CapabilityError
    from boonb.runtime import Runtime

    project = tmp_path / "p"
    project.mkdir()
    runtime = Runtime(config.Settings(project=project, vision=False))
    try:
        agent = api.new_agent(tools=[], runtime=runtime)
        with pytest.raises(CapabilityError, match="cannot read images"):
            api.add_images({"plot.png": encoded("PNG")}, agent=agent, runtime=runtime)
        with pytest.raises(UnsupportedAttachment):
            api.add_images([encoded("PNG"), b"just text"], runtime=runtime)
        assert not (project / ".boonb" / "attachments").exists()
    finally:
        runtime.shutdown()
