"""Decoding: orientation, focal length, conversions, rejections and the clean working copy."""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pillow_heif
import pytest
from PIL import Image, ImageFile

from sharpmld.core.errors import DecodeFailed, ImageTooLarge
from sharpmld.worker import decode as images
from sharpmld.worker.decode import LoadedImage, focal_px, load_image, write_working_copy
from tests.intake import corpus

Array = np.ndarray[Any, np.dtype[np.uint8]]

# What each EXIF orientation means, written from the EXIF definition (where the stored row 0
# and column 0 belong on screen), independently of PIL's Transpose names.
UPRIGHT: dict[int, Callable[[Array], Array]] = {
    1: lambda a: a,
    2: lambda a: a[:, ::-1],  # row 0 top, column 0 right: mirror left-right
    3: lambda a: a[::-1, ::-1],  # row 0 bottom, column 0 right: half turn
    4: lambda a: a[::-1, :],  # row 0 bottom, column 0 left: mirror top-bottom
    5: lambda a: a.transpose(1, 0, 2),  # row 0 left, column 0 top
    6: lambda a: np.rot90(a, -1),  # row 0 right, column 0 top: quarter turn clockwise
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),  # row 0 right, column 0 bottom
    8: lambda a: np.rot90(a, 1),  # row 0 left, column 0 bottom: quarter turn anticlockwise
}

SIDE = 8000


