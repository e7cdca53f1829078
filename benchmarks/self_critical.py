"""The cost of one self-critical iteration relative to one cross-entropy iteration at the same batch, both
measured in one run on the default pipeline's files (data/prepro, data/regions/regions.h5), with the LM
started from models/captioner.pt so that the samples have the lengths the self-critical phase meets.

An iteration is the trainer's own step (dvsa.caption.train: batch, features, loss) plus the loop's update
(backward, clamp, Adam). XE: batch_size images x seq_per_img references. SC: the same images x
train_sample_n samples, their CIDEr-D rewards, the baseline (greedy: one greedy decode per image; mean:
none), and the policy-gradient backward.

    python benchmarks/self_critical.py [--steps 40] [--threads 1] [--model models/captioner.pt]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from dvsa.caption.checkpoint import load_checkpoint
from dvsa.caption.config import CaptionerParams
from dvsa.caption.train import build_trainer
from dvsa.data.labels import read_labels
from dvsa.features import without_skipped
from dvsa.params import load_params
from dvsa.regions.store import RegionStore
from dvsa.train.loop import update

LABELS, VOCAB, REGIONS, MODEL = "data/prepro/labels.h5", "data/prepro/vocab.json", "data/regions/regions.h5", "models/captioner.pt"


def seconds_per_iteration(params: CaptionerParams, store: RegionStore, a: argparse.Namespace) -> float:
    labels = without_skipped(read_labels(LABELS, VOCAB), store)
    trainer = build_trainer(params, labels, store)
    trainer.protos.lm.load_state_dict(load_checkpoint(a.model)["state_dict"])
    for i in range(a.warmup):
        update(trainer.groups, trainer.step(i).loss, i)
    start = time.perf_counter()
    for i in range(a.warmup, a.warmup + a.steps):
        update(trainer.groups, trainer.step(i).loss, i)
    return (time.perf_counter() - start) / a.steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--samples", type=int, default=5, help="train_sample_n")
    parser.add_argument("--model", default=MODEL, help="a cross-entropy captioner of these labels and regions")
    a = parser.parse_args()
    torch.set_num_threads(a.threads)
    p = replace(load_params(CaptionerParams, "captioner"), threads=a.threads, train_sample_n=a.samples)
    print(f"batch {p.batch_size} images; XE: x {p.seq_per_img} references; SC: x {p.train_sample_n} samples; "
          f"threads {torch.get_num_threads()}; {a.steps} iterations each after {a.warmup} warm-up")
    with RegionStore(REGIONS) as store:
        xe = seconds_per_iteration(replace(p, self_critical_after=-1), store, a)
        print(f"XE iteration:              {1000 * xe:7.1f} ms")
        for base in ("greedy", "mean"):
            sc = seconds_per_iteration(replace(p, self_critical_after=0, sc_baseline=base), store, a)
            print(f"SC iteration ({base:6s} b):   {1000 * sc:7.1f} ms  = {sc / xe:.2f}x XE")


if __name__ == "__main__":
    main()
