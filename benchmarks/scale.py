"""How the streaming stages' time and memory grow with the data: the shapes world at 1x and at FACTOR x the
default size (1,900 -> 19,000 images), each stage's wall time and peak RSS (GNU time's maximum resident set
size of the stage and its worker processes), measured in one run, and their ratios.

The stages whose cost grows with the number of images by streaming them: `dataset` (generate and write the
images), `preprocess` (captions -> labels.h5), `regions` (20 regions x fc7 per image through the region CNN,
written shard by shard). Each runs as DVC runs it (the stage script, in a scratch project with its own
params.yaml), with the region CNN of this checkout's models/region_cnn.pt (so the regions stage needs no
training: run the default pipeline first). The trainers are left out: their cost is set by iterations
(captioner) or epochs (region CNN, alignment: linear in the images by construction), not by streaming.

    python benchmarks/scale.py [--factor 10] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
STAGES = {  # name -> command, as dvc.yaml runs it
    "dataset": [sys.executable, "stages/dataset.py"],
    "preprocess": [sys.executable, "stages/preprocess.py"],
    "regions": [sys.executable, "-m", "dvsa.launch", "--nproc-per-node", "1", "stages/regions.py"],
}


def project(root: Path, factor: int) -> Path:
    """A scratch project: the stage scripts, params.yaml with the shapes world scaled, the region CNN."""
    root.mkdir(parents=True)
    shutil.copytree(REPO / "stages", root / "stages")
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    shapes = params["dataset"]["shapes"]
    for key in ("n_train", "n_val", "n_test"):
        shapes[key] *= factor
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (root / "models").mkdir()
    shutil.copy(REPO / "models" / "region_cnn.pt", root / "models" / "region_cnn.pt")
    return root


def measure(root: Path, command: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one stage, via GNU time -v."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "TQDM_DISABLE": "1"}
    done = subprocess.run(["/usr/bin/time", "-v", *command], cwd=root, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed in {root}:\n{done.stderr[-2000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", done.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)
    assert wall and rss, done.stderr[-500:]
    parts = [float(x) for x in wall.group(1).split(":")]
    seconds = sum(x * 60**k for k, x in enumerate(reversed(parts)))
    return seconds, int(rss.group(1)) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--keep", type=Path, help="build the projects here and keep them")
    a = parser.parse_args()
    if not (REPO / "models" / "region_cnn.pt").is_file():
        raise SystemExit("benchmarks/scale.py: models/region_cnn.pt not found (run `dvc repro region_cnn` first)")
    base = a.keep or Path(tempfile.mkdtemp(prefix="dvsa-scale-"))
    figures: dict[int, dict[str, tuple[float, float]]] = {}
    try:
        for factor in (1, a.factor):
            root = project(base / f"x{factor}", factor)
            figures[factor] = {}
            for name, command in STAGES.items():
                figures[factor][name] = measure(root, command)
                seconds, mib = figures[factor][name]
                print(f"{factor:3d}x {name:10s} {seconds:8.1f} s {mib:8.0f} MiB", flush=True)
    finally:
        if a.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    n = 1900
    print(f"\n| stage | 1x ({n:,} images) | {a.factor}x ({a.factor * n:,}) | time ratio | peak RSS 1x | "
          f"peak RSS {a.factor}x | RSS ratio |")
    print("|---|---|---|---|---|---|---|")
    for name in STAGES:
        (t1, m1), (tk, mk) = figures[1][name], figures[a.factor][name]
        print(f"| `{name}` | {t1:.1f} s | {tk:.1f} s | {tk / t1:.2f}x | {m1:.0f} MiB | {mk:.0f} MiB | {mk / m1:.2f}x |")


if __name__ == "__main__":
    main()