def block_colours(rgb: Array) -> list[tuple[int, ...]]:
    """The colour at the centre of each quadrant (robust to lossy codecs)."""
    h, w = rgb.shape[:2]
    points = [
        (h // 4, w // 4),
        (h // 4, 3 * w // 4),
        (3 * h // 4, w // 4),
        (3 * h // 4, 3 * w // 4),
    ]
    return [tuple(int(v) for v in rgb[y, x]) for y, x in points]


def assert_close_colours(got: Array, want: Array, tol: int = 12) -> None:
    for g, w in zip(block_colours(got), block_colours(want), strict=True):
        assert max(abs(a - b) for a, b in zip(g, w, strict=True)) <= tol, (g, w)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_png_orientation_exact(tmp_path: Path, orientation: int) -> None:
    source = corpus.gradient(40, 24)
    exif = corpus.make_exif(orientation=orientation)
    path = corpus.write_png(tmp_path / "o.png", source, exif=exif)
    img = load_image(path, max_pixels_side=SIDE)
    expected = UPRIGHT[orientation](source)
    assert img.orientation == orientation
    assert img.rgb.shape == expected.shape
    assert np.array_equal(img.rgb, expected)
    assert (img.width, img.height) == (expected.shape[1], expected.shape[0])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_orientation(tmp_path: Path, orientation: int) -> None:
    source = corpus.quadrants(64, 40)
    exif = corpus.make_exif(orientation=orientation)
    path = corpus.write_jpeg(tmp_path / "o.jpg", source, exif=exif)
    img = load_image(path, max_pixels_side=SIDE)
    expected = UPRIGHT[orientation](source)
    assert img.rgb.shape == expected.shape
    assert_close_colours(img.rgb, expected)
    assert img.format == "jpeg"


@pytest.mark.parametrize("orientation", range(1, 9))
def test_heic_orientation_applied_once(tmp_path: Path, orientation: int) -> None:
    """pillow-heif rotates on decode and resets EXIF to 1: we must not rotate again."""
    source = corpus.quadrants(64, 40)
    exif = corpus.make_exif(orientation=orientation)
    path = corpus.write_heic(tmp_path / "o.heic", source, exif=exif)
    img = load_image(path, max_pixels_side=SIDE)
    expected = UPRIGHT[orientation](source)
    assert img.format == "heif"
    assert img.orientation == orientation
    assert img.rgb.shape == expected.shape
    assert_close_colours(img.rgb, expected)


def test_invalid_orientation_value_is_ignored(tmp_path: Path) -> None:
    source = corpus.gradient()
    path = corpus.write_png(tmp_path / "o.png", source, exif=corpus.make_exif(orientation=9))
    img = load_image(path, max_pixels_side=SIDE)
    assert img.orientation == 1
    assert np.array_equal(img.rgb, source)


def diag_px(f35: float, w: int, h: int) -> float:
    return f35 * math.sqrt(w * w + h * h) / math.sqrt(36 * 36 + 24 * 24)


@pytest.mark.parametrize(
    ("f35", "focal", "want_f35", "source"),
    [
        (26, 4.2, 26.0, "exif_35mm"),
        (5, None, 5.0, "exif_35mm"),  # ml-sharp scales only the fallback, not a 35 mm value
        (0, 50.0, 50.0, "exif_focal_length"),  # 0 means unknown: fall back
        (None, 24.0, 24.0, "exif_focal_length"),
        (None, 10.0, 10.0, "exif_focal_length"),
        (None, 4.25, 4.25 * 8.4, "exif_focal_length_x8.4"),
        (None, None, 30.0, "default_30mm"),
        (None, 0.0, 30.0, "default_30mm"),
    ],
)
def test_focal_length_rules(
    tmp_path: Path, f35: float | None, focal: float | None, want_f35: float, source: str
) -> None:
    exif = corpus.make_exif(focal_35mm=f35, focal=focal)
    path = corpus.write_jpeg(tmp_path / "f.jpg", corpus.quadrants(60, 40), exif=exif)
    img = load_image(path, max_pixels_side=SIDE)
    assert img.f_px_source == source
    assert img.focal_35mm == pytest.approx(want_f35)
    assert img.f_px == pytest.approx(diag_px(want_f35, 60, 40))


def test_focal_uses_upright_size_and_heic_exif(tmp_path: Path) -> None:
    exif = corpus.make_exif(orientation=6, focal_35mm=28)
    path = corpus.write_heic(tmp_path / "f.heic", corpus.quadrants(60, 40), exif=exif)
    img = load_image(path, max_pixels_side=SIDE)
    assert (img.width, img.height) == (40, 60)
    assert img.f_px_source == "exif_35mm"
    assert img.f_px == pytest.approx(diag_px(28, 40, 60))


def test_png_without_exif_defaults_and_override(tmp_path: Path) -> None:
    path = corpus.write_png(tmp_path / "p.png")
    img = load_image(path, max_pixels_side=SIDE)
    assert (img.f_px_source, img.format) == ("default_30mm", "png")
    over = load_image(path, max_pixels_side=SIDE, f_px_override=1234.5)
    assert (over.f_px, over.f_px_source) == (1234.5, "override")


def test_focal_px_function_matches_formula() -> None:
    f_px, f35, source = focal_px(4032, 3024, 26.0, 5.7)
    assert (f35, source) == (26.0, "exif_35mm")
    assert f_px == pytest.approx(diag_px(26, 4032, 3024))


def test_working_copy_has_no_metadata(tmp_path: Path) -> None:
    exif = corpus.make_exif(orientation=6, focal_35mm=26, gps=True)
    src = corpus.write_jpeg(tmp_path / "gps.jpg", corpus.quadrants(), exif=exif, icc=b"fakeicc" * 20)
    assert corpus.GPS_MARKER in src.read_bytes()
    img = load_image(src, max_pixels_side=SIDE)
    out = tmp_path / "work.png"
    write_working_copy(img, out)
    data = out.read_bytes()
    assert corpus.GPS_MARKER not in data and b"fakeicc" not in data and b"Exif" not in data
    assert set(corpus.png_chunk_types(data)) == {b"IHDR", b"IDAT", b"IEND"}
    with Image.open(out) as back:
        assert not back.getexif()
        assert "icc_profile" not in back.info and "exif" not in back.info
        assert np.array_equal(np.asarray(back.convert("RGB")), img.rgb)  # lossless, upright
    assert img.rgb.shape == (48, 32, 3)
    assert not any(p.name.startswith(".sharpmld-tmp-") for p in tmp_path.iterdir())


def test_working_copy_refuses_wrong_array(tmp_path: Path) -> None:
    bad = LoadedImage(np.zeros((4, 4), np.uint8), 1.0, "override", 30.0, 1, 4, 4, "png")
    with pytest.raises(ValueError):
        write_working_copy(bad, tmp_path / "x.png")
    assert not list(tmp_path.iterdir())


def test_modes_convert_to_rgb(tmp_path: Path) -> None:
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0], rgba[..., 1], rgba[..., 2], rgba[..., 3] = 10, 20, 30, 0
    img = load_image(corpus.write_png(tmp_path / "a.png", Image.fromarray(rgba)), max_pixels_side=SIDE)
    assert img.rgb.shape == (8, 8, 3) and tuple(img.rgb[0, 0]) == (10, 20, 30)  # alpha dropped

    gray = Image.fromarray(np.full((6, 5), 77, np.uint8))
    for mode in ("L", "LA", "1"):
        got = load_image(corpus.write_png(tmp_path / f"{mode}.png", gray.convert(mode)), max_pixels_side=SIDE)
        assert got.rgb.shape == (6, 5, 3) and got.rgb.dtype == np.uint8
        assert len(set(got.rgb[0, 0].tolist())) == 1  # grey stays grey

    pal = Image.fromarray(corpus.quadrants()).convert("P", palette=Image.Palette.ADAPTIVE)
    pal.info["transparency"] = 0
    got = load_image(corpus.write_png(tmp_path / "p.png", pal, transparency=0), max_pixels_side=SIDE)
    assert_close_colours(got.rgb, corpus.quadrants(), tol=0)

    cmyk = Image.fromarray(corpus.quadrants()).convert("CMYK")
    cmyk.save(tmp_path / "c.jpg", "JPEG", quality=95)
    got = load_image(tmp_path / "c.jpg", max_pixels_side=SIDE)
    assert_close_colours(got.rgb, corpus.quadrants(), tol=16)


def test_sixteen_bit_is_scaled_not_clipped(tmp_path: Path) -> None:
    wide = np.array([[0, 257, 32768, 65535]], np.uint16)
    path = corpus.write_png(tmp_path / "g16.png", Image.fromarray(wide))
    img = load_image(path, max_pixels_side=SIDE)
    assert img.rgb[0, :, 0].tolist() == [0, 1, 128, 255]


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (corpus.write_truncated_jpeg, "truncated"),
        (corpus.write_bad_crc_png, "starts like a PNG image but its header is damaged"),
        (corpus.write_bad_idat_crc_png, "checksum does not match"),
        (corpus.write_pdf, "not a JPEG, PNG or HEIC"),
        (corpus.write_zip, "not a JPEG, PNG or HEIC"),
        (corpus.write_script, "not a JPEG, PNG or HEIC"),
        (corpus.write_avif, "not a JPEG, PNG or HEIC"),
    ],
)
def test_decode_failures(tmp_path: Path, make: Callable[[Path], Path], words: str) -> None:
    path = make(tmp_path / "bad.jpg")
    with pytest.raises(DecodeFailed) as info:
        load_image(path, max_pixels_side=SIDE)
    assert info.value.code == "decode_failed"
    assert words in info.value.message


def test_truncated_fails_even_if_someone_allowed_truncation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ImageFile, "LOAD_TRUNCATED_IMAGES", True)
    with pytest.raises(DecodeFailed):
        load_image(corpus.write_truncated_jpeg(tmp_path / "t.jpg"), max_pixels_side=SIDE)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_huge_declared_size_is_refused_from_header(tmp_path: Path) -> None:
    path = corpus.write_huge_header_png(tmp_path / "huge.png")
    with pytest.raises(ImageTooLarge) as info:
        load_image(path, max_pixels_side=SIDE)
    assert info.value.code == "image_too_large" and "8000" in info.value.message


