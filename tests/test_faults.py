"""Faults as a user meets them (issue 6): a stage killed in the middle, bad input end to end, unsafe loading.

Interruption: in a copy of the project on a tiny configuration (as tests/test_pipeline.py), each long stage
script is started, SIGKILLed once it is visibly mid-way, and then checked: none of its outputs is where DVC
would take the stage as done, and `dvc repro <stage>` finishes (the training stages resume). A stage that
ends before it can be killed is rerun with more work rather than passing by default.

Bad input: each case gives one line "error: ..." naming the file or the key, exit code 1, no traceback and
no output; odd but valid images (CMYK, RGBA, 16-bit, 1x1, 5000x20) go through region extraction. Cases
already tested elsewhere are listed in the README table (tests/test_stage_errors.py, tests/data/,
tests/regions/, tests/align/, tests/caption/, tests/evaluate/) and not repeated here.
"""

from __future__ import annotations

import ast
import json
import os
import runpy
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from dvsa.evaluate import coco
from dvsa.regions.checkpoint import save_region_cnn
from dvsa.regions.config import PretrainedParams, RegionsParams
from dvsa.regions.extract import extract_regions
from dvsa.regions.pretrained import DETECTORS, ENCODERS, PretrainedRegionCNN
from dvsa.regions.shapes_net import ShapesRegionCNN
from dvsa.regions.store import N_REGIONS
from dvsa.stage import run_stage
from dvsa.data.images import load_rgb
from tests.conftest import REPO, write_karpathy
from tests.regions.test_pretrained import small_state_dict
from tests.regions.toy import tiny_params

# tests/test_pipeline.py's tiny configuration, with a smaller region network (the features only need to exist)
TINY: dict[str, Any] = {
    "dataset": {"shapes": {"n_train": 60, "n_val": 16, "n_test": 16, "image_size": 64}},
    "preprocess": {"word_count_threshold": 2},
    "regions": {"net": {"input_size": 64, "channels": [8, 16, 16, 32], "fc6_dim": 32, "fc7_dim": 64},
                "train": {"epochs": 1, "batch_size": 8}, "batch_size": 16},
    "alignment": {"hidden_size": 32, "word_embedding_size": 16, "batch_size": 20, "epochs": 2},
    "captioner": {"rnn_size": 32, "input_encoding_size": 32, "batch_size": 8, "max_iters": 12, "val_every": 6,
                  "val_images": 8},
    "evaluate": {"alignment": {"n_figures": 1, "batch_size": 8}, "captioning": {"report_images": 4, "batch_size": 8}},
}


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in override.items():
        out[k] = merge(base.get(k) or {}, v) if isinstance(v, dict) else v
    return out


def project_env(root: Path) -> dict[str, str]:
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                PYTHONPATH=str(root / "src"), DVC_NO_ANALYTICS="1", OMP_NUM_THREADS="1")


