"""neuraltalk2's training loop (train.lua) for the Captioner: protos.cnn -> the LM -> the criterion.

The image is the regions of regions.h5: their cached features when the CNN is frozen
(``finetune_cnn_after: -1``), or the region CNN run on the (augmented) pixels, trained from iteration
``finetune_cnn_after`` on with its own Adam (cnn_learning_rate, cnn_optim_alpha / beta) and its own L2
(cnn_weight_decay). Features are standardised with the train split's statistics (``feat_norm``), which follow
the CNN while it is finetuned. The LM: Adam (beta1 = optim_alpha, beta2 = optim_beta), dropout, L2
(weight_decay) then each gradient element clamped to ±grad_clip (both nets), and the learning-rate decay
eps = eps0 * 2^(-(i - i0) / T) after iteration i0 (both nets). Every ``val_every`` iterations: the loss on
the first ``val_images`` val images and the CIDEr / BLEU-4 of their greedy captions (fast path: no Java),
kept with ``val_predictions`` captions in logs/captioner/history.json; the weights with the best val CIDEr
are the ones kept. A loss that is not finite or exceeds ``explode_factor`` x the first loss stops training
with a TrainingError.

Exact resume: at every validation, and when SIGINT / SIGTERM arrives (acted on between two iterations), the
whole training state (weights, Adam moments, iteration, torch RNG, best weights, curves) is written to the
resume file. The batch order is a function of (seed, epoch), so a resumed run continues with the same
batches and, given the same params and inputs, ends with the same weights as an uninterrupted one. The
resume file is ignored when the params or the input files differ, and removed when training ends.

Data-parallel (torchrun, dvsa.distributed): every rank draws the same global batch and takes its share of the
images (and their captions); the LM is wrapped in DistributedDataParallel, the CNN's gradients are averaged by
one all_reduce, and each rank's loss is its -log p sum over the whole batch's token count, so the averaged
gradient (and then L2, the clamp and Adam) is that of one process on the same batch. The dropout masks are
drawn for the whole batch and cut per rank (model.BatchDropout), so they too are those of one process; the
augmentation of the finetuned CNN draws from an RNG seeded by (seed, iteration, rank). Every RNG is seeded by
the iteration: exact resume needs no saved RNG state, whatever the number of processes. Rank 0 alone
validates and writes the logs, history, resume file and checkpoint; a SIGINT / SIGTERM is acted on by every
rank at the same iteration.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from dvclive import Live
from tqdm import tqdm

from dvsa.caption.checkpoint import save_checkpoint
from dvsa.caption.cnn import CaptionCNN, PixelFeatures
from dvsa.caption.config import CaptionerParams
from dvsa.caption.features import CachedFeatures, FeatureSource, feature_stats
from dvsa.caption.generate import caption_rows, perplexity
from dvsa.caption.model import Captioner, language_model_nll, predicted_tokens
from dvsa.data.labels import Labels
from dvsa.data.loader import CaptionBatch, iterate_batches
from dvsa.data.rows import check_rows
from dvsa.data.vocab import decode
from dvsa.distributed import ONE_PROCESS, World, all_reduce_sum, average_gradients, barrier, data_parallel
from dvsa.errors import InputError, TrainingError
from dvsa.evaluate.coco import coco_scores
from dvsa.io import write_json
from dvsa.live import open_live
from dvsa.regions.store import RegionStore
from dvsa.train.interrupt import interrupt_requests
from dvsa.train.schedule import halving_lr, set_lr
from dvsa.train.state import ResumeKey, data_fingerprint, digest, load_resume, save_resume

LOG_EVERY = 10  # iterations per logged train-loss point (their mean)
CPU = torch.device("cpu")


RESUME_FORMAT = "dvsa.captioner.resume/1"


def learning_rate(params: CaptionerParams, iteration: int) -> float:
    """The LM's learning rate at `iteration`: eps0 * 2^(-(i - i0) / T) after i0 = learning_rate_decay_start."""
    return halving_lr(
        params.learning_rate, iteration, params.learning_rate_decay_start, params.learning_rate_decay_every
    )