@pytest.mark.parametrize(("width", "height"), [(2100, 10), (10, 2100)])
def test_side_checked_before_pixels(tmp_path: Path, width: int, height: int) -> None:
    """Too wide or tall but few pixels (no bomb); the body is garbage, so a decode would fail."""
    path = tmp_path / "long.png"
    path.write_bytes(corpus.png_bytes(width, height, b"garbage"))
    with pytest.raises(ImageTooLarge) as info:
        load_image(path, max_pixels_side=2000)
    assert f"{width}×{height}" in info.value.message


def test_limit_is_inclusive(tmp_path: Path) -> None:
    path = corpus.write_png(tmp_path / "edge.png", corpus.quadrants(100, 60))
    assert load_image(path, max_pixels_side=100).width == 100
    with pytest.raises(ImageTooLarge):
        load_image(path, max_pixels_side=99)


@pytest.mark.timeout(30)
def test_decompression_bomb_refused_quickly(tmp_path: Path) -> None:
    path = corpus.write_bomb_png(tmp_path / "bomb.png", 40_000)  # 1.6 gigapixels
    assert path.stat().st_size < 1_000_000
    started = time.monotonic()
    with pytest.raises(ImageTooLarge):
        load_image(path, max_pixels_side=SIDE)
    assert time.monotonic() - started < 5
    assert Image.MAX_IMAGE_PIXELS == SIDE * SIDE


