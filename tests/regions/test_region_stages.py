"""The `region_cnn` and `regions` stage scripts on toy data, and regions.h5 written atomically."""

from __future__ import annotations

import json
import runpy
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from dvsa.errors import InputError, WeightsError
from dvsa.regions.data import image_records
from dvsa.regions.extract import write_regions
from dvsa.regions.shapes_net import ShapesRegionCNN
from tests.conftest import REPO
from tests.regions.toy import tiny_params, write_toy_dataset


def run_stage(name: str) -> None:
    """The stage script's main(), in this process (the current directory is the project root)."""
    runpy.run_path(str(REPO / "stages" / f"{name}.py"))["main"]()


def test_region_cnn_then_regions(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    data = write_toy_dataset(tmp_path / "data/dataset", {"train": 16, "val": 4, "test": 6}, size=(64, 48))
    data["image_root"] = "data/dataset/images"  # relative to the repository root, as the dataset stage writes it
    (tmp_path / "data/dataset/dataset.json").write_text(json.dumps(data))
    regions = tiny_params(epochs=2).to_dict()
    regions["feats_dtype"] = "float16"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({"regions": regions}))

    run_stage("region_cnn")
    ckpt = torch.load(tmp_path / "models/region_cnn.pt", weights_only=True)
    assert ckpt["kind"] == "shapes" and ckpt["classes"] == ["blue circle", "red square", "yellow triangle"]
    assert (tmp_path / "logs/region_cnn").is_dir()

    run_stage("regions")
    with h5py.File(tmp_path / "data/regions/regions.h5") as f:
        assert f["feats"].shape == (26, 20, 48) and f["feats"].dtype == np.float16
        assert f["feats"].chunks == (1, 20, 48)
        assert (f["n_regions"][()] >= 2).all()
        np.testing.assert_array_equal(f["image_id"][()], np.arange(26))
        np.testing.assert_allclose(f["boxes"][:, 0], np.tile([0, 0, 64, 48], (26, 1)))
    metrics = json.loads((tmp_path / "metrics/details/regions.json").read_text())
    assert metrics["n_images"] == 26 and metrics["test"]["n_images"] == 6
    assert 0 <= metrics["test"]["recall_iou50"] <= 1 and 0 <= metrics["test"]["mean_best_iou"] <= 1
    assert 0 <= metrics["val_detector_accuracy"] <= 1
    assert json.loads((tmp_path / "metrics/regions.json").read_text()) == {"cnn_acc": metrics["val_detector_accuracy"]}

    (tmp_path / "data/regions/regions.h5").unlink()
    (tmp_path / "data/dataset/images/0020.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(InputError, match="0020.png"):
        run_stage("regions")
    assert list((tmp_path / "data/regions").iterdir()) == []  # nothing half-written


def test_missing_pretrained_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    (tmp_path / "params.yaml").write_text("regions:\n  backbone: vgg16\n")
    with pytest.raises(WeightsError, match="vgg16-397923af.pth") as err:
        run_stage("region_cnn")
    assert str(tmp_path / "th" / "hub" / "checkpoints") in str(err.value)
    assert not (tmp_path / "models").exists()


def test_regions_h5_is_not_left_behind_by_an_error(tmp_path: Path) -> None:
    records = image_records(write_toy_dataset(tmp_path, {"test": 6}))
    (tmp_path / "images" / "0003.png").write_text("not an image")
    model = ShapesRegionCNN(tiny_params().net, ["blue circle", "red square", "yellow triangle"])
    out = tmp_path / "regions" / "regions.h5"
    with pytest.raises(InputError, match="0003.png"):
        write_regions(model, records, out, tiny_params().detect, batch_size=2, feats_dtype="float32")
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
