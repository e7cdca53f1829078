"""The region-phrase dataset's raw material (§3.2 end): MRF snippets of eqs. (10)-(12) and their regions.

Every sentence of the train and val images is aligned to the regions of its own image by the alignment
model; the MRF splits it into segments, each on one region. A **snippet** is such a segment that
- lies on a detected region, not region 0 (the whole image is no region to describe),
- has at most ``max_words`` words (a longer one is a clause, not a phrase), and
- holds a content word: on the shapes world (its colour and shape words are in the vocabulary) a colour or
  shape word, so that "is on the right of a" is left out; on other data any word but UNK.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from dvsa.align.grounding import shapes_lexicon
from dvsa.align.model import AlignmentModel
from dvsa.align.retrieval import embed_images, embed_sentences, split_sentences
from dvsa.align.snippets import segments, viterbi
from dvsa.data.labels import Labels
from dvsa.regions.store import RegionStore


@dataclass(frozen=True)
class Snippet:
    """Words [start, end) of a sentence of image `image_row`, aligned to its region `region`."""

    image_row: int  # row of labels.h5 / regions.h5
    region: int  # 1..n_regions-1
    words: tuple[int, ...]  # word indices of vocab.json


def content_words(ix_to_word: dict[int, str]) -> frozenset[int]:
    """The word indices a snippet must hold one of: the shapes world's colour and shape words when the
    vocabulary has any, else every word but UNK."""
    lexicon = shapes_lexicon()
    shapes = frozenset(i for i, w in ix_to_word.items() if w in lexicon)
    return shapes or frozenset(i for i, w in ix_to_word.items() if w != "UNK")


@torch.no_grad()
def mrf_snippets(
    model: AlignmentModel,
    labels: Labels,
    store: RegionStore,
    image_ix: np.ndarray,
    beta: float,
    max_words: int,
    batch_size: int = 100,
) -> list[Snippet]:
    """The snippets of every sentence of images `image_ix`, in image and sentence order."""
    model.eval()
    content = content_words(labels.ix_to_word)
    out: list[Snippet] = []
    for start in tqdm(range(0, len(image_ix), batch_size), desc="region snippets", unit="batch", leave=False):
        block = image_ix[start : start + batch_size]
        v, rmask = embed_images(model, store, block, batch_size)  # (K, R, h), (K, R)
        sents = split_sentences(labels, block)
        s, wmask = embed_sentences(model, sents.words, len(sents.words))  # (L, T, h), (L, T)
        for l, k in enumerate(sents.sentence_image.tolist()):
            n_words, n_regions = int(wmask[l].sum()), int(rmask[k].sum())
            unary = (s[l, :n_words] @ v[k, :n_regions].T).numpy().astype(np.float64)  # (N, M), eq. (11)
            words = sents.words[l, :n_words].tolist()
            for seg in segments(viterbi(unary, beta)):
                piece = tuple(words[seg.start : seg.end])
                if seg.region != 0 and len(piece) <= max_words and content.intersection(piece):
                    out.append(Snippet(int(block[k]), seg.region, piece))
    return out
