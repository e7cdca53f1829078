"""models/region_cnn.pt: everything needed to rebuild the detector + encoder on new images.

A dict of plain containers and tensors (``torch.load(weights_only=True)``): ``kind`` (shapes | pretrained),
``params`` (the ``regions`` section that built it), ``state_dict``, ``training`` (epochs, seconds, last
metrics; empty for pretrained models) and ``classes`` (shapes) or ``backbone`` (pretrained).
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

from dvsa.errors import InputError
from dvsa.io import atomic_path
from dvsa.params import from_mapping
from dvsa.regions.config import RegionsParams
from dvsa.regions.model import RegionCNN
from dvsa.regions.pretrained import PretrainedRegionCNN
from dvsa.regions.shapes_net import ShapesRegionCNN


def save_region_cnn(
    model: RegionCNN, params: RegionsParams, path: str | os.PathLike[str], training: dict[str, Any] | None = None
) -> None:
    ckpt = {
        "kind": model.kind,
        "params": params.to_dict(),
        "state_dict": model.state_dict(),
        "training": training or {},
        **model.checkpoint_extra(),
    }
    with atomic_path(path) as tmp:
        torch.save(ckpt, tmp)


def load_region_cnn(path: str | os.PathLike[str]) -> RegionCNN:
    """The region CNN saved by the `region_cnn` stage, in eval mode (use with `extract_regions`)."""
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
            model = PretrainedRegionCNN.skeleton(ckpt["backbone"], params.pretrained)
            model.load_state_dict(ckpt["state_dict"], assign=True)
        else:
            raise InputError(f"{p}: unknown region CNN kind {kind!r}")
    except (KeyError, TypeError, RuntimeError, EOFError, OSError, pickle.UnpicklingError) as e:
        first = (str(e).splitlines() or [""])[0][:200]
        raise InputError(f"{p}: not a region_cnn checkpoint ({type(e).__name__}: {first})") from None
    return model.eval()
