"""Training the shapes region CNN on the world's object classes, as R-CNN was finetuned on detection:
proposals labelled by IoU with the true boxes (which are labels only, never inputs of the features).

Losses (Faster R-CNN, approximate joint training): RPN objectness + RPN box regression on sampled anchors,
and the Fast R-CNN head's softmax over K classes + background + smooth-L1 box regression on foreground RoIs.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from dvsa.data.images import load_rgb
from dvsa.errors import TrainingError
from dvsa.regions.boxes import encode_deltas, hflip_boxes, label_proposals, scale_boxes
from dvsa.regions.config import RegionsParams, TrainParams
from dvsa.regions.data import ImageRecord, object_classes
from dvsa.regions.metrics import object_accuracy
from dvsa.regions.shapes_net import ShapesRegionCNN

LogFn = Callable[[int, dict[str, float]], None]
CPU = torch.device("cpu")


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


def train_region_cnn(
    records: Sequence[ImageRecord],
    params: RegionsParams,
    log: LogFn | None = None,
    device: torch.device = CPU,
) -> tuple[ShapesRegionCNN, dict[str, float]]:
    """Train on the train split (on `device`); after each epoch, `log(epoch, metrics)` with the mean losses
    and the detector accuracy on val. Returns the model and the last epoch's metrics."""
    tp = params.train
    torch.manual_seed(params.seed)
    gen = torch.Generator().manual_seed(params.seed)
    rng = np.random.default_rng(params.seed)
    train = [r for r in records if r.split == "train"]
    val = [r for r in records if r.split == "val"]
    classes = object_classes(records, "train")
    index = {c: k + 1 for k, c in enumerate(classes)}
    model = ShapesRegionCNN(params.net, classes, tp.rpn_batch_per_image, tp.rpn_proposals).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=tp.lr, weight_decay=tp.weight_decay)
    n_steps = -(-len(train) // tp.batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=tp.epochs * n_steps)
    metrics: dict[str, float] = {}
    for epoch in range(tp.epochs):
        model.train()
        sums: dict[str, float] = defaultdict(float)
        order = rng.permutation(len(train))
        bar = tqdm(range(n_steps), desc=f"region_cnn epoch {epoch + 1}/{tp.epochs}", unit="step")
        for step in bar:
            chunk = [train[j] for j in order[step * tp.batch_size : (step + 1) * tp.batch_size]]
            x, boxes, labels = load_batch(model, chunk, index, tp.hflip, rng)
            x, boxes, labels = x.to(device), [b.to(device) for b in boxes], [c.to(device) for c in labels]
            losses, accuracy = training_losses(model, x, boxes, labels, tp, gen)
            loss = sum(losses.values())
            value = float(loss.detach())
            if not math.isfinite(value):
                raise TrainingError(
                    f"region_cnn: the loss became {value} at epoch {epoch + 1}, step {step + 1} "
                    "(lower regions.train.lr)"
                )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            for k, v in losses.items():
                sums[k] += float(v.detach())
            sums["loss"] += value
            sums["train_roi_accuracy"] += accuracy
            bar.set_postfix(loss=f"{value:.3f}")
        metrics = {k: v / n_steps for k, v in sums.items()}
        if val:
            metrics["val_object_accuracy"] = object_accuracy(model, val)
        if log is not None:
            log(epoch, metrics)
    model.eval()
    return model, metrics
