"""Linear probes of the region features: what a linear classifier reads from one region's fc7 about the
true object under it (colour, shape, size, horizontal and vertical third of the image).

Each true object of the shapes world is matched to its best detected region of regions.h5 (IoU >= 0.5;
region 0, the whole image, is never a match); a softmax regression on the standardised fc7 (no box
geometry) is fitted on the train split's objects and scored on the test split's. A probe near 1.0 says the
feature holds the attribute, so errors downstream are the language model's; a low one points at the CNN.
This is a diagnosis only: no stage reads it.

    python benchmarks/region_probes.py [--regions data/regions/regions.h5] [--name NAME]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from dvsa.align.grounding import box_iou
from dvsa.data.dataset import load_dataset
from dvsa.data.shapes_scene import COLORS, SHAPES, SIZES
from dvsa.regions.store import RegionStore

DATASET = "data/dataset/dataset.json"
OUT = Path("benchmarks/results/region_probes")
THIRDS = ("first", "middle", "last")


def matched_objects(store: RegionStore, dataset: dict[str, Any], split: str) -> tuple[np.ndarray, dict[str, list[int]], float]:
    """fc7 (M, D) of the best region of each true object of `split` found at IoU >= 0.5, its attributes
    (index lists per attribute) and the share of the split's objects found."""
    rows, attrs = [], {k: [] for k in ("colour", "shape", "size", "x third", "y third")}
    total = 0
    for i, im in enumerate(dataset["images"]):
        if im["split"] != split:
            continue
        n = int(store.n_regions[i])
        boxes = store.boxes[i, 1:n]  # (n - 1, 4) detections
        width, height = store.boxes[i, 0, 2], store.boxes[i, 0, 3]  # region 0: the whole image
        for obj in im.get("objects", []):
            total += 1
            iou = box_iou(obj["box"], boxes) if len(boxes) else np.zeros(0)
            if not len(iou) or iou.max() < 0.5:
                continue
            rows.append((i, 1 + int(iou.argmax())))
            x0, y0, x1, y1 = obj["box"]
            attrs["colour"].append(list(COLORS).index(obj["color"]))
            attrs["shape"].append(SHAPES.index(obj["shape"]))
            attrs["size"].append(SIZES.index(obj["size"]))
            attrs["x third"].append(min(int(3 * (x0 + x1) / 2 / width), 2))
            attrs["y third"].append(min(int(3 * (y0 + y1) / 2 / height), 2))
    feats = np.stack([store.feats([i], r)[0] for i, r in rows]) if rows else np.zeros((0, store.dim))
    return feats.astype(np.float32), attrs, len(rows) / max(total, 1)


def probe(x_train: torch.Tensor, y_train: torch.Tensor, x_test: torch.Tensor, y_test: torch.Tensor,
          n_classes: int, l2: float = 1e-3) -> float:
    """Test accuracy of a softmax regression fitted by L-BFGS (L2 `l2` on the weights)."""
    torch.manual_seed(0)
    w = torch.zeros(x_train.shape[1], n_classes, requires_grad=True)
    b = torch.zeros(n_classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(x_train @ w + b, y_train) + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    with torch.no_grad():
        return float(((x_test @ w + b).argmax(1) == y_test).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--regions", default="data/regions/regions.h5")
    parser.add_argument("--name", default="default", help="the record's name under " + str(OUT))
    a = parser.parse_args()
    torch.set_num_threads(1)
    dataset = load_dataset(DATASET)
    with RegionStore(a.regions) as store:
        x_tr, a_tr, found_tr = matched_objects(store, dataset, "train")
        x_te, a_te, found_te = matched_objects(store, dataset, "test")
    mean, std = x_tr.mean(0), x_tr.std(0) + 1e-6
    x_tr_t, x_te_t = torch.from_numpy((x_tr - mean) / std), torch.from_numpy((x_te - mean) / std)
    sizes = {"colour": len(COLORS), "shape": len(SHAPES), "size": len(SIZES), "x third": 3, "y third": 3}
    record: dict[str, Any] = {"name": a.name, "regions": a.regions, "objects_found": {"train": found_tr, "test": found_te},
                              "n_objects": {"train": len(x_tr), "test": len(x_te)}, "probe_accuracy": {}}
    for attr, k in sizes.items():
        acc = probe(x_tr_t, torch.tensor(a_tr[attr]), x_te_t, torch.tensor(a_te[attr]), k)
        majority = float(np.bincount(a_te[attr], minlength=k).max() / max(len(a_te[attr]), 1))
        record["probe_accuracy"][attr] = {"accuracy": acc, "majority": majority}
        print(f"{attr:8s} probe {acc:.3f}  (majority class {majority:.3f})")
    print(f"objects found at IoU >= 0.5: train {found_tr:.3f}, test {found_te:.3f} ({len(x_te)} test objects)")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{a.name}.json").write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
