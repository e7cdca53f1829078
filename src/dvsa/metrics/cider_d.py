"""CIDEr-D on token ids, in process (no Java, no strings): the reward of self-critical training.

CIDEr-D (Vedantam et al., CVPR 2015, the variant the COCO server reports) as coco-caption's
``cider_scorer.py`` computes it, so a score equals pycocoevalcap's ``CiderScorer`` on the same candidates,
references and document frequencies:

- g_k(s) = tf_k(s) * (log |I| - log max(1, df_k)): the tf-idf weight of n-gram k in sentence s, df_k the
  number of images whose reference set holds k, |I| the number of images of the corpus (``ref_len``);
- CIDEr-D_n(c, S) = 1/m sum_j exp(-(l(c) - l(s_j))^2 / (2 sigma^2)) * sum_k min(g_k(c), g_k(s_j)) g_k(s_j)
  / (|g^n(c)| |g^n(s_j)|): clipped cosine per n-gram order n, sigma = 6 Gaussian length penalty on the
  lengths l in tokens (cider_scorer.py counts bigrams, one fewer: the same difference but where a sentence
  is empty, and an empty sentence shares no n-gram, so its terms are 0 either way);
- CIDEr-D(c, S) = 10 * mean over n = 1..4 of CIDEr-D_n (the x10 of coco-caption).

Tokens are ids, END included: a candidate is the sampled words followed by its END (0, the captioner's END
index), cut there; a reference is its words followed by END likewise (``references_with_end``). A candidate
that stopped at the length cap without END is scored as it is. Ids must lie in 0..65534 (an n-gram of up to
four ids is packed into one uint64, 16 bits per id).

Document frequencies of a training split are computed once per labels.h5 and cached beside it
(``document_frequencies_for``); the cache is keyed by the content of labels.h5 and vocab.json (vocab.json
holds the splits), so a changed file is never scored with stale frequencies: a cache of other files is
rebuilt, with one line on stderr, and atomically replaced.
"""

from __future__ import annotations

import itertools
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dvsa.data.labels import Labels, read_labels
from dvsa.errors import InputError
from dvsa.hashing import digest, file_digest
from dvsa.io import atomic_path

END = 0  # the captioner's END index (dvsa.caption.model: output 0), counted as a token
MAX_N = 4  # n-grams of 1..4 ids fit one uint64
MAX_ID = (1 << 16) - 2  # ids are stored as id + 1 in 16 bits, so that 0 (END) is a digit too
FORMAT = "dvsa.cider_df/1"

TokenLists = Sequence[Sequence[int]]


def _flatten(seqs: TokenLists) -> tuple[np.ndarray, np.ndarray]:
    """Sequences -> (T,) int64 tokens end to end and (S,) int64 lengths."""
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    flat = np.fromiter(itertools.chain.from_iterable(seqs), dtype=np.int64, count=int(lengths.sum()))
    if flat.size and (flat.min() < 0 or flat.max() > MAX_ID):
        raise ValueError(f"CIDEr-D: token ids must lie in 0..{MAX_ID}, got {flat.min()}..{flat.max()}")
    return flat, lengths


