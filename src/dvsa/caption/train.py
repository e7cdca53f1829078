"""neuraltalk2's training loop (train.lua) for the Captioner on cached region-0 features.

Features are standardised with the train split's statistics (``feat_norm``). Adam (beta1 = optim_alpha,
beta2 = optim_beta), dropout, each gradient element clamped to ±grad_clip, L2
weight decay, and the learning-rate decay eps = eps0 * 2^(-(i - i0) / T) after iteration i0. Every
``val_every`` iterations: the loss on the first ``val_images`` val images and the CIDEr / BLEU-4 of their
greedy captions (fast path: no Java); the weights with the best val CIDEr are the ones kept. A loss that is
not finite or exceeds ``explode_factor`` x the first loss stops training with a TrainingError.

Exact resume: at every validation, and when SIGINT / SIGTERM arrives (acted on between two iterations), the
whole training state (weights, Adam moments, iteration, torch RNG, best weights, curves) is written to the
resume file. The batch order is a function of (seed, epoch), so a resumed run continues with the same
batches and, given the same params and inputs, ends with the same weights as an uninterrupted one. The
resume file is ignored when the params or the input files differ, and removed when training ends.
"""

from __future__ import annotations

import copy
import math
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from dvclive import Live
from tqdm import tqdm

from dvsa.caption.checkpoint import load_checkpoint, save_checkpoint
from dvsa.caption.config import CaptionerParams
from dvsa.caption.generate import caption_rows, perplexity
from dvsa.caption.model import Captioner, language_model_criterion
from dvsa.data.labels import Labels
from dvsa.data.loader import CaptionBatch, iterate_batches
from dvsa.data.vocab import decode
from dvsa.errors import InputError, TrainingError
from dvsa.evaluate.coco import coco_scores
from dvsa.live import open_live
from dvsa.regions.store import RegionStore

LOG_EVERY = 10  # iterations per logged train-loss point (their mean)


def learning_rate(params: CaptionerParams, iteration: int) -> float:
    """eps = eps0 * 2^(-(i - i0) / T) for i > i0 = learning_rate_decay_start >= 0, else eps0."""
    i0 = params.learning_rate_decay_start
    if i0 >= 0 and iteration > i0:
        return params.learning_rate * 2.0 ** (-(iteration - i0) / params.learning_rate_decay_every)
    return params.learning_rate


def file_fingerprint(*paths: str | os.PathLike[str]) -> list[list[int]]:
    """(size, mtime_ns) of each input file: a resume file made from other inputs is not used."""
    return [[os.stat(p).st_size, os.stat(p).st_mtime_ns] for p in paths]


class EpochBatches:
    """Training batch of iteration i: epoch i // n is shuffled by an RNG seeded with (seed, epoch)."""

    def __init__(self, labels: Labels, params: CaptionerParams) -> None:
        self.labels, self.params = labels, params
        n_train = len(labels.split_indices("train"))
        if n_train == 0:
            raise InputError("labels: no images in the train split")
        self.per_epoch = math.ceil(n_train / params.batch_size)
        self._epoch, self._next, self._it = -1, 0, iter(())

    def at(self, iteration: int) -> CaptionBatch:
        epoch, pos = divmod(iteration, self.per_epoch)
        if epoch != self._epoch or pos != self._next:
            rng = np.random.default_rng([self.params.seed, epoch])
            self._it = iterate_batches(self.labels, "train", self.params.batch_size, self.params.seq_per_img, rng)
            self._epoch, self._next = epoch, 0
            for _ in range(pos):
                next(self._it)
                self._next += 1
        self._next += 1
        return next(self._it)


