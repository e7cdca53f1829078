"""neuraltalk2's captioner trainer (train.lua) on the shared loop (dvsa.train.loop; docs/design.md, "Trainer
contract"): protos.cnn -> the LM -> the criterion.

The image is the regions of regions.h5: their cached features when the CNN is frozen
(``finetune_cnn_after: -1``), or the region CNN run on the (augmented) pixels, trained from iteration
``finetune_cnn_after`` on with its own Adam (cnn_learning_rate, cnn_optim_alpha / beta) and its own L2
(cnn_weight_decay). Features are standardised with the train split's statistics (``feat_norm``), which follow
the CNN while it is finetuned. The LM: Adam (beta1 = optim_alpha, beta2 = optim_beta), dropout, L2
(weight_decay) then each gradient element clamped to ±grad_clip (both nets), and the learning-rate decay
eps = eps0 * 2^(-(i - i0) / T) after iteration i0 (both nets). Every ``val_every`` iterations: the loss on
the first ``val_images`` val images and the CIDEr / BLEU-4 of their greedy captions (fast path: no Java),
kept with ``val_predictions`` captions in history.json; the weights with the best val CIDEr are kept. A loss
that is not finite or exceeds ``explode_factor`` x the first loss stops training with a TrainingError.

Data-parallel (torchrun, dvsa.distributed): every rank draws the same global batch and takes its share of the
images (and their captions); the LM is wrapped in DistributedDataParallel, the CNN's gradients are averaged by
the loop (its group has ``reduce``), and each rank's loss is its -log p sum over the whole batch's token count,
so the averaged gradient (and then L2, the clamp and Adam) is that of one process on the same batch. The
dropout masks are drawn for the whole batch and cut per rank (model.BatchDropout); the augmentation of the
finetuned CNN draws from an RNG seeded by (seed, iteration, rank).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dvsa.caption.checkpoint import MODEL_FORMAT
from dvsa.caption.cnn import CaptionCNN, PixelFeatures
from dvsa.caption.config import CaptionerParams
from dvsa.caption.evaluation import validate
from dvsa.caption.mirror import Mirror
from dvsa.caption.model import Captioner, language_model_nll, predicted_tokens
from dvsa.caption.self_critical import Reward, sc_learning_rate, self_critical, self_critical_loss
from dvsa.data.labels import Labels
from dvsa.data.loader import CaptionBatch, EpochBatches
from dvsa.device import to_device
from dvsa.distributed import ONE_PROCESS, World, all_reduce_sum, data_parallel
from dvsa.errors import InputError
from dvsa.features import CachedFeatures, FeatureSource, check_feature_dim, check_rows, feature_stats
from dvsa.features.fingerprint import data_fingerprint
from dvsa.hashing import digest
from dvsa.metrics.cider_d import DocumentFrequencies
from dvsa.regions.store import RegionStore
from dvsa.train.loop import Files, Group, LoopState, Plan, Step, Validation, step_rng, step_seed, train, update
from dvsa.train.resume import ResumeKey, Stateful
from dvsa.train.schedule import halving_lr

CPU = torch.device("cpu")
LOG_EVERY = 10  # iterations per logged train-loss point (their mean)
RESUME_FORMAT = "dvsa.captioner.resume/2"


def learning_rate(params: CaptionerParams, iteration: int) -> float:
    """The LM's learning rate at `iteration`: eps0 * 2^(-(i - i0) / T) after i0 = learning_rate_decay_start;
    in the self-critical phase, its own rate and decay (dvsa.caption.self_critical.sc_learning_rate)."""
    if self_critical(params, iteration):
        return sc_learning_rate(params, iteration)
    return halving_lr(
        params.learning_rate, iteration, params.learning_rate_decay_start, params.learning_rate_decay_every
    )


@dataclass
class Protos:
    """neuraltalk2's protos: the language model (with its encoder) and, when finetuning, the CNN, each with
    its own optimizer."""

    lm: Captioner
    lm_optim: torch.optim.Optimizer
    cnn: CaptionCNN | None = None
    cnn_optim: torch.optim.Optimizer | None = None
    lm_forward: torch.nn.Module | None = None  # the LM in DistributedDataParallel (data-parallel runs)

    def stateful(self) -> dict[str, Stateful]:
        """What a resume file restores: weights and optimizer moments (the CNN's encoder only)."""
        out: dict[str, Stateful] = {"model": self.lm, "optimizer": self.lm_optim}
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
    params: CaptionerParams, vocab_size: int, feat_dim: int, cnn: CaptionCNN | None, device: torch.device = CPU
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
        relative_geometry=params.relative_geometry,
        coverage=params.coverage,
        pair_attention=params.pair_attention,
    ).to(device)
    betas = (params.optim_alpha, params.optim_beta)
    lm_optim = torch.optim.Adam(lm.parameters(), lr=params.learning_rate, betas=betas, eps=params.optim_epsilon)
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


