"""Training the shapes region CNN on toy images: it learns, deterministically."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from dvsa.regions.config import RegionsParams
from dvsa.regions.data import batches, image_records
from dvsa.regions.extract import extract_regions
from dvsa.regions.metrics import RecallMeter
from dvsa.regions.train import sample_rois, train_region_cnn
from tests.regions.toy import tiny_params, write_toy_dataset


def test_sample_rois_respects_fraction_and_ignores() -> None:
    labels = torch.tensor([2, 0, 0, -1, 1, 0, 0, 0, -1, 0])
    idx = sample_rois(labels, 4, 0.25, torch.Generator().manual_seed(0))
    picked = labels[idx]
    assert len(idx) == 4 and (picked > 0).sum() == 1 and (picked == -1).sum() == 0
    assert len(set(idx.tolist())) == 4


def learner_params() -> RegionsParams:
    params = tiny_params(epochs=8)
    params.net.channels, params.net.fc6_dim, params.net.fc7_dim = [16, 32, 32, 64], 128, 128
    params.train.fg_fraction = 0.5
    return params


def test_tiny_training_learns_the_classes_and_finds_the_objects(tmp_path: Path) -> None:
    records = image_records(write_toy_dataset(tmp_path, {"train": 64, "val": 24, "test": 16}, objects=(2, 3)))
    logged: list[dict[str, float]] = []
    model, metrics = train_region_cnn(records, learner_params(), lambda epoch, m: logged.append(m))
    assert model.classes == ["blue circle", "red square", "yellow triangle"]
    assert len(logged) == 8 and logged[-1]["loss"] < 0.8 * logged[0]["loss"]
    assert metrics["val_object_accuracy"] > 0.7  # chance: 1 in 4 (3 classes + background)
    meter = RecallMeter(0.5)
    test = [r for r in records if r.split == "test"]
    for chunk, images in batches(test, 8):
        out = extract_regions(model, images, tiny_params().detect)
        for i, r in enumerate(chunk):
            meter.add(out.boxes[i, 1 : out.n_regions[i]], r.boxes)
    assert meter.result()["recall_iou50"] > 0.8


def test_training_is_deterministic(tmp_path: Path) -> None:
    records = image_records(write_toy_dataset(tmp_path, {"train": 16, "val": 4}))
    a, _ = train_region_cnn(records, tiny_params(epochs=1))
    b, _ = train_region_cnn(records, tiny_params(epochs=1))
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert not np.allclose(a.head.fc7.weight.detach().numpy(), 0)
