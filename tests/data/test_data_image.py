"""The one image loader: every mode, every damage, fuzzing (RELIABILITY 1-3, 8-10, 17)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from tests.conftest import folder_digest
from tests.data.data_badfiles import bad_files, bomb_png

from cnnlab.data.image import load_image, pil_from_any, to_array
from cnnlab.errors import ImageLoadError


@pytest.mark.parametrize(
    "name",
    [
        "truncated.jpg",
        "no_eoi.jpg",
        "no_tail.png",
        "empty.png",
        "text.png",
        "random.jpg",
        "bomb.png",
    ],
)
def test_bad_file_reason(tmp_path: Path, name: str) -> None:
    data, reason = bad_files()[name]
    path = tmp_path / "d" / name
    path.parent.mkdir()
    path.write_bytes(data)
    os.chmod(path.parent, 0o555)
    before = folder_digest(tmp_path / "d")
    with pytest.raises(ImageLoadError) as info:
        load_image(path)
    assert info.value.reason == reason
    assert info.value.path == str(path)
    assert folder_digest(tmp_path / "d") == before


def test_missing_unreadable_too_small(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="missing"):
        load_image(tmp_path / "nope.jpg")
    (tmp_path / "dir.jpg").mkdir()
    with pytest.raises(ImageLoadError, match="unreadable"):
        load_image(tmp_path / "dir.jpg")
    Image.new("RGB", (3, 40)).save(tmp_path / "tiny.png")
    with pytest.raises(ImageLoadError, match="too small"):
        load_image(tmp_path / "tiny.png", min_side=4)
    assert load_image(tmp_path / "tiny.png", min_side=1).size == (3, 40)


def test_bomb_between_limits_and_custom_limit(tmp_path: Path) -> None:
    (tmp_path / "b.png").write_bytes(bomb_png(10000))  # 1e8 px: Pillow only warns here
    with pytest.raises(ImageLoadError, match="too large"):
        load_image(tmp_path / "b.png")
    Image.new("RGB", (100, 100)).save(tmp_path / "ok.png")
    with pytest.raises(ImageLoadError, match="too large"):
        load_image(tmp_path / "ok.png", max_pixels=5000)
    assert Image.MAX_IMAGE_PIXELS is not None


def _modes(tmp: Path) -> dict[str, tuple[Path, tuple[int, int, int]]]:
    """mode name -> (file, expected RGB of pixel (0, 0))."""
    out = {}
    rgba = Image.new("RGBA", (16, 16), (255, 0, 0, 0))  # fully transparent red
    rgba.save(tmp / "rgba.png")
    out["RGBA"] = (tmp / "rgba.png", (255, 255, 255))
    Image.new("LA", (16, 16), (0, 0)).save(tmp / "la.png")
    out["LA"] = (tmp / "la.png", (255, 255, 255))
    Image.new("L", (16, 16), 100).save(tmp / "l.png")
    out["L"] = (tmp / "l.png", (100, 100, 100))
    p = Image.new("P", (16, 16), 1)
    p.putpalette([0, 0, 0, 0, 200, 0] + [0] * 762)
    p.save(tmp / "p.png")
    out["P"] = (tmp / "p.png", (0, 200, 0))
    p.save(tmp / "pt.png", transparency=1)
    out["P+transparency"] = (tmp / "pt.png", (255, 255, 255))
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp / "cmyk.jpg", quality=100)
    out["CMYK"] = (tmp / "cmyk.jpg", (255, 0, 0))
    Image.fromarray(np.full((16, 16), 32896, np.uint16)).save(tmp / "i16.png")
    out["I;16"] = (tmp / "i16.png", (128, 128, 128))
    Image.new("1", (16, 16), 1).save(tmp / "one.png")
    out["1"] = (tmp / "one.png", (255, 255, 255))
    frames = [Image.new("RGB", (16, 16), c) for c in [(0, 0, 255), (255, 0, 0)]]
    frames[0].save(tmp / "multi.gif", save_all=True, append_images=frames[1:])
    out["multi-frame"] = (tmp / "multi.gif", (0, 0, 255))
    Image.fromarray(np.full((16, 16), 1000, np.int32), "I").save(tmp / "i32.tif")
    out["I"] = (tmp / "i32.tif", (4, 4, 4))  # 1000 / 257, scaled not clipped
    Image.new("RGB", (16, 16), (10, 20, 30)).save(tmp / "x.webp", lossless=True)
    out["webp"] = (tmp / "x.webp", (10, 20, 30))
    Image.new("RGB", (16, 16), (10, 20, 30)).save(tmp / "x.bmp")
    out["bmp"] = (tmp / "x.bmp", (10, 20, 30))
    return out


@pytest.mark.parametrize(
    "mode",
    [
        "RGBA",
        "LA",
        "L",
        "P",
        "P+transparency",
        "CMYK",
        "I;16",
        "1",
        "multi-frame",
        "I",
        "webp",
        "bmp",
    ],
)
@pytest.mark.parametrize("channels", [3, 1])
def test_modes(tmp_path: Path, mode: str, channels: int) -> None:
    path, rgb = _modes(tmp_path)[mode]
    img = load_image(path, channels=channels)
    assert img.mode == ("RGB" if channels == 3 else "L")
    got = img.getpixel((0, 0))
    if channels == 3:
        assert all(abs(a - b) <= 3 for a, b in zip(got, rgb, strict=True)), got
    else:
        grey = round(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])
        assert abs(got - grey) <= 3, got


def test_png_bytes_named_jpg(tmp_path: Path) -> None:
    Image.new("RGB", (20, 20), (1, 2, 3)).save(tmp_path / "fake.jpg", format="PNG")
    assert load_image(tmp_path / "fake.jpg").getpixel((0, 0)) == (1, 2, 3)


def test_exif_orientation_applied(tmp_path: Path) -> None:
    img = Image.new("RGB", (40, 20), (255, 0, 0))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    img.save(tmp_path / "r.jpg", exif=exif)
    assert load_image(tmp_path / "r.jpg").size == (20, 40)


def test_draft_keeps_at_least_side(tmp_path: Path) -> None:
    Image.new("RGB", (800, 600), (0, 90, 0)).save(tmp_path / "big.jpg")
    img = load_image(tmp_path / "big.jpg", draft_side=64)
    assert min(img.size) >= 64 and img.size[0] < 800


def test_to_array_resizes_and_crops() -> None:
    img = Image.new("RGB", (60, 30), (0, 0, 0))
    img.paste((255, 255, 255), (0, 0, 15, 30))  # left quarter white: cropped away
    arr = to_array(img, 16)
    assert arr.shape == (16, 16, 3) and arr.dtype == np.uint8
    assert arr[:, 0].max() < 255 // 2
    assert to_array(Image.new("L", (8, 8)), 4).shape == (4, 4, 1)


@pytest.mark.parametrize(
    "arr",
    [
        np.zeros((8, 8), np.uint8),
        np.ones((8, 8, 3), np.float32),
        np.zeros((8, 8, 4), np.uint8),
        np.zeros((8, 8, 1), np.uint8),
        np.full((8, 8), 65535, np.uint16),
    ],
)
def test_pil_from_any(arr: np.ndarray) -> None:
    assert pil_from_any(arr, 3).mode == "RGB"
    assert pil_from_any(arr, 1).mode == "L"
    assert pil_from_any(Image.new("RGBA", (4, 4)), 3).mode == "RGB"


def test_pil_from_any_float_range() -> None:
    assert pil_from_any(np.ones((4, 4, 3), np.float32), 3).getpixel((0, 0)) == (255, 255, 255)
    with pytest.raises(ImageLoadError):
        pil_from_any(np.zeros((4, 4, 7)), 3)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=st.binary(max_size=600),
    prefix=st.sampled_from(
        [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a", b"BM", b"II*\x00", b"RIFF"]
    ),
)
def test_fuzz_only_cnnlab_error(tmp_path: Path, data: bytes, prefix: bytes) -> None:
    path = tmp_path / "fuzz.jpg"
    path.write_bytes(prefix + data)
    try:
        load_image(path)
    except ImageLoadError as exc:
        assert exc.path == str(path)


def test_a_pil_image_is_turned_upright_like_its_file(tmp_path: Path) -> None:
    """Predictor.predict(Image.open(photo)) ignored the EXIF orientation that the path
    honours, so the same photo gave two predictions."""
    arr = np.zeros((8, 16, 3), dtype=np.uint8)
    arr[:, :4] = 255  # a white band on the left of a landscape picture
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    path = tmp_path / "phone.jpg"
    Image.fromarray(arr).save(path, exif=exif, quality=95)
    from_file = np.asarray(load_image(path, channels=3))
    with Image.open(path) as img:
        from_pil = np.asarray(pil_from_any(img, 3))
    assert from_file.shape == from_pil.shape == (16, 8, 3)  # upright: portrait
    assert np.array_equal(from_file, from_pil)