def _ngrams(seqs: TokenLists, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Every n-gram occurrence (orders 1..n) of `seqs`: (K,) its sequence and (K,) uint64 its packed code."""
    flat, lengths = _flatten(seqs)
    seq_of_tok = np.repeat(np.arange(len(lengths)), lengths)  # (T,)
    left = lengths[seq_of_tok] - (np.arange(flat.size) - (np.cumsum(lengths) - lengths)[seq_of_tok])  # (T,) >= 1
    digits = (flat + 1).astype(np.uint64)  # (T,) never 0, so codes of different orders differ
    code = np.zeros(flat.size, dtype=np.uint64)
    seqs_out, codes_out = [], []
    for k in range(n):  # the (k+1)-grams starting at each token
        code[: max(flat.size - k, 0)] |= digits[k:] << np.uint64(16 * k)  # fewer tokens than k: none
        valid = left > k
        seqs_out.append(seq_of_tok[valid])
        codes_out.append(code[valid])
    return np.concatenate(seqs_out), np.concatenate(codes_out)


def _lookup(table: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of `query` in the sorted `table` and whether each is there (a position is valid only then)."""
    if not len(table):
        return np.zeros(len(query), dtype=np.int64), np.zeros(len(query), dtype=bool)
    ix = np.minimum(np.searchsorted(table, query), len(table) - 1)
    return ix, table[ix] == query


def _order(codes: np.ndarray) -> np.ndarray:
    """(G,) uint64 packed codes -> (G,) int64 their n-gram order 1..4 (the highest non-zero 16-bit digit)."""
    return 1 + sum((codes >= np.uint64(1 << (16 * k))).astype(np.int64) for k in range(1, MAX_N))


def _counts(seqs: TokenLists, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Term frequencies: (E,) sequence, (E,) uint64 n-gram code, (E,) int64 count of each distinct pair."""
    seq, code = _ngrams(seqs, n)
    uniq, inv = np.unique(code, return_inverse=True)
    pairs, tf = np.unique(seq * len(uniq) + inv, return_counts=True)
    return pairs // max(len(uniq), 1), uniq[pairs % max(len(uniq), 1)], tf


def _lengths(seqs: TokenLists) -> np.ndarray:
    """(S,) float64 the length l of each sentence, in tokens (END included)."""
    return np.fromiter((len(s) for s in seqs), dtype=np.float64, count=len(seqs))


@dataclass(frozen=True)
class DocumentFrequencies:
    """df_k of every n-gram k (orders 1..4) over a corpus of images, and ref_len = log(number of images).

    One document is one image's reference set: df_k counts the images with k in any of their references
    (coco-caption's ``CiderScorer.compute_doc_freq``).
    """

    codes: np.ndarray  # (G,) uint64 packed n-grams, sorted
    counts: np.ndarray  # (G,) int64 df of each
    n_images: int
    key: str = ""  # what the frequencies were computed from (the cache key of document_frequencies_for)

    @property
    def ref_len(self) -> float:
        """log |I|, CIDEr's ``ref_len``."""
        return math.log(float(self.n_images))

    @classmethod
    def from_references(cls, refs: Sequence[TokenLists], key: str = "") -> DocumentFrequencies:
        """From each image's reference token lists (END included); refs[i] = the references of image i."""
        if not refs:
            raise ValueError("CIDEr-D: document frequencies need at least one image")
        sentences = [s for image in refs for s in image]
        image_of_sentence = np.repeat(np.arange(len(refs)), [len(image) for image in refs])
        seq, code = _ngrams(sentences, MAX_N)
        uniq, inv = np.unique(code, return_inverse=True)
        docs = np.unique(image_of_sentence[seq] * len(uniq) + inv)  # distinct (image, n-gram) pairs
        return cls(uniq, np.bincount(docs % max(len(uniq), 1), minlength=len(uniq)).astype(np.int64), len(refs), key)

    def of(self, codes: np.ndarray) -> np.ndarray:
        """(K,) uint64 packed n-grams -> (K,) float64 their df (0 for an n-gram of no image)."""
        ix, found = _lookup(self.codes, codes)
        return np.where(found, self.counts[ix] if len(self.codes) else 0, 0).astype(np.float64)

    def to_dict(self) -> dict[tuple[int, ...], int]:
        """{n-gram as a tuple of ids: df}, as CiderScorer's ``document_frequency``."""
        out = {}
        for code, count in zip(self.codes.tolist(), self.counts.tolist()):
            ids = []
            while code:
                ids.append((code & 0xFFFF) - 1)
                code >>= 16
            out[tuple(ids)] = count
        return out

    def save(self, path: str | Path) -> None:
        """Write an .npz atomically."""
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, format=np.array(FORMAT), key=np.array(self.key), codes=self.codes, counts=self.counts,
                         n_images=np.array(self.n_images, dtype=np.int64))

    @classmethod
    def load(cls, path: str | Path) -> DocumentFrequencies:
        """Read an .npz written by `save`; a missing or malformed file is an InputError naming it."""
        p = Path(path)
        try:
            with np.load(p, allow_pickle=False) as z:
                if str(z["format"]) != FORMAT:
                    raise InputError(f"{p}: format {str(z['format'])!r}, expected {FORMAT!r}")
                return cls(z["codes"].astype(np.uint64), z["counts"].astype(np.int64), int(z["n_images"]),
                           str(z["key"]))
        except (OSError, ValueError, KeyError) as e:
            raise InputError(f"{p}: not a CIDEr-D document-frequency file ({e})") from None


def references_with_end(labels: Labels, images: Sequence[int]) -> list[list[list[int]]]:
    """The reference captions of each image of `images` (rows of labels.h5) as token lists ending in END."""
    out = []
    for i in images:
        start, end = int(labels.label_start_ix[i]) - 1, int(labels.label_end_ix[i])
        out.append([[*labels.labels[j, : int(labels.label_length[j])].tolist(), END] for j in range(start, end)])
    return out


def candidates_with_end(seqs: np.ndarray) -> list[list[int]]:
    """(N, T) sampled words, 0 (END) after the last -> each row cut after its first END (kept); a row that
    reached the length cap without END is kept whole."""
    rows = np.asarray(seqs).tolist()
    return [row[: row.index(END) + 1] if END in row else row for row in rows]


def cache_path(labels_h5: str | Path, split: str) -> Path:
    """Where `document_frequencies_for` keeps the frequencies of `split`: beside labels.h5."""
    p = Path(labels_h5)
    return p.with_name(f"{p.stem}.cider_df.{split}.npz")


def document_frequencies_for(labels_h5: str | Path, split: str = "train") -> DocumentFrequencies:
    """The document frequencies of `split`'s references (END included) in labels.h5 (its vocab.json beside it).

    Computed once and cached in ``cache_path(labels_h5, split)``; the cache holds the digest of labels.h5 and
    vocab.json and is rebuilt (and atomically replaced) when either file changed or the cache is unreadable.
    """
    labels_h5 = Path(labels_h5)
    vocab = labels_h5.with_name("vocab.json")
    if not labels_h5.is_file():
        raise InputError(f"{labels_h5}: file not found (run `dvc repro preprocess`)")
    if not vocab.is_file():
        raise InputError(f"{vocab}: file not found beside {labels_h5.name} (run `dvc repro preprocess`)")
    key = digest(FORMAT, split, file_digest(labels_h5), file_digest(vocab))
    cache = cache_path(labels_h5, split)
    if cache.is_file():
        try:
            df = DocumentFrequencies.load(cache)
        except InputError as e:
            print(f"CIDEr-D: rebuilding {cache} ({e})", file=sys.stderr)
        else:
            if df.key == key:
                return df
            print(f"CIDEr-D: {cache} is of another labels.h5 / vocab.json: rebuilding it", file=sys.stderr)
    labels = read_labels(labels_h5, vocab)
    if labels.vocab_size > MAX_ID:
        raise InputError(f"{vocab}: {labels.vocab_size} words, CIDEr-D on ids supports at most {MAX_ID}")
    images = labels.split_indices(split)
    if not len(images):
        raise InputError(f"{vocab}: the {split} split has no images (CIDEr-D document frequencies)")
    df = DocumentFrequencies.from_references(references_with_end(labels, images), key)
    df.save(cache)
    return df


@dataclass(frozen=True)
class References:
    """Each image's reference vectors g(s_j), computed once (`CiderD.prepare`) for all the candidates."""

    ref_start: np.ndarray  # (I + 1,) int64: the references of image i are start[i]..start[i+1]
    codes: np.ndarray  # (G,) uint64 the distinct n-grams of all references, sorted
    keys: np.ndarray  # (E,) int64 sorted: reference r * G + n-gram index
    weights: np.ndarray  # (E,) float64 g_k(s_r) of each key
    norms: np.ndarray  # (R, n) float64 |g^n(s_r)|
    lengths: np.ndarray  # (R,) float64 l(s_r)

    @property
    def n_images(self) -> int:
        return len(self.ref_start) - 1


class CiderD:
    """CIDEr-D with fixed document frequencies (those of the training references), x10 as coco-caption."""

    def __init__(self, df: DocumentFrequencies, n: int = 4, sigma: float = 6.0) -> None:
        if not 1 <= n <= MAX_N:
            raise ValueError(f"CIDEr-D: n must be 1..{MAX_N}, got {n}")
        self.df, self.n, self.sigma = df, n, sigma

    def _vectors(self, seqs: TokenLists) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """tf-idf vectors: (E,) sentence, (E,) code, (E,) order - 1, (E,) weight g_k, and (S, n) norms."""
        seq, code, tf = _counts(seqs, self.n)
        order = _order(code) - 1
        weight = tf.astype(np.float64) * (self.df.ref_len - np.log(np.maximum(1.0, self.df.of(code))))
        norms = np.sqrt(np.bincount(seq * self.n + order, weights=weight**2, minlength=len(seqs) * self.n))
        return seq, code, order, weight, norms.reshape(len(seqs), self.n)

    def prepare(self, refs: Sequence[TokenLists]) -> References:
        """refs[i] = the reference token lists (END included) of image i; each image needs at least one."""
        per_image = np.array([len(image) for image in refs], dtype=np.int64)
        if not len(refs) or per_image.min() < 1:
            raise ValueError("CIDEr-D: every image needs at least one reference")
        sentences = [s for image in refs for s in image]
        seq, code, _, weight, norms = self._vectors(sentences)
        codes, ix = np.unique(code, return_inverse=True)
        keys = seq * len(codes) + ix
        order = np.argsort(keys)
        return References(np.concatenate([[0], np.cumsum(per_image)]), codes, keys[order], weight[order], norms,
                          _lengths(sentences))

    def scores(self, candidates: TokenLists, image_of_candidate: Sequence[int], refs: References) -> np.ndarray:
        """(C,) float64 CIDEr-D x10 of each candidate (token list, END included) against the references of
        its image, image_of_candidate[c] indexing `refs` (prepared by this CiderD)."""
        if refs.norms.shape[1] != self.n:
            raise ValueError(f"CIDEr-D: references prepared for n = {refs.norms.shape[1]}, scored with n = {self.n}")
        img = np.asarray(image_of_candidate, dtype=np.int64)  # (C,)
        if len(img) != len(candidates):
            raise ValueError(f"CIDEr-D: {len(candidates)} candidates but {len(img)} image indices")
        if len(img) and (img.min() < 0 or img.max() >= refs.n_images):
            raise ValueError(f"CIDEr-D: image indices must lie in 0..{refs.n_images - 1}")
        n_refs = refs.ref_start[img + 1] - refs.ref_start[img]  # (C,)
        pair_start = np.cumsum(n_refs) - n_refs  # (C,) candidate c's (candidate, reference) pairs
        n_pairs = int(n_refs.sum())
        cand_of_pair = np.repeat(np.arange(len(img)), n_refs)  # (P,)
        ref_of_pair = refs.ref_start[img][cand_of_pair] + np.arange(n_pairs) - pair_start[cand_of_pair]  # (P,)

        seq, code, order, weight, norms = self._vectors(candidates)
        g, shared = _lookup(refs.codes, code)  # shared: n-grams some reference holds
        seq, g, order, weight = seq[shared], g[shared], order[shared], weight[shared]
        k = n_refs[seq]  # each shared n-gram meets every reference of its image
        entry = np.repeat(np.arange(len(seq)), k)  # (X,)
        pair = pair_start[seq][entry] + np.arange(len(entry)) - np.repeat(np.cumsum(k) - k, k)  # (X,)
        key = ref_of_pair[pair] * len(refs.codes) + g[entry]
        at, found = _lookup(refs.keys, key)
        w_ref = np.where(found, refs.weights[at], 0.0) if len(refs.keys) else np.zeros(len(key))  # (X,) g_k(s_j)
        clipped = np.minimum(weight[entry], w_ref) * w_ref
        val = np.bincount(pair * self.n + order[entry], weights=clipped, minlength=n_pairs * self.n)
        val = val.astype(np.float64).reshape(n_pairs, self.n)  # (P, n); bincount of nothing is int64
        denom = norms[cand_of_pair] * refs.norms[ref_of_pair]
        val = np.divide(val, denom, out=val.copy(), where=denom != 0)
        delta = _lengths(candidates)[cand_of_pair] - refs.lengths[ref_of_pair]  # (P,)
        val *= np.e ** (-(delta**2) / (2 * self.sigma**2))[:, None]
        per_candidate = np.stack([np.bincount(cand_of_pair, val[:, i], len(img)) for i in range(self.n)], axis=1)
        return per_candidate.mean(axis=1) / np.maximum(n_refs, 1) * 10.0
