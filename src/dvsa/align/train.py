"""Training the alignment model with the ranking loss of eq. (9); validation R@K each epoch; exact resume.

After every epoch the whole training state (weights, optimizer, epoch, best weights so far, the metric history
and the numpy and torch RNG states) is written atomically to a resume file (dvsa.train.state). A run that
finds a resume file made with the same params and the same input data goes on from it, and ends with exactly
the weights that an uninterrupted run would have reached.

Data-parallel (torchrun, dvsa.distributed): every rank draws the same global batch; each embeds its share of
the images and their sentences in a DistributedDataParallel model; the embeddings are gathered across ranks
with their gradients, so every rank scores all B images against all B*S sentences and eq. (9) is the loss of
the whole batch, as in one process. Rank 0 alone validates and writes the logs and the resume file; the resume
state is global, so a run resumes with any number of processes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from dvclive import Live
from tqdm import tqdm

from dvsa.align.config import AlignmentParams
from dvsa.align.encode import evaluate_split, region_tensors, trim
from dvsa.align.model import AlignmentModel
from dvsa.align.score import image_sentence_scores, ranking_loss
from dvsa.data.labels import Labels
from dvsa.data.loader import CaptionBatch, iterate_batches
from dvsa.distributed import ONE_PROCESS, World, barrier, data_parallel, gather_rows
from dvsa.errors import InputError, TrainingError
from dvsa.io import save_torch
from dvsa.live import open_live
from dvsa.params import from_mapping
from dvsa.regions.store import RegionStore
from dvsa.train.state import ResumeKey, data_fingerprint, load_resume, save_resume

RESUME_FORMAT = "dvsa.alignment.resume/2"  # dvsa.train.state layout
MODEL_FORMAT = "dvsa.alignment/1"


@dataclass
class TrainState:
    """Everything that determines the rest of a training run."""

    epoch: int = 0  # epochs completed
    best_epoch: int = 0
    best_rsum: float = -math.inf
    best_state_dict: dict[str, torch.Tensor] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)  # one row of logged metrics per epoch


def make_optimizer(model: torch.nn.Module, p: AlignmentParams) -> torch.optim.Optimizer:
    """SGD with momentum (the paper) or Adam, with L2 weight decay."""
    if p.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=p.lr, momentum=p.momentum, weight_decay=p.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)


def batch_loss(
    model: torch.nn.Module,
    store: RegionStore,
    image_ix: np.ndarray,
    words: np.ndarray,
    p: AlignmentParams,
    world: World = ONE_PROCESS,
) -> torch.Tensor:
    """Eq. (9) per sentence for a batch of B images with seq_per_img (S) sentences each.

    The B x (B*S) score matrix is computed in one pass (the images are embedded once); for each j < S the
    B x B matrix of every image against sentence j of every image is one batch of the paper's loss. `model` is
    an AlignmentModel or its DistributedDataParallel wrapper: then this rank embeds its `world.share` of the
    images and of their sentences, scores every image (gathered) against its sentences only, and the score
    columns are gathered in turn, so that every rank holds the whole matrix for the whole batch's loss; both
    gathers carry the gradients back to the rank that computed the rows.
    """
    mine = world.share(len(image_ix))
    words_t = trim(words)  # (B*S, T), T of the whole batch, the same on every rank
    feats, _ = region_tensors(store, image_ix[mine])  # (b, R, D)
    mask = torch.from_numpy(store.mask(image_ix))  # (B, R)
    local_words = words_t[mine.start * p.seq_per_img : mine.stop * p.seq_per_img]  # (b*S, T)
    v, s, wmask = model(feats, mask[mine], local_words)  # (b, R, h), (b*S, T, h), (b*S, T)
    sizes = world.share_sizes(len(image_ix))  # images per rank
    v = gather_rows(v, sizes)  # (B, R, h)
    columns = image_sentence_scores(v, mask.to(v.device), s, wmask, p.score)  # (B, b*S)
    scores = gather_rows(columns.T, [n * p.seq_per_img for n in sizes]).T  # (B, B*S); sentence b*S + j: image b
    total = sum(ranking_loss(scores[:, j :: p.seq_per_img], p.margin) for j in range(p.seq_per_img))
    return total / scores.shape[1]


def rsum(val: dict[str, dict[str, float]]) -> float:
    """Sum of R@1, R@5, R@10 in both directions: the model-selection criterion."""
    return sum(val[d][f"r{k}"] for d in ("annotation", "search") for k in (1, 5, 10))


def flat_metrics(loss: float, val: dict[str, dict[str, float]]) -> dict[str, float]:
    """One row of the training log."""
    row = {"train/loss": loss, "val/rsum": rsum(val)}
    for d in ("annotation", "search"):
        for key, value in val[d].items():
            row[f"val/{d}_{key}"] = value
    return row


def train(
    labels: Labels,
    store: RegionStore,
    p: AlignmentParams,
    resume_path: str | os.PathLike[str],
    live_dir: str | os.PathLike[str],
    stop_after: int | None = None,
    log: Callable[[str], None] = print,
    device: torch.device | None = None,
    world: World = ONE_PROCESS,
) -> tuple[AlignmentModel, TrainState]:
    """Train (or resume) for `p.epochs` epochs; returns the model (last weights) and the final state.

    `stop_after` ends the run after that many epochs have been completed in total, as an interrupt would
    (the resume file is left for the next run). The model trains on `device` (default: the CPU); the weights
    it keeps are CPU copies, so its files load anywhere. In a `world` of several ranks (inside
    dvsa.distributed.process_group) the state returned is meaningful on rank 0 only.
    """
    if len(labels.split_indices("train")) < 2:
        raise InputError("labels.h5: the ranking loss needs at least 2 training images")
    key = ResumeKey(RESUME_FORMAT, p.to_dict(), data_fingerprint(labels, store))
    if p.threads:
        torch.set_num_threads(p.threads)
    torch.manual_seed(p.seed)
    model = AlignmentModel(labels.vocab_size, store.dim, p).to(device or torch.device("cpu"))
    optimizer = make_optimizer(model, p)
    rng = np.random.default_rng(p.seed)
    state = TrainState()
    objects = {"model": model, "optimizer": optimizer}
    log = world.say(log)
    if load_resume(resume_path, key, state, objects, rng, log):
        log(f"resuming from {resume_path} after epoch {state.epoch}")
    trained = data_parallel(model, world)
    live = open_live(live_dir) if world.main else None
    for row in state.history:
        _log_row(live, row)
    while state.epoch < p.epochs and (stop_after is None or state.epoch < stop_after):
        loss = _train_epoch(trained, optimizer, labels, store, p, rng, state.epoch, world)
        state.epoch += 1
        if world.main:
            val = evaluate_split(model, labels, store, "val", p.score, p.batch_size)
            row = flat_metrics(loss, val)
            state.history.append(row)
            if row["val/rsum"] > state.best_rsum:
                state.best_rsum, state.best_epoch = row["val/rsum"], state.epoch
                state.best_state_dict = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            save_resume(resume_path, key, state, objects, rng)
            _log_row(live, row)
            log(
                f"epoch {state.epoch}/{p.epochs}: loss {loss:.4f}  val R@1/5/10 annotation "
                f"{val['annotation']['r1']:.1f}/{val['annotation']['r5']:.1f}/{val['annotation']['r10']:.1f} "
                f"search {val['search']['r1']:.1f}/{val['search']['r5']:.1f}/{val['search']['r10']:.1f}"
            )
        barrier()  # the others wait for rank 0's validation
    if live is not None:
        live.end()
    return model, state



def _train_epoch(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    labels: Labels,
    store: RegionStore,
    p: AlignmentParams,
    rng: np.random.Generator,
    epoch: int,
    world: World,
) -> float:
    """One pass over the training images; returns the mean loss per sentence (the same on every rank)."""
    model.train()
    n_train = len(labels.split_indices("train"))
    total, count = 0.0, 0
    batches = iterate_batches(labels, "train", p.batch_size, p.seq_per_img, rng)
    bar = tqdm(batches, total=math.ceil(n_train / p.batch_size), desc=f"epoch {epoch + 1}", leave=False,
               disable=not world.main)
    for batch in bar:
        if len(batch.image_ix) < 2:  # a ranking needs a negative
            continue
        loss = train_step(model, optimizer, store, batch, p, world)
        if not math.isfinite(loss):
            raise TrainingError(f"alignment loss became {loss} in epoch {epoch + 1}; lower alignment.lr")
        n = len(batch.labels)
        total, count = total + loss * n, count + n
    return total / max(count, 1)


def train_step(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    store: RegionStore,
    batch: CaptionBatch,
    p: AlignmentParams,
    world: World = ONE_PROCESS,
) -> float:
    """One update on `batch` (this rank's share of it in a data-parallel `world`): eq. (9), backward,
    element-wise clipping, the optimizer's step. Returns the loss per sentence (no update when it is not
    finite)."""
    loss = batch_loss(model, store, batch.image_ix, batch.labels, p, world)
    if not torch.isfinite(loss):
        return float(loss.item())
    optimizer.zero_grad()
    loss.backward()
    if p.grad_clip > 0:
        torch.nn.utils.clip_grad_value_(model.parameters(), p.grad_clip)
    optimizer.step()
    return float(loss.item())


def _log_row(live: Live | None, row: dict[str, float]) -> None:
    if live is None:
        return
    for name, value in row.items():
        live.log_metric(name, value)
    live.next_step()


def save_model(
    path: str | os.PathLike[str], state: TrainState, p: AlignmentParams, labels: Labels, feat_dim: int
) -> None:
    """models/alignment.pt: the best epoch's weights, the params and vocab that built them, its val figures."""
    ckpt = {
        "format": MODEL_FORMAT,
        "state_dict": state.best_state_dict,
        "params": p.to_dict(),
        "vocab": {str(k): w for k, w in labels.ix_to_word.items()},
        "feat_dim": feat_dim,
        "epoch": state.best_epoch,
        "epochs_done": state.epoch,
        "val": state.history[state.best_epoch - 1] if state.best_epoch else {},
    }
    save_torch(ckpt, path)


def load_model(path: str | os.PathLike[str]) -> tuple[AlignmentModel, AlignmentParams, dict[int, str]]:
    """Load models/alignment.pt -> (model in eval mode, its params, ix_to_word)."""
    p_path = Path(path)
    if not p_path.is_file():
        raise InputError(f"{p_path}: file not found (run `dvc repro train_alignment`)")
    try:
        ckpt = torch.load(p_path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many types for a bad file
        raise InputError(f"{p_path}: not a readable checkpoint ({type(e).__name__}: {e})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != MODEL_FORMAT:
        raise InputError(f"{p_path}: not an alignment model (expected format {MODEL_FORMAT})")
    params = from_mapping(AlignmentParams, ckpt["params"], f"{p_path}: params")
    vocab = {int(k): w for k, w in ckpt["vocab"].items()}
    model = AlignmentModel(len(vocab), int(ckpt["feat_dim"]), params)
    model.load_state_dict(ckpt["state_dict"])
    model.eval()
    return model, params, vocab
