"""Training the shapes region CNN on the world's object classes, as R-CNN was finetuned on detection:
proposals labelled by IoU with the true boxes (which are labels only, never inputs of the features). The
trainer of the shared loop (dvsa.train.loop; docs/design.md, "Trainer contract").

Losses (Faster R-CNN, approximate joint training): RPN objectness + RPN box regression on sampled anchors,
and the Fast R-CNN head's softmax over K classes + background + smooth-L1 box regression on foreground RoIs.
Adam with L2 weight decay, the learning rate annealed to 0 by a cosine over the run; the val object accuracy
after every epoch picks the kept weights. Epoch e's image order is seeded by (seed, e), iteration i's flips
and RoI samples by (seed, i): a resumed run goes on exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from dvsa.data.images import load_rgb
from dvsa.hashing import digest, stat_digest
from dvsa.regions.boxes import encode_deltas, hflip_boxes, label_proposals, scale_boxes
from dvsa.regions.checkpoint import MODEL_FORMAT, payload
from dvsa.regions.config import RegionsParams, TrainParams
from dvsa.regions.data import ImageRecord, object_classes
from dvsa.regions.metrics import object_accuracy
from dvsa.regions.shapes_net import ShapesRegionCNN
from dvsa.train.loop import Files, Group, LoopState, Plan, Step, Validation, step_rng, step_seed, train
from dvsa.train.resume import ResumeKey, Stateful
from dvsa.train.schedule import cosine_lr

CPU = torch.device("cpu")
RESUME_FORMAT = "dvsa.region_cnn.resume/1"


def sample_rois(labels: torch.Tensor, n: int, fg_fraction: float, gen: torch.Generator) -> torch.Tensor:
    """Indices of at most n labelled proposals, at most fg_fraction of them foreground (label > 0);
    ignored ones (label -1) are never picked."""
    fg = torch.nonzero(labels > 0).flatten()
    bg = torch.nonzero(labels == 0).flatten()
    n_fg = min(int(round(n * fg_fraction)), len(fg))
    n_bg = min(n - n_fg, len(bg))
    fg = fg[torch.randperm(len(fg), generator=gen)[:n_fg]]
    bg = bg[torch.randperm(len(bg), generator=gen)[:n_bg]]
    return torch.cat([fg, bg])


def training_losses(
    model: ShapesRegionCNN,
    x: torch.Tensor,  # (B, 3, S, S) in [0, 1]
    gt_boxes: list[torch.Tensor],  # (G_i, 4) network pixels
    gt_labels: list[torch.Tensor],  # (G_i,) classes 1..K
    tp: TrainParams,
    gen: torch.Generator,
) -> tuple[dict[str, torch.Tensor], float]:
    """The four losses of one batch and the head's accuracy on its sampled RoIs."""
    fmap = model.trunk_features(x)  # (B, C, S/8, S/8)
    proposals, rpn_losses = model.proposals(x, fmap, [{"boxes": b} for b in gt_boxes])
    rois, labels, targets = [], [], []
    for props, boxes, classes in zip(proposals, gt_boxes, gt_labels):
        props = torch.cat([props, boxes])  # the true boxes join the proposals, as in Fast R-CNN training
        lab, matched = label_proposals(props, boxes, classes, tp.fg_iou, tp.bg_iou)
        idx = sample_rois(lab, tp.rois_per_image, tp.fg_fraction, gen)
        lab, props, matched = lab[idx], props[idx], matched[idx]
        t = torch.zeros_like(props)
        fg = lab > 0
        t[fg] = encode_deltas(props[fg], matched[fg])
        rois.append(props)
        labels.append(lab)
        targets.append(t)
    _, logits, deltas = model.head(fmap, rois)  # (R, K + 1), (R, 4)
    label = torch.cat(labels)  # (R,)
    target = torch.cat(targets)  # (R, 4)
    fg = label > 0
    losses = {
        "rpn_objectness": rpn_losses["loss_objectness"],
        "rpn_box": rpn_losses["loss_rpn_box_reg"],
        "cls": F.cross_entropy(logits, label),
        "box": F.smooth_l1_loss(deltas[fg], target[fg], beta=1 / 9, reduction="sum") / max(len(label), 1),
    }
    accuracy = float((logits.argmax(1) == label).float().mean()) if len(label) else math.nan
    return losses, accuracy


