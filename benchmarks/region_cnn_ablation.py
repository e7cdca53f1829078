"""Region CNN ablations (backbone: shapes): train with params.yaml's `regions:` plus overrides and report the
val object accuracy, its errors by kind (colour, shape, both, background) and object size, and the time.

Reads data/dataset/dataset.json of the default pipeline; each run trains in a temporary folder (models/ and
logs/ are not touched unless --keep names a path for the kept model) and writes one JSON record.

    python benchmarks/region_cnn_ablation.py run NAME SEED [KEY=VALUE ...]  # e.g. long 1 shapes.train.epochs=12
    python benchmarks/region_cnn_ablation.py table [NAME ...]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import asdict
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from dvsa.data.dataset import load_dataset
from dvsa.params import from_mapping, read_params_file
from dvsa.regions.checkpoint import load_region_cnn
from dvsa.regions.config import RegionsParams
from dvsa.regions.data import ImageRecord, image_records
from dvsa.regions.metrics import classify_true_boxes
from dvsa.regions.shapes_net import ShapesRegionCNN
from dvsa.regions.train import train_region_cnn
from dvsa.train.loop import Files

from captioner_ablation import _value  # benchmarks/ is on the path of a script run from it

DATASET = "data/dataset/dataset.json"
OUT = Path("benchmarks/results/region_cnn_ablation")
SMALL_BELOW = 30.0  # box height in pixels at 128 px: the world's small objects are 18-26, large 34-46


def regions_params(seed: int, overrides: Sequence[str]) -> RegionsParams:
    """params.yaml's `regions:` with dotted KEY=VALUE overrides (e.g. shapes.train.lr=0.003)."""
    section = read_params_file("params.yaml")["regions"]
    section["seed"] = seed
    for item in overrides:
        key, text = item.split("=", 1)
        *path, last = key.split(".")
        node = section
        for part in path:
            node = node.setdefault(part, {})
        node[last] = _value(text)
    return from_mapping(RegionsParams, section, "regions")


def error_kinds(model: ShapesRegionCNN, records: Sequence[ImageRecord]) -> dict[str, Any]:
    """The head's class of every true val box, compared with its label: counts of objects and of errors
    by kind (colour, shape, both, background) and by size (small, large)."""
    objects: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    for chunk, images, pred in classify_true_boxes(model, records):
        truths = [(label, float(box[3] - box[1]) * 128 / image.size[1])
                  for r, image in zip(chunk, images) for label, box in zip(r.labels, r.boxes)]
        for k, (label, height) in zip(pred, truths):
            size = "small" if height < SMALL_BELOW else "large"
            objects[size] += 1
            guess = "background" if k == 0 else model.classes[k - 1]
            if guess == label:
                continue
            if guess == "background":
                kind = "background"
            else:
                (c1, s1), (c2, s2) = label.split(), guess.split()
                kind = "colour" if s1 == s2 else "shape" if c1 == c2 else "both"
            errors[f"{size}/{kind}"] += 1
    n = sum(objects.values())
    return {"objects": dict(objects), "errors": dict(errors), "accuracy": 1 - sum(errors.values()) / max(n, 1)}


def run(name: str, seed: int, overrides: list[str], keep: str | None, threads: int) -> dict[str, Any]:
    torch.set_num_threads(threads)
    params = regions_params(seed, overrides)
    records = image_records(load_dataset(DATASET), DATASET)
    with tempfile.TemporaryDirectory() as tmp:
        model_path = Path(keep) if keep else Path(tmp) / "region_cnn.pt"
        start = time.perf_counter()
        st = train_region_cnn(records, params, Files(model_path, Path(tmp) / "resume.pt", Path(tmp) / "logs"),
                              progress=False)
        seconds = time.perf_counter() - start
        history = json.loads((Path(tmp) / "logs" / "history.json").read_text())["val_history"]
        kinds = error_kinds(load_region_cnn(model_path), [r for r in records if r.split == "val"])
    record = {"name": name, "seed": seed, "overrides": overrides, "train": asdict(params.train), "train_seconds": seconds,
              "best_iteration": st.best_iteration, "val_object_accuracy": st.best_metrics["val/object_accuracy"],
              "val_history": [round(v["val/object_accuracy"], 4) for v in history], **kinds}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}-{seed}.json").write_text(json.dumps(record, indent=1))
    return record


def table(names: list[str]) -> str:
    records: dict[str, list[dict[str, Any]]] = {}
    for f in sorted(OUT.glob("*.json")):
        r = json.loads(f.read_text())
        records.setdefault(r["name"], []).append(r)
    lines = ["| row | epochs | RoIs per image (foreground share) | lr | seeds | val object accuracy | val errors, all seeds (small / large objects) | "
             "train s |", "|---|---|---|---|---|---|---|---|"]
    for name in names or sorted(records):
        rs = records.get(name, [])
        if not rs:
            continue
        acc = [r["val_object_accuracy"] for r in rs]
        spread = f"{np.mean(acc):.3f}" + (f" ({min(acc):.3f}–{max(acc):.3f})" if len(acc) > 1 else "")
        errors: Counter[str] = Counter()
        for r in rs:
            errors.update(r["errors"])
        by_size = " / ".join(str(sum(v for k, v in errors.items() if k.startswith(s))) for s in ("small", "large"))
        tp = rs[0]["train"]
        lines.append(f"| {name} | {tp['epochs']} | {tp['rois_per_image']} ({tp['fg_fraction']:g}) | {tp['lr']:g} | {len(rs)} | {spread} | "
                     f"{by_size} | {np.mean([r['train_seconds'] for r in rs]):.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("name")
    r.add_argument("seed", type=int)
    r.add_argument("overrides", nargs="*", help="regions params as dotted KEY=VALUE (YAML values)")
    r.add_argument("--keep", help="write the kept model here (e.g. to extract regions with it)")
    r.add_argument("--threads", type=int, default=1)
    t = sub.add_parser("table")
    t.add_argument("names", nargs="*")
    a = parser.parse_args()
    if a.command == "run":
        rec = run(a.name, a.seed, a.overrides, a.keep, a.threads)
        print(f"{a.name} seed {a.seed}: val object accuracy {rec['val_object_accuracy']:.3f} "
              f"{rec['val_history']} errors {rec['errors']} in {rec['train_seconds']:.0f} s")
    else:
        print(table(a.names))


if __name__ == "__main__":
    main()
