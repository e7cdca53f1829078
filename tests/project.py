"""A copy of the repository on a tiny configuration, for tests that run the real `dvc` (end to end, faults)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.conftest import REPO

# Outputs and pictures are not copied: the copy starts with nothing built.
NOT_COPIED = ("data/", "models/", "metrics/", "logs/", "reports/", "docs/")

TINY: dict[str, Any] = {
    "dataset": {"shapes": {"n_train": 60, "n_val": 16, "n_test": 16, "image_size": 64}},
    "preprocess": {"word_count_threshold": 2},
    "regions": {"shapes": {"net": {"input_size": 64, "fc6_dim": 64, "fc7_dim": 256},
                           "train": {"epochs": 1, "batch_size": 8}},
                "batch_size": 16},
    "alignment": {"hidden_size": 32, "word_embedding_size": 16, "batch_size": 20, "epochs": 2},
    "captioner": {"rnn_size": 32, "input_encoding_size": 32, "batch_size": 8, "max_iters": 12, "val_every": 6,
                  "val_images": 8, "self_critical_after": 6, "train_sample_n": 2},
    "region_captioner": {"rnn_size": 16, "input_encoding_size": 16, "batch_size": 8, "max_iters": 12, "val_every": 6,
                         "val_images": 8},
    "evaluate": {"alignment": {"n_figures": 1, "batch_size": 8}, "captioning": {"report_images": 4, "batch_size": 8},
                 "region_captioning": {"n_figures": 1, "batch_size": 8}},
}


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`base` with the (nested) keys of `override` replaced."""
    out = dict(base)
    for k, v in override.items():
        out[k] = merge(base.get(k) or {}, v) if isinstance(v, dict) else v
    return out


def write_params(root: Path, override: dict[str, Any]) -> None:
    """Change the project's params.yaml by `override`."""
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(merge(yaml.safe_load(path.read_text()), override), sort_keys=False))


def project_env(root: Path) -> dict[str, str]:
    return dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                PYTHONPATH=str(root / "src"), DVC_NO_ANALYTICS="1", OMP_NUM_THREADS="1")


def dvc(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `dvc ARGS` in the project; a failure shows dvc's output."""
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, env=project_env(root),
                            capture_output=True, text=True, timeout=1500)
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def copy_project(root: Path, override: dict[str, Any]) -> Path:
    """The git-listed files of the repository in `root`, params changed by `override`, committed once
    (dvclive needs a commit, as in any clone)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO, capture_output=True, text=True,
                           check=True).stdout.split()
    for name in files:
        if name.startswith(NOT_COPIED) or name == "dvc.lock":
            continue
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, root / name)
    write_params(root, override)
    git = ["git", "-c", "user.name=dvsa-test", "-c", "user.email=test@dvsa.invalid"]
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "tiny"], cwd=root, check=True)
    return root
