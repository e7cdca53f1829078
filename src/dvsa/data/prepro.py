"""Captions -> vocabulary + labels arrays, as neuraltalk2's prepro.py (docs/design.md, "Files between stages")."""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import numpy as np

from dvsa.data.config import PreprocessParams
from dvsa.data.labels import Labels
from dvsa.data.vocab import UNK, build_vocab, encode, tokenize


def sentence_tokens(sentence: dict[str, Any]) -> list[str]:
    """The sentence's `tokens`, lowercased, or its `raw` text tokenised."""
    tokens = sentence.get("tokens")
    return [t.lower() for t in tokens] if tokens else tokenize(sentence["raw"])


def build_labels(dataset: dict[str, Any], params: PreprocessParams) -> tuple[Labels, dict[str, Any]]:
    """Vocabulary + labels for every image of `dataset` (in order); also returns vocabulary statistics."""
    images = dataset["images"]
    token_lists = [[sentence_tokens(s) for s in im["sentences"]] for im in images]
    vocab, counts = build_vocab((t for caps in token_lists for t in caps), params.word_count_threshold)
    word_to_ix = {w: i + 1 for i, w in enumerate(vocab)}

    rows, lengths, start, end = [], [], [], []
    for caps in token_lists:
        start.append(len(rows) + 1)
        for tokens in caps:
            rows.append(encode(tokens, word_to_ix, params.max_length))
            lengths.append(min(len(tokens), params.max_length))
        end.append(len(rows))
    labels = Labels(
        labels=np.stack(rows).astype(np.uint32),  # (M, L)
        label_start_ix=np.array(start, dtype=np.uint32),  # (N,)
        label_end_ix=np.array(end, dtype=np.uint32),  # (N,)
        label_length=np.array(lengths, dtype=np.uint32),  # (M,)
        ix_to_word={i: w for w, i in word_to_ix.items()},
        images=[
            {
                "split": im["split"],
                "id": im.get("cocoid", im["imgid"]),
                "file_path": os.path.join(im.get("filepath", ""), im["filename"]),
            }
            for im in images
        ],
    )
    return labels, _statistics(token_lists, counts, vocab, params.max_length)


def _statistics(token_lists: list[list[list[str]]], counts: Counter[str], vocab: list[str], max_length: int) -> dict[str, Any]:
    """What neuraltalk2's prepro.py prints: kept words, UNK rate, sentence-length histogram."""
    kept = set(vocab) - {UNK}
    total_words = sum(counts.values())
    bad_words = sum(n for w, n in counts.items() if w not in kept)
    lengths = Counter(len(t) for caps in token_lists for t in caps)
    n_sentences = sum(lengths.values())
    return {
        "n_images": len(token_lists),
        "n_sentences": n_sentences,
        "n_distinct_words": len(counts),
        "vocab_size": len(vocab),
        "n_rare_words": len(counts) - len(kept),
        "unk_rate": bad_words / max(total_words, 1),
        "max_sentence_length": max(lengths),
        "truncated_rate": sum(n for k, n in lengths.items() if k > max_length) / max(n_sentences, 1),
        "length_histogram": {str(k): lengths[k] for k in sorted(lengths)},
    }
