"""DVC stage `train_alignment`: the alignment model (eqs. (1)-(9)) on labels.h5 + regions.h5.

Writes models/alignment.pt (the best epoch by validation R@K) and logs/alignment/ (dvclive curves,
history.json); an interrupted run leaves models/alignment.resume.pt and resumes from it.
Launched by torchrun (compute.nproc processes): data-parallel, rank 0 writes the files.
"""

from __future__ import annotations

import time
from pathlib import Path

from dvsa.align.config import AlignmentParams
from dvsa.align.retrieval import check_inputs
from dvsa.align.train import train_alignment
from dvsa.data.labels import read_labels
from dvsa.device import load_compute, resolve_device
from dvsa.distributed import process_group
from dvsa.features import without_skipped
from dvsa.params import load_params
from dvsa.regions.store import RegionStore
from dvsa.stage import run_stage
from dvsa.train.loop import Files

LABELS, VOCAB = "data/prepro/labels.h5", "data/prepro/vocab.json"
REGIONS = "data/regions/regions.h5"
FILES = Files(Path("models/alignment.pt"), Path("models/alignment.resume.pt"), Path("logs/alignment"))


def main() -> None:
    params = load_params(AlignmentParams, "alignment")
    compute = load_compute()
    device = resolve_device(compute)
    labels = read_labels(LABELS, VOCAB)
    start = time.perf_counter()
    with RegionStore(REGIONS) as store, process_group(compute, device) as world:
        check_inputs(labels, store, REGIONS)
        labels = without_skipped(labels, store)
        _, st, _ = train_alignment(labels, store, params, FILES, device=device, world=world)
    if not world.main:
        return
    print(
        f"wrote {FILES.model}: iteration {st.best_iteration} of {st.iteration} (best val R@K sum "
        f"{st.best_score:.1f}) in {time.perf_counter() - start:.1f} s"
    )


if __name__ == "__main__":
    run_stage(main)