def feature_stats(store: RegionStore, rows: np.ndarray, chunk: int = 256, eps: float = 1e-4) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and sqrt(var + eps) (D,) of the region-0 features of `rows`, streamed in chunks."""
    total = np.zeros(store.dim)
    total_sq = np.zeros(store.dim)
    for s in range(0, len(rows), chunk):
        f = store.feats(rows[s : s + chunk], region=0).astype(np.float64)  # (C, D)
        total += f.sum(0)
        total_sq += (f * f).sum(0)
    mean = total / len(rows)
    var = np.maximum(total_sq / len(rows) - mean * mean, 0.0)
    return torch.from_numpy(mean).float(), torch.from_numpy(np.sqrt(var + eps)).float()


def validate(model: Captioner, labels: Labels, store: RegionStore, rows: np.ndarray) -> dict[str, float]:
    """Val loss (all captions of `rows`) and CIDEr / BLEU-4 of greedy captions against them."""
    loss = math.log(perplexity(model, store, labels, rows))
    seqs = caption_rows(model, store, rows, method="greedy", max_length=labels.max_length)
    refs = {int(i): [decode(c, labels.ix_to_word) for c in labels.captions(int(i))] for i in rows}
    hyps = {int(i): decode(s, labels.ix_to_word) for i, s in zip(rows, seqs)}
    scores = coco_scores(refs, hyps, meteor=False, ptb=False, warn=False)
    model.train()
    return {"val/loss": loss, "val/CIDEr": scores["CIDEr"], "val/Bleu_4": scores["Bleu_4"]}


@contextmanager
def interrupt_requests() -> Iterator[list[bool]]:
    """While active, SIGINT / SIGTERM set flag[0] instead of stopping at once (a second one stops at once)."""
    flag = [False]
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: Any) -> None:
        if flag[0]:
            raise KeyboardInterrupt
        flag[0] = True

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _cpu_copy(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in state_dict.items()}


def train_captioner(
    params: CaptionerParams,
    labels: Labels,
    store: RegionStore,
    model_path: str | os.PathLike[str],
    resume_path: str | os.PathLike[str],
    log_dir: str | os.PathLike[str],
    fingerprint: list[list[int]] | None = None,
    on_iteration: Callable[[int], None] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Train, write the best-val-CIDEr checkpoint to `model_path`; return its summary.

    `on_iteration(i)` is called after iteration i (1-based) completes.
    """
    resume_path = Path(resume_path)
    val_rows = labels.split_indices("val")[: params.val_images]
    if len(val_rows) == 0:
        raise InputError("labels: no images in the val split")
    if len(store) != len(labels.images):
        raise InputError(f"{store.path}: {len(store)} images but the labels have {len(labels.images)}")
    if params.threads:
        torch.set_num_threads(params.threads)
    torch.manual_seed(params.seed)
    model = Captioner(
        vocab_size=labels.vocab_size,
        feat_dim=store.dim,
        rnn_type=params.rnn_type,
        rnn_size=params.rnn_size,
        num_layers=params.num_layers,
        input_encoding_size=params.input_encoding_size,
        drop_prob_lm=params.drop_prob_lm,
    )
    if params.feat_norm == "standardize":
        model.set_feature_stats(*feature_stats(store, labels.split_indices("train")))
    optimizer = torch.optim.Adam(
        model.parameters(),
        lr=params.learning_rate,
        betas=(params.optim_alpha, params.optim_beta),
        eps=params.optim_epsilon,
        weight_decay=params.weight_decay,
    )
    st: dict[str, Any] = {
        "iteration": 0,
        "first_loss": None,
        "best_val": None,
        "best_iteration": 0,
        "best_state": None,
        "history": [],
        "window": [],
    }
    resumed = _try_resume(resume_path, params, fingerprint, model, optimizer, st)

    live = open_live(log_dir)
    for record in st["history"]:
        _log(live, record)

    batches = EpochBatches(labels, params)
    model.train()
    bar = tqdm(
        total=params.max_iters, initial=st["iteration"], desc="train captioner", unit="it", disable=not progress
    )
    try:
        with interrupt_requests() as interrupted:
            while st["iteration"] < params.max_iters:
                it = st["iteration"]
                loss = _train_step(model, optimizer, batches.at(it), store, params, it)
                st["iteration"] = it + 1
                if st["first_loss"] is None:
                    st["first_loss"] = loss
                if not math.isfinite(loss) or loss > params.explode_factor * st["first_loss"]:
                    raise TrainingError(
                        f"the loss exploded at iteration {it + 1}: {loss:.4g} (first loss {st['first_loss']:.4g}); "
                        f"lower captioner.learning_rate ({params.learning_rate:g}) or captioner.grad_clip "
                        f"({params.grad_clip:g})"
                    )
                st["window"].append(loss)
                if len(st["window"]) == LOG_EVERY or st["iteration"] == params.max_iters:
                    record = {
                        "step": st["iteration"],
                        "train/loss": float(np.mean(st["window"])),
                        "train/lr": learning_rate(params, it),
                    }
                    st["window"] = []
                    st["history"].append(record)
                    _log(live, record)
                    bar.set_postfix(loss=f"{record['train/loss']:.3f}")
                if st["iteration"] % params.val_every == 0 or st["iteration"] == params.max_iters:
                    val = validate(model, labels, store, val_rows)
                    record = {"step": st["iteration"], **val}
                    st["history"].append(record)
                    _log(live, record)
                    if st["best_val"] is None or val["val/CIDEr"] > st["best_val"]["val/CIDEr"]:
                        st["best_val"], st["best_iteration"] = val, st["iteration"]
                        st["best_state"] = _cpu_copy(model.state_dict())
                    _save_resume(resume_path, params, fingerprint, model, optimizer, st)
                bar.update(1)
                if on_iteration is not None:
                    on_iteration(st["iteration"])
                if interrupted[0]:
                    _save_resume(resume_path, params, fingerprint, model, optimizer, st)
                    raise KeyboardInterrupt
    except TrainingError:
        resume_path.unlink(missing_ok=True)
        raise
    finally:
        bar.close()

    summary = {
        "iteration": st["best_iteration"],
        "val": st["best_val"],
        "resumed": resumed,
        "first_loss": st["first_loss"],
    }
    live.summary["best"] = {"iteration": st["best_iteration"], **{k[4:]: v for k, v in st["best_val"].items()}}
    live.end()
    save_checkpoint(
        model_path,
        {
            "state_dict": st["best_state"],
            "config": model.config,
            "params": params.to_dict(),
            "vocab": {str(k): w for k, w in labels.ix_to_word.items()},
            "max_length": labels.max_length,
            "iteration": st["best_iteration"],
            "val": st["best_val"],
            "history": st["history"],
        },
    )
    resume_path.unlink(missing_ok=True)
    return summary