def test_bomb_guard_follows_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Between 1x and 2x the pixel budget Pillow only warns: that warning must still stop it."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200_000_000)  # what ml-sharp's import sets
    path = corpus.write_bomb_png(tmp_path / "b.png", 150)
    with pytest.raises(ImageTooLarge):
        load_image(path, max_pixels_side=120)  # 22500 px: > 120² but < 2 * 120²
    assert Image.MAX_IMAGE_PIXELS == 120 * 120


def test_bomb_warning_is_an_error_whatever_the_filters(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pillow only *warns* between 1x and 2x the budget; outside pytest warnings are shown,
    not raised, so load_image must turn that warning into a rejection itself."""
    path = corpus.write_png(tmp_path / "ok.png")
    real_open = Image.open

    def warning_open(*args: Any, **kwargs: Any) -> Any:
        warnings.warn("pretend bomb", Image.DecompressionBombWarning, stacklevel=2)
        return real_open(*args, **kwargs)

    monkeypatch.setattr(Image, "open", warning_open)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # like a daemon's default filters: warnings not raised
        with pytest.raises(ImageTooLarge):
            load_image(path, max_pixels_side=SIDE)


def test_heif_opener_registered_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(images, "_heif_registered", False)
    real = pillow_heif.register_heif_opener

    def spy(**kwargs: Any) -> None:
        calls.append(kwargs)
        real(**kwargs)

    monkeypatch.setattr(pillow_heif, "register_heif_opener", spy)
    path = corpus.write_heic(tmp_path / "a.heic")
    load_image(path, max_pixels_side=SIDE)
    load_image(path, max_pixels_side=SIDE)
    assert len(calls) == 1 and calls[0]["thumbnails"] is False


# -- files people really have that used to get the wrong message ------------------------------


@pytest.mark.parametrize("sof", [0xC1, 0xC2])
def test_twelve_bit_jpeg_is_named_with_what_to_do(tmp_path: Path, sof: int) -> None:
    path = tmp_path / "scan.jpg"
    path.write_bytes(corpus.twelve_bit_jpeg(sof))
    with pytest.raises(DecodeFailed) as info:
        load_image(path, max_pixels_side=SIDE)
    message = info.value.message
    assert "12-bit" in message and "damaged" not in message, message
    assert "8-bit JPEG, PNG or HEIC" in message, message
    assert "cannot handle 12-bit layers" in info.value.details["decoder"]


def test_png_with_a_bad_checksum_on_a_comment_is_shown_like_browsers_do(tmp_path: Path) -> None:
    data, rgb = corpus.png_with_text(bad_crc_on=b"tEXt")
    path = tmp_path / "scan.png"
    path.write_bytes(data)
    img = load_image(path, max_pixels_side=SIDE)
    assert np.array_equal(img.rgb, rgb)
    assert path.read_bytes() == data  # the original is judged, never repaired in place


@pytest.mark.parametrize("chunk", [b"IHDR", b"IDAT"])
def test_png_with_a_bad_checksum_on_image_data_is_still_refused(tmp_path: Path, chunk: bytes) -> None:
    data, _rgb = corpus.png_with_text(bad_crc_on=chunk)
    path = tmp_path / "bad.png"
    path.write_bytes(data)
    with pytest.raises(DecodeFailed):
        load_image(path, max_pixels_side=SIDE)


@pytest.mark.timeout(30)
@pytest.mark.parametrize(
    ("make", "size"),
    [
        (lambda p: corpus.write_huge_header_png(p, 60_000, 60_000), "60000×60000"),
        (lambda p: corpus.write_huge_header_png(p, 10_000, 50), "10000×50"),
        (lambda p: corpus.write_bomb_png(p, 40_000), "40000×40000"),
        (lambda p: corpus.write_bomb_png(p, 9_000), "9000×9000"),
    ],
)
def test_too_large_always_names_the_size_and_the_limit(
    tmp_path: Path, make: Callable[[Path], Path], size: str
) -> None:
    path = make(tmp_path / "big.png")
    with pytest.raises(ImageTooLarge) as info:
        load_image(path, max_pixels_side=SIDE)
    assert size in info.value.message and str(SIDE) in info.value.message, info.value.message
