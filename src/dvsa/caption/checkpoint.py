"""models/captioner.pt: what `dvsa caption` and the evaluation need to rebuild the trained captioner.

A dict of plain containers, loadable with ``torch.load(weights_only=True)``: ``state_dict``, ``config`` (the
Captioner's constructor arguments), ``params`` (the captioner section that trained it), ``vocab``
(ix_to_word with string keys, as vocab.json), ``max_length``, ``iteration`` and ``val`` (the validation
scores of the kept weights), ``history`` (loss and validation curves) and, when the CNN was finetuned,
``cnn``: the finetuned encoder weights of models/region_cnn.pt's network (``CaptionCNN.encoder_state_dict``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from dvsa.caption.model import Captioner, build_captioner
from dvsa.errors import InputError
from dvsa.io import save_torch

KEYS = ("state_dict", "config", "params", "vocab", "max_length")


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """torch.save `payload` atomically (the same payload gives the same bytes)."""
    save_torch(payload, path)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint with weights_only=True; a missing or foreign file is an InputError naming it."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"{p}: is a directory, not a checkpoint file")
    if not p.is_file():
        raise InputError(f"{p}: file not found")
    if p.stat().st_size == 0:
        raise InputError(f"{p}: empty file, not a checkpoint")
    try:
        data = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - torch raises many kinds for a bad file
        raise InputError(f"{p}: not a torch checkpoint (torch.load: {type(e).__name__})") from None
    if not isinstance(data, dict):
        raise InputError(f"{p}: not a dvsa checkpoint (expected a dict)")
    return data


def load_captioner(path: str | os.PathLike[str]) -> tuple[Captioner, dict[int, str], dict[str, Any]]:
    """The trained Captioner (eval mode), its ix_to_word and the whole checkpoint dict."""
    data = load_checkpoint(path)
    missing = [k for k in KEYS if k not in data]
    if missing:
        raise InputError(f"{path}: not a captioner checkpoint (missing {', '.join(missing)})")
    model = build_captioner(data["config"])
    try:
        model.load_state_dict(data["state_dict"])
    except RuntimeError as e:
        raise InputError(f"{path}: weights do not fit the captioner ({str(e).splitlines()[0]})") from None
    model.eval()
    vocab = {int(k): w for k, w in data["vocab"].items()}
    return model, vocab, data
