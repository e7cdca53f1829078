"""models/alignment.pt: a dvsa.checkpoint file (format ``dvsa.alignment/2``) with the kept weights
(``state_dict``), the ``params`` and ``vocab`` that built them, ``features`` (the fc7 dimension it expects),
the kept ``iteration`` / ``epoch`` and its ``val`` figures; written by dvsa.align.train."""

from __future__ import annotations

import os
from pathlib import Path

from dvsa.align.config import AlignmentParams
from dvsa.align.model import AlignmentModel
from dvsa.checkpoint import load, load_weights
from dvsa.params import from_mapping

MODEL_FORMAT = "dvsa.alignment/2"


def load_model(path: str | os.PathLike[str]) -> tuple[AlignmentModel, AlignmentParams, dict[int, str]]:
    """Load models/alignment.pt -> (model in eval mode, its params, ix_to_word)."""
    ckpt = load(path, MODEL_FORMAT, "train_alignment", ("state_dict", "params", "vocab", "features"))
    params = from_mapping(AlignmentParams, ckpt["params"], f"{Path(path)}: params")
    vocab = {int(k): w for k, w in ckpt["vocab"].items()}
    model = AlignmentModel(len(vocab), int(ckpt["features"]["dim"]), params)
    load_weights(model, ckpt["state_dict"], path)
    model.eval()
    return model, params, vocab
