"""benchmarks/gpu.sh (issue 22) on a machine like the GPU one lent to this project: no DVC, dvclive or
pycocotools (blocked here by a sitecustomize on PYTHONPATH); without CUDA it stops with one line, a missing
package is one line, and --cpu runs every measurement at tiny sizes and prints one table."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ABSENT = "dvc,dvclive,scmrepo,pycocotools,pycocoevalcap"  # not on the GPU machine
BLOCKER = '''import importlib.abc, os, sys
BLOCKED = set(os.environ["BLOCK_PACKAGES"].split(","))
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Block())
'''


def gpu_sh(tmp_path: Path, *args: str, absent: str = ABSENT) -> subprocess.CompletedProcess[str]:
    (tmp_path / "sitecustomize.py").write_text(BLOCKER)
    env = {**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(tmp_path), "BLOCK_PACKAGES": absent,
           "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    return subprocess.run(["bash", str(REPO / "benchmarks/gpu.sh"), *args], env=env, capture_output=True, text=True,
                          timeout=300)


def test_without_cuda_it_stops_with_one_line(tmp_path: Path) -> None:
    done = gpu_sh(tmp_path)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and "sees no CUDA GPU" in done.stderr


def test_a_missing_package_is_one_line(tmp_path: Path) -> None:
    done = gpu_sh(tmp_path, "--cpu", absent=f"{ABSENT},h5py")
    assert done.returncode == 1
    assert done.stderr.strip() == "benchmarks/gpu.py: missing Python package 'h5py' (pip install h5py)"


@pytest.mark.slow
def test_the_cpu_smoke_run_prints_one_table(tmp_path: Path) -> None:
    done = gpu_sh(tmp_path, "--cpu")
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("CPU smoke run") and lines[1].startswith("| measurement |")
    table = [line for line in lines[3:] if line.startswith("|")]
    assert len(table) == len(lines) - 3  # nothing but the table after its head
    whats = [line.split(" | ")[0] for line in table]
    for what in ("| extraction", "| alignment training", "| captioner training", "| self-critical iteration"):
        assert what in whats, what
    assert sum("vocab 9,500" in line for line in table) == 3  # alignment + two captioner batches
