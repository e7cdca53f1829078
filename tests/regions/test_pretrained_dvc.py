"""The pretrained path through the real `dvc repro` (issue 12): AlexNet + the smallest torchvision Faster
R-CNN, from small weight files the test writes into $TORCH_HOME, on the tiny shapes project."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import pytest
import torch
import yaml

from dvsa.regions.pretrained import DETECTORS, ENCODERS
from tests.project import TINY, copy_project, dvc, merge, project_env
from tests.regions.test_pretrained import DETECTOR, small_state_dict

pytestmark = pytest.mark.slow

PRETRAINED = merge(
    TINY,
    {
        "dataset": {"shapes": {"n_train": 40, "n_val": 10, "n_test": 10}},
        "regions": {
            "backbone": "alexnet",
            "alexnet": {"detector": DETECTOR, "min_size": 96, "max_size": 160},
            "detect": {"n_proposals": 32, "min_size": 96, "max_size": 160},
            "shard_size": 32,
        },
        "compute": {"device": "cpu", "workers": 1},
    },
)


def test_dvc_repro_with_alexnet_references_the_weights(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = tmp_path / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    torch.save(small_state_dict(ENCODERS["alexnet"].build, 0), hub / ENCODERS["alexnet"].filename)
    torch.save(small_state_dict(DETECTORS[DETECTOR].build, 1), hub / DETECTORS[DETECTOR].filename)
    root = copy_project(tmp_path / "project", PRETRAINED)

    dvc(root, "repro")  # the whole DAG, from dataset to evaluate_captioner
    ckpt = torch.load(root / "models/region_cnn.pt", weights_only=True)
    assert "state_dict" not in ckpt  # the weights are referenced, not copied into the DVC cache
    assert ckpt["weights"]["encoder"]["path"] == str((hub / ENCODERS["alexnet"].filename).resolve())
    assert len(ckpt["weights"]["detector"]["sha256"]) == 64
    assert json.loads((root / "logs/region_cnn/metrics.json").read_text())["encoder_parameters_M"] > 50
    with h5py.File(root / "data/regions/regions.h5") as f:
        assert f["feats"].shape == (60, 20, 4096) and (f["n_regions"][()] >= 1).all()
    assert (root / "metrics/captioning.json").is_file()
    assert json.loads(dvc(root, "status", "--json").stdout or "{}") == {}

    (hub / ENCODERS["alexnet"].filename).write_bytes(b"changed")  # the weights file changes under region_cnn.pt
    (root / "params.yaml").write_text(
        yaml.safe_dump(
            merge(yaml.safe_load((root / "params.yaml").read_text()), {"regions": {"detect": {"nms_iou": 0.6}}})
        )
    )
    result = dvc_fails(root, "repro", "regions")
    assert f"{hub / ENCODERS['alexnet'].filename}: weights file changed since models/region_cnn.pt" in result


def dvc_fails(root: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=root,
        env=project_env(root),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode != 0
    return result.stdout + result.stderr
