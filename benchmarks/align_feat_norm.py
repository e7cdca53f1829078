"""Why `alignment.feat_norm: l2`: the best val R@1+R@5+R@10 (both directions) of unit-length vs raw region features.

Trains the alignment model (params.yaml's `alignment` section, `alignment.epochs` epochs) on the pipeline's
data/prepro + data/regions once per (feat_norm, lr) and prints the val R@K sum after each epoch and the best.
Usage, from the repository root after `dvc repro regions preprocess`: python benchmarks/align_feat_norm.py
(4 runs of about 1-2 min each on 2 CPU cores). Optional args: indices into RUNS, e.g. `0 2`.
"""

from __future__ import annotations

import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from dvsa.align.config import AlignmentParams
from dvsa.align.train import train_alignment
from dvsa.data.labels import read_labels
from dvsa.params import load_params
from dvsa.regions.store import RegionStore
from dvsa.train.loop import Files

RUNS = [("l2", 1e-3), ("none", 1e-3), ("none", 1e-4), ("none", 1e-5)]


def main() -> None:
    base = load_params(AlignmentParams, "alignment")
    labels = read_labels("data/prepro/labels.h5", "data/prepro/vocab.json")
    runs = [RUNS[int(i)] for i in sys.argv[1:]] or RUNS
    with RegionStore("data/regions/regions.h5") as store:
        for norm, lr in runs:
            p = replace(base, feat_norm=norm, lr=lr)
            work = Path(tempfile.mkdtemp())
            start = time.perf_counter()
            files = Files(work / "alignment.pt", work / "resume.pt", work / "live")
            _, st, _ = train_alignment(labels, store, p, files, log=lambda _: None, progress=False)
            curve = " ".join(f"{v['val/rsum']:.1f}" for v in st.val_history)
            last_loss = next(r["train/loss"] for r in reversed(st.history) if "train/loss" in r)
            print(f"feat_norm={norm} lr={lr:g}: best val R@K sum {st.best_score:.1f} (iteration {st.best_iteration}); "
                  f"per epoch {curve}; last loss {last_loss:.3f}; "
                  f"{time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
