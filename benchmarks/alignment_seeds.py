"""The alignment model's retrieval figures over seeds: train_alignment as the stage does (params.yaml's
`alignment`, the pipeline's data/prepro and data/regions/regions.h5) once per seed, then rank the test split
as evaluate_alignment does (Table 1: R@1 / R@5 / R@10 of image annotation and image search), and print the
mean and min-max over the seeds. Each seed writes benchmarks/results/alignment_seeds/SEED.json (with the sha256
of the regions.h5 it read: another machine's region CNN gives other regions).

    python benchmarks/alignment_seeds.py [SEED ...]    # default: 123 1 2 3 4; about 35 s per seed on 2 cores
"""

from __future__ import annotations

import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from dvsa.align.checkpoint import load_model
from dvsa.align.config import AlignmentParams, EvaluateAlignmentParams
from dvsa.align.evaluation import evaluate
from dvsa.align.train import train_alignment
from dvsa.data.labels import read_labels
from dvsa.features import without_skipped
from dvsa.hashing import file_digest
from dvsa.params import load_params
from dvsa.regions.store import RegionStore
from dvsa.train.loop import Files

LABELS, VOCAB, REGIONS = "data/prepro/labels.h5", "data/prepro/vocab.json", "data/regions/regions.h5"
OUT = Path("benchmarks/results/alignment_seeds")
FIGURES = [(d, k) for d in ("annotation", "search") for k in ("r1", "r5", "r10")]


def run(seed: int) -> dict[str, float]:
    params = replace(load_params(AlignmentParams, "alignment"), seed=seed)
    evaluate_params = load_params(EvaluateAlignmentParams, "evaluate.alignment")
    labels = read_labels(LABELS, VOCAB)
    with RegionStore(REGIONS) as store, tempfile.TemporaryDirectory() as tmp:
        files = Files(Path(tmp) / "alignment.pt", Path(tmp) / "resume.pt", Path(tmp) / "live")
        train_alignment(labels, store, params, files, log=lambda _: None, progress=False)
        model, model_params, _ = load_model(files.model)
        labels = without_skipped(labels, store)
        with torch.no_grad():
            metrics = evaluate(model, model_params.score, labels, store, evaluate_params).metrics
    record = {f"{d}.{k}": float(metrics[d][k]) for d, k in FIGURES}
    OUT.mkdir(parents=True, exist_ok=True)
    named = {"seed": seed, "regions_sha256": file_digest(REGIONS), **record}
    (OUT / f"{seed}.json").write_text(json.dumps(named, indent=1))
    return record


def main() -> None:
    seeds = [int(s) for s in sys.argv[1:]] or [123, 1, 2, 3, 4]
    rows = []
    for seed in seeds:
        rows.append(run(seed))
        print(f"seed {seed}: " + ", ".join(f"{k} {v:.1f}" for k, v in rows[-1].items()), flush=True)
    print(f"\n| {len(seeds)} seeds | " + " | ".join(f"{d} {k.upper()}" for d, k in FIGURES) + " |")
    print("|---|" + "---|" * len(FIGURES))
    cells = []
    for d, k in FIGURES:
        v = np.array([r[f"{d}.{k}"] for r in rows])
        cells.append(f"{v.mean():.1f} ({v.min():.1f}–{v.max():.1f})")
    print("| mean (min–max) | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