def _train_step(
    model: Captioner,
    optimizer: torch.optim.Optimizer,
    batch: CaptionBatch,
    store: RegionStore,
    params: CaptionerParams,
    iteration: int,
) -> float:
    feats = torch.from_numpy(store.feats(batch.image_ix, region=0))  # (B, D)
    length = max(int(batch.lengths.max()), 1)
    caps = torch.from_numpy(batch.labels[:, :length])  # (B * S, L')
    logprobs = model(feats, caps, params.seq_per_img)  # (B * S, L' + 1, V + 1)
    loss = language_model_criterion(logprobs, caps)
    value = float(loss.detach())
    if not math.isfinite(value):
        return value
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_value_(model.parameters(), params.grad_clip)
    for group in optimizer.param_groups:
        group["lr"] = learning_rate(params, iteration)
    optimizer.step()
    return value


def _log(live: Live, record: dict[str, float]) -> None:
    live.step = int(record["step"])
    for name, value in record.items():
        if name != "step":
            live.log_metric(name, value)
    live.next_step()


def _save_resume(
    path: Path,
    params: CaptionerParams,
    fingerprint: list[list[int]] | None,
    model: Captioner,
    optimizer: torch.optim.Optimizer,
    st: dict[str, Any],
) -> None:
    save_checkpoint(
        path,
        {
            "params": params.to_dict(),
            "fingerprint": fingerprint,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "torch_rng": torch.get_rng_state(),
            **st,
        },
    )


def _try_resume(
    path: Path,
    params: CaptionerParams,
    fingerprint: list[list[int]] | None,
    model: Captioner,
    optimizer: torch.optim.Optimizer,
    st: dict[str, Any],
) -> bool:
    """Load the resume file into model / optimizer / st when it was made with the same params and inputs."""
    if not path.is_file():
        return False
    data = load_checkpoint(path)
    if data.get("params") != params.to_dict() or data.get("fingerprint") != fingerprint:
        print(f"{path}: made with other params or inputs; starting afresh")
        path.unlink()
        return False
    model.load_state_dict(data["model"])
    optimizer.load_state_dict(data["optimizer"])
    torch.set_rng_state(data["torch_rng"])
    for key in st:
        st[key] = copy.deepcopy(data[key])
    print(f"{path}: resuming at iteration {st['iteration']}")
    return True
