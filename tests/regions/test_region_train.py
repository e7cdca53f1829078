"""Training the shapes region CNN on toy images: it learns, deterministically."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from dvsa.regions.checkpoint import load_region_cnn
from dvsa.regions.config import RegionsParams
from dvsa.regions.data import batches, image_records
from dvsa.regions.extract import extract_regions
from dvsa.regions.metrics import RecallMeter
from dvsa.regions.shapes_net import ShapesRegionCNN
from dvsa.regions.train import sample_rois, train_region_cnn
from dvsa.train.loop import Files, LoopState
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


def fit(root: Path, dataset: dict[str, Any], params: RegionsParams, **kw: Any) -> tuple[ShapesRegionCNN, LoopState]:
    """train_region_cnn into `root`: (the kept model, as the stage writes it, the loop's state)."""
    files = Files(root / "region_cnn.pt", root / "region_cnn.resume.pt", root / "logs")
    st = train_region_cnn(image_records(dataset), params, files, progress=False, **kw)
    model = load_region_cnn(files.model)
    assert isinstance(model, ShapesRegionCNN)
    return model, st


def test_tiny_training_learns_the_classes_and_finds_the_objects(tmp_path: Path) -> None:
    dataset = write_toy_dataset(tmp_path, {"train": 64, "val": 24, "test": 16}, objects=(2, 3))
    records = image_records(dataset)
    model, st = fit(tmp_path / "out", dataset, learner_params())
    assert model.classes == ["blue circle", "red square", "yellow triangle"]
    train_rows = [r for r in st.history if "train/loss" in r]
    assert len(train_rows) == 8 and train_rows[-1]["train/loss"] < 0.8 * train_rows[0]["train/loss"]
    assert len(st.val_history) == 8 and st.best_score == max(v["val/object_accuracy"] for v in st.val_history)
    assert st.best_score > 0.7  # chance: 1 in 4 (3 classes + background)
    meter = RecallMeter(0.5)
    test = [r for r in records if r.split == "test"]
    for chunk, images in batches(test, 8):
        out = extract_regions(model, images, tiny_params().detect)
        for i, r in enumerate(chunk):
            meter.add(out.boxes[i, 1 : out.n_regions[i]], r.boxes)
    assert meter.result()["recall_iou50"] > 0.8


def test_training_is_deterministic(tmp_path: Path) -> None:
    dataset = write_toy_dataset(tmp_path, {"train": 16, "val": 4})
    a, _ = fit(tmp_path / "a", dataset, tiny_params(epochs=1))
    b, _ = fit(tmp_path / "b", dataset, tiny_params(epochs=1))
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(pa, pb), name
    assert not np.allclose(a.head.fc7.weight.detach().numpy(), 0)


def test_an_interrupted_run_resumes_to_the_weights_of_an_uninterrupted_one(tmp_path: Path) -> None:
    dataset = write_toy_dataset(tmp_path, {"train": 24, "val": 4})
    params = tiny_params(epochs=2)
    whole, _ = fit(tmp_path / "whole", dataset, params)

    def interrupt(iteration: int) -> None:
        if iteration == 4:  # mid-epoch 2: 24 images at batch_size 8 are 3 iterations per epoch
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        fit(tmp_path / "split", dataset, params, on_iteration=interrupt)
    assert (tmp_path / "split" / "region_cnn.resume.pt").is_file()
    resumed, _ = fit(tmp_path / "split", dataset, params)
    assert not (tmp_path / "split" / "region_cnn.resume.pt").exists()
    for (name, pa), pb in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(pa, pb), name
