"""A trainer on tiny test data inside a process group, for tests/train/test_data_parallel.py, which runs it as
``python -m dvsa.launch --nproc-per-node N tests/train/distributed_worker.py KIND DATA OUT PARAMS [STOP]``.

KIND: ``alignment`` (DATA: a folder with labels.h5, vocab.json, regions.h5) or ``captioner`` (DATA: a toy
project of tests/caption/toy.py). PARAMS: the trainer's params as JSON. STOP: the iteration after which rank 1
(rank 0 in one process) asks to stop, as a SIGINT would. Rank 0 writes OUT/weights.pt.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import torch

from dvsa.align.config import AlignmentParams
from dvsa.align.train import train_alignment
from dvsa.caption.config import CaptionerParams
from dvsa.caption.train import train_captioner
from dvsa.data.labels import read_labels
from dvsa.device import ComputeParams
from dvsa.distributed import process_group
from dvsa.params import from_mapping
from dvsa.regions.store import RegionStore
from dvsa.stage import run_stage
from dvsa.train.loop import Files


def main() -> None:
    kind, data, out, params = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), json.loads(sys.argv[4])
    stop = int(sys.argv[5]) if len(sys.argv) > 5 else None
    with process_group(ComputeParams(device="cpu"), torch.device("cpu")) as world:
        asker = min(1, world.size - 1)

        def interrupt(iteration: int) -> None:
            if iteration == stop and world.rank == asker:
                signal.raise_signal(signal.SIGINT)

        if kind == "alignment":
            labels = read_labels(data / "labels.h5", data / "vocab.json")
            with RegionStore(data / "regions.h5") as store:
                model, _, _ = train_alignment(labels, store, from_mapping(AlignmentParams, params, "params"),
                                              Files(out / "alignment.pt", out / "resume.pt", out / "live"),
                                              world=world, on_iteration=interrupt, log=lambda line: None,
                                              progress=False)
            weights = model.state_dict()
        else:
            labels = read_labels(data / "data/prepro/labels.h5", data / "data/prepro/vocab.json")
            with RegionStore(data / "data/regions/regions.h5") as store:
                train_captioner(from_mapping(CaptionerParams, params, "params"), labels, store, out / "captioner.pt",
                                out / "resume.pt", out / "logs", progress=False, on_iteration=interrupt, world=world)
            weights = torch.load(out / "captioner.pt", weights_only=True)["state_dict"] if world.main else {}
        if world.main:
            torch.save(weights, out / "weights.pt")


if __name__ == "__main__":
    run_stage(main)
