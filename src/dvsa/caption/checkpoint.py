"""models/captioner.pt (and region_captioner.pt): what `dvsa caption` and the evaluation need to rebuild the
trained captioner.

A dvsa.checkpoint file (format ``dvsa.captioner/2``): ``state_dict``, ``config`` (the Captioner's
constructor arguments), ``features`` (the fc7 dimension and whether region geometry follows it), ``params``
(the section that trained it), ``vocab`` (ix_to_word with string keys, as vocab.json), ``max_length``,
``iteration`` and ``val`` (the validation scores of the kept weights), ``history`` (loss and validation
curves) and, when the CNN was finetuned, ``cnn``: the finetuned encoder weights of models/region_cnn.pt's
network (``CaptionCNN.encoder_state_dict``).
"""

from __future__ import annotations

import os
from typing import Any

from dvsa.caption.model import Captioner, build_captioner
from dvsa.checkpoint import load, load_weights, save

MODEL_FORMAT = "dvsa.captioner/2"
KEYS = ("state_dict", "config", "features", "params", "vocab", "max_length")


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Write a captioner file (the trainer writes its own through the loop; tests write small ones)."""
    save(path, MODEL_FORMAT, payload)


def load_checkpoint(path: str | os.PathLike[str], stage: str = "train_captioner") -> dict[str, Any]:
    """The checkpoint dict; a missing, unreadable or foreign file is an InputError naming it."""
    return load(path, MODEL_FORMAT, stage, KEYS)


def load_captioner(
    path: str | os.PathLike[str], stage: str = "train_captioner"
) -> tuple[Captioner, dict[int, str], dict[str, Any]]:
    """The trained Captioner (eval mode), its ix_to_word and the whole checkpoint dict."""
    data = load_checkpoint(path, stage)
    model = build_captioner(data["config"])
    load_weights(model, data["state_dict"], path)
    model.eval()
    vocab = {int(k): w for k, w in data["vocab"].items()}
    return model, vocab, data
