"""neuraltalk2's protos.cnn for the captioner: the region CNN of models/region_cnn.pt (conv trunk, RoIAlign,
fc6 -> fc7) encoding the boxes of regions.h5 from pixels, so that the captioner can finetune it.

The detector parts (RPN, class scores, box regression, the COCO detector) are not part of it: the regions
stay those of regions.h5, only their features move. BatchNorm layers stay in eval mode (their statistics are
frozen, as is usual when finetuning on small batches). Training images are augmented by a small random crop
and a brightness jitter, never a horizontal flip (the captions say left and right).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageEnhance
from torch import Tensor, nn

from dvsa.data.images import load_rgb
from dvsa.features import CachedFeatures, feature_dim, with_geometry
from dvsa.regions.boxes import scale_boxes
from dvsa.regions.checkpoint import load_region_cnn
from dvsa.regions.model import RegionCNN
from dvsa.regions.store import RegionStore

# the submodules that compute fc7 of a box, per region CNN kind: the finetuned parameters
ENCODER_MODULES = {"shapes": ("trunk", "head.fc6", "head.fc7"), "pretrained": ("trunk", "fc")}


class CaptionCNN(nn.Module):
    """fc7 features of given boxes of given images, differentiable with respect to the encoder's weights."""

    def __init__(self, region_cnn: RegionCNN) -> None:
        super().__init__()
        if region_cnn.kind not in ENCODER_MODULES:
            raise ValueError(f"no encoder modules known for region CNN kind {region_cnn.kind!r}")
        self.net = region_cnn
        self.net.requires_grad_(False)
        for p in self.finetuned_parameters():
            p.requires_grad_(True)

    def finetuned_parameters(self) -> list[nn.Parameter]:
        return [p for name in ENCODER_MODULES[self.net.kind] for p in self.net.get_submodule(name).parameters()]

    def encoder_state_dict(self) -> dict[str, Tensor]:
        """The weights that finetuning changes (and the frozen BatchNorm statistics of the trunk)."""
        return {
            f"{name}.{k}": v.detach().cpu().clone()
            for name in ENCODER_MODULES[self.net.kind]
            for k, v in self.net.get_submodule(name).state_dict().items()
        }

    def load_encoder_state_dict(self, state: dict[str, Tensor]) -> None:
        for name in ENCODER_MODULES[self.net.kind]:
            prefix = f"{name}."
            self.net.get_submodule(name).load_state_dict(
                {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            )

    def train(self, mode: bool = True) -> CaptionCNN:
        super().train(mode)
        for m in self.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.eval()
        return self

    def forward(self, images: Sequence[Image.Image], boxes: Sequence[Tensor]) -> Tensor:
        """fc7 (sum of n_i, D) of boxes[i] (n_i, 4) xyxy in image i's own pixels."""
        prepared = self.net.prepare(list(images))
        fmaps = self.net.features(prepared)
        rois = []
        for i, b in enumerate(boxes):
            sx, sy = prepared.scale(i)
            rois.append(scale_boxes(b, 1 / sx, 1 / sy).to(self.net.device))
        return self.net.encode(fmaps, rois)


def augment(
    image: Image.Image, boxes: np.ndarray, rng: np.random.Generator, crop: float, brightness: float
) -> tuple[Image.Image, np.ndarray]:
    """A random crop keeping at least (1 - crop) of each side, and brightness x U(1 - brightness, 1 +
    brightness). boxes (n, 4) xyxy are moved into the crop and clipped to it (at least 1 pixel wide)."""
    w, h = image.size
    s = rng.uniform(1.0 - crop, 1.0)
    cw, ch = max(1, round(w * s)), max(1, round(h * s))
    x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
    out = image.crop((x0, y0, x0 + cw, y0 + ch))
    b = boxes - np.array([x0, y0, x0, y0], dtype=boxes.dtype)  # (n, 4)
    b[:, [0, 2]] = b[:, [0, 2]].clip(0, cw)
    b[:, [1, 3]] = b[:, [1, 3]].clip(0, ch)
    b[:, 0] = np.minimum(b[:, 0], cw - 1)
    b[:, 1] = np.minimum(b[:, 1], ch - 1)
    b[:, 2] = np.maximum(b[:, 2], b[:, 0] + 1)
    b[:, 3] = np.maximum(b[:, 3], b[:, 1] + 1)
    if brightness > 0:
        out = ImageEnhance.Brightness(out).enhance(rng.uniform(1.0 - brightness, 1.0 + brightness))
    return out, b


class PixelFeatures:
    """Region features from pixels: the images of `paths` (one per dataset row) through `cnn`, on the boxes
    of regions.h5 (followed by their geometry in the augmented image, as ``CachedFeatures`` does); augmented
    when an rng is given (training). Gradients flow when the caller enables them."""

    def __init__(
        self,
        cnn: CaptionCNN,
        paths: Sequence[Path],
        store: RegionStore,
        geometry: bool,
        crop: float = 0.0,
        brightness: float = 0.0,
    ) -> None:
        self.cnn, self.paths, self.store, self.geometry = cnn, list(paths), store, geometry
        self.crop, self.brightness = crop, brightness

    @property
    def dim(self) -> int:
        return feature_dim(self.cnn.net.fc7_dim, self.geometry)

    def __call__(self, rows: np.ndarray, rng: np.random.Generator | None = None) -> tuple[Tensor, Tensor]:
        rows = np.asarray(rows, dtype=np.int64)
        images, boxes = [], []
        for r in rows.tolist():
            image = load_rgb(self.paths[r])
            b = self.store.boxes[r, : self.store.n_regions[r]].copy()  # (n, 4)
            if rng is not None:
                image, b = augment(image, b, rng, self.crop, self.brightness)
            images.append(image)
            boxes.append(torch.from_numpy(b))
        flat = self.cnn(images, boxes)  # (sum n, D), on the CNN's device
        mask = torch.from_numpy(self.store.mask(rows)).to(flat.device)  # (B, R)
        feats = flat.new_zeros(mask.shape + (flat.shape[1],))  # (B, R, D)
        feats[mask] = flat
        if self.geometry:
            padded = torch.zeros(mask.shape + (4,))  # (B, R, 4)
            for i, b in enumerate(boxes):
                padded[i, : len(b)] = b
            scores = torch.from_numpy(self.store.scores[rows])
            feats = with_geometry(feats, padded.to(flat.device), scores.to(flat.device), mask)
        return feats, mask


def checkpoint_source(
    ckpt: dict[str, Any],
    store: RegionStore,
    region_cnn: str | Path,
    image_paths: Callable[[], Sequence[Path]],
    device: torch.device | None = None,
) -> CachedFeatures | PixelFeatures:
    """The features a trained captioner reads (its checkpoint dict `ckpt`): the cached ones of `store`, or,
    when it finetuned its CNN, the region CNN of `region_cnn` with the finetuned encoder on the images
    (`image_paths()`, one per row of `store`)."""
    geometry = bool(ckpt["params"].get("region_geometry", False))
    if "cnn" not in ckpt:
        return CachedFeatures(store, geometry)
    cnn = CaptionCNN(load_region_cnn(region_cnn))
    cnn.load_encoder_state_dict(ckpt["cnn"])
    return PixelFeatures(cnn.to(device or torch.device("cpu")).eval(), image_paths(), store, geometry)
