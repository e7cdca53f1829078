"""Toy shapes images drawn by the tests themselves, and a tiny region CNN configuration."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from dvsa.regions.config import NetParams, RegionsParams, ShapesParams, TrainParams

KINDS = {
    "red square": ((220, 40, 40), "square"),
    "blue circle": ((40, 70, 220), "circle"),
    "yellow triangle": ((230, 210, 40), "triangle"),
}


def draw_scene(
    rng: np.random.Generator, width: int, height: int, n_objects: int
) -> tuple[Image.Image, list[dict[str, Any]]]:
    """A noisy grey image with non-overlapping coloured shapes, and its objects (box, label)."""
    base = rng.normal(120, 12, (height, width, 3)).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(base)
    draw = ImageDraw.Draw(image)
    objects: list[dict[str, Any]] = []
    for _ in range(50):
        if len(objects) == n_objects:
            break
        size = int(rng.integers(12, 24))
        x0, y0 = int(rng.integers(1, width - size - 1)), int(rng.integers(1, height - size - 1))
        box = [x0, y0, x0 + size, y0 + size]
        if any(
            box[0] < o["box"][2] + 2
            and o["box"][0] < box[2] + 2
            and box[1] < o["box"][3] + 2
            and o["box"][1] < box[3] + 2
            for o in objects
        ):
            continue
        label = list(KINDS)[int(rng.integers(len(KINDS)))]
        color, shape = KINDS[label]
        corners = [x0, y0, x0 + size - 1, y0 + size - 1]
        if shape == "square":
            draw.rectangle(corners, fill=color)
        elif shape == "circle":
            draw.ellipse(corners, fill=color)
        else:
            draw.polygon([(x0 + size / 2, y0), (x0 + size - 1, y0 + size - 1), (x0, y0 + size - 1)], fill=color)
        objects.append({"box": box, "label": label})
    return image, objects


def write_toy_dataset(
    root: Path,
    splits: dict[str, int],
    size: tuple[int, int] = (64, 64),
    objects: tuple[int, int] = (1, 2),
    seed: int = 0,
) -> dict[str, Any]:
    """PNG images under root/images and the dataset dict (as the `dataset` stage writes it)."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True, exist_ok=True)
    images = []
    for split, n in splits.items():
        for _ in range(n):
            k = len(images)
            image, boxes = draw_scene(rng, size[0], size[1], int(rng.integers(objects[0], objects[1] + 1)))
            image.save(root / "images" / f"{k:04d}.png")
            images.append(
                {
                    "filename": f"{k:04d}.png",
                    "filepath": "",
                    "imgid": k,
                    "split": split,
                    "sentences": [{"tokens": ["a", "shape"], "raw": "a shape", "imgid": k, "sentid": k}],
                    "sentids": [k],
                    "objects": boxes,
                }
            )
    return {"dataset": "toy", "image_root": str(root / "images"), "images": images}


def tiny_params(epochs: int = 1, **detect: Any) -> RegionsParams:
    params = RegionsParams(
        shapes=ShapesParams(
            net=NetParams(
                input_size=64,
                channels=[8, 16, 16, 32],
                roi_size=3,
                fc6_dim=32,
                fc7_dim=48,
                anchor_sizes=[12.0, 24.0],
                aspect_ratios=[1.0],
            ),
            train=TrainParams(
                epochs=epochs, batch_size=8, lr=3e-3, rois_per_image=16, rpn_batch_per_image=32, rpn_proposals=32
            ),
        ),
        batch_size=4,
    )
    for k, v in detect.items():
        setattr(params.detect, k, v)
    return params
