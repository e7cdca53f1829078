from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dvsa.data.images import check_image, load_rgb
from dvsa.errors import InputError


def test_modes_become_rgb(tmp_path: Path) -> None:
    rgb = np.zeros((4, 6, 3), dtype=np.uint8)
    rgb[..., 0] = 200
    Image.fromarray(rgb).convert("CMYK").save(tmp_path / "cmyk.jpg")
    rgba = np.zeros((4, 6, 4), dtype=np.uint8)
    rgba[..., 3] = 0  # fully transparent -> white background
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    Image.fromarray(np.full((4, 6), 65535, dtype=np.uint16)).save(tmp_path / "g16.png")
    Image.fromarray(np.full((4, 6), 7, dtype=np.uint8), "L").save(tmp_path / "gray.png")
    Image.fromarray(rgb).convert("P").save(tmp_path / "pal.gif")
    for name in ("cmyk.jpg", "rgba.png", "g16.png", "gray.png", "pal.gif"):
        im = load_rgb(tmp_path / name)
        assert im.mode == "RGB" and im.size == (6, 4), name
    assert np.asarray(load_rgb(tmp_path / "rgba.png")).min() == 255
    assert np.asarray(load_rgb(tmp_path / "g16.png")).min() == 255
    assert abs(int(np.asarray(load_rgb(tmp_path / "cmyk.jpg"))[..., 0].mean()) - 200) < 10


def test_exif_rotation_applied(tmp_path: Path) -> None:
    im = Image.fromarray(np.zeros((4, 6, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    im.save(tmp_path / "rot.jpg", exif=exif)
    assert load_rgb(tmp_path / "rot.jpg").size == (4, 6)


def test_corrupt_and_truncated(tmp_path: Path) -> None:
    (tmp_path / "junk.jpg").write_bytes(b"\xff\xd8\xff garbage")
    with pytest.raises(InputError, match="junk.jpg: cannot read image"):
        load_rgb(tmp_path / "junk.jpg")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "ok.jpg")
    data = (tmp_path / "ok.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.jpg: cannot read image"):
        load_rgb(tmp_path / "cut.jpg")
    with pytest.raises(InputError, match="gone.png: image file not found"):
        load_rgb(tmp_path / "gone.png")


def test_a_directory_is_named_as_one(tmp_path: Path) -> None:
    (tmp_path / "photos.jpg").mkdir()
    for read in (load_rgb, check_image):
        with pytest.raises(InputError, match=r"photos.jpg: is a directory, not an image file$"):
            read(tmp_path / "photos.jpg")
