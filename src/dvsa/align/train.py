"""The alignment model's trainer on the shared loop (dvsa.train.loop; docs/design.md, "Trainer contract"):
the ranking loss of eq. (9), validation R@K after every epoch, the weights of the best R@K sum kept.

SGD with momentum (the paper) or Adam, L2 weight decay in the optimizer, each gradient element clipped to
±grad_clip before it. The batches of epoch e are drawn by an RNG seeded with (seed, e) (data.loader.EpochBatches),
a last batch of one image left out (a ranking needs a negative).

Data-parallel (torchrun, dvsa.distributed): every rank draws the same global batch; each embeds its share of
the images and their sentences in a DistributedDataParallel model; the embeddings are gathered across ranks
with their gradients, so every rank scores all B images against all B*S sentences and eq. (9) is the loss of
the whole batch, as in one process. Rank 0 alone validates and writes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from dvsa.align.checkpoint import MODEL_FORMAT
from dvsa.align.config import AlignmentParams
from dvsa.align.model import AlignmentModel
from dvsa.align.retrieval import evaluate_split, trim
from dvsa.align.score import image_sentence_scores, ranking_loss
from dvsa.data.labels import Labels
from dvsa.data.loader import EpochBatches
from dvsa.distributed import ONE_PROCESS, World, data_parallel, gather_rows
from dvsa.errors import InputError
from dvsa.features import CachedFeatures
from dvsa.features.fingerprint import data_fingerprint
from dvsa.regions.store import RegionStore
from dvsa.train.loop import Files, Group, LoopState, Plan, Step, Validation, train
from dvsa.train.resume import ResumeKey, Stateful

RESUME_FORMAT = "dvsa.alignment.resume/3"


def make_optimizer(model: torch.nn.Module, p: AlignmentParams) -> torch.optim.Optimizer:
    """SGD with momentum (the paper) or Adam, with L2 weight decay."""
    if p.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=p.lr, momentum=p.momentum, weight_decay=p.weight_decay)
    return torch.optim.Adam(model.parameters(), lr=p.lr, weight_decay=p.weight_decay)


def batch_loss(
    model: torch.nn.Module,
    source: CachedFeatures,
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
    feats, _ = source(image_ix[mine])  # (b, R, D)
    mask = torch.from_numpy(source.store.mask(image_ix))  # (B, R): every image is scored
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


def flat_metrics(val: dict[str, dict[str, float]]) -> dict[str, float]:
    """One validation row of the training log."""
    row = {"val/rsum": rsum(val)}
    for d in ("annotation", "search"):
        for key, value in val[d].items():
            row[f"val/{d}_{key}"] = value
    return row


class AlignmentTrainer:
    """What the alignment model brings to the loop."""

    name = "alignment"

    def __init__(self, labels: Labels, store: RegionStore, p: AlignmentParams, device: torch.device | None,
                 world: World) -> None:
        if len(labels.split_indices("train")) < 2:
            raise InputError("labels.h5: the ranking loss needs at least 2 training images")
        if p.threads:
            torch.set_num_threads(p.threads)
        torch.manual_seed(p.seed)
        self.labels, self.store, self.p, self.world = labels, store, p, world
        self.source = CachedFeatures(store, geometry=False)
        self.model = AlignmentModel(labels.vocab_size, store.dim, p).to(device or torch.device("cpu"))
        self.optimizer = make_optimizer(self.model, p)
        self.forward = data_parallel(self.model, world)
        self.batches = EpochBatches(labels, "train", p.batch_size, p.seq_per_img, p.seed, min_images=2)
        self.groups = [Group(list(self.model.parameters()), self.optimizer, lambda i: p.lr, clamp=p.grad_clip)]

    def step(self, iteration: int) -> Step:
        batch = self.batches.at(iteration)
        self.forward.train()
        loss = batch_loss(self.forward, self.source, batch.image_ix, batch.labels, self.p, self.world)
        return Step(loss, float(loss.item()))

    def validate(self) -> Validation:
        metrics = flat_metrics(evaluate_split(self.model, self.labels, self.store, "val", self.p.score,
                                              self.p.batch_size))
        return Validation(metrics, metrics["val/rsum"])

    def weights(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"model": self.model.state_dict()}

    def stateful(self) -> dict[str, Stateful]:
        return {"model": self.model, "optimizer": self.optimizer}

    def model_file(self, st: LoopState) -> tuple[str, dict[str, Any]]:
        """models/alignment.pt: the best epoch's weights, the params and vocab that built them, its val figures."""
        return MODEL_FORMAT, {
            "state_dict": st.best_weights["model"],
            "params": self.p.to_dict(),
            "vocab": {str(k): w for k, w in self.labels.ix_to_word.items()},
            "features": {"dim": self.store.dim, "geometry": False},
            "iteration": st.best_iteration,
            "epoch": st.best_iteration // self.batches.per_epoch,
            "val": st.best_metrics,
        }


def train_alignment(
    labels: Labels,
    store: RegionStore,
    p: AlignmentParams,
    files: Files,
    device: torch.device | None = None,
    world: World = ONE_PROCESS,
    on_iteration: Callable[[int], None] | None = None,
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> tuple[AlignmentModel, LoopState, bool]:
    """Train (or resume) for `p.epochs` epochs and write `files.model`; returns the model (last weights), the
    loop's final state and whether it resumed. In a data-parallel `world` the state is meaningful on rank 0."""
    trainer = AlignmentTrainer(labels, store, p, device, world)
    per_epoch = trainer.batches.per_epoch
    key = ResumeKey(RESUME_FORMAT, p.to_dict(), data_fingerprint(labels, store))
    plan = Plan(p.epochs * per_epoch, per_epoch, per_epoch, p.seed, lower=f"alignment.lr ({p.lr:g})")
    st, resumed = train(trainer, plan, files, key, world, progress=progress, on_iteration=on_iteration, log=log)
    return trainer.model, st, resumed