def dvc(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, env=project_env(root),
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def write_params(root: Path, override: dict[str, Any]) -> None:
    """Change the project's params.yaml (the repository's, with TINY, at first) by `override`."""
    path = root / "params.yaml"
    params = yaml.safe_load(path.read_text()) if path.is_file() else merge(yaml.safe_load((REPO / "params.yaml").read_text()), TINY)
    path.write_text(yaml.safe_dump(merge(params, override), sort_keys=False))


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository (git-listed files) on TINY, with every stage up to `regions` run."""
    root = tmp_path_factory.mktemp("faults")
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split()
    for name in files:
        if name.startswith(("data/", "models/", "metrics/", "logs/", "reports/", "docs/")) or name == "dvc.lock":
            continue
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, root / name)
    write_params(root, {})
    # dvclive cannot start in a git repository without commits ("Empty git repo"): commit, as a clone has
    git = ["git", "-c", "user.name=dvsa", "-c", "user.email=dvsa@localhost"]
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "tiny"], cwd=root, check=True)
    dvc(root, "repro", "preprocess", "regions")
    return root


# ---------------------------------------------------------------------------------------------------------
# Interruption


@dataclass(frozen=True)
class Kill:
    stage: str
    sizes: list[dict[str, Any]]  # params overrides, more work each: the next is tried when a run ends too soon
    midway: Callable[[Path], bool]  # the run is visibly in the middle
    restore_tiny: bool = False  # back to TINY after the rerun (else every later stage would be out of date)


def _some(pattern: str, at_least: int = 1) -> Callable[[Path], bool]:
    return lambda root: len(list(root.glob(pattern))) >= at_least


KILLS = [
    Kill("dataset", [{"dataset": {"shapes": {"n_train": 400}}}, {"dataset": {"shapes": {"n_train": 4000}}}],
         _some("data/.dataset.*.tmp/images/*.png", 20), restore_tiny=True),
    Kill("region_cnn", [{"regions": {"train": {"epochs": 4}}}, {"regions": {"train": {"epochs": 16}}}],
         _some("logs/region_cnn/metrics.json")),  # written after the first epoch
    Kill("regions", [{"regions": {"batch_size": 4}}, {"regions": {"batch_size": 1}}],
         _some("data/regions/.regions.h5.*.tmp")),  # the writer is open
    Kill("train_alignment", [{"alignment": {"epochs": 8}}, {"alignment": {"epochs": 32}}],
         _some("models/alignment_resume.pt")),  # saved after the first epoch
    Kill("train_captioner", [{"captioner": {"max_iters": 60}}, {"captioner": {"max_iters": 240}}],
         _some("models/captioner.resume.pt")),  # saved at the first validation (iteration 6)
]


def stage_outs(root: Path, stage: str) -> tuple[list[str], list[str]]:
    """(outs DVC takes as the stage's result, persistent outs) of `stage` in dvc.yaml."""
    outs, persist = [], []
    for out in yaml.safe_load((root / "dvc.yaml").read_text())["stages"][stage]["outs"]:
        path, opts = (out, {}) if isinstance(out, str) else next(iter(out.items()))
        (persist if (opts or {}).get("persist") else outs).append(path)
    return outs, persist


def lock_outs(root: Path, stage: str) -> list[dict[str, Any]]:
    """The outputs (path and hash) recorded for `stage` in dvc.lock."""
    return yaml.safe_load((root / "dvc.lock").read_text())["stages"].get(stage, {}).get("outs", [])


def remove(root: Path, paths: list[str]) -> None:
    for p in paths:
        target = root / p
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)


def kill_midway(root: Path, stage: str, midway: Callable[[Path], bool], log: Path) -> bool:
    """Run stages/<stage>.py and SIGKILL it as soon as `midway(root)` holds; False if it ended first."""
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, f"stages/{stage}.py"], cwd=root, env=project_env(root),
                                stdout=subprocess.DEVNULL, stderr=err)
        deadline = time.monotonic() + 300
        while proc.poll() is None and not midway(root):
            assert time.monotonic() < deadline, f"{stage} never got mid-way"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        code = proc.wait()
    if code == -signal.SIGKILL:
        return True
    assert code == 0, f"{stage} failed instead of being killed:\n{log.read_text()[-3000:]}"
    return False


@pytest.mark.parametrize("kill", KILLS, ids=[k.stage for k in KILLS])
def test_stage_killed_midway_leaves_nothing_done_and_reruns(project: Path, kill: Kill, tmp_path: Path) -> None:
    outs, persist = stage_outs(project, kill.stage)
    before = lock_outs(project, kill.stage)
    for size in kill.sizes:
        write_params(project, size)
        remove(project, outs + persist)  # as `dvc repro` removes a stage's outputs before running it
        if kill_midway(project, kill.stage, kill.midway, tmp_path / "stderr.txt"):
            break
    else:
        pytest.fail(f"{kill.stage} finished before it could be killed, even with {kill.sizes[-1]}: add a larger size")

    left = [p for p in outs if (project / p).exists()]
    assert not left, f"killed {kill.stage} left {left} where DVC takes them as its result"
    assert kill.stage in json.loads(dvc(project, "status", kill.stage, "--json").stdout)

    rerun = dvc(project, "repro", kill.stage)
    assert f"Running stage '{kill.stage}'" in rerun.stdout  # run, not restored from DVC's run cache
    assert all((project / p).exists() for p in outs)
    folders = {(project / p).parent for p in outs}
    stale = [str(t) for f in folders for t in f.glob(".*.tmp")]
    assert not stale, f"temporaries of the killed run are left: {stale}"
    if kill.stage == "train_alignment":
        assert "resuming from models/alignment_resume.pt after epoch" in rerun.stdout, rerun.stdout
    if kill.stage == "train_captioner":
        assert "models/captioner.resume.pt: resuming at iteration" in rerun.stdout, rerun.stdout
        assert not (project / "models/captioner.resume.pt").exists()
    if kill.restore_tiny:  # back to TINY (from DVC's run cache): the same files, so no later stage reruns
        write_params(project, {"dataset": TINY["dataset"]})
        dvc(project, "repro", kill.stage)
        assert lock_outs(project, kill.stage) == before
