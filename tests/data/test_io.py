"""vos_seg.data.io: conversions of every stored image kind to RGB uint8, label maps, and errors naming files."""

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from vos_seg.data.io import read_label, read_rgb


def _rgb(rng, h=9, w=13):
    return rng.integers(0, 256, (h, w, 3), dtype=np.uint8)


def _write_rgb(path: Path, rgb: np.ndarray, params=()) -> Path:
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), list(params))
    return path


@pytest.mark.parametrize("ext, params", [(".png", ()), (".webp", (cv2.IMWRITE_WEBP_QUALITY, 101)), (".bmp", ())])
def test_read_rgb_lossless_formats_are_exact_and_rgb_ordered(tmp_path, rng, ext, params):
    rgb = _rgb(rng)
    out = read_rgb(_write_rgb(tmp_path / f"a{ext}", rgb, params))
    assert out.dtype == np.uint8 and out.shape == (9, 13, 3) and out.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(out, rgb)


def test_read_rgb_jpeg_channel_order(tmp_path):
    rgb = np.zeros((16, 16, 3), np.uint8)
    rgb[..., 0] = 200  # pure-ish red: a BGR/RGB swap would put the large value in channel 2
    out = read_rgb(_write_rgb(tmp_path / "red.jpg", rgb, (cv2.IMWRITE_JPEG_QUALITY, 95)))
    assert out.shape == (16, 16, 3)
    assert np.abs(out.astype(int) - rgb).max() <= 3, np.abs(out.astype(int) - rgb).max()


def test_read_rgb_grayscale_becomes_three_equal_channels(tmp_path, rng):
    gray = rng.integers(0, 256, (7, 5), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    out = read_rgb(tmp_path / "g.png")
    assert out.shape == (7, 5, 3)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], gray)


def test_read_rgb_drops_alpha(tmp_path, rng):
    rgb = _rgb(rng)
    alpha = rng.integers(0, 256, rgb.shape[:2], dtype=np.uint8)
    bgra = np.dstack([cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), alpha])
    cv2.imwrite(str(tmp_path / "a.png"), bgra)
    np.testing.assert_array_equal(read_rgb(tmp_path / "a.png"), rgb)


@pytest.mark.parametrize("channels", [1, 3])
def test_read_rgb_scales_16_bit(tmp_path, channels):
    values = np.array([0, 257, 257 * 128, 32896, 65535, 65534, 128, 129], dtype=np.uint16)
    expected = np.round(values / 257.0).astype(np.uint8)  # reference: x * 255 / 65535, rounded
    img = values.reshape(2, 4)
    if channels == 3:
        img = np.dstack([img, img, img])
    cv2.imwrite(str(tmp_path / "deep.png"), img)
    assert cv2.imread(str(tmp_path / "deep.png"), cv2.IMREAD_UNCHANGED).dtype == np.uint16
    out = read_rgb(tmp_path / "deep.png")
    np.testing.assert_array_equal(out[..., 0], expected.reshape(2, 4))


def test_read_rgb_non_ascii_path(tmp_path, rng):
    rgb = _rgb(rng)
    path = _write_rgb(tmp_path / "x.png", rgb)
    target = tmp_path / "Straße_ä.png"
    path.rename(target)
    np.testing.assert_array_equal(read_rgb(target), rgb)


def test_read_rgb_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.png.*does not exist"):
        read_rgb(tmp_path / "nope.png")
    with pytest.raises(FileNotFoundError, match="is a directory"):
        read_rgb(tmp_path)


@pytest.mark.parametrize("content", [b"", b"not an image at all", None])
def test_read_rgb_corrupt_file_names_it(tmp_path, rng, content):
    path = tmp_path / "broken.png"
    if content is None:  # a real PNG cut in half
        ok, buf = cv2.imencode(".png", _rgb(rng, 32, 32))
        content = buf.tobytes()[: len(buf) // 3]
    path.write_bytes(content)
    with pytest.raises(ValueError, match="broken.png"):
        read_rgb(path)


def test_read_label_keeps_values_and_bit_depth(tmp_path, rng):
    lab8 = rng.integers(0, 256, (6, 7), dtype=np.uint8)
    lab16 = rng.integers(0, 65536, (6, 7), dtype=np.uint16)
    cv2.imwrite(str(tmp_path / "l8.png"), lab8)
    cv2.imwrite(str(tmp_path / "l16.png"), lab16)
    out8, out16 = read_label(tmp_path / "l8.png"), read_label(tmp_path / "l16.png")
    assert out8.dtype == np.uint8 and out16.dtype == np.uint16
    np.testing.assert_array_equal(out8, lab8)
    np.testing.assert_array_equal(out16, lab16)


def test_read_label_palette_png_gives_indices(tmp_path, rng):
    indices = rng.integers(0, 5, (6, 7), dtype=np.uint8)
    img = Image.fromarray(indices, mode="P")
    img.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9, 200, 100, 50] + [0] * (3 * 251))
    img.save(tmp_path / "pal.png")
    assert cv2.imread(str(tmp_path / "pal.png"), cv2.IMREAD_UNCHANGED).ndim == 3  # what cv2 alone gives
    np.testing.assert_array_equal(read_label(tmp_path / "pal.png"), indices)


def test_read_label_refuses_colour_images(tmp_path, rng):
    _write_rgb(tmp_path / "colour.png", _rgb(rng))
    with pytest.raises(ValueError, match=r"colour.png.*3 channels.*single-channel"):
        read_label(tmp_path / "colour.png")


def test_read_label_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="gone_labels.png"):
        read_label(tmp_path / "gone_labels.png")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(ValueError, match="bad.png"):
        read_label(tmp_path / "bad.png")
