"""CIDEr-D on token ids (dvsa.metrics.cider_d): equal to pycocoevalcap's CiderScorer on the same candidates,
references and document frequencies; the document-frequency cache follows labels.h5; and what the reward
pays for a repeated phrase."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pycocoevalcap.cider.cider_scorer import CiderScorer

from dvsa.data.labels import Labels, write_labels
from dvsa.errors import InputError
from dvsa.metrics.cider_d import (
    END,
    MAX_ID,
    CiderD,
    DocumentFrequencies,
    cache_path,
    candidates_with_end,
    document_frequencies_for,
)

Corpus = list[list[list[int]]]


def random_sentence(rng: np.random.Generator, end: bool = True) -> list[int]:
    """0..13 words from a tiny vocabulary (so n-grams repeat within and across sentences), rarely a large id,
    then END."""
    words = rng.integers(1, 6, int(rng.integers(0, 14))).tolist()
    if words and rng.random() < 0.2:
        words[int(rng.integers(len(words)))] = MAX_ID
    return words + [END] if end else words


@pytest.fixture(scope="module")
def corpus() -> tuple[Corpus, list[list[list[int]]]]:
    """40 images with 1..5 references each, and 3 candidates per image (some without END: the length cap)."""
    rng = np.random.default_rng(0)
    refs = [[random_sentence(rng) for _ in range(int(rng.integers(1, 6)))] for _ in range(40)]
    cands = [[random_sentence(rng, end=rng.random() > 0.1) for _ in range(3)] for _ in range(40)]
    cands[0][0] = []  # an empty candidate scores 0
    cands[1][1] = list(refs[1][0])  # a candidate equal to a reference
    return refs, cands


def text(seq: list[int]) -> str:
    return " ".join(map(str, seq))


def coco_scores(refs: Corpus, tests: list[list[int]], sigma: float = 6.0) -> tuple[np.ndarray, CiderScorer]:
    """pycocoevalcap's CIDEr-D of tests[i] against refs[i], its document frequencies from the same refs."""
    scorer = CiderScorer(n=4, sigma=sigma)
    for t, r in zip(tests, refs):
        scorer += (text(t), [text(s) for s in r])
    _, scores = scorer.compute_score()
    return scores, scorer


@pytest.mark.parametrize("sigma", [6.0, 1.5])
def test_scores_equal_pycocoevalcap(corpus: tuple[Corpus, list[list[list[int]]]], sigma: float) -> None:
    refs, cands = corpus
    metric = CiderD(DocumentFrequencies.from_references(refs), sigma=sigma)
    prepared = metric.prepare(refs)
    for s in range(3):  # CiderScorer takes one candidate per image: one run per sample
        expected, _ = coco_scores(refs, [c[s] for c in cands], sigma)
        got = metric.scores([c[s] for c in cands], range(len(refs)), prepared)
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
        assert np.ptp(got) > 1.0  # the candidates score differently: the comparison is not vacuous


def test_a_batch_of_samples_against_the_training_frequencies(corpus: tuple[Corpus, list[list[list[int]]]]) -> None:
    """The training call: n samples of a few images, their references prepared alone, the frequencies of the
    whole corpus."""
    refs, cands = corpus
    metric = CiderD(DocumentFrequencies.from_references(refs))
    batch = [7, 3, 31, 3]  # an image may come twice
    prepared = metric.prepare([refs[i] for i in batch])
    flat = [cands[i][s] for i in batch for s in range(3)]
    got = metric.scores(flat, np.repeat(np.arange(len(batch)), 3), prepared)
    expected = np.array([coco_scores(refs, [c[s] for c in cands])[0][batch] for s in range(3)]).T.ravel()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)


def test_document_frequencies_equal_pycocoevalcap(corpus: tuple[Corpus, list[list[list[int]]]]) -> None:
    refs, cands = corpus
    df = DocumentFrequencies.from_references(refs)
    _, scorer = coco_scores(refs, [c[0] for c in cands])
    theirs = {tuple(int(t) for t in k): int(v) for k, v in scorer.document_frequency.items() if v}
    assert df.to_dict() == theirs
    assert df.ref_len == pytest.approx(scorer.ref_len, abs=1e-12)
    assert df.to_dict()[(END,)] == len(refs)  # END is a token of every reference