def groups(protos: Protos, params: CaptionerParams) -> list[Group]:
    """The LM's and (when finetuned) the CNN's parameters, each with its Adam, L2, the clamp, and the LM's decay."""

    def decay(i: int) -> float:  # the same decay for the LM and the CNN
        return learning_rate(params, i) / params.learning_rate

    out = [Group(list(protos.lm.parameters()), protos.lm_optim, lambda i: params.learning_rate * decay(i),
                 l2=params.weight_decay, clamp=params.grad_clip)]
    if protos.cnn is not None and protos.cnn_optim is not None:
        out.append(Group(protos.cnn.finetuned_parameters(), protos.cnn_optim,
                         lambda i: params.cnn_learning_rate * decay(i), l2=params.cnn_weight_decay,
                         clamp=params.grad_clip, active=lambda i: finetuning(params, i), reduce=True))
    return out


@dataclass
class RankInputs:
    """This rank's share of a batch's images and their regions, as every loss of a step needs them."""

    mine: slice  # this rank's images of the batch
    weight: float  # 0 on a rank with no image of its own (it runs image 0 for nothing)
    feats: torch.Tensor  # (b, R, D), with gradients into the CNN once it is finetuned
    mask: torch.Tensor  # (b, R) real regions
    seed: int  # the step's seed (dropout masks)


def rank_inputs(protos: Protos, source: FeatureSource, batch: CaptionBatch, params: CaptionerParams,
                iteration: int, world: World = ONE_PROCESS) -> RankInputs:
    """train.lua's protos.cnn forward for this rank's share of `batch`: gradients only once finetuning, the
    feature statistics tracked while the CNN changes, the augmentation drawn from (seed, iteration, rank)."""
    lm, cnn = protos.lm, protos.cnn
    tune = cnn is not None and finetuning(params, iteration)
    if cnn is not None:
        cnn.train(tune)
    seed = step_seed(params.seed, iteration)
    torch.manual_seed(seed + world.rank)  # the dropout that BatchDropout does not cover (nn.LSTM's)
    rng = step_rng(params.seed, iteration, world.rank) if cnn is not None else None  # augmentation
    mine = world.share(len(batch.image_ix))
    weight = 1.0
    if mine.start == mine.stop:  # fewer images than ranks: this rank runs one with no weight
        mine, weight = slice(0, 1), 0.0
    device = lm.logit.weight.device
    with torch.set_grad_enabled(tune):
        feats, mask = source(batch.image_ix[mine], rng)  # (b, R, D), (b, R)
    feats, mask = to_device(feats, device), to_device(mask, device)
    if tune:
        lm.feat_norm.track(feats.detach(), mask, params.feat_norm_momentum, reduce=all_reduce_sum)
    return RankInputs(mine, weight, feats, mask, seed)


