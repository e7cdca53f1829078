"""The region CNN interface shared by the from-scratch shapes network and the pretrained torchvision one.

A region CNN turns images into detections and 4096-d region features in the Fast R-CNN form: the
convolutional trunk runs once per image, every box is cut out of the shared feature map with RoIAlign,
and fully connected layers fc6 -> fc7 map each box to its feature (the paper's CNN(I_b) of eq. (1)).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn


@dataclass
class Prepared:
    """Images resized for the network: tensors (3, h, w) in [0, 1] and the original sizes (W, H)."""

    images: list[torch.Tensor]
    sizes: list[tuple[int, int]]

    def scale(self, i: int) -> tuple[float, float]:
        """(sx, sy) that map image i's network pixels to its original pixels."""
        w, h = self.sizes[i]
        return w / self.images[i].shape[2], h / self.images[i].shape[1]


def to_uint8(image: Image.Image, width: int, height: int) -> torch.Tensor:
    """(3, height, width) uint8: the RGB image resized with antialiased bilinear filtering (what the
    `regions` stage's worker processes send to the model: a quarter of the float tensor's bytes)."""
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.BILINEAR)
    pixels = np.array(image.convert("RGB"), dtype=np.uint8)  # (H, W, 3)
    return torch.from_numpy(pixels).permute(2, 0, 1).contiguous()


def to_float(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 (3, h, w) -> float (3, h, w) in [0, 1], on the pixels' device."""
    return pixels.float().div_(255.0)


def to_tensor(image: Image.Image, width: int, height: int) -> torch.Tensor:
    """(3, height, width) float in [0, 1]: the RGB image resized with antialiased bilinear filtering."""
    return to_float(to_uint8(image, width, height))


class RegionCNN(nn.Module):
    """Detector + encoder. Subclasses define how images are resized, the feature maps, the detections
    (boxes and scores in network pixels, before NMS) and the fc7 encoding of boxes."""

    kind: str
    fc7_dim: int

    def input_size(self, width: int, height: int) -> tuple[int, int]:
        """(w, h) in network pixels of an image of width x height original pixels."""
        raise NotImplementedError

    def prepare(self, images: list[Image.Image]) -> Prepared:
        """The images resized to :meth:`input_size`, as float tensors on the CPU."""
        return Prepared([to_tensor(im, *self.input_size(*im.size)) for im in images], [im.size for im in images])

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def features(self, prepared: Prepared) -> Any:
        """The shared convolutional feature maps of the batch (opaque to callers), on the model's device
        (prepared images on another device are moved there)."""
        raise NotImplementedError

    def detect(self, prepared: Prepared, fmaps: Any, n_proposals: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per image: detections (n, 4) in network pixels and their scores (n,), before NMS."""
        raise NotImplementedError

    def encode(self, fmaps: Any, rois: list[torch.Tensor]) -> torch.Tensor:
        """fc7 features (sum of n_i, fc7_dim) of boxes rois[i] (n_i, 4) (network pixels) of image i."""
        raise NotImplementedError

    def checkpoint_extra(self) -> dict[str, Any]:
        """What besides the state dict and the params the checkpoint needs to rebuild this model."""
        return {}
