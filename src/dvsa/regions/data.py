"""The images of data/dataset/dataset.json as the region stages see them: file, split, id, true objects.

The true objects ("objects" of the shapes world) are training labels of the detector and the ground truth
of its evaluation; they never become proposals or features (except in the ``oracle`` ablation).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from dvsa.data.dataset import image_path
from dvsa.data.images import load_rgb
from dvsa.errors import InputError


@dataclass(frozen=True)
class ImageRecord:
    path: Path
    split: str
    image_id: int
    boxes: np.ndarray  # (G, 4) float32 xyxy, original pixels
    labels: tuple[str, ...]  # (G,)


def image_records(dataset: dict[str, Any], where: str | os.PathLike[str] = "dataset.json") -> list[ImageRecord]:
    """One record per image of a dataset dict (as written by the `dataset` stage), in file order."""
    root = Path(dataset["image_root"])
    records = []
    for k, im in enumerate(dataset["images"]):
        objects = im.get("objects", [])
        try:
            boxes = np.array([o["box"] for o in objects], dtype=np.float32).reshape(-1, 4)
            labels = tuple(str(o["label"]) for o in objects)
        except (KeyError, TypeError, ValueError):
            raise InputError(
                f"{where}: images[{k}].objects: expected a list of {{box: [x0, y0, x1, y1], label}}"
            ) from None
        image_id = int(im.get("cocoid", im.get("imgid", k)))
        records.append(ImageRecord(image_path(root, im), im["split"], image_id, boxes, labels))
    return records


def object_classes(records: Sequence[ImageRecord], split: str = "train") -> list[str]:
    """The sorted object labels of a split: the detector's K classes (class k + 1 is classes[k])."""
    classes = sorted({label for r in records if r.split == split for label in r.labels})
    if not classes:
        raise InputError(
            f"dataset.json: no 'objects' in the {split} images; a shapes-world dataset is needed to "
            "train the region CNN (or set regions.backbone to vgg16 or alexnet)"
        )
    return classes


def batches(records: Sequence[ImageRecord], batch_size: int) -> Iterator[tuple[list[ImageRecord], list[Image.Image]]]:
    """Consecutive batches of records with their images loaded as RGB."""
    for start in range(0, len(records), batch_size):
        chunk = list(records[start : start + batch_size])
        yield chunk, [load_rgb(r.path) for r in chunk]
