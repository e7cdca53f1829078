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
    for kind, asked in out.items():
        assert len(asked.captions) == 8 and [j.tokens for j in asked.truth] == [c.split() for c in asked.captions]
        assert all(set(c.split()) & set(CLAIM_WORDS[kind]) for c in asked.captions)
        meter = TruthMeter()
        for c, im in zip(asked.captions, IMAGES):
            meter.add(tokenize(c), im["objects"], im["background"])
        assert asked.summary == meter.summary()


def test_a_kind_without_words_in_the_vocabulary_is_not_asked() -> None:
    words = tuple(w for w in WORDS if w != "left")
    out = ask(captioner(len(words)), source, labels(words, 4), np.arange(4), IMAGES[:4],
              EvaluateCaptioningParams(max_length=5, beam_size=2))
    assert set(out) == {"count"}


class LeftLover(torch.nn.Module):
    """log p of every word but 'left' at -2, of 'left' at -0.1: prefers whatever says left."""

    def __init__(self, vocab: int, left: int) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))
        self.vocab, self.left = vocab, left

    def forward(self, feats: torch.Tensor, mask: torch.Tensor, seqs: torch.Tensor, seq_per_img: int) -> torch.Tensor:
        lp = torch.full((len(seqs), seqs.shape[1] + 1, self.vocab + 1), -2.0)
        lp[:, :, self.left] = -0.1
        return lp


class LandmarkReader(LeftLover):
    """LeftLover, and once 'left' has been read, log p of 'blue' at -0.1: names a blue landmark after 'left'."""

    def __init__(self, vocab: int, left: int, blue: int) -> None:
        super().__init__(vocab, left)
        self.blue = blue

    def forward(self, feats: torch.Tensor, mask: torch.Tensor, seqs: torch.Tensor, seq_per_img: int) -> torch.Tensor:
        lp = super().forward(feats, mask, seqs, seq_per_img)  # (N, L + 1, V + 1)
        read = torch.cat([torch.zeros(len(seqs), 1, dtype=torch.long), (seqs == self.left).long().cumsum(1)], 1) > 0
        lp[:, :, self.blue] = torch.where(read, -0.1, -2.0)  # row t reads words < t
        return lp


def test_direction_pairs_score_references_against_their_direction_flipped() -> None:
    from dvsa.caption.evaluation import direction_pairs

    words = (*WORDS, "right", "the", "is")
    lab = labels(words, 3)
    left, blue = words.index("left") + 1, words.index("blue") + 1
    image = dict(IMAGES[0])  # red circle left of blue square
    says_left = {**image, "sentences": [{"raw": "A red circle is left of a blue square."}]}
    says_right = {**image, "sentences": [{"raw": "A blue square is right of the red circle."}]}
    like = {"objects": [dict(image["objects"][0]), {**image["objects"][0], "box": [20, 0, 30, 10]}],  # two red circles
            "sentences": [{"raw": "A red circle is left of a red circle."}]}  # its flip is true too: no pair
    lab.labels[0, :2] = [left, left]  # the train captions say "left" twice and "right" never
    lab.images[0]["split"] = "train"
    out = direction_pairs(LeftLover(len(words), left), source, lab, np.arange(3), [says_left, says_right, like])  # type: ignore[arg-type]
    assert out == {"preferred": 0.5, "landmark": 0.5, "mirror": None, "word_frequency": 0.5, "n_pairs": 2}
    out = direction_pairs(LeftLover(len(words), left), source, lab, np.arange(3), [says_left, says_left, like])  # type: ignore[arg-type]
    assert out == {"preferred": 1.0, "landmark": 0.5, "mirror": None, "word_frequency": 1.0, "n_pairs": 2}
    # after "left" it expects a blue landmark: the reference "left of a blue square" wins on its landmark; in
    # "right of the red circle" against "left of the red circle" the landmark ties, though the flip says "left"
    out = direction_pairs(LandmarkReader(len(words), left, blue), source, lab, np.arange(3),  # type: ignore[arg-type]
                          [says_left, says_right, like])
    assert out == {"preferred": 0.5, "landmark": 0.75, "mirror": None, "word_frequency": 0.5, "n_pairs": 2}
    lab.images[0]["split"] = "test"  # no train captions: every word as frequent as its flip
    out = direction_pairs(LeftLover(len(words), left), source, lab, np.arange(3), [says_left, says_left, like])  # type: ignore[arg-type]
    assert out["word_frequency"] == 0.5
    none = direction_pairs(LeftLover(len(words), left), source, lab, np.arange(1), [like])  # type: ignore[arg-type]
    assert none == {"preferred": None, "landmark": None, "mirror": None, "word_frequency": None, "n_pairs": 0}


class BoxReader(LeftLover):
    """Says 'left' (log p -0.1) when region 1's box starts in the left half of the image, 'right' otherwise: it
    reads the geometry that follows fc7 (x0 is the 6th value from the end)."""

    def __init__(self, vocab: int, left: int, right: int) -> None:
        super().__init__(vocab, left)
        self.right = right

    def forward(self, feats: torch.Tensor, mask: torch.Tensor, seqs: torch.Tensor, seq_per_img: int) -> torch.Tensor:
        lp = torch.full((len(seqs), seqs.shape[1] + 1, self.vocab + 1), -2.0)
        on_left = (feats[:, 1, -6] < 0.5)[:, None]  # (N, 1)
        lp[:, :, self.left] = torch.where(on_left, -0.1, -2.0)
        lp[:, :, self.right] = torch.where(on_left, -2.0, -0.1)
        return lp


def test_the_mirror_pairs_tell_a_model_that_reads_the_boxes() -> None:
    from dvsa.caption.evaluation import direction_pairs

    words = (*WORDS, "right", "the", "is")
    lab = labels(words, 2)
    left, right = words.index("left") + 1, words.index("right") + 1
    image = dict(IMAGES[0])  # red circle (box 0-10 of 30) left of blue square
    says_left = {**image, "sentences": [{"raw": "A red circle is left of a blue square."}]}
    says_right = {**image, "sentences": [{"raw": "A blue square is right of the red circle."}]}

    def boxes(rows: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:  # fc7, then the circle's box at region 1
        feats, mask = source(rows)
        feats[:, 0, -6:] = torch.tensor([0.0, 0.0, 1.0, 1.0, 1.0, 1.0])
        feats[:, 1, -6:] = torch.tensor([0.0, 0.0, 0.33, 1.0, 0.33, 0.9])
        return feats, mask

    reader = BoxReader(len(words), left, right)
    out = direction_pairs(reader, boxes, lab, np.arange(2), [says_left, says_left], geometry=True)  # type: ignore[arg-type]
    assert out["mirror"] == 1.0 and out["n_pairs"] == 2
    # it says "left" of the circle's side whatever the sentence's subject: the square's pairs it reads backwards
    out = direction_pairs(reader, boxes, lab, np.arange(2), [says_right, says_right], geometry=True)  # type: ignore[arg-type]
    assert out["mirror"] == 0.0
    blind = direction_pairs(LeftLover(len(words), left), boxes, lab, np.arange(2), [says_left, says_right],  # type: ignore[arg-type]
                            geometry=True)
    assert blind["mirror"] == 0.5
