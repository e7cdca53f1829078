"""Scaling over processes (torch.distributed): images/s of region extraction and tokens/s of both trainers at
1, 2, ... processes, and the efficiency = speedup / processes, measured in one run.

Each figure is the stage's own code, launched as the stage is (``python -m dvsa.launch --nproc-per-node N``),
on the default pipeline's data (run ``dvc repro regions preprocess`` first) with the params of params.yaml:
``write_regions`` over the first --images images (shards of --shard-size images dealt out to the ranks), and
the trainers' own setup and step, as the loop runs them (``step(i)`` then dvsa.train.loop.update;
DistributedDataParallel, the global batch of params.yaml split across the ranks) for --steps steps after --warmup. Tokens are the words of the batch's sentences (alignment) or the targets
of the cross-entropy, words + END (captioner), of the whole global batch.

    python benchmarks/scaling.py [--nproc 1 2] [--device cpu|cuda] [--images 96] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from dvsa.align.config import AlignmentParams
from dvsa.align.train import AlignmentTrainer
from dvsa.caption.config import CaptionerParams
from dvsa.caption.model import predicted_tokens
from dvsa.caption.train import build_trainer
from dvsa.data.dataset import load_dataset
from dvsa.data.labels import read_labels
from dvsa.device import ComputeParams, autocast_dtype, load_compute, resolve_device
from dvsa.distributed import World, barrier, process_group
from dvsa.features import without_skipped
from dvsa.params import load_params
from dvsa.regions.checkpoint import load_region_cnn
from dvsa.regions.config import RegionsParams
from dvsa.regions.data import image_records
from dvsa.regions.extract import write_regions
from dvsa.regions.store import RegionStore
from dvsa.train.loop import Trainer, update

TASKS = ("regions", "alignment", "captioner")
UNITS = {"regions": "images/s", "alignment": "tokens/s", "captioner": "tokens/s"}
LABELS, VOCAB, REGIONS = "data/prepro/labels.h5", "data/prepro/vocab.json", "data/regions/regions.h5"
DATASET, REGION_CNN = "data/dataset/dataset.json", "models/region_cnn.pt"


def worker(task: str, a: argparse.Namespace) -> None:
    """One rank of one measurement; rank 0 prints {"rate": ...} as its last line."""
    compute = ComputeParams(device=a.device, workers=load_compute().workers)
    device = resolve_device(compute)  # on CUDA, the GPU of this rank's LOCAL_RANK
    with process_group(compute, device) as world:
        rate = {"regions": _regions, "alignment": _alignment, "captioner": _captioner}[task](a, compute, device, world)
        if world.main:
            print(json.dumps({"rate": rate}))


def _regions(a: argparse.Namespace, compute: ComputeParams, device: torch.device, world: World) -> float:
    params = load_params(RegionsParams, "regions")
    records = image_records(load_dataset(DATASET), DATASET)[: a.images]
    model = load_region_cnn(REGION_CNN, device)
    work = Path(a.scratch)
    barrier()
    start = time.perf_counter()
    write_regions(model, records, work / "regions.h5", params.detect, params.batch_size, params.feats_dtype,
                  work_dir=work / "work", key=f"bench-{world.size}", shard_size=a.shard_size,
                  workers=compute.workers, amp=autocast_dtype(compute, device), world=world)
    return len(records) / (time.perf_counter() - start)


def _alignment(a: argparse.Namespace, compute: ComputeParams, device: torch.device, world: World) -> float:
    p = load_params(AlignmentParams, "alignment")
    torch.set_num_threads(p.threads or torch.get_num_threads())
    labels = read_labels(LABELS, VOCAB)
    with RegionStore(REGIONS) as store:
        trainer = AlignmentTrainer(without_skipped(labels, store), store, p, device, world)
        return _tokens_per_second(trainer, lambda i: int((trainer.batches.at(i).labels > 0).sum()), a)


def _captioner(a: argparse.Namespace, compute: ComputeParams, device: torch.device, world: World) -> float:
    p = load_params(CaptionerParams, "captioner")
    torch.set_num_threads(p.threads or torch.get_num_threads())
    labels = read_labels(LABELS, VOCAB)
    with RegionStore(REGIONS) as store:
        trainer = build_trainer(p, without_skipped(labels, store), store, device=device, world=world)
        # the cross-entropy's targets: words + END
        return _tokens_per_second(trainer, lambda i: predicted_tokens(trainer.batches.at(i).labels), a)


def _tokens_per_second(trainer: Trainer, tokens: Callable[[int], int], a: argparse.Namespace) -> float:
    """The trainer's iteration i (its loss, then the loop's update) a.warmup times untimed, then a.steps times
    timed from the moment every rank is ready to the moment every rank is done; `tokens(i)`: its global batch's."""

    def step(i: int) -> int:
        update(trainer.groups, trainer.step(i).loss, i)
        return tokens(i)

    for i in range(a.warmup):
        step(i)
    barrier()
    start = time.perf_counter()
    total = sum(step(i) for i in range(a.warmup, a.warmup + a.steps))
    barrier()
    return total / (time.perf_counter() - start)


def measure(task: str, nproc: int, a: argparse.Namespace) -> float:
    """Launch `nproc` ranks of `task` as dvc.yaml launches a stage; rank 0's rate."""
    with tempfile.TemporaryDirectory() as scratch:  # the ranks share it, as they share data/regions.work/
        cmd = [sys.executable, "-m", "dvsa.launch", "--nproc-per-node", str(nproc), __file__, "--worker", task,
               "--scratch", scratch, *_forwarded(a)]
        done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"{task} at {nproc} processes failed:\n{done.stderr[-3000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["rate"])


def _forwarded(a: argparse.Namespace) -> list[str]:
    return ["--device", a.device, "--images", str(a.images), "--shard-size", str(a.shard_size),
            "--steps", str(a.steps), "--warmup", str(a.warmup)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nproc", type=int, nargs="+", default=[1, 2], help="process counts to measure (with 1)")
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--images", type=int, default=96, help="images extracted per measurement")
    parser.add_argument("--shard-size", type=int, default=16, help="images per shard (the unit dealt to ranks)")
    parser.add_argument("--steps", type=int, default=20, help="timed training steps")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--worker", choices=TASKS, help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    a = parser.parse_args()
    if a.worker:
        worker(a.worker, a)
        return
    for path in (DATASET, REGION_CNN, LABELS, REGIONS):
        if not Path(path).exists():
            sys.exit(f"error: {path} not found: run `dvc repro regions preprocess` first")
    print(f"device {a.device}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; params.yaml's batch sizes")
    print("| stage | processes | rate | speedup | efficiency |\n|---|---|---|---|---|")
    if 1 not in a.nproc:
        sys.exit("error: --nproc must include 1, the baseline of the speedups")
    for task in a.tasks:
        base = measure(task, 1, a)
        for n in sorted(a.nproc):
            rate = base if n == 1 else measure(task, n, a)
            speedup = rate / base
            print(f"| {task} | {n} | {rate:,.1f} {UNITS[task]} | {speedup:.2f}x | {speedup / n:.2f} |", flush=True)


if __name__ == "__main__":
    main()
