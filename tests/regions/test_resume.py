"""Resumable extraction (issue 12): finished shards survive a SIGKILL or a bad image, the rerun reuses them,
and regions.h5 ends bit for bit as an uninterrupted run's; ``on_bad_image: skip`` leaves a row with no region."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import yaml

from dvsa.errors import InputError, ParamsError
from dvsa.regions.checkpoint import save_region_cnn
from dvsa.regions.data import image_records
from dvsa.regions.extract import write_regions
from dvsa.regions.shapes_net import ShapesRegionCNN
from dvsa.regions.store import RegionStore
from tests.conftest import REPO
from tests.regions.toy import tiny_params, write_toy_dataset

CLASSES = ["blue circle", "red square", "yellow triangle"]


def toy_project(root: Path, n_images: int, **regions: object) -> Path:
    """A project folder with the toy dataset as the `dataset` stage writes it, an untrained tiny shapes
    region CNN in models/region_cnn.pt and params.yaml."""
    data = write_toy_dataset(root / "data/dataset", {"train": n_images}, size=(64, 48))
    data["image_root"] = "data/dataset/images"
    (root / "data/dataset/dataset.json").write_text(json.dumps(data))
    params = tiny_params()
    torch.manual_seed(0)  # the same untrained network in every project
    save_region_cnn(ShapesRegionCNN(params.net, CLASSES), params, root / "models/region_cnn.pt")
    (root / "params.yaml").write_text(
        yaml.safe_dump({"regions": {**params.to_dict(), **regions}, "compute": {"device": "cpu", "workers": 2}})
    )
    return root


def run_regions(root: Path) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
    return subprocess.Popen(
        [sys.executable, str(REPO / "stages/regions.py")],
        cwd=root,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def finish(proc: subprocess.Popen[str]) -> str:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-2000:]
    return out


@pytest.mark.slow
def test_sigkill_midway_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    regions = {"shard_size": 8, "batch_size": 3}  # batches never cross a shard: 3 + 3 + 2
    fresh = toy_project(tmp_path / "fresh", 400, **regions)
    finish(run_regions(fresh))
    assert not (fresh / "data/regions.work").exists()  # removed once regions.h5 is whole

    killed = toy_project(tmp_path / "killed", 400, **regions)
    proc = run_regions(killed)
    work = killed / "data/regions.work"
    while proc.poll() is None and len(list(work.glob("shard-*.h5"))) < 3:
        time.sleep(0.002)
    assert proc.poll() is None, "the regions stage ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "data/regions/regions.h5").exists()
    kept = len(list(work.glob("shard-*.h5")))
    assert 3 <= kept < 50

    out = finish(run_regions(killed))
    resumed = int(out.split("resuming: ")[1].split()[0])
    assert resumed >= kept  # every finished shard was reused
    assert (killed / "data/regions/regions.h5").read_bytes() == (fresh / "data/regions/regions.h5").read_bytes()
    assert (killed / "metrics/details/regions.json").read_text() == (fresh / "metrics/details/regions.json").read_text()
    assert not work.exists() and not list((killed / "data/regions").glob(".*.tmp"))


def test_other_params_start_over(tmp_path: Path) -> None:
    root = toy_project(tmp_path, 12, shard_size=4)
    records = image_records(
        json.loads((root / "data/dataset/dataset.json").read_text()) | {"image_root": str(root / "data/dataset/images")}
    )
    model = ShapesRegionCNN(tiny_params().net, CLASSES).eval()
    (root / "data/dataset/images/0009.png").write_bytes(b"broken")
    args = (model, records, root / "r.h5", tiny_params().detect, 2, "float32")
    with pytest.raises(InputError, match=r"0009.png: cannot read image .*on_bad_image: skip"):
        write_regions(*args, work_dir=root / "work", key="a", shard_size=4)
    assert sorted(p.name for p in (root / "work").glob("shard-*")) == ["shard-000000.h5", "shard-000001.h5"]
    assert not (root / "r.h5").exists()
    with pytest.raises(InputError):
        write_regions(*args, work_dir=root / "work", key="b", shard_size=4)  # another key: nothing reused
    assert write_regions(*args, work_dir=root / "work", key="b", shard_size=4, on_bad_image="skip").kept_shards == 2


def test_skipped_image_has_no_region_and_is_listed(tmp_path: Path) -> None:
    root = toy_project(tmp_path, 10, shard_size=4, on_bad_image="skip")
    bad = root / "data/dataset/images/0005.png"
    bad.write_bytes(bad.read_bytes()[:60])  # truncated
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"), OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, str(REPO / "stages/regions.py")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    with h5py.File(root / "data/regions/regions.h5") as f:
        n, feats, ids = f["n_regions"][()], f["feats"][()], f["image_id"][()]
    assert n[5] == 0 and (np.delete(n, 5) >= 1).all() and not feats[5].any()
    np.testing.assert_array_equal(ids, np.arange(10))  # one row per dataset image: labels stay aligned
    with RegionStore(root / "data/regions/regions.h5") as store:
        np.testing.assert_array_equal(store.usable(), np.arange(10) != 5)
    metrics = json.loads((root / "metrics/details/regions.json").read_text())
    assert metrics["n_skipped"] == 1 and metrics["skipped"][0]["index"] == 5
    assert metrics["skipped"][0]["path"].endswith("0005.png") and "cannot read image" in metrics["skipped"][0]["error"]


def test_features_beyond_float16_are_one_error(tmp_path: Path) -> None:
    root = toy_project(tmp_path, 4)
    records = image_records(
        json.loads((root / "data/dataset/dataset.json").read_text()) | {"image_root": str(root / "data/dataset/images")}
    )
    model = ShapesRegionCNN(tiny_params().net, CLASSES).eval()
    with torch.no_grad():
        model.head.fc7.bias.fill_(1e5)  # fc7 = relu(... + 1e5): beyond float16's 65504
    with pytest.raises(ParamsError, match="0000.png: features are not finite in float16.*feats_dtype: float32"):
        write_regions(model, records, root / "r.h5", tiny_params().detect, 2, "float16")
    write_regions(model, records, root / "r.h5", tiny_params().detect, 2, "float32")


def test_the_manifest_key_covers_what_decides_the_shards(tmp_path: Path) -> None:
    from dataclasses import replace

    from dvsa.hashing import _closure
    from dvsa.regions.shards import SHARD_CODE, manifest_key

    root = toy_project(tmp_path, 4)
    records = image_records(
        json.loads((root / "data/dataset/dataset.json").read_text()) | {"image_root": str(root / "data/dataset/images")}
    )
    params, model, cpu = tiny_params(), root / "models/region_cnn.pt", torch.device("cpu")
    key = manifest_key(params, model, records, cpu, None)
    assert manifest_key(params, model, records, cpu, None) == key
    assert manifest_key(replace(params, seed=9), model, records, cpu, None) == key  # decides the model file only
    assert manifest_key(replace(params, shard_size=3), model, records, cpu, None) != key
    assert manifest_key(params, model, records, torch.device("cuda"), torch.float16) != key
    os.utime(records[0].path, ns=(0, 0))  # the images by size and time
    assert (images_changed := manifest_key(params, model, records, cpu, None)) != key
    model.write_bytes(model.read_bytes() + b"\0")
    assert manifest_key(params, model, records, cpu, None) not in (key, images_changed)
    code = set(_closure(*SHARD_CODE))  # the extraction, each region CNN and the image decoding; not the training
    assert {
        "dvsa.regions.extract",
        "dvsa.regions.loader",
        "dvsa.data.images",
        "dvsa.regions.shapes_net",
        "dvsa.regions.pretrained",
        "dvsa.regions.select",
    } <= code
    assert "dvsa.regions.train" not in code
