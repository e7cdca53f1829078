"""The test regions of §4.3 and their references: each true object's best-overlapping detection.

The paper's region test set was annotated on given boxes; here the boxes are the detected regions (1..n-1 of
regions.h5, never region 0) whose IoU with a true object is at least the threshold, the best one per object,
and the references are that object's descriptions (dataset.json ``objects[k]["descriptions"]``, written by
dvsa.data.shapes_references). Data without true objects (real photos) has no references: every detected
region is described, and nothing is scored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dvsa.align.grounding import box_iou
from dvsa.data.shapes_references import DESCRIPTIONS_KEY
from dvsa.regions.store import RegionStore


@dataclass
class RegionItem:
    """One region to describe."""

    image_row: int  # row of dataset.json / regions.h5
    region: int  # 1..n_regions-1
    box: list[float]  # xyxy, the detection's
    object: dict[str, Any] | None = None  # the true object it matches, if the data has them
    references: list[str] = field(default_factory=list)  # the object's descriptions


def regions_to_describe(
    images: list[dict[str, Any]], store: RegionStore, rows: np.ndarray, iou_threshold: float
) -> list[RegionItem]:
    """The regions of images `rows` to describe, in row order (per image: in the objects' order, or in the
    detections' order on data without true objects)."""
    out: list[RegionItem] = []
    for row in np.asarray(rows, dtype=np.int64).tolist():
        n = int(store.n_regions[row])
        boxes = store.boxes[row, 1:n]  # (n - 1, 4) the detections
        objects = images[row].get("objects")
        if objects is None:
            out += [RegionItem(row, r, [float(c) for c in store.boxes[row, r]]) for r in range(1, n)]
            continue
        if not len(boxes):
            continue
        for obj in objects:
            iou = box_iou(obj["box"], boxes)  # (n - 1,)
            best = int(iou.argmax())
            if iou[best] >= iou_threshold:
                refs = list(obj.get(DESCRIPTIONS_KEY, []))
                out.append(RegionItem(row, best + 1, [float(c) for c in boxes[best]], obj, refs))
    return out


def has_references(items: list[RegionItem]) -> bool:
    """Whether every item has at least two references (one against the rest: human agreement)."""
    return bool(items) and all(len(it.references) >= 2 for it in items)
