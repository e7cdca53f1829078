"""Training throughput of the captioner at the default size: tokens/s of one optimisation step, for the
attention-over-regions model (the default) and the whole-image model, measured in one run.

A step is train.lua's: encode + expand + LSTM forward, masked cross-entropy, backward, L2 + clamp, Adam.
Data: random 20-region features (4096-d fc7 + the 6-d box geometry, 12 real regions per image as on the
shapes world) and random captions (lengths 6..max_length) with the shapes world's vocabulary size, so the
figure does not depend on the pipeline having run. The CNN is frozen (cached features), as by default.

    python benchmarks/train_captioner.py [--steps 30] [--threads 1]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import torch

from dvsa.caption.config import CaptionerParams
from dvsa.caption.model import language_model_criterion
from dvsa.caption.train import groups, make_protos
from dvsa.features import GEOMETRY_DIM
from dvsa.train.loop import update


def tokens_per_second(p: CaptionerParams, a: argparse.Namespace) -> tuple[float, int]:
    torch.manual_seed(0)
    feat_dim = a.feat_dim + GEOMETRY_DIM
    protos = make_protos(p, a.vocab, feat_dim, None)
    model = protos.lm
    model.train()
    b, s = p.batch_size, p.seq_per_img
    mask = torch.arange(20)[None, :] < a.regions  # (1, R)
    mask = mask.expand(b, -1)
    feats = torch.relu(torch.randn(b, 20, feat_dim)) * mask[:, :, None]  # (B, R, D) non-negative, like fc7
    lengths = torch.randint(6, a.max_length + 1, (b * s,))  # (B * S,)
    labels = torch.randint(1, a.vocab + 1, (b * s, a.max_length))
    labels[torch.arange(a.max_length)[None, :] >= lengths[:, None]] = 0
    tokens = int(lengths.sum()) + b * s  # words + END per caption

    lm_groups = groups(protos, p)

    def step(i: int) -> None:  # the loss, then the loop's update (L2, clamp, decayed lr, Adam)
        update(lm_groups, language_model_criterion(model(feats, mask, labels, s), labels), i)

    for i in range(a.warmup):
        step(i)
    start = time.perf_counter()
    for i in range(a.steps):
        step(a.warmup + i)
    seconds = (time.perf_counter() - start) / a.steps
    return tokens / seconds, tokens


def main() -> None:
    p = CaptionerParams()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=p.threads, help="torch threads (0: torch's default)")
    parser.add_argument("--vocab", type=int, default=90)
    parser.add_argument("--max-length", type=int, default=16)
    parser.add_argument("--feat-dim", type=int, default=4096)
    parser.add_argument("--regions", type=int, default=12, help="real regions per image")
    a = parser.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    print(
        f"captioner training step: rnn_size {p.rnn_size}, encoding {p.input_encoding_size}, batch {p.batch_size} "
        f"images x {p.seq_per_img} captions, vocab {a.vocab}, feat {a.feat_dim}, threads {torch.get_num_threads()}"
    )
    figures = {}
    for image in ("regions", "whole"):
        rate, tokens = tokens_per_second(replace(p, image=image), a)
        figures[image] = rate
        print(
            f"image: {image:8s} {rate:10,.0f} tokens/s ({tokens} tokens/step, {p.max_iters * tokens / rate:.0f} s "
            f"for the default {p.max_iters} iterations)"
        )
    print(f"regions / whole: {figures['regions'] / figures['whole']:.2f}x")


if __name__ == "__main__":
    main()
