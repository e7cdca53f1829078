"""Before / after on a shared machine: an older dvsa's `extract_regions` and this one's, alternating image by
image in one process (so both see the same load), vgg16 + Faster R-CNN R50-FPN, random-init weights.

The older version's src/dvsa is copied into a temporary folder as the package ``dvsa_old`` (its imports
rewritten) so that both load side by side. Prints median seconds per image (wall and CPU) and the ratios.

Usage: git archive e671d12 src | tar -x -C /tmp/old
       python benchmarks/regions_before_after.py --old-src /tmp/old/src [--images 4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from dvsa.data.images import load_rgb
from dvsa.regions.config import DetectParams, PretrainedParams
from dvsa.regions.extract import extract_regions
from dvsa.regions.pretrained import DETECTORS, ENCODERS, PretrainedRegionCNN

sys.path.insert(0, str(Path(__file__).parent))
from regions import write_photos  # noqa: E402

NEW = {
    "after, detector at 600 px, 300 proposals": DetectParams(n_proposals=300, min_size=600, max_size=1000),
    "after, detector at 800 px, 1000 proposals": DetectParams(n_proposals=1000),
}


def import_old(src: Path, into: Path):  # type: ignore[no-untyped-def]
    """The older dvsa's extract_regions and a vgg16 + R50-FPN region CNN of its own classes."""
    shutil.copytree(src / "dvsa", into / "dvsa_old")
    for f in (into / "dvsa_old").rglob("*.py"):
        f.write_text(re.sub(r"\b(from|import) dvsa\.", r"\1 dvsa_old.", f.read_text()))
    sys.path.insert(0, str(into))
    from dvsa_old.regions import config, extract, pretrained  # type: ignore[import-not-found]

    torch.manual_seed(0)
    model = pretrained.PretrainedRegionCNN(
        "vgg16", config.PretrainedParams(), ENCODERS["vgg16"].build(), DETECTORS["fasterrcnn_resnet50_fpn"].build()
    ).eval()
    return lambda image: extract.extract_regions(model, [image])


def timed(fn: Callable[[], object]) -> tuple[float, float]:
    start, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--old-src", type=Path, required=True, help="the src/ folder of the older version")
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old = import_old(args.old_src, Path(tmp))
        torch.manual_seed(0)
        model = PretrainedRegionCNN(
            "vgg16", PretrainedParams(), ENCODERS["vgg16"].build(), DETECTORS["fasterrcnn_resnet50_fpn"].build()
        ).eval()
        (Path(tmp) / "photos").mkdir()
        images = [load_rgb(p) for p in write_photos(Path(tmp) / "photos", args.images)]
        runs: dict[str, Callable[[object], object]] = {"before": old}
        for name, detect in NEW.items():
            runs[name] = lambda image, detect=detect: extract_regions(model, [image], detect)  # type: ignore[misc]
        for run in runs.values():
            for image in images:  # warm-up: each image size once
                run(image)
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
        for _ in range(args.rounds):
            for image in images:
                for name, run in runs.items():
                    times[name].append(timed(lambda: run(image)))  # noqa: B023
    before = [statistics.median(t[k] for t in times["before"]) for k in (0, 1)]
    print(f"{args.images} images x {args.rounds} rounds, {torch.get_num_threads()} threads")
    for name, t in times.items():
        wall, cpu = (statistics.median(x[k] for x in t) for k in (0, 1))
        print(
            f"{name:42s} {wall:6.2f} s/image wall ({before[0] / wall:4.2f}x), {cpu:6.2f} s/image CPU "
            f"({before[1] / cpu:4.2f}x)"
        )


if __name__ == "__main__":
    main()