@dataclass
class TrainState:
    """Everything besides the weights and optimizers that determines the rest of a training run."""

    iteration: int = 0  # iterations completed
    first_loss: float | None = None
    best_val: dict[str, float] | None = None
    best_iteration: int = 0
    best_state: dict[str, torch.Tensor] | None = None  # the LM's weights at the best validation
    best_cnn_state: dict[str, torch.Tensor] | None = None  # and the CNN encoder's, when finetuned
    history: list[dict[str, float]] = field(default_factory=list)  # logged train and val rows
    val_history: list[dict[str, Any]] = field(default_factory=list)  # each validation with its predictions
    window: list[float] = field(default_factory=list)  # train losses since the last logged row


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


def validate(
    model: Captioner, source: FeatureSource, labels: Labels, rows: np.ndarray, n_predictions: int
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Val loss (all captions of `rows`), CIDEr / BLEU-4 of greedy captions, and the first `n_predictions`
    (image id, caption) pairs, as neuraltalk2's val_predictions."""
    loss = math.log(perplexity(model, source, labels, rows))
    seqs = caption_rows(model, source, rows, method="greedy", max_length=labels.max_length).seqs
    refs = {int(i): [decode(c, labels.ix_to_word) for c in labels.captions(int(i))] for i in rows}
    hyps = {int(i): decode(s, labels.ix_to_word) for i, s in zip(rows, seqs)}
    scores = coco_scores(refs, hyps, meteor=False, ptb=False, warn=False)
    predictions = [{"image_id": labels.images[int(i)]["id"], "caption": hyps[int(i)]} for i in rows[:n_predictions]]
    model.train()
    return {"val/loss": loss, "val/CIDEr": scores["CIDEr"], "val/Bleu_4": scores["Bleu_4"]}, predictions


def _cpu_copy(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in state_dict.items()}


@dataclass
class Protos:
    """neuraltalk2's protos: the language model (with its encoder) and, when finetuning, the CNN, each with
    its own optimizer."""

    lm: Captioner
    lm_optim: torch.optim.Optimizer
    cnn: CaptionCNN | None = None
    cnn_optim: torch.optim.Optimizer | None = None
    lm_forward: torch.nn.Module | None = None  # the LM in DistributedDataParallel (data-parallel runs)

    def stateful(self) -> dict[str, Any]:
        """What a resume file restores: weights and optimizer moments (the CNN's encoder only)."""
        out: dict[str, Any] = {"model": self.lm, "optimizer": self.lm_optim}
        if self.cnn is not None and self.cnn_optim is not None:
            out.update(cnn=EncoderWeights(self.cnn), cnn_optimizer=self.cnn_optim)
        return out


@dataclass
class EncoderWeights:
    """The finetuned part of a CaptionCNN as a state_dict / load_state_dict pair (not the detector)."""

    cnn: CaptionCNN

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.cnn.encoder_state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.cnn.load_encoder_state_dict(state)


def make_protos(
    params: CaptionerParams,
    vocab_size: int,
    feat_dim: int,
    cnn: CaptionCNN | None,
    device: torch.device = CPU,
) -> Protos:
    """The LM and (when given) the CNN on `device`, each with its Adam."""
    if cnn is not None:
        cnn.to(device)
    lm = Captioner(
        vocab_size=vocab_size,
        feat_dim=feat_dim,
        image=params.image,
        rnn_type=params.rnn_type,
        rnn_size=params.rnn_size,
        num_layers=params.num_layers,
        input_encoding_size=params.input_encoding_size,
        att_size=params.att_size,
        drop_prob_lm=params.drop_prob_lm,
    ).to(device)
    lm_optim = torch.optim.Adam(
        lm.parameters(),
        lr=params.learning_rate,
        betas=(params.optim_alpha, params.optim_beta),
        eps=params.optim_epsilon,
    )
    cnn_optim = None
    if cnn is not None:
        cnn_optim = torch.optim.Adam(
            cnn.finetuned_parameters(),
            lr=params.cnn_learning_rate,
            betas=(params.cnn_optim_alpha, params.cnn_optim_beta),
            eps=params.optim_epsilon,
        )
    return Protos(lm, lm_optim, cnn, cnn_optim)


def finetuning(params: CaptionerParams, iteration: int) -> bool:
    """Whether the CNN is trained at `iteration` (0-based): from finetune_cnn_after on, never when -1."""
    return params.finetune_cnn_after >= 0 and iteration >= params.finetune_cnn_after


def l2_and_clamp(parameters: list[torch.nn.Parameter], weight_decay: float, grad_clip: float) -> None:
    """As train.lua: add the L2 gradient weight_decay * θ, then clamp each element to ±grad_clip."""
    for p in parameters:
        if p.grad is None:
            continue
        if weight_decay > 0:
            p.grad.add_(p.detach(), alpha=weight_decay)
        p.grad.clamp_(-grad_clip, grad_clip)


def train_step(
    protos: Protos,
    source: FeatureSource,
    batch: CaptionBatch,
    params: CaptionerParams,
    iteration: int,
    world: World = ONE_PROCESS,
) -> float:
    """One iteration of train.lua's lossFun + update: the CNN forward (backward only once finetuning), the
    LM forward / backward, L2 + clamp, and each optimizer at its decayed learning rate. In a data-parallel
    `world` this rank computes its share of `batch`. Returns the loss of the whole batch (on every rank)."""
    lm, cnn = protos.lm, protos.cnn
    tune = cnn is not None and finetuning(params, iteration)
    if cnn is not None:
        cnn.train(tune)
    step_seed = int(np.random.SeedSequence([params.seed, iteration]).generate_state(1)[0])
    torch.manual_seed(step_seed + world.rank)  # the dropout that BatchDropout does not cover (nn.LSTM's)
    rng = np.random.default_rng([params.seed, iteration, world.rank]) if cnn is not None else None  # augmentation
    mine = world.share(len(batch.image_ix))
    weight = 1.0
    if mine.start == mine.stop:  # fewer images than ranks: this rank runs one with no weight
        mine, weight = slice(0, 1), 0.0
    device = lm.logit.weight.device
    with torch.set_grad_enabled(tune):
        feats, mask = source(batch.image_ix[mine], rng)  # (b, R, D), (b, R)
    feats, mask = feats.to(device), mask.to(device)
    if tune:
        lm.feat_norm.track(feats.detach(), mask, params.feat_norm_momentum)
    length = max(int(batch.lengths.max()), 1)
    labels = batch.labels[:, :length]  # (B * S, L')
    caps = torch.from_numpy(labels[mine.start * params.seq_per_img : mine.stop * params.seq_per_img]).to(device)
    forward = protos.lm_forward or lm
    with lm.batch_rows(mine.start * params.seq_per_img, len(labels), step_seed):  # dropout as in one process
        nll = weight * language_model_nll(forward(feats, mask, caps, params.seq_per_img), caps)  # this rank's sum
    n_tokens = predicted_tokens(labels)  # of the whole batch
    value = float(all_reduce_sum(nll.detach().double().reshape(1)).item()) / n_tokens
    if not math.isfinite(value):
        return value
    protos.lm_optim.zero_grad(set_to_none=True)
    if protos.cnn_optim is not None:
        protos.cnn_optim.zero_grad(set_to_none=True)
    (nll * (world.size / n_tokens)).backward()  # DistributedDataParallel divides the summed gradients by size
    decay = learning_rate(params, iteration) / params.learning_rate  # the same decay for the LM and the CNN
    l2_and_clamp(list(lm.parameters()), params.weight_decay, params.grad_clip)
    set_lr(protos.lm_optim, params.learning_rate * decay)
    protos.lm_optim.step()
    if tune and cnn is not None and protos.cnn_optim is not None:
        average_gradients(cnn.finetuned_parameters())
        l2_and_clamp(cnn.finetuned_parameters(), params.cnn_weight_decay, params.grad_clip)
        set_lr(protos.cnn_optim, params.cnn_learning_rate * decay)
        protos.cnn_optim.step()
    return value


def train_captioner(
    params: CaptionerParams,
    labels: Labels,
    store: RegionStore,
    model_path: str | os.PathLike[str],
    resume_path: str | os.PathLike[str],
    log_dir: str | os.PathLike[str],
    inputs: str = "",
    cnn: CaptionCNN | None = None,
    image_paths: list[Path] | None = None,
    device: torch.device = CPU,
    on_iteration: Callable[[int], None] | None = None,
    progress: bool = True,
    features: FeatureSource | None = None,
    world: World = ONE_PROCESS,
) -> dict[str, Any]:
    """Train, write the best-val-CIDEr checkpoint to `model_path`; return its summary.

    With `cnn` (and the dataset's `image_paths`, one per row) the regions are encoded from pixels by the CNN,
    which is finetuned from ``finetune_cnn_after`` on; without, the cached features of regions.h5 are used.
    A resume file is used when it was made with the same params and the same labels and regions (by content)
    and `inputs` (a fingerprint of any other input, e.g. the region CNN's file). `on_iteration(i)` is called
    after iteration i (1-based) completes. `features` (a feature source with a ``dim``, e.g. one region per
    row for the region captioner of §4.3) replaces all the regions of `store`: row i of `labels` is then row
    i of `features`, not of regions.h5. In a data-parallel `world` (inside dvsa.distributed.process_group) every
    rank calls this; rank 0 writes the files and returns the summary, the others return an empty dict.
    """
    resume_path, log_dir = Path(resume_path), Path(log_dir)
    val_rows = labels.split_indices("val")[: params.val_images]
    if len(val_rows) == 0:
        raise InputError("labels: no images in the val split")
    if features is None:
        check_rows(labels, store, str(store.path))
    if params.threads:
        torch.set_num_threads(params.threads)
    torch.manual_seed(params.seed)
    cached = features if features is not None else CachedFeatures(store, params.region_geometry)
    protos = make_protos(params, labels.vocab_size, cached.dim, cnn, device)
    model = protos.lm
    if params.feat_norm == "standardize":
        model.feat_norm.set(*feature_stats(cached, labels.split_indices("train"), whole=params.image == "whole"))
    source: FeatureSource = cached
    if cnn is not None:
        if features is not None:
            raise InputError("train_captioner: finetuning the CNN reads all the regions of regions.h5, not `features`")
        if image_paths is None or len(image_paths) != len(store):
            raise InputError("train_captioner: finetuning the CNN needs one image path per row of regions.h5")
        source = PixelFeatures(
            cnn, image_paths, store, params.region_geometry, params.augment_crop, params.augment_brightness
        )
    if cnn is not None and cnn.net.fc7_dim != store.dim:
        raise InputError(f"{store.path}: {store.dim}-d features, but the CNN to finetune gives {cnn.net.fc7_dim}-d")
    key = ResumeKey(RESUME_FORMAT, params.to_dict(), digest(data_fingerprint(labels, store), inputs))
    st = TrainState()
    resumed = load_resume(resume_path, key, st, protos.stateful(), log=world.say(print))
    if resumed and world.main:
        print(f"{resume_path}: resuming at iteration {st.iteration}")
    protos.lm_forward = data_parallel(model, world)

    live = open_live(log_dir) if world.main else None
    for record in st.history:
        _log(live, record)

    batches = EpochBatches(labels, params)
    model.train()
    bar = tqdm(total=params.max_iters, initial=st.iteration, desc="train captioner", unit="it",
               disable=not (progress and world.main))
    try:
        with interrupt_requests() as interrupted:
            while st.iteration < params.max_iters:
                it = st.iteration
                loss = train_step(protos, source, batches.at(it), params, it, world)
                st.iteration = it + 1
                if st.first_loss is None:
                    st.first_loss = loss
                if not math.isfinite(loss) or loss > params.explode_factor * st.first_loss:
                    raise TrainingError(
                        f"the loss exploded at iteration {it + 1}: {loss:.4g} (first loss {st.first_loss:.4g}); "
                        f"lower captioner.learning_rate ({params.learning_rate:g}) or captioner.grad_clip "
                        f"({params.grad_clip:g})"
                    )
                st.window.append(loss)
                if len(st.window) == LOG_EVERY or st.iteration == params.max_iters:
                    record = {
                        "step": st.iteration,
                        "train/loss": float(np.mean(st.window)),
                        "train/lr": learning_rate(params, it),
                    }
                    st.window = []
                    st.history.append(record)
                    _log(live, record)
                    bar.set_postfix(loss=f"{record['train/loss']:.3f}")
                if world.main and (st.iteration % params.val_every == 0 or st.iteration == params.max_iters):
                    if cnn is not None:
                        cnn.eval()
                    val, predictions = validate(model, source, labels, val_rows, params.val_predictions)
                    record = {"step": st.iteration, **val}
                    st.history.append(record)
                    st.val_history.append({**record, "predictions": predictions})
                    _log(live, record)
                    if st.best_val is None or val["val/CIDEr"] > st.best_val["val/CIDEr"]:
                        st.best_val, st.best_iteration = val, st.iteration
                        st.best_state = _cpu_copy(model.state_dict())
                        st.best_cnn_state = cnn.encoder_state_dict() if cnn is not None else None
                    save_resume(resume_path, key, st, protos.stateful())
                    write_history(log_dir / HISTORY, st)
                if st.iteration % params.val_every == 0:
                    barrier()  # the others wait for rank 0's validation
                bar.update(1)
                if on_iteration is not None:
                    on_iteration(st.iteration)
                if _agreed(interrupted.requested, world):
                    if world.main:
                        save_resume(resume_path, key, st, protos.stateful())
                    barrier()  # torchrun stops every rank as soon as one exits: not before rank 0 has saved
                    raise KeyboardInterrupt
    except TrainingError:
        if world.main:
            resume_path.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    if not world.main:
        return {}

    summary = {
        "iteration": st.best_iteration,
        "val": st.best_val,
        "resumed": resumed,
        "first_loss": st.first_loss,
    }
    live.summary["best"] = {"iteration": st.best_iteration, **{k[4:]: v for k, v in st.best_val.items()}}
    live.end()
    write_history(log_dir / HISTORY, st)
    save_checkpoint(
        model_path,
        {
            "state_dict": st.best_state,
            "config": model.config,
            "params": params.to_dict(),
            "vocab": {str(k): w for k, w in labels.ix_to_word.items()},
            "max_length": labels.max_length,
            "iteration": st.best_iteration,
            "val": st.best_val,
            "history": st.history,
            **({"cnn": st.best_cnn_state} if cnn is not None else {}),
        },
    )
    resume_path.unlink(missing_ok=True)
    return summary


HISTORY = "history.json"


def write_history(path: Path, st: TrainState) -> None:
    """neuraltalk2's checkpoint json: the train loss curve and every validation with its val_predictions."""
    write_json(
        path,
        {
            "loss_history": {str(r["step"]): r["train/loss"] for r in st.history if "train/loss" in r},
            "val_history": st.val_history,
            "best_iteration": st.best_iteration,
        },
    )


def _agreed(requested: bool, world: World) -> bool:
    """Whether any rank was asked to stop (SIGINT / SIGTERM): every rank then stops at the same iteration."""
    if world.size == 1:
        return requested
    return bool(all_reduce_sum(torch.tensor([float(requested)])).item() > 0)



def _log(live: Live | None, record: dict[str, float]) -> None:
    if live is None:
        return
    live.step = int(record["step"])
    for name, value in record.items():
        if name != "step":
            live.log_metric(name, value)
    live.next_step()
