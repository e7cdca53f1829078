"""Drawing the shapes world: a textured, noisy background and antialiased filled shapes."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image, ImageDraw

from dvsa.data.shapes_scene import REFERENCE_SIZE, ShapeObject

BACKGROUNDS: tuple[str, ...] = ("stripes", "blotches")
SUPERSAMPLE = 2  # shapes are drawn at this many times the resolution, then box-filtered
NOISE_SIGMA = 6.0  # per-pixel Gaussian noise over the whole image


def _normalise(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Scale an outline so that it fills the unit square [0, 1]^2 exactly."""
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    return [((x - min(xs)) / (max(xs) - min(xs)), (y - min(ys)) / (max(ys) - min(ys))) for x, y in points]


def _regular(n_points: int, radii: tuple[float, ...]) -> list[tuple[float, float]]:
    """A star / polygon with one vertex up; radii alternate around it."""
    return [
        (radii[k % len(radii)] * math.cos(math.pi * (2 * k / n_points - 0.5)),
        radii[k % len(radii)] * math.sin(math.pi * (2 * k / n_points - 0.5)))
        for k in range(n_points)
    ]


_T = 1 / 3  # arm thickness of the cross
OUTLINES: dict[str, list[tuple[float, float]]] = {
    "square": [(0, 0), (1, 0), (1, 1), (0, 1)],
    "triangle": [(0.5, 0), (1, 1), (0, 1)],
    "diamond": [(0.5, 0), (1, 0.5), (0.5, 1), (0, 0.5)],
    "cross": [(_T, 0), (1 - _T, 0), (1 - _T, _T), (1, _T), (1, 1 - _T), (1 - _T, 1 - _T),
              (1 - _T, 1), (_T, 1), (_T, 1 - _T), (0, 1 - _T), (0, _T), (_T, _T)],
    "star": _normalise(_regular(10, (1.0, 0.42))),
    "hexagon": _normalise(_regular(6, (1.0,))),
}
"""Polygon outlines in the unit square (x right, y down); the circle is drawn as an ellipse."""


def render(objects: list[ShapeObject], background: str, image_size: int, rng: np.random.Generator) -> Image.Image:
    """The image: background, shapes composited with their coverage, then pixel noise."""
    field = background_field(background, image_size, rng)  # (S, S, 3)
    coverage, paint = shape_layers(objects, image_size)  # (S, S, 1), (S, S, 3) premultiplied
    image = field * (1.0 - coverage) + paint
    image += rng.normal(0.0, NOISE_SIGMA, size=image.shape)
    return Image.fromarray(np.clip(np.rint(image), 0, 255).astype(np.uint8))


def background_field(kind: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """(S, S, 3) float: a muted low-frequency colour field plus stripes or blotches."""
    base = rng.uniform(75, 150) + rng.normal(0, 12, size=3)  # grey level + tint
    grid = int(rng.integers(3, 6))
    coarse = base + rng.normal(0, 18, size=(grid, grid, 1)) + rng.normal(0, 10, size=(grid, grid, 3))  # mostly grey
    coarse = np.clip(coarse, 30, 200)
    field = _upsample(coarse, size)
    scale = size / REFERENCE_SIZE
    if kind == "stripes":
        theta = rng.uniform(0, math.pi)
        period = rng.uniform(6, 14) * scale
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)  # (S, S)
        phase = 2 * math.pi * (xx * math.cos(theta) + yy * math.sin(theta)) / period + rng.uniform(0, 2 * math.pi)
        wave = np.tanh(2.5 * np.sin(phase))  # (S, S) in [-1, 1]
        tint = 1.0 + rng.normal(0, 0.3, size=3)
        field += rng.uniform(10, 20) * wave[..., None] * tint
    elif kind == "blotches":
        for _ in range(2):
            cells = int(rng.integers(6, 12))
            noise = _upsample(rng.random((cells, cells, 1)) * 255, size)[..., 0] / 255  # (S, S)
            mask = np.clip((noise - 0.58) / 0.08, 0, 1)
            field += mask[..., None] * (rng.normal(0, 25) + rng.normal(0, 12, size=3))
    else:
        raise ValueError(f"unknown background {kind!r}; expected one of {BACKGROUNDS}")
    return np.clip(field, 20, 205)  # never as bright as a white object


def _upsample(coarse: np.ndarray, size: int) -> np.ndarray:
    """(g, g, C) values in [0, 255] -> (S, S, C) float, bicubic."""
    channels = [
        np.asarray(Image.fromarray(coarse[..., c].astype(np.float32)).resize((size, size), Image.BICUBIC))
        for c in range(coarse.shape[2])
    ]
    return np.stack(channels, axis=-1).astype(np.float64)


def shape_layers(objects: list[ShapeObject], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Coverage (S, S, 1) in [0, 1] and premultiplied colour (S, S, 3) of the shapes, antialiased."""
    big = size * SUPERSAMPLE
    mask = Image.new("L", (big, big), 0)
    paint = Image.new("RGB", (big, big), (0, 0, 0))
    draw_mask, draw_paint = ImageDraw.Draw(mask), ImageDraw.Draw(paint)
    for obj in objects:
        _draw(draw_mask, obj, 255)
        _draw(draw_paint, obj, obj.rgb)
    coverage = np.asarray(mask.resize((size, size), Image.BOX), dtype=np.float64)[..., None] / 255
    colour = np.asarray(paint.resize((size, size), Image.BOX), dtype=np.float64)
    return coverage, colour


def _draw(draw: ImageDraw.ImageDraw, obj: ShapeObject, fill: int | tuple[int, int, int]) -> None:
    """Fill the object's outline so that it spans exactly its box (at SUPERSAMPLE resolution)."""
    x0, y0, x1, y1 = (v * SUPERSAMPLE for v in obj.box)
    w, h = x1 - 1 - x0, y1 - 1 - y0
    if obj.shape == "circle":
        draw.ellipse((x0, y0, x1 - 1, y1 - 1), fill=fill)
        return
    draw.polygon([(x0 + u * w, y0 + v * h) for u, v in OUTLINES[obj.shape]], fill=fill)
