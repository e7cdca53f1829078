"""Convolutional networks over a batch of images of different sizes, each image's outputs those of its own run.

A batch pads its images (bottom and right) to a common size. Without care the padded area changes each
image's outputs near its bottom and right borders: after one layer it no longer holds the zeros that a
convolution of the image alone reads beyond its border. Here, before every layer that reads neighbouring
positions, the area beyond each image's own extent at that layer is reset to what the image's own run
reads there (zeros for a convolution, -inf for a max-pool), and a global average pool averages each image
over its own extent only. Each image's outputs within its extent are then those of its own run (up to the
order of float sums), whatever the other images of the batch.

Two ways to know an image's extent at a layer:
- :func:`run_padded`: a plain stack of layers (the VGG16 / AlexNet trunks), extents carried through each
  layer by its output-size formula, exact for any input size;
- :func:`strided_padding`: any network (torchvision's detector backbones: ResNet + FPN, MobileNetV3 + FPN) fed
  images padded to a multiple of their largest stride, as torchvision's GeneralizedRCNNTransform pads them: a
  tensor of stride s holds ceil(extent / s) positions of an image.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

Size = tuple[int, int]  # (h, w)
ELEMENTWISE = (nn.ReLU, nn.Dropout)  # layers that read one position (Dropout: the identity in eval mode)


def pad_images(images: Sequence[Tensor]) -> Tensor:
    """(B, C, H, W): the images (C, h_i, w_i) zero-padded at the bottom and right to the largest h and w."""
    h, w = max(x.shape[1] for x in images), max(x.shape[2] for x in images)
    out = images[0].new_zeros((len(images), images[0].shape[0], h, w))
    for i, x in enumerate(images):
        out[i, :, : x.shape[1], : x.shape[2]] = x
    return out


def outside(sizes: Sequence[Size], shape: Size, device: torch.device) -> Tensor | None:
    """(B, 1, H, W) True beyond image i's extent sizes[i] in a tensor of spatial `shape`; None when every
    image fills it."""
    if all(tuple(s) == tuple(shape) for s in sizes):
        return None
    h, w = torch.tensor(sizes, device=device).unbind(1)  # (B,), (B,)
    rows = torch.arange(shape[0], device=device)[None, :] >= h[:, None]  # (B, H)
    cols = torch.arange(shape[1], device=device)[None, :] >= w[:, None]  # (B, W)
    return (rows[:, :, None] | cols[:, None, :])[:, None]


def reset_outside(x: Tensor, sizes: Sequence[Size], fill: float) -> Tensor:
    """x (B, C, H, W) with `fill` beyond each image's extent (x itself when every image fills it)."""
    mask = outside(sizes, (x.shape[2], x.shape[3]), x.device)
    return x if mask is None else x.masked_fill(mask, fill)


def _pair(v: int | tuple[int, ...]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def output_size(layer: nn.Conv2d | nn.MaxPool2d, size: Size) -> Size:
    """The (h, w) that `layer` makes of an input of (h, w): floor((n + 2p - d(k - 1) - 1) / s) + 1."""
    k, s, p, d = (_pair(getattr(layer, a)) for a in ("kernel_size", "stride", "padding", "dilation"))
    if getattr(layer, "ceil_mode", False):
        raise ValueError(f"{layer}: ceil_mode is not supported")
    return tuple((n + 2 * p[j] - d[j] * (k[j] - 1) - 1) // s[j] + 1 for j, n in enumerate(size))  # type: ignore[return-value]


def run_padded(layers: nn.Sequential, x: Tensor, sizes: Sequence[Size]) -> tuple[Tensor, list[Size]]:
    """`layers` (convolutions, max-pools, ReLUs) over the padded batch x (B, C, H, W) of images of extents
    `sizes`; returns the output and each image's extent in it."""
    extents = [tuple(s) for s in sizes]
    for layer in layers:
        if isinstance(layer, nn.Conv2d):
            x = layer(reset_outside(x, extents, 0.0))
        elif isinstance(layer, nn.MaxPool2d):
            x = layer(reset_outside(x, extents, -math.inf) if _pair(layer.padding) != (0, 0) else x)
        elif isinstance(layer, ELEMENTWISE):
            x = layer(x)
            continue
        else:
            raise TypeError(f"run_padded: no rule for {type(layer).__name__}")
        extents = [output_size(layer, e) for e in extents]  # type: ignore[arg-type]
    return x, extents  # type: ignore[return-value]


def strided_extents(sizes: Sequence[Size], full: Size, shape: Size) -> list[Size]:
    """Each image's extent in a tensor of spatial `shape` of a network fed a (full) padded batch of images of
    extents `sizes`: ceil(extent / s) for the tensor's stride s (the power of 2 nearest full / shape)."""
    strides = [2 ** round(math.log2(f / n)) for f, n in zip(full, shape)]
    return [(math.ceil(h / strides[0]), math.ceil(w / strides[1])) for h, w in sizes]


@contextmanager
def strided_padding(net: nn.Module, sizes: Sequence[Size], full: Size) -> Iterator[None]:
    """While open, `net`'s convolutions and max-pools read each image's own padding, and its global average
    pools (squeeze-excitation) average each image over its own extent (see :func:`strided_extents`). A batch
    whose images all fill `full` runs as it is."""
    if all(tuple(s) == tuple(full) for s in sizes):
        yield
        return

    def extents(x: Tensor) -> list[Size]:
        return strided_extents(sizes, full, (x.shape[2], x.shape[3]))

    masks: dict[tuple[int, int], Tensor | None] = {}  # one mask per tensor size (ResNet-50: 5 for 70 layers)

    def before(fill: float) -> Any:
        def hook(_: nn.Module, args: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
            x = args[0]
            shape = (x.shape[2], x.shape[3])
            if shape not in masks:
                masks[shape] = outside(extents(x), shape, x.device)
            mask = masks[shape]
            return (x if mask is None else x.masked_fill(mask, fill), *args[1:])

        return hook

    def global_mean(_: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> Tensor:
        x = args[0]  # (B, C, H, W) -> (B, C, 1, 1), each image over its own (h, w)
        return torch.stack([x[i, :, :h, :w].mean((-2, -1), keepdim=True) for i, (h, w) in enumerate(extents(x))]).to(
            out.dtype
        )

    handles = []
    for m in net.modules():
        if isinstance(m, nn.Conv2d) and (m.kernel_size, m.padding) != ((1, 1), (0, 0)):  # reads its neighbours
            handles.append(m.register_forward_pre_hook(before(0.0)))
        elif isinstance(m, nn.MaxPool2d):
            handles.append(m.register_forward_pre_hook(before(-math.inf)))
        elif isinstance(m, nn.AdaptiveAvgPool2d):
            if _pair(m.output_size) != (1, 1):  # type: ignore[arg-type]
                raise TypeError(f"strided_padding: no rule for {m}")
            handles.append(m.register_forward_hook(global_mean))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
