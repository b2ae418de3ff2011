"""Bad input is normal input: every unreadable image gets a clear reason."""
import io

import numpy as np
import pytest
from PIL import Image

from deepfever.errors import ImageReadError
from deepfever.io.images import load_image


def _png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "empty file"),
        (b"this is not an image at all", "not a readable image"),
        (_png_bytes(Image.new("RGB", (64, 64), "red"))[:80], "corrupt or truncated"),
    ],
)
def test_unreadable_files_raise_with_a_reason(tmp_path, content, reason):
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ImageReadError, match=reason):
        load_image(path)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    path = tmp_path / "bomb.png"
    Image.new("1", (12000, 8000)).save(path)  # 96 megapixels, a few kilobytes on disk
    with pytest.raises(ImageReadError, match="exceeds the limit"):
        load_image(path)


def test_missing_file(tmp_path):
    with pytest.raises(ImageReadError, match="no such file"):
        load_image(tmp_path / "nope.jpg")


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16", "LA", "CMYK"])
def test_every_mode_becomes_rgb_uint8(tmp_path, mode):
    base = Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8))
    image = base.convert("L").convert("I;16") if mode == "I;16" else base.convert(mode)
    path = tmp_path / ("x.tif" if mode == "CMYK" else "x.png")
    image.save(path)
    array = load_image(path)
    assert array.shape == (20, 30, 3) and array.dtype == np.uint8


def test_sixteen_bit_range_is_scaled_not_clipped(tmp_path):
    array = np.full((4, 4), 65535, dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(array).save(path)
    assert load_image(path).min() == 255


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (40, 20), "white")
    image.paste((255, 0, 0), (0, 0, 10, 20))  # red strip on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = tmp_path / "rotated.jpg"
    image.save(path, exif=exif, quality=95)
    loaded = load_image(path)
    assert loaded.shape == (40, 20, 3)
    assert loaded[:10, :, 0].mean() > 200 and loaded[:10, :, 1].mean() < 80  # red strip now on top


def test_arrays_are_accepted():
    assert load_image(np.zeros((5, 6), np.uint8)).shape == (5, 6, 3)
    assert load_image(np.zeros((5, 6, 4), np.uint8)).shape == (5, 6, 3)
    with pytest.raises(ImageReadError, match="expected an"):
        load_image(np.zeros((5, 6, 2), np.uint8))


def test_one_converter_scales_16_bit_and_refuses_floats(tiny_model_file):
    """Issue 9.7: floats in [0, 1] used to become black and 16-bit arrays saturated."""
    from deepfever import Extractor

    grey16 = np.full((4, 4), 32896, np.uint16)  # half of 65535 -> 128, not clipped to 255
    assert (load_image(grey16) == 128).all()
    assert (load_image(np.full((4, 4, 1), 65535, np.uint16)) == 255).all()
    assert (load_image(np.full((4, 4, 3), 200, np.int64)) == 200).all()  # ints in range are accepted
    with pytest.raises(ImageReadError, match=r"outside \[0, 255\]"):
        load_image(np.full((4, 4, 3), 300, np.int32))
    extractor = Extractor(model=tiny_model_file, detector="none")
    with pytest.raises(ImageReadError, match=r"array\[1\]: got a float32 image.*\(x \* 255\)\.round\(\)\.astype\(np\.uint8\)"):
        extractor.extract([np.zeros((48, 48, 3), np.uint8), np.random.default_rng(0).random((48, 48, 3), dtype=np.float32)])


def test_bytes_decode_like_files(tmp_path):
    """One decoder: downloaded bytes (FEC fetch) go through the same checks as files."""
    from deepfever.io.images import CorruptImageError

    path = tmp_path / "x.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (9, 7, 3), dtype=np.uint8)).save(path)
    np.testing.assert_array_equal(load_image(path.read_bytes()), load_image(path))
    with pytest.raises(CorruptImageError, match="corrupt or truncated"):
        load_image(path.read_bytes()[:60])
    with pytest.raises(ImageReadError, match="not a readable image"):
        load_image(b"plain text")
