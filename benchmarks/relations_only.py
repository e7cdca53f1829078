"""Does the captioner learn directions when they are all it is trained on? (issue 20, a curriculum's first stage)

Trains the captioner (params.yaml `captioner:` plus overrides, cross-entropy only) on the train split's
relation references alone (those with a direction word of dvsa.metrics.truth.FLIPPED; train images without one
are left out), then scores the direction minimal pairs (dvsa.caption.evaluation.direction_pairs: preferred,
landmark, mirror) on the test split and on the first 300 train images. A captioner whose direction word and
landmark follow the boxes scores well above 0.5 on `mirror` and `landmark`; one that ignores them gets 0.5.
Like captioner_ablation.py it reads the default pipeline's upstream outputs and trains in a temporary folder.

    python benchmarks/relations_only.py NAME SEED [KEY=VALUE ...]
    # e.g. rel_relgeo 123 max_iters=3000 learning_rate_decay_start=1500 mirror_prob=0.5 relative_geometry=true
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from captioner_ablation import DATASET, LABELS, REGIONS, VOCAB, _value
from dvsa.caption.checkpoint import load_captioner
from dvsa.caption.config import CaptionerParams
from dvsa.caption.evaluation import direction_pairs
from dvsa.caption.train import train_captioner
from dvsa.data.dataset import load_dataset
from dvsa.data.labels import Labels, read_labels
from dvsa.features import CachedFeatures, without_skipped
from dvsa.metrics.truth import FLIPPED
from dvsa.params import load_params
from dvsa.regions.store import RegionStore

OUT = Path("benchmarks/results/relations_only")
TRAIN_PAIRS_IMAGES = 300


def relation_only(labels: Labels) -> Labels:
    """`labels` whose train images keep only their captions with a direction word; a train image with none
    moves to split "unused" (kept, so rows still match regions.h5). Val and test keep every caption."""
    index = {w: i for i, w in labels.ix_to_word.items()}
    direction_ids = np.array([index[w] for w in FLIPPED if w in index])
    keep: list[int] = []
    start, end, images = [], [], []
    for i, im in enumerate(labels.images):
        caps = list(range(int(labels.label_start_ix[i]) - 1, int(labels.label_end_ix[i])))
        if im["split"] == "train":
            with_direction = [c for c in caps if np.isin(labels.labels[c], direction_ids).any()]
            if with_direction:
                caps = with_direction
            else:
                im = {**im, "split": "unused"}
        start.append(len(keep) + 1)
        keep += caps
        end.append(len(keep))
        images.append(im)
    rows = np.array(keep, dtype=np.int64)
    return Labels(labels.labels[rows], np.array(start, np.uint32), np.array(end, np.uint32),
                  labels.label_length[rows], labels.ix_to_word, images)


def run(name: str, seed: int, overrides: list[str]) -> dict[str, Any]:
    torch.set_num_threads(1)
    changes = {k: _value(v) for k, v in (o.split("=", 1) for o in overrides)}
    params = replace(load_params(CaptionerParams, "captioner"), seed=seed, self_critical_after=-1, **changes)
    labels = read_labels(LABELS, VOCAB)
    dataset = load_dataset(DATASET)
    with RegionStore(REGIONS) as store, tempfile.TemporaryDirectory() as tmp:
        labels = without_skipped(labels, store)
        train_labels = relation_only(labels)
        start = time.perf_counter()
        summary = train_captioner(params, train_labels, store, Path(tmp) / "captioner.pt", Path(tmp) / "resume.pt",
                                  Path(tmp) / "logs", progress=False, cider_df=None)
        seconds = time.perf_counter() - start
        model, _, _ = load_captioner(Path(tmp) / "captioner.pt")
        source = CachedFeatures(store, params.region_geometry)
        record: dict[str, Any] = {
            "name": name, "seed": seed, "overrides": changes, "n_train": len(train_labels.split_indices("train")),
            "train_seconds": seconds, "best_iteration": summary["iteration"]}
        splits = {"test": labels.split_indices("test"), "train": labels.split_indices("train")[:TRAIN_PAIRS_IMAGES]}
        for split, rows in splits.items():
            images = [dataset["images"][int(i)] for i in rows]
            record[split] = direction_pairs(model, source, labels, rows, images, 50, geometry=params.region_geometry)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}-{seed}.json").write_text(json.dumps(record, indent=1))
    return record


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    print(json.dumps(run(sys.argv[1], int(sys.argv[2]), sys.argv[3:]), indent=1))
