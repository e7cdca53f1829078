"""DVC stage `train_alignment`: the alignment model (eqs. (1)-(9)) on labels.h5 + regions.h5.

Writes models/alignment.pt (the best epoch by validation R@K), logs/alignment/ (dvclive curves) and
models/alignment_resume.pt (the state after the last epoch: a rerun after an interrupt goes on from it).
Launched by torchrun (compute.nproc processes): data-parallel, rank 0 writes the files.
"""

from __future__ import annotations

import time

from dvsa.align.config import AlignmentParams
from dvsa.align.encode import check_inputs
from dvsa.align.train import save_model, train
from dvsa.data.labels import read_labels
from dvsa.data.rows import without_skipped
from dvsa.device import load_compute, resolve_device
from dvsa.distributed import process_group
from dvsa.params import load_params
from dvsa.regions.store import RegionStore
from dvsa.stage import run_stage

LABELS, VOCAB = "data/prepro/labels.h5", "data/prepro/vocab.json"
REGIONS = "data/regions/regions.h5"
MODEL, RESUME, LIVE_DIR = "models/alignment.pt", "models/alignment_resume.pt", "logs/alignment"


def main() -> None:
    params = load_params(AlignmentParams, "alignment")
    compute = load_compute()
    device = resolve_device(compute)
    labels = read_labels(LABELS, VOCAB)
    start = time.perf_counter()
    with RegionStore(REGIONS) as store, process_group(compute, device) as world:
        check_inputs(labels, store, REGIONS)
        labels = without_skipped(labels, store)
        _, state = train(labels, store, params, RESUME, LIVE_DIR, device=device, world=world)
        if world.main:
            save_model(MODEL, state, params, labels, store.dim)
    if not world.main:
        return
    print(
        f"wrote {MODEL}: epoch {state.best_epoch} of {state.epoch} (best val R@K sum {state.best_rsum:.1f}) "
        f"in {time.perf_counter() - start:.1f} s"
    )


if __name__ == "__main__":
    run_stage(main)