def test_bad_calls_are_refused(corpus: tuple[Corpus, list[list[list[int]]]]) -> None:
    refs, _ = corpus
    metric = CiderD(DocumentFrequencies.from_references(refs))
    prepared = metric.prepare(refs[:2])
    with pytest.raises(ValueError, match="0..1"):
        metric.scores([[1, END]], [2], prepared)
    with pytest.raises(ValueError, match="image indices"):
        metric.scores([[1, END], [2, END]], [0], prepared)
    with pytest.raises(ValueError, match="token ids"):
        metric.scores([[MAX_ID + 1, END]], [0], prepared)
    with pytest.raises(ValueError, match="at least one reference"):
        metric.prepare([refs[0], []])
    with pytest.raises(ValueError, match="prepared for n = 4, scored with n = 2"):
        CiderD(metric.df, n=2).scores([[1, END]], [0], prepared)
    assert metric.scores([], [], prepared).shape == (0,)


def test_candidates_are_cut_after_their_end() -> None:
    seqs = np.array([[4, 2, 0, 0], [3, 0, 0, 0], [0, 0, 0, 0], [1, 2, 3, 4]])
    assert candidates_with_end(seqs) == [[4, 2, END], [3, END], [END], [1, 2, 3, 4]]


# --- the cache beside labels.h5 ---


def write_tiny_labels(folder: Path, captions: list[list[int]], splits: list[str], per_image: int = 2,
                      vocab_size: int = 7) -> Path:
    """labels.h5 + vocab.json of len(splits) images with `per_image` captions each (width 4: one is cut)."""
    width = 4
    labels = np.zeros((len(captions), width), dtype=np.uint32)
    for j, c in enumerate(captions):
        labels[j, : min(len(c), width)] = c[:width]
    starts = np.arange(len(splits)) * per_image + 1
    data = Labels(labels, starts.astype(np.uint32), (starts + per_image - 1).astype(np.uint32),
                  np.array([min(len(c), width) for c in captions], dtype=np.uint32),
                  {k: f"w{k}" for k in range(1, vocab_size + 1)},
                  [{"split": s, "id": i, "file_path": f"{i}.png"} for i, s in enumerate(splits)])
    write_labels(folder / "labels.h5", folder / "vocab.json", data)
    return folder / "labels.h5"


CAPTIONS = [[1, 2, 3], [1, 2], [4, 5, 6, 7, 1], [4, 5], [2, 2, 2], [3, 1]]  # 3 images x 2; the third is cut


def test_frequencies_are_those_of_the_split_with_end(tmp_path: Path) -> None:
    h5 = write_tiny_labels(tmp_path, CAPTIONS, ["train", "train", "val"])
    df = document_frequencies_for(h5)
    expected = DocumentFrequencies.from_references([[[1, 2, 3, END], [1, 2, END]], [[4, 5, 6, 7, END], [4, 5, END]]])
    assert df.to_dict() == expected.to_dict() and df.n_images == 2
    assert document_frequencies_for(h5, "val").to_dict() == DocumentFrequencies.from_references(
        [[[2, 2, 2, END], [3, 1, END]]]).to_dict()
    assert cache_path(h5, "train").is_file() and cache_path(h5, "val").is_file()


def test_the_cache_is_used_and_rebuilt_when_labels_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    h5 = write_tiny_labels(tmp_path, CAPTIONS, ["train", "train", "val"])
    first = document_frequencies_for(h5)
    built = DocumentFrequencies.from_references
    with monkeypatch.context() as m:  # an unchanged labels.h5 is read from the cache, not recomputed
        m.setattr(DocumentFrequencies, "from_references", classmethod(lambda *a, **k: pytest.fail("recomputed")))
        assert document_frequencies_for(h5).to_dict() == first.to_dict()
    assert DocumentFrequencies.from_references == built

    changed = [list(c) for c in CAPTIONS]
    changed[0] = [6, 6, 6]
    write_tiny_labels(tmp_path, changed, ["train", "train", "val"])
    second = document_frequencies_for(h5)
    assert (6, 6, 6) in second.to_dict() and (1, 2, 3) not in second.to_dict()
    assert "rebuilding" in capsys.readouterr().err
    assert DocumentFrequencies.load(cache_path(h5, "train")).to_dict() == second.to_dict()

    write_tiny_labels(tmp_path, changed, ["train", "val", "train"])  # same captions, other splits (vocab.json)
    assert document_frequencies_for(h5).to_dict() == DocumentFrequencies.from_references(
        [[[6, 6, 6, END], [1, 2, END]], [[2, 2, 2, END], [3, 1, END]]]).to_dict()


