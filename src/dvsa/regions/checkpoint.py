"""models/region_cnn.pt: everything needed to rebuild the detector + encoder on new images.

A dvsa.checkpoint file (format ``dvsa.region_cnn/2``): ``kind`` (shapes | pretrained), ``params`` (the
``regions`` section that built it), ``training`` (the kept iteration and its figures; empty for pretrained
models) and either ``state_dict`` + ``classes`` (shapes, trained here by dvsa.regions.train) or ``backbone`` +
``weights`` (pretrained: the absolute path and sha256 of the torchvision files, which are not copied).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from dvsa.checkpoint import load, load_weights, save
from dvsa.errors import InputError
from dvsa.params import from_mapping
from dvsa.regions.config import RegionsParams
from dvsa.regions.model import RegionCNN
from dvsa.regions.pretrained import PretrainedRegionCNN
from dvsa.regions.shapes_net import ShapesRegionCNN

MODEL_FORMAT = "dvsa.region_cnn/2"


def payload(
    model: RegionCNN,
    params: RegionsParams,
    training: dict[str, Any] | None = None,
    state_dict: dict[str, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """What region_cnn.pt holds for `model` (its weights, or `state_dict` when given, e.g. the best epoch's);
    pretrained weights stay in their files (referenced by checkpoint_extra)."""
    out = {"kind": model.kind, "params": params.to_dict(), "training": training or {}, **model.checkpoint_extra()}
    if model.kind != "pretrained":
        out["state_dict"] = state_dict if state_dict is not None else {k: v.cpu() for k, v in model.state_dict().items()}
    return out


def save_region_cnn(
    model: RegionCNN, params: RegionsParams, path: str | os.PathLike[str], training: dict[str, Any] | None = None
) -> None:
    save(path, MODEL_FORMAT, payload(model, params, training))


def load_region_cnn(path: str | os.PathLike[str], device: torch.device | str | None = None) -> RegionCNN:
    """The region CNN saved by the `region_cnn` stage, in eval mode on `device` (default: the CPU), whatever
    device it was saved from (use with `extract_regions`)."""
    ckpt = load(path, MODEL_FORMAT, "region_cnn", ("kind", "params"))
    p = Path(path)
    params = from_mapping(RegionsParams, ckpt["params"], f"{p}: params")
    kind = ckpt["kind"]
    try:
        if kind == "shapes":
            model: RegionCNN = ShapesRegionCNN(params.net, ckpt["classes"])
            load_weights(model, ckpt["state_dict"], p)
        elif kind == "pretrained":
            model = PretrainedRegionCNN.from_references(ckpt["backbone"], params.pretrained, ckpt["weights"], str(p))
        else:
            raise InputError(f"{p}: unknown region CNN kind {kind!r}")
    except (KeyError, TypeError) as e:
        raise InputError(f"{p}: not a complete region_cnn checkpoint (missing {e}; rerun `dvc repro region_cnn`)") from None
    return model.to(device or "cpu").eval()
