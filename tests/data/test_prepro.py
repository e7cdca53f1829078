"""labels.h5 + vocab.json read back the way neuraltalk2's DataLoader reads them."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from dvsa.data.config import PreprocessParams
from dvsa.data.dataset import load_karpathy
from dvsa.data.labels import read_labels, write_labels
from dvsa.data.prepro import build_labels, sentence_tokens
from dvsa.data.vocab import UNK, tokenize
from tests.conftest import write_karpathy


def neuraltalk2_captions(h5_path: Path, vocab_path: Path) -> list[list[str]]:
    """Decode every image's captions exactly as neuraltalk2's DataLoader.lua / self-critical.pytorch do."""
    info = json.loads(vocab_path.read_text())
    ix_to_word = info["ix_to_word"]
    out = []
    with h5py.File(h5_path, "r") as f:
        labels = f["labels"][()]
        for i in range(len(info["images"])):
            ix1, ix2 = int(f["label_start_ix"][i]) - 1, int(f["label_end_ix"][i]) - 1  # 1-indexed inclusive
            caps = []
            for row in labels[ix1 : ix2 + 1]:
                caps.append(" ".join(ix_to_word[str(int(ix))] for ix in row if ix > 0))
            out.append(caps)
    return out


def test_round_trip_as_neuraltalk2_reads_it(tmp_path: Path) -> None:
    sentences = ["A red circle left of a blue square.", "red circle", "blue square and red circle", "a zebra", "circle circle circle circle circle"]
    path, root = write_karpathy(tmp_path, n_images=6, sentences=sentences)
    dataset = load_karpathy(path, root, "train")
    params = PreprocessParams(word_count_threshold=6, max_length=4)
    labels, stats = build_labels(dataset, params)
    write_labels(tmp_path / "labels.h5", tmp_path / "vocab.json", labels)

    words = set(labels.ix_to_word.values())
    assert {"zebra", "left"}.isdisjoint(words) and {"red", UNK} <= words  # 6 occurrences each: not > 6
    decoded = neuraltalk2_captions(tmp_path / "labels.h5", tmp_path / "vocab.json")
    for image, caps in zip(dataset["images"], decoded, strict=True):
        assert len(caps) == len(image["sentences"])
        for sentence, cap in zip(image["sentences"], caps, strict=True):
            expected = [w if w in words else UNK for w in sentence_tokens(sentence)][: params.max_length]
            assert cap.split() == expected
    with h5py.File(tmp_path / "labels.h5", "r") as f:
        assert f["labels"].dtype == np.uint32 and f["labels"].shape == (30, 4)
        assert f["label_start_ix"].dtype == np.uint32
        assert list(f["label_length"][:5]) == [4, 2, 4, 2, 4]
    info = json.loads((tmp_path / "vocab.json").read_text())
    assert info["images"][1] == {"split": "train", "id": 1001, "file_path": "sub/1.png"}
    assert stats["n_sentences"] == 30 and stats["truncated_rate"] > 0


def test_threshold_keeps_words_counted_more_than_it(tmp_path: Path) -> None:
    path, root = write_karpathy(tmp_path, n_images=6, sentences=["red red blue", "red", "green", "green", "blue"])
    dataset = load_karpathy(path, root, "train")  # counts over 6 images: red 18, blue 12, green 12
    labels, _ = build_labels(dataset, PreprocessParams(word_count_threshold=11, max_length=8))
    assert set(labels.ix_to_word.values()) == {"red", "blue", "green"}  # no word dropped: no UNK
    labels, _ = build_labels(dataset, PreprocessParams(word_count_threshold=12, max_length=8))
    assert set(labels.ix_to_word.values()) == {"red", UNK}
    assert labels.ix_to_word[1] == "red"


def test_read_labels_matches_written(tmp_path: Path) -> None:
    path, root = write_karpathy(tmp_path)
    labels, _ = build_labels(load_karpathy(path, root, "train"), PreprocessParams())
    write_labels(tmp_path / "l.h5", tmp_path / "v.json", labels)
    back = read_labels(tmp_path / "l.h5", tmp_path / "v.json")
    np.testing.assert_array_equal(back.labels, labels.labels)
    assert back.ix_to_word == labels.ix_to_word
    assert list(back.split_indices("test")) == [4, 5]
    assert back.captions(1).shape == (5, 16)


def test_tokenize() -> None:
    assert tokenize("A Red-circle, left of  the (blue) square!") == ["a", "red", "circle", "left", "of", "the", "blue", "square"]