def load_batch(
    model: ShapesRegionCNN, chunk: Sequence[ImageRecord], index: dict[str, int], hflip: bool, rng: np.random.Generator
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """Images (B, 3, S, S) and their true boxes (network pixels) and classes, randomly flipped."""
    prepared = model.prepare([load_rgb(r.path) for r in chunk])
    x = torch.stack(prepared.images)
    size = x.shape[3]
    boxes, labels = [], []
    for i, r in enumerate(chunk):
        sx, sy = prepared.scale(i)
        b = scale_boxes(torch.from_numpy(r.boxes), 1 / sx, 1 / sy)
        if hflip and rng.random() < 0.5:
            x[i] = x[i].flip(-1)
            b = hflip_boxes(b, size)
        boxes.append(b)
        labels.append(torch.tensor([index[label] for label in r.labels], dtype=torch.int64))
    return x, boxes, labels


class RegionCNNTrainer:
    """What the region CNN brings to the loop."""

    name = "region_cnn"

    def __init__(self, records: Sequence[ImageRecord], params: RegionsParams, device: torch.device = CPU) -> None:
        tp = params.train
        torch.manual_seed(params.seed)
        self.params, self.device = params, device
        self.train_set = [r for r in records if r.split == "train"]
        self.val_set = [r for r in records if r.split == "val"]
        classes = object_classes(records, "train")
        self.index = {c: k + 1 for k, c in enumerate(classes)}
        self.model = ShapesRegionCNN(params.net, classes, tp.rpn_batch_per_image, tp.rpn_proposals).to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=tp.lr, weight_decay=tp.weight_decay)
        self.per_epoch = -(-len(self.train_set) // tp.batch_size)
        self.iterations = tp.epochs * self.per_epoch
        self.groups = [Group(list(self.model.parameters()), self.optimizer,
                             lambda i: cosine_lr(tp.lr, i, self.iterations))]

    def step(self, iteration: int) -> Step:
        tp, seed = self.params.train, self.params.seed
        epoch, pos = divmod(iteration, self.per_epoch)
        order = np.random.default_rng([seed, epoch]).permutation(len(self.train_set))
        chunk = [self.train_set[j] for j in order[pos * tp.batch_size : (pos + 1) * tp.batch_size]]
        self.model.train()
        x, boxes, labels = load_batch(self.model, chunk, self.index, tp.hflip, step_rng(seed, iteration))
        x, boxes, labels = x.to(self.device), [b.to(self.device) for b in boxes], [c.to(self.device) for c in labels]
        gen = torch.Generator().manual_seed(step_seed(seed, iteration))
        losses, accuracy = training_losses(self.model, x, boxes, labels, tp, gen)
        loss = sum(losses.values())
        logged = {k: float(v.detach()) for k, v in losses.items()} | {"roi_accuracy": accuracy}
        return Step(loss, float(loss.detach()), logged)

    def validate(self) -> Validation:
        accuracy = object_accuracy(self.model, self.val_set)
        return Validation({"val/object_accuracy": accuracy}, accuracy)

    def weights(self) -> dict[str, dict[str, torch.Tensor]]:
        return {"model": self.model.state_dict()}

    def stateful(self) -> dict[str, Stateful]:
        return {"model": self.model, "optimizer": self.optimizer}

    def model_file(self, st: LoopState) -> tuple[str, dict[str, Any]]:
        """models/region_cnn.pt (dvsa.regions.checkpoint): the best epoch's weights and what rebuilds them."""
        last_train = next((r for r in reversed(st.history) if "train/loss" in r), {})
        training = {"iteration": st.best_iteration, "metrics": {**last_train, **st.best_metrics}}
        return MODEL_FORMAT, payload(self.model, self.params, training, st.best_weights["model"])


def records_digest(records: Sequence[ImageRecord]) -> str:
    """What the region CNN learns from: each image's file (path, size, time), split, true boxes and labels."""
    described = (repr((str(r.path), r.split, r.labels, r.boxes.tolist())) for r in records)
    return digest(*described, stat_digest([r.path for r in records], list(range(len(records)))))


def train_region_cnn(
    records: Sequence[ImageRecord],
    params: RegionsParams,
    files: Files,
    device: torch.device = CPU,
    on_iteration: Callable[[int], None] | None = None,
    progress: bool = True,
) -> LoopState:
    """Train on the train split (on `device`), validate the detector's object accuracy on val after each
    epoch, and write `files.model` with the best epoch's weights (the last ones without a val split)."""
    trainer = RegionCNNTrainer(records, params, device)
    key = ResumeKey(RESUME_FORMAT, params.to_dict(), records_digest(records))
    plan = Plan(trainer.iterations, trainer.per_epoch if trainer.val_set else 0, trainer.per_epoch, params.seed,
                lower=f"regions.train.lr ({params.train.lr:g})")
    st, _ = train(trainer, plan, files, key, progress=progress, on_iteration=on_iteration)
    return st
