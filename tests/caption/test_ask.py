"""The captioner asked for a count or a relation (dvsa.caption.evaluation.ask): each caption holds a word of
the kind and is judged as the captions are."""

from __future__ import annotations

import numpy as np
import torch

from dvsa.caption.config import EvaluateCaptioningParams
from dvsa.caption.evaluation import ask
from dvsa.caption.model import Captioner
from dvsa.data.labels import Labels
from dvsa.data.vocab import tokenize
from dvsa.metrics.truth import CLAIM_WORDS, TruthMeter

WORDS = ("a", "red", "circle", "blue", "square", "two", "left", "of", "and")
R, D = 3, 10


def labels(words: tuple[str, ...], n: int) -> Labels:
    rows = np.ones((n, 4), dtype=np.uint32)
    return Labels(rows, np.arange(1, n + 1, dtype=np.uint32), np.arange(1, n + 1, dtype=np.uint32),
                  np.full(n, 4, dtype=np.uint32), {i + 1: w for i, w in enumerate(words)},
                  [{"split": "test", "id": i} for i in range(n)])


def source(rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(int(rows[0]))
    return torch.randn(len(rows), R, D, generator=g), torch.ones(len(rows), R, dtype=torch.bool)


def captioner(vocab: int) -> Captioner:
    torch.manual_seed(0)
    m = Captioner(vocab, D, "regions", "lstm", rnn_size=16, num_layers=1, input_encoding_size=8, att_size=8,
                  drop_prob_lm=0.0)
    return m.eval()


IMAGES = [
    {"objects": [{"color": "red", "shape": "circle", "size": "large", "box": [0, 0, 10, 10]},
                 {"color": "blue", "shape": "square", "size": "small", "box": [20, 0, 30, 10]}],
     "background": "stripes"},
] * 8


def test_asked_captions_hold_a_word_of_the_kind_and_are_judged_as_captions() -> None:
    lab = labels(WORDS, 8)
    rows = np.arange(8)
    params = EvaluateCaptioningParams(max_length=6, beam_size=2, batch_size=3)
    out = ask(captioner(len(WORDS)), source, lab, rows, IMAGES, params)
    assert set(out) == {"count", "relation"}
    for kind, (captions, summary) in out.items():
        assert len(captions) == 8
        assert all(set(c.split()) & set(CLAIM_WORDS[kind]) for c in captions)
        meter = TruthMeter()
        for c, im in zip(captions, IMAGES):
            meter.add(tokenize(c), im["objects"], im["background"])
        assert summary == meter.summary()


def test_a_kind_without_words_in_the_vocabulary_is_not_asked() -> None:
    words = tuple(w for w in WORDS if w != "left")
    out = ask(captioner(len(words)), source, labels(words, 4), np.arange(4), IMAGES[:4],
              EvaluateCaptioningParams(max_length=5, beam_size=2))
    assert set(out) == {"count"}
