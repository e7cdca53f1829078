"""Image loading: every image, whatever its file format, size or mode, is converted the same way."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from dvsa.errors import InputError

Image.MAX_IMAGE_PIXELS = 200_000_000


def load_rgb(path: str | os.PathLike[str]) -> Image.Image:
    """Open an image as 8-bit RGB: EXIF orientation applied, 16-bit scaled, alpha composited on white.

    Any unreadable, truncated or non-image file is an InputError naming it.
    """
    p = _existing_file(path)
    try:
        with Image.open(p) as im:
            im.load()
            im = ImageOps.exif_transpose(im)
            return _to_rgb(im)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{p}: cannot read image ({e})") from None
    except Image.DecompressionBombError as e:
        raise InputError(f"{p}: image too large ({e})") from None


def check_image(path: str | os.PathLike[str]) -> tuple[int, int]:
    """Check that `path` is an image file PIL can identify; return its (width, height) without decoding it."""
    p = _existing_file(path)
    try:
        with Image.open(p) as im:
            return im.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise InputError(f"{p}: cannot read image ({e})") from None


def _existing_file(path: str | os.PathLike[str]) -> Path:
    """`path` as a Path; a directory or a missing path is an InputError naming it."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not an image file")
    if not p.is_file():
        raise InputError(f"{p}: image file not found")
    return p


def _to_rgb(im: Image.Image) -> Image.Image:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        a = np.asarray(im, dtype=np.float64)
        top = 65535.0 if a.max() > 255 else 255.0
        im = Image.fromarray(np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    elif im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        im = Image.fromarray(np.clip(a * 255.0 + 0.5, 0, 255).astype(np.uint8), mode="L")
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im)
    return im.convert("RGB")
