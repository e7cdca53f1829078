"""The per-image and per-sentence ranking tables of an alignment evaluation (pandas): on which images and
sentences Table 1's R@K is won or lost.

``image_table``: one row per evaluated image: its id and file, its annotation rank (the rank of its best
ground-truth sentence among all the split's sentences) and the best / median / worst search rank of its own
sentences. ``sentence_table``: one row per sentence: its image, its words as the model read them (the
vocabulary's, UNK for rare words) and its search rank (the rank of its image among all the split's images).
The share of ``annotation_rank`` <= K (resp. ``search_rank``) is R@K of metrics/details/alignment.json.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dvsa.align.evaluation import AlignmentResults
from dvsa.data.labels import Labels


def image_table(results: AlignmentResults, labels: Labels) -> pd.DataFrame:
    """One row per evaluated image, in evaluation order."""
    ranks = results.ranks
    search = [ranks.search[ranks.sentence_image == k] for k in range(len(ranks.annotation))]
    images = [labels.images[int(r)] for r in results.image_rows]
    return pd.DataFrame(
        {
            "image_id": [im["id"] for im in images],
            "file": [im["file_path"] for im in images],
            "sentences": [len(s) for s in search],
            "annotation_rank": ranks.annotation,
            "search_rank_best": [int(s.min()) for s in search],
            "search_rank_median": [float(np.median(s)) for s in search],
            "search_rank_worst": [int(s.max()) for s in search],
        }
    )


def sentence_table(results: AlignmentResults, labels: Labels) -> pd.DataFrame:
    """One row per evaluated sentence, in evaluation order (image by image)."""
    images = [labels.images[int(a.image_row)] for a in results.sentences]
    return pd.DataFrame(
        {
            "image_id": [im["id"] for im in images],
            "file": [im["file_path"] for im in images],
            "sentence": [" ".join(a.words) for a in results.sentences],
            "search_rank": results.ranks.search,
        }
    )
