"""The `evaluate_alignment` stage's work: ranking (Table 1), MRF snippets (eqs. (10)-(12)), grounding, figures."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from dvsa.align.config import EvaluateAlignmentParams
from dvsa.align.grounding import GroundingCounts, is_grounded, shapes_lexicon
from dvsa.align.model import AlignmentModel
from dvsa.align.retrieval import retrieve_split
from dvsa.align.snippets import Segment, segments, viterbi
from dvsa.data.dataset import image_path
from dvsa.data.images import load_rgb
from dvsa.data.labels import Labels
from dvsa.figures.boxes import PALETTE, LabelledBox, add_caption, draw_labelled_boxes
from dvsa.metrics.ranking import Ranks, ranking_metrics
from dvsa.regions.store import RegionStore


@dataclass
class SentenceAlignment:
    """One test sentence aligned to the regions of its own image."""

    image_row: int  # row of labels.h5 / regions.h5 / dataset.json
    words: list[str]  # (N,)
    word_region: np.ndarray  # (N,) argmax_i v_i . s_t: the region each word picks in eq. (8)
    assignment: np.ndarray  # (N,) the MRF's exact maximiser, eqs. (10)-(12)
    unary: np.ndarray  # (N, M) v_i . s_t over the M real regions


@dataclass
class AlignmentResults:
    metrics: dict[str, Any]
    sentences: list[SentenceAlignment]  # (L,) in the order of `ranks.search`
    image_rows: np.ndarray  # (K,) the evaluated rows of labels.h5, in the order of `ranks.annotation`
    ranks: Ranks


@torch.no_grad()
def evaluate(
    model: AlignmentModel, score_kind: str, labels: Labels, store: RegionStore, p: EvaluateAlignmentParams
) -> AlignmentResults:
    """Rank every image of the split against every sentence (dvsa.align.retrieval.retrieve_split, as the
    trainer's validation), and align each sentence to its own image."""
    r = retrieve_split(model, labels, store, p.split, score_kind, p.batch_size)
    image_ix, sents, v, rmask, s, wmask, ranks = r.image_ix, r.sentences, r.v, r.region_mask, r.s, r.word_mask, r.ranks
    metrics: dict[str, Any] = {
        "split": p.split,
        "n_images": int(len(image_ix)),
        "n_sentences": int(len(sents.words)),
        **ranking_metrics(ranks),
    }
    aligned = []
    for l, k in enumerate(tqdm(sents.sentence_image.tolist(), desc="snippets", unit="sent", leave=False)):
        n_words = int(wmask[l].sum())
        n_regions = int(rmask[k].sum())
        unary = (s[l, :n_words] @ v[k, :n_regions].T).numpy().astype(np.float64)  # (N, M)
        aligned.append(
            SentenceAlignment(
                image_row=int(image_ix[k]),
                words=[labels.ix_to_word[int(w)] for w in sents.words[l, :n_words]],
                word_region=unary.argmax(axis=1) if n_words else np.zeros(0, dtype=np.int64),
                assignment=viterbi(unary, p.beta),
                unary=unary,
            )
        )
    seg_lengths = [seg.end - seg.start for a in aligned for seg in segments(a.assignment)]
    metrics["snippets"] = {
        "beta": p.beta,
        "n_segments": len(seg_lengths),
        "mean_words_per_segment": float(np.mean(seg_lengths)) if seg_lengths else 0.0,
    }
    return AlignmentResults(metrics, aligned, image_ix, ranks)


def grounding(
    aligned: list[SentenceAlignment], store: RegionStore, dataset: dict[str, Any], iou_threshold: float
) -> dict[str, float | int | None] | None:
    """Grounding accuracy of colour and shape words; None when the dataset has no true objects."""
    images = dataset["images"]
    if not all("objects" in images[a.image_row] for a in aligned):
        return None
    lexicon = shapes_lexicon()
    counts = GroundingCounts()
    for a in aligned:
        objects = images[a.image_row]["objects"]
        for word, region in zip(a.words, a.word_region.tolist()):
            if word in lexicon:
                word_class, value = lexicon[word]
                box = store.boxes[a.image_row, region].tolist()
                counts.add(word_class, is_grounded(word_class, value, box, objects, iou_threshold))
    return counts.summary()


def _snippet_segments(a: SentenceAlignment, store: RegionStore) -> Iterator[tuple[Segment, str, list[float]]]:
    for seg in segments(a.assignment):
        yield seg, " ".join(a.words[seg.start : seg.end]), store.boxes[a.image_row, seg.region].tolist()


def snippets_json(aligned: list[SentenceAlignment], labels: Labels, store: RegionStore) -> list[dict[str, Any]]:
    """data/eval/snippets.json: per image, each sentence with its word segments and the box of each."""
    out: list[dict[str, Any]] = []
    for a in aligned:
        if not out or out[-1]["image_row"] != a.image_row:
            info = labels.images[a.image_row]
            out.append({"image_row": a.image_row, "id": info["id"], "file_path": info["file_path"], "sentences": []})
        out[-1]["sentences"].append({
            "sentence": " ".join(a.words),
            "segments": [
                {
                    "words": text,
                    "region": seg.region,
                    "box": [round(c, 2) for c in box],
                    "score": round(float(a.unary[np.arange(seg.start, seg.end), seg.region].sum()), 4),
                }
                for seg, text, box in _snippet_segments(a, store)
            ],
        })
    return out


def figure(a: SentenceAlignment, store: RegionStore, image: Image.Image) -> Image.Image:
    """The paper's Figure 5 style: the image, the box of each snippet with the snippet's text on it, and the
    sentence below with each snippet in its box's colour."""
    colors: dict[int, tuple[int, int, int]] = {}
    texts: dict[int, list[str]] = {}
    runs = []
    for seg, text, _ in _snippet_segments(a, store):
        color = colors.setdefault(seg.region, PALETTE[len(colors) % len(PALETTE)])
        texts.setdefault(seg.region, []).append(text)
        runs.append((text, color))
    boxes = [
        LabelledBox(store.boxes[a.image_row, r].tolist(), " / ".join(texts[r]), colors[r])
        for r in sorted(colors, key=lambda r: -_area(store.boxes[a.image_row, r]))  # big boxes first
    ]
    drawn = draw_labelled_boxes(image, boxes)
    return add_caption(drawn, runs, font_size=max(14, drawn.height // 24))


def write_figures(
    aligned: list[SentenceAlignment], store: RegionStore, dataset: dict[str, Any], n: int, out_dir: Path
) -> list[Path]:
    """Figures for `n` images spread evenly over the split into out_dir; of each image's sentences the one
    whose snippets use the most distinct regions is drawn (the first such)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    by_image: dict[int, list[SentenceAlignment]] = {}
    for a in aligned:
        by_image.setdefault(a.image_row, []).append(a)
    rows = list(by_image)
    picks = sorted({int(round(x)) for x in np.linspace(0, len(rows) - 1, min(n, len(rows)))}) if n else []
    root = dataset["image_root"]
    paths = []
    for rank, j in enumerate(picks):
        a = max(by_image[rows[j]], key=lambda x: len(set(x.assignment.tolist())))
        info = dataset["images"][a.image_row]
        path = out_dir / f"{rank + 1:02d}_{Path(info['filename']).stem}.png"
        figure(a, store, load_rgb(image_path(root, info))).save(path)
        paths.append(path)
    return paths


def _area(box: np.ndarray) -> float:
    return float((box[2] - box[0]) * (box[3] - box[1]))