def caption_loss(
    protos: Protos,
    source: FeatureSource,
    batch: CaptionBatch,
    params: CaptionerParams,
    iteration: int,
    world: World = ONE_PROCESS,
    mirror: Mirror | None = None,
) -> Step:
    """train.lua's lossFun: the CNN forward (with gradients only once finetuning), the LM forward and its
    -log p over the whole batch's tokens, on scenes mirrored by `mirror` when given. In a data-parallel `world`
    this rank computes its share of `batch`; the value is the whole batch's loss (on every rank)."""
    x = rank_inputs(protos, source, batch, params, iteration, world)
    lm = protos.lm
    lm.train()
    length = max(int(batch.lengths.max()), 1)
    labels = batch.labels[:, :length]  # (B * S, L')
    start, stop = x.mine.start * params.seq_per_img, x.mine.stop * params.seq_per_img
    caps = to_device(torch.from_numpy(labels[start:stop]), x.feats.device)
    feats = x.feats
    if mirror is not None:
        flips = mirror.draw(len(batch.image_ix), params.seed, iteration)[x.mine]  # (b, 2): the global batch's, cut
        feats, caps = mirror.boxes(feats, x.mask, flips), mirror.captions(caps, flips, params.seq_per_img)
    forward = protos.lm_forward or lm
    with lm.batch_rows(start, len(labels), x.seed):  # dropout as in one process
        nll = x.weight * language_model_nll(forward(feats, x.mask, caps, params.seq_per_img), caps)  # this rank's sum
    n_tokens = predicted_tokens(labels)  # of the whole batch
    value = float(all_reduce_sum(nll.detach().double().reshape(1)).item()) / n_tokens
    return Step(nll * (world.size / n_tokens), value)  # DistributedDataParallel divides the summed gradients by size


def sc_loss(protos: Protos, source: FeatureSource, batch: CaptionBatch, params: CaptionerParams, iteration: int,
            reward: Reward, max_length: int, world: World = ONE_PROCESS) -> Step:
    """The self-critical phase's loss (dvsa.caption.self_critical) on this rank's share of `batch`."""
    x = rank_inputs(protos, source, batch, params, iteration, world)
    return self_critical_loss(protos.lm, protos.lm_forward or protos.lm, x.feats, x.mask, batch, x.mine, x.weight,
                              reward, params, iteration, max_length, world)


class CaptionerTrainer:
    """What the captioner brings to the loop: its protos, batches, loss, validation and model file."""

    name = "captioner"

    def __init__(self, params: CaptionerParams, labels: Labels, protos: Protos, source: FeatureSource,
                 fc7_dim: int, world: World, cider_df: DocumentFrequencies | None = None) -> None:
        self.params, self.labels, self.protos, self.source, self.fc7_dim, self.world = (
            params, labels, protos, source, fc7_dim, world)
        self.val_rows = labels.split_indices("val")[: params.val_images]
        if len(self.val_rows) == 0:
            raise InputError("labels: no images in the val split")
        self.batches = EpochBatches(labels, "train", params.batch_size, params.seq_per_img, params.seed)
        self.groups = groups(protos, params)
        self.reward = Reward(labels, params, cider_df) if 0 <= params.self_critical_after < params.max_iters else None
        self.mirror = Mirror(labels.ix_to_word, params.mirror_prob) if params.mirror_prob > 0 else None

    def step(self, iteration: int) -> Step:
        batch = self.batches.at(iteration)
        if self.reward is not None and self_critical(self.params, iteration):
            return sc_loss(self.protos, self.source, batch, self.params, iteration, self.reward,
                           self.labels.max_length, self.world)
        return caption_loss(self.protos, self.source, batch, self.params, iteration, self.world, self.mirror)

    def validate(self) -> Validation:
        if self.protos.cnn is not None:
            self.protos.cnn.eval()
        metrics, predictions = validate(self.protos.lm, self.source, self.labels, self.val_rows,
                                        self.params.val_predictions)
        return Validation(metrics, metrics["val/CIDEr"], predictions)

    def weights(self) -> dict[str, dict[str, torch.Tensor]]:
        out = {"lm": self.protos.lm.state_dict()}
        if self.protos.cnn is not None:
            out["cnn"] = self.protos.cnn.encoder_state_dict()
        return out

    def stateful(self) -> dict[str, Stateful]:
        return self.protos.stateful()

    def model_file(self, st: LoopState) -> tuple[str, dict[str, Any]]:
        """models/captioner.pt (dvsa.caption.checkpoint): the best validation's weights and what rebuilds them."""
        lm = self.protos.lm
        return MODEL_FORMAT, {
            "state_dict": st.best_weights["lm"],
            "config": lm.config,
            "features": {"dim": self.fc7_dim, "geometry": self.params.region_geometry},
            "params": self.params.to_dict(),
            "vocab": {str(k): w for k, w in self.labels.ix_to_word.items()},
            "max_length": self.labels.max_length,
            "iteration": st.best_iteration,
            "val": st.best_metrics,
            "history": st.history,
            **({"cnn": st.best_weights["cnn"]} if "cnn" in st.best_weights else {}),
        }


