"""Table 3 of §4.3: region descriptions by four systems, scored against the region references.

Rows: the region model (the captioner trained on MRF snippets), the full-frame model (the image captioner
fed the region as a 1-region image), a nearest-neighbour baseline (the snippet of the training region with
the most similar fc7, by cosine), and human agreement (one reference against the others). Scores:
pycocoevalcap BLEU-1..4, METEOR, ROUGE_L, CIDEr; the model rows against all references of a region, the human
row against the others. Truth (dvsa.evaluate.truth): each phrase judged against the region's own object
alone; ``mention_precision`` is the colour+shape precision.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from dvsa.caption.features import FeatureSource
from dvsa.caption.generate import caption_rows
from dvsa.caption.model import Captioner
from dvsa.data.labels import Labels
from dvsa.data.vocab import decode, tokenize
from dvsa.evaluate.baselines import consensus_caption
from dvsa.evaluate.coco import coco_scores, score_systems
from dvsa.evaluate.truth import TruthMeter
from dvsa.regiondesc.config import EvaluateRegionParams
from dvsa.regiondesc.references import RegionItem

SYSTEMS = ("region_model", "full_frame", "nn_baseline", "human")
METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")


def describe(
    model: Captioner, source: FeatureSource, n: int, vocab: dict[int, str], p: EvaluateRegionParams
) -> list[str]:
    """A description of each of the `n` rows of `source` (one region each)."""
    seqs = caption_rows(model, source, np.arange(n), p.method, p.max_length, p.beam_size, batch_size=p.batch_size).seqs
    return [decode(s, vocab) for s in seqs]


def _unit_feats(source: FeatureSource, n: int, chunk: int) -> np.ndarray:
    """(n, D) unit-length features of the `n` rows of a one-region source."""
    parts = [source(np.arange(s, min(s + chunk, n)))[0][:, 0].numpy() for s in range(0, n, chunk)]
    x = np.concatenate(parts) if parts else np.zeros((0, source.dim), dtype=np.float32)  # type: ignore[attr-defined]
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def nearest_snippets(
    queries: FeatureSource,
    n_queries: int,
    pool: FeatureSource,
    phrases: Labels,
    pool_rows: np.ndarray,
    chunk: int = 256,
) -> list[str]:
    """For each query region, the consensus snippet of the pool region (rows `pool_rows` of the region-phrase
    dataset `phrases`, read through `pool`) whose fc7 is nearest by cosine; ties go to the earlier pool row."""
    q = _unit_feats(queries, n_queries, chunk)  # (Q, D)
    best = np.full(n_queries, -np.inf)
    best_row = np.zeros(n_queries, dtype=np.int64)
    for s in range(0, len(pool_rows), chunk):
        rows = pool_rows[s : s + chunk]
        feats, _ = pool(rows)  # (C, 1, D)
        x = feats[:, 0].numpy()
        sim = q @ (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).T  # (Q, C)
        arg = sim.argmax(axis=1)
        top = sim[np.arange(n_queries), arg]
        better = top > best
        best[better], best_row[better] = top[better], rows[arg[better]]
    out = []
    for row in best_row.tolist():
        snippets = [decode(c, phrases.ix_to_word) for c in phrases.captions(row)]
        out.append(snippets[consensus_caption(snippets)])
    return out


def score_table(items: Sequence[RegionItem], descriptions: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    """COCO scores of each system in `descriptions` (one phrase per item) against the items' references,
    and of human agreement (each item's first reference against the rest)."""
    refs = {k: it.references for k, it in enumerate(items)}
    systems = {name: dict(enumerate(phrases)) for name, phrases in descriptions.items()}
    table = score_systems(refs, systems)
    table["human"] = coco_scores({k: r[1:] for k, r in refs.items()}, {k: r[0] for k, r in refs.items()})
    return {name: {m: s[m] for m in METRICS} for name, s in table.items()}


def truth_table(items: Sequence[RegionItem], descriptions: dict[str, list[str]]) -> dict[str, dict[str, Any]]:
    """Truth of each system's phrases, each judged against its region's own object only."""
    out = {}
    for name, phrases in descriptions.items():
        meter = TruthMeter()
        for it, phrase in zip(items, phrases):
            meter.add(tokenize(phrase), [it.object] if it.object is not None else [], None)
        s = meter.summary()
        out[name] = {
            "mention_precision": s["mention_precision"],  # colour+shape precision
            "phrases_true": s["captions_true"],
            "mentions_per_phrase": s["n_mentions"] / max(s["n_captions"], 1),
            "n_mentions": s["n_mentions"],
        }
    return out
