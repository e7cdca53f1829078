"""Learning-rate schedules shared by the trainers."""

from __future__ import annotations

import math

import torch


def halving_lr(lr0: float, iteration: int, decay_start: int, decay_every: int) -> float:
    """neuraltalk2's decay: eps = eps0 * 2^(-(i - i0) / T) for i > i0 = decay_start >= 0, else eps0.

    `iteration` is the 0-based index of the step about to be taken; decay_start < 0 never decays.
    """
    if decay_start >= 0 and iteration > decay_start:
        return lr0 * 2.0 ** (-(iteration - decay_start) / decay_every)
    return lr0


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    """Apply `lr` to every parameter group of `optimizer` (call before ``optimizer.step()``)."""
    for group in optimizer.param_groups:
        group["lr"] = lr


def cosine_lr(lr0: float, iteration: int, total: int) -> float:
    """Cosine annealing to 0 over `total` iterations: eps = eps0 (1 + cos(pi i / total)) / 2."""
    return lr0 * (1 + math.cos(math.pi * iteration / total)) / 2
