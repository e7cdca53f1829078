"""One region as a 1-region image, the test regions of §4.3 (a true object's best detection), Table 3's
scoring and truth, and the region captioner trained through train_captioner on one region per row."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from dvsa.caption.config import CaptionerParams
from dvsa.caption.train import train_captioner
from dvsa.data.labels import read_labels
from dvsa.features import CachedFeatures, OneRegion
from dvsa.regiondesc.evaluation import truth_table
from dvsa.regiondesc.references import RegionItem, has_references, regions_to_describe
from dvsa.regions.store import N_REGIONS, RegionStore, RegionWriter
from tests.caption.toy import write_toy


def _store(path: Path, boxes: np.ndarray, n_regions: list[int]) -> RegionStore:
    n = len(boxes)
    feats = np.arange(n * N_REGIONS * 3, dtype=np.float32).reshape(n, N_REGIONS, 3)
    with RegionWriter(path, n, 3, "float32") as w:
        w.append(feats, boxes, np.full((n, N_REGIONS), 0.5), np.array(n_regions), np.arange(n))
    return RegionStore(path)


def _boxes() -> np.ndarray:
    boxes = np.zeros((2, N_REGIONS, 4), dtype=np.float32)
    boxes[:, 0] = [0, 0, 100, 50]  # region 0: the whole image
    boxes[0, 1] = [0, 0, 10, 10]
    boxes[0, 2] = [50, 20, 70, 40]
    boxes[0, 3] = [48, 20, 70, 42]
    boxes[1, 1] = [60, 10, 80, 30]
    return boxes


def test_one_region_is_that_region_of_the_image(tmp_path: Path) -> None:
    with _store(tmp_path / "r.h5", _boxes(), [4, 2]) as store:
        base = CachedFeatures(store, geometry=True)
        source = OneRegion(base, np.array([0, 1, 0]), np.array([2, 1, 0]))
        feats, mask = source(np.array([2, 0, 1]))
        assert feats.shape == (3, 1, base.dim) and mask.shape == (3, 1) and bool(mask.all())
        whole, _ = base(np.array([0, 1]))  # (2, R, D)
        assert torch.equal(feats[:, 0], torch.stack([whole[0, 0], whole[0, 2], whole[1, 1]]))
        assert feats[1, 0, 3:7].tolist() == pytest.approx([0.5, 0.4, 0.7, 0.8])  # box relative to the image


def test_each_object_takes_its_best_detection_above_the_threshold(tmp_path: Path) -> None:
    objects = [
        {"box": [49, 20, 70, 41], "color": "red", "shape": "circle", "label": "red circle", "descriptions": ["a", "b"]},
        {"box": [0, 0, 100, 50], "color": "blue", "shape": "star", "label": "blue star"},  # only region 0 fits
        {"box": [30, 0, 40, 10], "color": "red", "shape": "star", "label": "red star"},  # nothing fits
    ]
    images = [{"objects": objects}, {}]  # image 1: real data, no true objects
    with _store(tmp_path / "r.h5", _boxes(), [4, 2]) as store:
        items = regions_to_describe(images, store, np.array([0, 1]), iou_threshold=0.5)
    assert [(it.image_row, it.region) for it in items] == [(0, 3), (1, 1)]
    assert items[0].object is objects[0] and items[0].references == ["a", "b"]
    assert items[1].object is None and items[1].references == []
    assert has_references(items[:1]) and not has_references(items)


def test_truth_judges_each_phrase_against_its_own_object() -> None:
    items = [
        RegionItem(0, 1, [0, 0, 1, 1], {"color": "red", "shape": "circle", "size": "large", "box": [0, 0, 1, 1]}),
        RegionItem(0, 2, [0, 0, 1, 1], {"color": "blue", "shape": "star", "size": "small", "box": [0, 0, 1, 1]}),
    ]
    truth = truth_table(
        items, {"good": ["a big red disc", "the blue star"], "swapped": ["a blue star", "a red circle"]}
    )
    assert truth["good"]["mention_precision"] == 1.0 and truth["good"]["phrases_true"] == 1.0
    assert truth["swapped"]["mention_precision"] == 0.0


def test_region_captioner_trains_on_one_region_per_row(tmp_path: Path) -> None:
    paths = write_toy(tmp_path)
    labels = read_labels(paths["labels"], paths["vocab"])
    n = len(labels.images)
    params = CaptionerParams(
        rnn_size=16, input_encoding_size=16, att_size=8, batch_size=8, max_iters=4, val_every=2, val_images=4
    )
    with RegionStore(paths["regions"]) as store:
        # the "images" of labels are region 0 of the toy images, listed in reverse: rows no longer match regions.h5
        features = OneRegion(CachedFeatures(store, True), np.arange(n)[::-1].copy(), np.zeros(n, dtype=np.int64))
        reversed_labels = type(labels)(**{**labels.__dict__, "images": labels.images[::-1]})
        summary = train_captioner(
            params,
            reversed_labels,
            store,
            tmp_path / "m.pt",
            tmp_path / "r.pt",
            tmp_path / "logs",
            features=features,
            progress=False,
        )
    assert summary["iteration"] in (2, 4) and (tmp_path / "m.pt").is_file()
