"""Speed of the vectorised eq. (8) score matrix + eq. (9) loss against a loop over image-sentence pairs.

Prints the time of one forward + backward pass over a batch (B images with 20 regions, B*S sentences) both
ways and their ratio. Usage: python benchmarks/align_scores.py [B=32] [S=5] [h=256] (the loop takes minutes at B=100)
"""

from __future__ import annotations

import sys
import time

import torch

from dvsa.align.score import image_sentence_scores, ranking_loss


def vectorised(v: torch.Tensor, rmask: torch.Tensor, s: torch.Tensor, wmask: torch.Tensor, seq: int) -> torch.Tensor:
    scores = image_sentence_scores(v, rmask, s, wmask, "max")  # (B, B*S)
    return sum(ranking_loss(scores[:, j::seq]) for j in range(seq))


def looped(v: torch.Tensor, rmask: torch.Tensor, s: torch.Tensor, wmask: torch.Tensor, seq: int) -> torch.Tensor:
    b = v.shape[0]
    rows = []
    for k in range(b):
        vk = v[k][rmask[k]]  # (R_k, h)
        rows.append(torch.stack([(s[l][wmask[l]] @ vk.T).max(dim=1).values.sum() for l in range(s.shape[0])]))
    scores = torch.stack(rows)
    return sum(ranking_loss(scores[:, j::seq]) for j in range(seq))


def timed(fn, *args) -> tuple[float, float]:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    loss = fn(*args)
    loss.backward()
    return time.perf_counter() - start, loss.detach().item()


def main() -> None:
    b, seq, h = (int(a) for a in (sys.argv[1:] + ["32", "5", "256"][len(sys.argv) - 1 :]))
    torch.manual_seed(0)
    v = torch.randn(b, 20, h, requires_grad=True)
    s = torch.randn(b * seq, 12, h).relu().requires_grad_()
    rmask = torch.ones(b, 20, dtype=torch.bool)
    wmask = torch.arange(12)[None, :] < torch.randint(4, 13, (b * seq, 1))
    t_vec, loss_vec = timed(vectorised, v, rmask, s, wmask, seq)
    t_vec, loss_vec = timed(vectorised, v, rmask, s, wmask, seq)  # warm
    t_loop, loss_loop = timed(looped, v, rmask, s, wmask, seq)
    print(f"B={b} images x {b * seq} sentences, h={h}, {torch.get_num_threads()} threads")
    print(f"vectorised: {t_vec * 1000:8.1f} ms  (loss {loss_vec:.3f})")
    print(f"pair loop:  {t_loop * 1000:8.1f} ms  (loss {loss_loop:.3f})")
    print(f"speed-up:   {t_loop / t_vec:8.1f}x")


if __name__ == "__main__":
    main()