def test_an_unreadable_cache_is_rebuilt_and_bad_inputs_are_one_line(tmp_path: Path) -> None:
    h5 = write_tiny_labels(tmp_path, CAPTIONS, ["train", "train", "val"])
    cache_path(h5, "train").write_bytes(b"not an npz")
    with pytest.raises(InputError, match="not a CIDEr-D document-frequency file"):
        DocumentFrequencies.load(cache_path(h5, "train"))
    assert document_frequencies_for(h5).n_images == 2
    other = tmp_path / "other.npz"
    np.savez(other, format=np.array("dvsa.other/1"))
    with pytest.raises(InputError, match="other.npz: format 'dvsa.other/1', expected 'dvsa.cider_df/1'"):
        DocumentFrequencies.load(other)
    with pytest.raises(InputError, match="test split has no images"):
        document_frequencies_for(h5, "test")
    write_tiny_labels(tmp_path, CAPTIONS, ["train", "train", "val"], vocab_size=MAX_ID + 1)
    with pytest.raises(InputError, match=f"vocab.json: {MAX_ID + 1} words"):
        document_frequencies_for(h5)
    (tmp_path / "vocab.json").unlink()
    with pytest.raises(InputError, match="vocab.json: file not found"):
        document_frequencies_for(h5)
    with pytest.raises(InputError, match="labels.h5: file not found"):
        document_frequencies_for(tmp_path / "missing" / "labels.h5")


# --- what the reward pays for a repeated phrase ---

CORPUS = [  # other images of a shapes world, for the document frequencies
    ["a red circle", "there is a red circle", "a red circle on a striped background", "one red circle"],
    ["two blue squares", "a blue square left of a blue square", "exactly two blue squares", "two squares"],
    ["a white cross", "a white cross in the picture", "one white cross", "a scene with a white cross"],
    ["a green star above a red circle", "a green star", "two objects", "a red circle below a green star"],
    ["three yellow diamonds", "exactly three diamonds", "a yellow diamond", "there are three yellow diamonds"],
    ["two white circles", "a white circle right of a white circle", "two circles", "exactly two white objects"],
    ["a purple diamond", "the purple diamond on a spotted background", "one purple object", "a purple diamond"],
    ["two white crosses", "exactly two crosses", "two white objects", "two white crosses in the image"],
]
TWO_CROSSES = ["two white crosses", "there are two white crosses", "exactly two white crosses",
               "two white crosses on a striped background"]
RELATION = "a white cross left of a white cross"  # the world's relation sentences repeat the phrase
REPEATED, SINGLE, COUNTED = "a white cross and a white cross", "a white cross", "two white crosses"


def reward(candidates: list[str], references: list[str]) -> list[float]:
    words = sorted({w for s in [*candidates, *references, *sum(CORPUS, [])] for w in s.split()})
    ix = {w: k + 1 for k, w in enumerate(words)}

    def ids(s: str) -> list[int]:
        return [ix[w] for w in s.split()] + [END]

    metric = CiderD(DocumentFrequencies.from_references([[ids(s) for s in im] for im in [*CORPUS, references]]))
    prepared = metric.prepare([[ids(s) for s in references]])
    return metric.scores([ids(c) for c in candidates], [0] * len(candidates), prepared).tolist()


def test_repeating_a_phrase_pays_less_than_saying_it_once_against_two_white_crosses() -> None:
    repeated, single, counted = reward([REPEATED, SINGLE, COUNTED], TWO_CROSSES)
    assert repeated < 0.7 * single  # the repeated n-grams count once at most (clipping), and the length costs
    assert counted > 5 * single


def test_each_copy_beyond_the_references_count_lowers_the_reward() -> None:
    """A reference that repeats the phrase (the world's relation sentences) pays for two copies at most:
    clipped at its counts, a third and a fourth copy only lower the reward (an unclipped cosine would pay the
    fourth more than the third)."""
    twice, three, four = reward([REPEATED, f"{REPEATED} and {SINGLE}", f"{SINGLE} {SINGLE} {SINGLE} {SINGLE}"],
                                [*TWO_CROSSES[:3], RELATION])
    assert twice > three > four
    assert four < 0.5 * twice


@pytest.mark.parametrize("cands", [[[0]], [[0], [0]], [[0], [0], [0]], [[5], [0]], [[]]])
def test_a_batch_with_fewer_tokens_than_the_ngram_order_is_scored(cands: list[list[int]]) -> None:
    """A greedy pass that ends at once (END only) on 2-3 images: fewer tokens in all than n = 4."""
    refs = [[[5, 6, 0], [5, 0]], [[6, 0], [7, 8, 0]], [[7, 8, 0]]][: len(cands)]
    metric = CiderD(DocumentFrequencies.from_references(refs))
    got = metric.scores(cands, range(len(cands)), metric.prepare(refs))
    expected, _ = coco_scores(refs, cands)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-9)