def build_trainer(
    params: CaptionerParams,
    labels: Labels,
    store: RegionStore,
    cnn: CaptionCNN | None = None,
    image_paths: list[Path] | None = None,
    device: torch.device = CPU,
    features: FeatureSource | None = None,
    world: World = ONE_PROCESS,
    cider_df: DocumentFrequencies | None = None,
) -> CaptionerTrainer:
    """The captioner's setup, apart from the loop (the benchmarks time its steps).

    With `cnn` (and the dataset's `image_paths`, one per row) the regions are encoded from pixels by the CNN,
    which is finetuned from ``finetune_cnn_after`` on; without, the cached features of regions.h5 are used.
    `features` (a feature source, e.g. one region per row for the region captioner of §4.3) replaces all the
    regions of `store`: row i of `labels` is then row i of `features`, not of regions.h5. `cider_df`: the
    self-critical reward's document frequencies (computed from `labels`' train references when not given).
    """
    if features is None:
        check_rows(labels, store, str(store.path))
    if params.threads:
        torch.set_num_threads(params.threads)
    torch.manual_seed(params.seed)
    cached = features if features is not None else CachedFeatures(store, params.region_geometry)
    protos = make_protos(params, labels.vocab_size, cached.dim, cnn, device)
    if params.feat_norm == "standardize":
        stats = feature_stats(cached, labels.split_indices("train"), whole=params.image == "whole")
        protos.lm.feat_norm.set(*stats)
    source: FeatureSource = cached
    if cnn is not None:
        if features is not None:
            raise InputError("train_captioner: finetuning the CNN reads all the regions of regions.h5, not `features`")
        if image_paths is None or len(image_paths) != len(store):
            raise InputError("train_captioner: finetuning the CNN needs one image path per row of regions.h5")
        check_feature_dim(store.dim, cnn.net.fc7_dim, str(store.path), "the CNN to finetune")
        source = PixelFeatures(
            cnn, image_paths, store, params.region_geometry, params.augment_crop, params.augment_brightness
        )
    protos.lm_forward = data_parallel(protos.lm, world)
    return CaptionerTrainer(params, labels, protos, source, store.dim, world, cider_df)


def train_step(
    protos: Protos, source: FeatureSource, batch: CaptionBatch, params: CaptionerParams, iteration: int,
    world: World = ONE_PROCESS,
) -> float:
    """One iteration outside the loop (tests, benchmarks): the loss, then the loop's update."""
    step = caption_loss(protos, source, batch, params, iteration, world)
    update(groups(protos, params), step.loss, iteration)
    return step.value


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
    cider_df: DocumentFrequencies | None = None,
) -> dict[str, Any]:
    """Train, write the best-val-CIDEr checkpoint to `model_path`; return its summary.

    A resume file is used when it was made with the same params, labels and regions (by content), code, and
    `inputs` (a fingerprint of any other input, e.g. the region CNN's file). In a data-parallel `world` every
    rank calls this; rank 0 writes the files and returns the summary, the others return an empty dict.
    """
    trainer = build_trainer(params, labels, store, cnn, image_paths, device, features, world, cider_df)
    key = ResumeKey(RESUME_FORMAT, params.to_dict(), digest(data_fingerprint(labels, store), inputs))
    plan = Plan(params.max_iters, params.val_every, LOG_EVERY, params.seed, params.explode_factor,
                lower=f"captioner.learning_rate ({params.learning_rate:g}) or captioner.grad_clip ({params.grad_clip:g})")
    files = Files(Path(model_path), Path(resume_path), Path(log_dir))
    st, resumed = train(trainer, plan, files, key, world, progress=progress, on_iteration=on_iteration)
    if not world.main:
        return {}
    return {"iteration": st.best_iteration, "val": st.best_metrics, "resumed": resumed, "first_loss": st.first_loss}
