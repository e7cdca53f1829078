"""Scenes of the shapes world: which objects an image holds and where (non-overlapping boxes)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (40, 170, 55),
    "blue": (35, 75, 220),
    "yellow": (235, 215, 40),
    "purple": (140, 55, 190),
    "orange": (245, 135, 20),
    "white": (240, 240, 240),
}
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "diamond", "cross", "hexagon")
SIZES: tuple[str, ...] = ("small", "large")

ASPECT = {"circle": 1.0, "square": 1.0, "triangle": 1.1, "star": 1.05, "diamond": 0.75, "cross": 1.0, "hexagon": 0.87}
"""Width / height of each shape's tight box."""
SIZE_RANGE = {"small": (18.0, 26.0), "large": (34.0, 46.0)}
"""Box height in pixels at the reference image size (scaled with the image size)."""
REFERENCE_SIZE = 128
COLOR_JITTER = 14  # per-channel, per-object
REPEAT_PROB = 0.3  # chance that an object repeats the colour and/or shape of an earlier one
MAX_TRIES = 200  # placement attempts per object and size


@dataclass(frozen=True)
class ShapeObject:
    """One object: its kind, its tight box (x0, y0, x1, y1; x1, y1 exclusive) and its drawn colour."""

    shape: str
    color: str
    size: str
    box: tuple[int, int, int, int]
    rgb: tuple[int, int, int]

    @property
    def center(self) -> tuple[float, float]:
        x0, y0, x1, y1 = self.box
        return (x0 + x1) / 2, (y0 + y1) / 2

    def to_json(self) -> dict:
        return {
            "box": list(self.box),
            "label": f"{self.color} {self.shape}",
            "color": self.color,
            "shape": self.shape,
            "size": self.size,
        }


def boxes_apart(a: tuple[int, int, int, int], b: tuple[int, int, int, int], gap: int) -> bool:
    """True when boxes a and b are separated by at least `gap` pixels along x or y."""
    return a[2] + gap <= b[0] or b[2] + gap <= a[0] or a[3] + gap <= b[1] or b[3] + gap <= a[1]


def min_gap(image_size: int) -> int:
    """The smallest distance between two objects' boxes."""
    return max(2, round(4 * image_size / REFERENCE_SIZE))


def sample_scene(rng: np.random.Generator, n_objects: int, image_size: int) -> list[ShapeObject]:
    """`n_objects` objects at non-overlapping places; a large object that does not fit becomes small,
    one that still does not fit is left out (the first one always fits)."""
    objects: list[ShapeObject] = []
    for shape, color, size in _sample_kinds(rng, n_objects):
        boxes = [o.box for o in objects]
        box = _place(rng, shape, size, image_size, boxes)
        if box is None and size == "large":
            size = "small"
            box = _place(rng, shape, size, image_size, boxes)
        if box is None:
            continue
        jitter = rng.integers(-COLOR_JITTER, COLOR_JITTER + 1, size=3)
        rgb = np.clip(np.array(COLORS[color]) + jitter, 0, 255)
        objects.append(ShapeObject(shape, color, size, box, (int(rgb[0]), int(rgb[1]), int(rgb[2]))))
    return objects


def _sample_kinds(rng: np.random.Generator, n: int) -> list[tuple[str, str, str]]:
    """(shape, colour, size) per object; some repeat an earlier colour/shape so that counts occur."""
    colors = list(COLORS)
    kinds: list[tuple[str, str, str]] = []
    for _ in range(n):
        shape = SHAPES[rng.integers(len(SHAPES))]
        color = colors[rng.integers(len(colors))]
        size = SIZES[rng.integers(len(SIZES))]
        if kinds and rng.random() < REPEAT_PROB:
            prev_shape, prev_color, _ = kinds[rng.integers(len(kinds))]
            mode = rng.integers(3)  # 0: same shape and colour, 1: same shape, 2: same colour
            shape = prev_shape if mode in (0, 1) else shape
            color = prev_color if mode in (0, 2) else color
        kinds.append((shape, color, size))
    return kinds


def _place(
    rng: np.random.Generator, shape: str, size: str, image_size: int, boxes: list[tuple[int, int, int, int]]
) -> tuple[int, int, int, int] | None:
    """A box for the object inside the image and apart from `boxes`, or None after MAX_TRIES."""
    scale = image_size / REFERENCE_SIZE
    lo, hi = SIZE_RANGE[size]
    h = max(4, round(rng.uniform(lo, hi) * scale))
    w = max(4, round(h * ASPECT[shape]))
    margin = max(1, round(2 * scale))
    gap = min_gap(image_size)
    for _ in range(MAX_TRIES):
        x0 = int(rng.integers(margin, image_size - margin - w + 1))
        y0 = int(rng.integers(margin, image_size - margin - h + 1))
        box = (x0, y0, x0 + w, y0 + h)
        if all(boxes_apart(box, b, gap) for b in boxes):
            return box
    return None
