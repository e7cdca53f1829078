"""The per-image table of a caption evaluation (pandas): which images a metric moves on.

One row per evaluated image: image id, file, the model's and the baseline's captions, per-image BLEU-4 and
CIDEr of the model's caption (pycocoevalcap's per-image scores, same tokenization as ``coco.py``), and
whether the caption is true of the image where the data has true objects, with the captions asked for a count
and for a relation (``asked_count``, ``asked_relation``).
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import pandas as pd

from dvsa.caption.evaluation import CaptionEvaluation
from dvsa.metrics.coco import captured_output, java_available, ptb_tokenize


def per_image_scores(references: Mapping[Hashable, Sequence[str]], candidates: Mapping[Hashable, str]) -> dict[Hashable, dict[str, float]]:
    """{key: {"Bleu_4", "CIDEr"}} of each candidate against its references."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    use_java = java_available()
    gts = ptb_tokenize({k: list(references[k]) for k in candidates}, use_java)
    res = ptb_tokenize({k: [c] for k, c in candidates.items()}, use_java)
    with captured_output():
        _, bleu = Bleu(4).compute_score(gts, res, verbose=0)
        _, cider = Cider().compute_score(gts, res)
    return {k: {"Bleu_4": float(bleu[3][i]), "CIDEr": float(cider[i])} for i, k in enumerate(gts)}


def caption_table(ev: CaptionEvaluation, dataset: dict[str, Any]) -> pd.DataFrame:
    """The per-image table of `ev`, rows in evaluation order."""
    keys = range(len(ev.image_ids))
    scores = per_image_scores(dict(zip(keys, ev.references)), dict(zip(keys, ev.captions)))
    images = dataset["images"]
    table = pd.DataFrame(
        {
            "image_id": ev.image_ids,
            "file": [os.path.join(images[int(r)].get("filepath", ""), images[int(r)]["filename"]) for r in ev.rows],
            "caption": ev.captions,
            "baseline": ev.baseline,
            "Bleu_4": [scores[k]["Bleu_4"] for k in keys],
            "CIDEr": [scores[k]["CIDEr"] for k in keys],
        }
    )
    if ev.truth is not None:
        table["true"] = [j.true for j in ev.truth]
    for kind, captions in ev.asked.items():
        table[f"asked_{kind}"] = captions
    return table
