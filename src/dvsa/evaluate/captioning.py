"""Evaluation of the captioner on a split: its captions, the nearest-neighbour baseline's, the COCO metrics
of both against the dataset's raw reference sentences, the per-metric margin, the test perplexity and, on
data with true objects (the shapes world), the truth of both systems' captions (dvsa.evaluate.truth)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dvsa.caption.features import FeatureSource
from dvsa.caption.generate import caption_rows, perplexity
from dvsa.caption.model import Captioner
from dvsa.data.labels import Labels
from dvsa.data.rows import check_rows
from dvsa.data.vocab import decode, tokenize
from dvsa.errors import InputError
from dvsa.evaluate.baselines import nearest_neighbour_captions
from dvsa.evaluate.coco import METRICS, score_systems
from dvsa.evaluate.config import EvaluateCaptioningParams
from dvsa.evaluate.truth import Judgement, TruthMeter
from dvsa.regions.store import RegionStore


@dataclass
class CaptionEvaluation:
    rows: np.ndarray  # (N,) evaluated rows of dataset.json / regions.h5
    image_ids: list[Any]  # vocab.json image ids of `rows`
    captions: list[str]  # the model's
    baseline: list[str]  # the nearest-neighbour baseline's
    references: list[list[str]]  # raw reference sentences
    metrics: dict[str, Any]
    attention: np.ndarray | None = None  # (N, T, R) attention of the step that emitted each word of `captions`
    truth: list[Judgement] | None = None  # of `captions`, on data with true objects
    baseline_truth: list[Judgement] | None = None  # of `baseline`


def check_compatible(
    model: Captioner, vocab: dict[int, str], labels: Labels, store: RegionStore, model_path: str, feat_dim: int
) -> None:
    """The captioner fits the labels and the regions, whose features (with their geometry) are feat_dim-d."""
    if vocab != labels.ix_to_word:
        raise InputError(f"{model_path}: trained with another vocabulary (rerun `dvc repro train_captioner`)")
    if model.config["feat_dim"] != feat_dim:
        raise InputError(
            f"{model_path}: expects {model.config['feat_dim']}-d features, {store.path} gives {feat_dim}-d"
        )
    check_rows(labels, store, str(store.path))


def evaluate_captions(
    model: Captioner,
    labels: Labels,
    store: RegionStore,
    dataset: dict[str, Any],
    params: EvaluateCaptioningParams,
    source: FeatureSource,
    progress: bool = True,
) -> CaptionEvaluation:
    """Decode `source`'s features of the split; the nearest-neighbour baseline uses the cached features of
    `store` (the CNN as it was before any finetuning)."""
    rows = labels.split_indices(params.split)
    if len(rows) == 0:
        raise InputError(f"labels: no images in the {params.split} split")
    if len(dataset["images"]) != len(labels.images):
        raise InputError(f"dataset.json: {len(dataset['images'])} images but the labels have {len(labels.images)}")
    references = [[s["raw"] for s in dataset["images"][int(i)].get("sentences", [])] for i in rows]
    empty = [int(i) for i, refs in zip(rows, references) if not refs]
    if empty:
        raise InputError(f"dataset.json: image {empty[0]} of the {params.split} split has no reference sentences")
    decoded = caption_rows(
        model,
        source,
        rows,
        method=params.method,
        max_length=params.max_length,
        beam_size=params.beam_size,
        temperature=params.temperature,
        batch_size=params.batch_size,
        seed=params.seed,
        progress=progress,
    )
    captions = [decode(s, labels.ix_to_word) for s in decoded.seqs]
    baseline = nearest_neighbour_captions(labels, store, dataset, rows)
    keys = [int(i) for i in rows]
    scored = score_systems(
        {k: refs for k, refs in zip(keys, references)},
        {"model": dict(zip(keys, captions)), "nn_baseline": dict(zip(keys, baseline))},
    )
    model_scores, nn_scores = scored["model"], scored["nn_baseline"]
    unavailable = model_scores.pop("unavailable")
    nn_scores.pop("unavailable")
    margin = {
        m: model_scores[m] - nn_scores[m]
        for m in METRICS
        if isinstance(model_scores[m], float) and isinstance(nn_scores[m], float)
    }
    model_scores["perplexity"] = perplexity(model, source, labels, rows, params.batch_size)
    metrics = {
        "split": params.split,
        "n_images": len(rows),
        "decoding": {
            "method": params.method,
            "max_length": params.max_length,
            **({"beam_size": params.beam_size} if params.method == "beam" else {}),
            **({"temperature": params.temperature} if params.method == "sample" else {}),
        },
        "model": model_scores,
        "nn_baseline": nn_scores,
        "margin": margin,
        "unavailable": unavailable,
    }
    truth = baseline_truth = None
    images = [dataset["images"][int(i)] for i in rows]
    if all("objects" in im for im in images):
        meters = {"model": TruthMeter(), "nn_baseline": TruthMeter()}
        truth = [meters["model"].add(tokenize(c), im["objects"], im.get("background")) for c, im in zip(captions, images)]
        baseline_truth = [
            meters["nn_baseline"].add(tokenize(c), im["objects"], im.get("background")) for c, im in zip(baseline, images)
        ]
        metrics["truth"] = {name: m.summary() for name, m in meters.items()}
    return CaptionEvaluation(
        rows=rows,
        image_ids=[labels.images[int(i)]["id"] for i in rows],
        captions=captions,
        baseline=baseline,
        references=references,
        metrics=metrics,
        attention=decoded.attention,
        truth=truth,
        baseline_truth=baseline_truth,
    )
