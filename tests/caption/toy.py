"""A toy captioning world written in the pipeline's file layout: each image has one of 4 classes
(colour x shape); its region-0 feature is the class's random direction plus noise, its 5 captions name the
class. A captioner can learn it in a few hundred iterations; the nearest-neighbour baseline can too. Region 0
is the whole image (its box the image's), the only real region."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from dvsa.data.labels import Labels, write_labels
from dvsa.regions.store import N_REGIONS, RegionWriter

COLORS = ("red", "blue")
SHAPES = ("circle", "square")
TEMPLATES = ("a {c} {s}", "the {c} {s}", "one {c} {s}", "a {s} that is {c}", "a {c} {s} here")


def class_captions(k: int) -> list[str]:
    c, s = COLORS[k // 2], SHAPES[k % 2]
    return [t.format(c=c, s=s) for t in TEMPLATES]


def write_toy(
    root: Path, n_train: int = 48, n_val: int = 12, n_test: int = 12, dim: int = 32, noise: float = 0.3, seed: int = 0
) -> dict[str, Path]:
    """Write data/dataset (json + PNGs), data/prepro (labels.h5 + vocab.json), data/regions/regions.h5."""
    rng = np.random.default_rng(seed)
    n = n_train + n_val + n_test
    classes = rng.integers(0, 4, n)
    splits = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
    words = sorted({w for k in range(4) for cap in class_captions(k) for w in cap.split()})
    word_to_ix = {w: i + 1 for i, w in enumerate(words)}
    max_length = 6
    rows, start, end, lengths, images, ds_images = [], [], [], [], [], []
    img_dir = root / "data" / "dataset" / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    palette = {"red": (220, 30, 30), "blue": (30, 30, 220)}
    for i in range(n):
        caps = class_captions(int(classes[i]))
        start.append(len(rows) + 1)
        for cap in caps:
            toks = cap.split()
            row = np.zeros(max_length, dtype=np.uint32)
            row[: len(toks)] = [word_to_ix[w] for w in toks]
            rows.append(row)
            lengths.append(len(toks))
        end.append(len(rows))
        name = f"img{i:03d}.png"
        color = palette[COLORS[int(classes[i]) // 2]]
        Image.new("RGB", (24, 20), color).save(img_dir / name)
        images.append({"split": splits[i], "id": 100 + i, "file_path": name})
        ds_images.append(
            {
                "filename": name,
                "filepath": "",
                "imgid": 100 + i,
                "split": splits[i],
                "sentids": list(range(5 * i, 5 * i + 5)),
                "sentences": [
                    {"raw": cap.capitalize() + ".", "tokens": cap.split(), "imgid": 100 + i, "sentid": 5 * i + j}
                    for j, cap in enumerate(caps)
                ],
            }
        )
    labels = Labels(
        labels=np.stack(rows),
        label_start_ix=np.array(start, dtype=np.uint32),
        label_end_ix=np.array(end, dtype=np.uint32),
        label_length=np.array(lengths, dtype=np.uint32),
        ix_to_word={i: w for w, i in word_to_ix.items()},
        images=images,
    )
    paths = {
        "dataset": root / "data" / "dataset" / "dataset.json",
        "labels": root / "data" / "prepro" / "labels.h5",
        "vocab": root / "data" / "prepro" / "vocab.json",
        "regions": root / "data" / "regions" / "regions.h5",
    }
    paths["dataset"].write_text(
        json.dumps({"dataset": "toy", "image_root": str(img_dir), "images": ds_images}), encoding="utf-8"
    )
    write_labels(paths["labels"], paths["vocab"], labels)
    directions = rng.normal(size=(4, dim)).astype(np.float32)
    feats = np.zeros((n, N_REGIONS, dim), dtype=np.float32)
    feats[:, 0] = directions[classes] + noise * rng.normal(size=(n, dim)).astype(np.float32)
    boxes = np.zeros((n, N_REGIONS, 4), np.float32)
    boxes[:, 0] = [0, 0, 24, 20]
    scores = np.zeros((n, N_REGIONS), np.float32)
    scores[:, 0] = 1.0
    with RegionWriter(paths["regions"], n, dim, "float32") as w:
        w.append(
            feats,
            boxes,
            scores,
            np.ones(n, np.int32),
            np.arange(100, 100 + n),
        )
    return paths
