"""Training throughput of the captioner at the default size: tokens/s of one optimisation step.

A step is neuraltalk2's: encode + expand + LSTM forward, masked cross-entropy, backward, clamp, Adam. Data:
random region-0 features (4096-d) and random captions (lengths 6..max_length) with the default vocabulary
size of the shapes world, so the figure does not depend on the pipeline having run.

    python benchmarks/train_captioner.py [--steps 30] [--threads N] [--rnn-type lstm]
"""

from __future__ import annotations

import argparse
import time

import torch

from dvsa.caption.config import CaptionerParams
from dvsa.caption.model import Captioner, language_model_criterion


def main() -> None:
    p = CaptionerParams()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--vocab", type=int, default=50)
    parser.add_argument("--max-length", type=int, default=16)
    parser.add_argument("--feat-dim", type=int, default=4096)
    parser.add_argument("--rnn-type", default=p.rnn_type, choices=["lstm", "rnn"])
    a = parser.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Captioner(a.vocab, a.feat_dim, a.rnn_type, p.rnn_size, p.num_layers, p.input_encoding_size, p.drop_prob_lm)
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=p.learning_rate, betas=(p.optim_alpha, p.optim_beta))
    b, s = p.batch_size, p.seq_per_img
    feats = torch.relu(torch.randn(b, a.feat_dim))  # (B, D) non-negative, like fc7
    lengths = torch.randint(6, a.max_length + 1, (b * s,))  # (B * S,)
    labels = torch.randint(1, a.vocab + 1, (b * s, a.max_length))
    labels[torch.arange(a.max_length)[None, :] >= lengths[:, None]] = 0
    tokens = int(lengths.sum()) + b * s  # words + END per caption

    def step() -> None:
        loss = language_model_criterion(model(feats, labels, s), labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_value_(model.parameters(), p.grad_clip)
        opt.step()

    for _ in range(a.warmup):
        step()
    start = time.perf_counter()
    for _ in range(a.steps):
        step()
    seconds = (time.perf_counter() - start) / a.steps
    print(
        f"captioner training step ({a.rnn_type}, rnn_size {p.rnn_size}, encoding {p.input_encoding_size}, "
        f"batch {b} images x {s} captions, vocab {a.vocab}, feat {a.feat_dim}, threads {torch.get_num_threads()})"
    )
    print(f"{seconds * 1000:.1f} ms/step, {tokens / seconds:,.0f} tokens/s ({tokens} tokens/step)")
    print(f"default max_iters {p.max_iters}: ~{p.max_iters * seconds:.0f} s of steps")


if __name__ == "__main__":
    main()
