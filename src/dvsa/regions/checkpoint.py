"""models/region_cnn.pt: everything needed to rebuild the detector + encoder on new images.

A dict of plain containers and tensors (``torch.load(weights_only=True)``): ``kind`` (shapes | pretrained),
``params`` (the ``regions`` section that built it), ``training`` (epochs, last metrics; empty for
pretrained models) and either ``state_dict`` + ``classes`` (shapes, trained here) or ``backbone`` +
``weights`` (pretrained: the absolute path and sha256 of the torchvision files, which are not copied).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from dvsa.errors import InputError
from dvsa.io import save_torch
from dvsa.params import from_mapping
from dvsa.regions.config import RegionsParams
from dvsa.regions.model import RegionCNN
from dvsa.regions.pretrained import PretrainedRegionCNN
from dvsa.regions.shapes_net import ShapesRegionCNN


def save_region_cnn(
    model: RegionCNN, params: RegionsParams, path: str | os.PathLike[str], training: dict[str, Any] | None = None
) -> None:
    ckpt = {"kind": model.kind, "params": params.to_dict(), "training": training or {}, **model.checkpoint_extra()}
    if model.kind != "pretrained":  # pretrained weights stay in their files (referenced in checkpoint_extra)
        ckpt["state_dict"] = {k: v.cpu() for k, v in model.state_dict().items()}
    save_torch(ckpt, path)  # the same checkpoint gives the same bytes (and the same hash in dvc.lock)


def load_region_cnn(path: str | os.PathLike[str], device: torch.device | str | None = None) -> RegionCNN:
    """The region CNN saved by the `region_cnn` stage, in eval mode on `device` (default: the CPU), whatever
    device it was saved from (use with `extract_regions`)."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: file not found (run `dvc repro region_cnn`)")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
        kind = ckpt["kind"]
        params = from_mapping(RegionsParams, ckpt["params"], f"{p}: params")
        if kind == "shapes":
            model: RegionCNN = ShapesRegionCNN(params.net, ckpt["classes"])
            model.load_state_dict(ckpt["state_dict"])
        elif kind == "pretrained":
            if "weights" not in ckpt:
                raise InputError(
                    f"{p}: made by an older dvsa (weights copied, not referenced); rerun `dvc repro -f region_cnn`"
                )
            model = PretrainedRegionCNN.from_references(ckpt["backbone"], params.pretrained, ckpt["weights"], str(p))
        else:
            raise InputError(f"{p}: unknown region CNN kind {kind!r}")
    except (KeyError, TypeError, RuntimeError, EOFError, OSError, pickle.UnpicklingError) as e:
        first = (str(e).splitlines() or [""])[0][:200]
        raise InputError(f"{p}: not a region_cnn checkpoint ({type(e).__name__}: {first})") from None
    return model.to(device or "cpu").eval()
