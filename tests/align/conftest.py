"""A tiny synthetic "shapes world" for the alignment tests: captions, regions with features, true objects.

Region features are noisy sums of a code per colour and per shape (the way a trained region CNN would
separate them); region 0 is the whole image, then one region per object, then a few distractor boxes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from dvsa.data.labels import Labels, write_labels
from dvsa.io import write_json
from dvsa.regions.store import N_REGIONS, RegionWriter

COLORS = ("red", "green", "blue", "yellow")
SHAPES = ("circle", "square", "triangle")
TEMPLATES = ("{}", "there is {}", "a picture of {}", "i can see {}")
SIZE = 64  # pixels
DIM = 48  # feature size


@dataclass
class World:
    root: Path
    labels_h5: Path
    vocab_json: Path
    regions_h5: Path
    dataset_json: Path
    labels: Labels
    dataset: dict


def make_world(root: Path, n_train: int = 120, n_val: int = 30, n_test: int = 30, seed: int = 0) -> World:
    rng = np.random.default_rng(seed)
    codes = {w: rng.normal(size=DIM) for w in COLORS + SHAPES}
    splits = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
    images_dir = root / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    images, all_feats, all_boxes, n_regions, captions = [], [], [], [], []
    for i, split in enumerate(splits):
        cells = rng.permutation(4)[: rng.integers(1, 4)]
        objects = []
        for cell in cells:
            x0, y0 = 32 * (cell % 2) + rng.integers(0, 8), 32 * (cell // 2) + rng.integers(0, 8)
            w = rng.integers(16, 24)
            c, s = COLORS[rng.integers(len(COLORS))], SHAPES[rng.integers(len(SHAPES))]
            objects.append({"box": [int(x0), int(y0), int(x0 + w), int(y0 + w)], "label": f"{c} {s}", "color": c,
                            "shape": s, "size": "small"})
        feats = np.zeros((N_REGIONS, DIM), dtype=np.float32)
        boxes = np.zeros((N_REGIONS, 4), dtype=np.float32)
        boxes[0] = [0, 0, SIZE, SIZE]
        feats[0] = 0.3 * sum(codes[o["color"]] + codes[o["shape"]] for o in objects) + 0.3 * rng.normal(size=DIM)
        for j, o in enumerate(objects, start=1):
            boxes[j] = np.array(o["box"]) + rng.uniform(-1.5, 1.5, 4)
            feats[j] = codes[o["color"]] + codes[o["shape"]] + 0.3 * rng.normal(size=DIM)
        n = len(objects) + 1 + int(rng.integers(0, 3))
        for j in range(len(objects) + 1, n):  # distractors: background boxes with noise features
            x0, y0 = rng.uniform(0, 40, 2)
            boxes[j] = [x0, y0, x0 + 20, y0 + 20]
            feats[j] = 0.5 * rng.normal(size=DIM)
        all_feats.append(feats)
        all_boxes.append(boxes)
        n_regions.append(n)
        sents = []
        for _ in range(3):
            picked = rng.permutation(len(objects))[: rng.integers(1, len(objects) + 1)]
            np_text = " and ".join(f"a {objects[j]['color']} {objects[j]['shape']}" for j in picked)
            sents.append(TEMPLATES[rng.integers(len(TEMPLATES))].format(np_text).split())
        captions.append(sents)
        filename = f"{i:04d}.png"
        _write_image(images_dir / filename, objects)
        images.append({"filepath": "", "filename": filename, "imgid": i, "split": split, "objects": objects,
                       "sentences": [{"tokens": t, "raw": " ".join(t), "imgid": i, "sentid": 3 * i + k}
                                     for k, t in enumerate(sents)]})
    vocab = sorted({w for sents in captions for t in sents for w in t})
    word_to_ix = {w: k + 1 for k, w in enumerate(vocab)}
    max_len = 16
    rows, lengths, start, end = [], [], [], []
    for sents in captions:
        start.append(len(rows) + 1)
        for t in sents:
            row = np.zeros(max_len, dtype=np.uint32)
            row[: len(t[:max_len])] = [word_to_ix[w] for w in t[:max_len]]
            rows.append(row)
            lengths.append(min(len(t), max_len))
        end.append(len(rows))
    labels = Labels(
        labels=np.stack(rows), label_start_ix=np.array(start, dtype=np.uint32),
        label_end_ix=np.array(end, dtype=np.uint32), label_length=np.array(lengths, dtype=np.uint32),
        ix_to_word={k: w for w, k in word_to_ix.items()},
        images=[{"split": s, "id": i, "file_path": im["filename"]} for i, (s, im) in enumerate(zip(splits, images))],
    )
    labels_h5, vocab_json = root / "labels.h5", root / "vocab.json"
    write_labels(labels_h5, vocab_json, labels)
    regions_h5 = root / "regions.h5"
    with RegionWriter(regions_h5, len(splits), DIM, "float32") as w:
        w.append(np.stack(all_feats), np.stack(all_boxes), np.ones((len(splits), N_REGIONS), np.float32),
                 np.array(n_regions), np.arange(len(splits)))
    dataset = {"dataset": "tiny", "image_root": str(images_dir), "images": images}
    dataset_json = root / "dataset.json"
    write_json(dataset_json, dataset)
    return World(root, labels_h5, vocab_json, regions_h5, dataset_json, labels, dataset)


def _write_image(path: Path, objects: list[dict]) -> None:
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (SIZE, SIZE), (128, 128, 128))
    draw = ImageDraw.Draw(im)
    for o in objects:
        draw.rectangle(o["box"], fill=o["color"])
    im.save(path)


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    return make_world(tmp_path_factory.mktemp("align_world"))


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """Alignment tests run on one torch thread (deterministic sums, no oversubscription)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
