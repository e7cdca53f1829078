"""Evaluation of the captioner on a split: its captions, the nearest-neighbour baseline's, the COCO metrics
of both against the dataset's raw reference sentences, the per-metric margin, and the test perplexity."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from dvsa.caption.generate import caption_rows, perplexity
from dvsa.caption.model import Captioner
from dvsa.data.labels import Labels
from dvsa.data.vocab import decode
from dvsa.errors import InputError
from dvsa.evaluate.baselines import consensus_caption, nearest_neighbours
from dvsa.evaluate.coco import METRICS, score_systems
from dvsa.evaluate.config import EvaluateCaptioningParams
from dvsa.regions.store import RegionStore


@dataclass
class CaptionEvaluation:
    rows: np.ndarray  # (N,) evaluated rows of dataset.json / regions.h5
    image_ids: list[Any]  # vocab.json image ids of `rows`
    captions: list[str]  # the model's
    baseline: list[str]  # the nearest-neighbour baseline's
    neighbours: np.ndarray  # (N,) the training row each baseline caption comes from
    references: list[list[str]]  # raw reference sentences
    metrics: dict[str, Any]


def check_compatible(model: Captioner, vocab: dict[int, str], labels: Labels, store: RegionStore, model_path: str) -> None:
    if vocab != labels.ix_to_word:
        raise InputError(f"{model_path}: trained with another vocabulary (rerun `dvc repro train_captioner`)")
    if model.config["feat_dim"] != store.dim:
        raise InputError(
            f"{model_path}: expects {model.config['feat_dim']}-d features, {store.path} has {store.dim}-d"
        )
    if len(store) != len(labels.images):
        raise InputError(f"{store.path}: {len(store)} images but the labels have {len(labels.images)}")


def evaluate_captions(
    model: Captioner,
    labels: Labels,
    store: RegionStore,
    dataset: dict[str, Any],
    params: EvaluateCaptioningParams,
    progress: bool = True,
) -> CaptionEvaluation:
    rows = labels.split_indices(params.split)
    if len(rows) == 0:
        raise InputError(f"labels: no images in the {params.split} split")
    if len(dataset["images"]) != len(labels.images):
        raise InputError(f"dataset.json: {len(dataset['images'])} images but the labels have {len(labels.images)}")
    references = [[s["raw"] for s in dataset["images"][int(i)].get("sentences", [])] for i in rows]
    empty = [int(i) for i, refs in zip(rows, references) if not refs]
    if empty:
        raise InputError(f"dataset.json: image {empty[0]} of the {params.split} split has no reference sentences")
    seqs = caption_rows(
        model,
        store,
        rows,
        method=params.method,
        max_length=params.max_length,
        beam_size=params.beam_size,
        temperature=params.temperature,
        batch_size=params.batch_size,
        seed=params.seed,
        progress=progress,
    )
    captions = [decode(s, labels.ix_to_word) for s in seqs]
    train_rows = labels.split_indices("train")
    if len(train_rows) == 0:
        raise InputError("labels: no images in the train split for the nearest-neighbour baseline")
    neighbours = nearest_neighbours(store, rows, train_rows)
    baseline = []
    for j in neighbours:
        raws = [x["raw"] for x in dataset["images"][int(j)]["sentences"]]
        baseline.append(raws[consensus_caption(raws)])
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
    model_scores["perplexity"] = perplexity(model, store, labels, rows, params.batch_size)
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
    return CaptionEvaluation(
        rows=rows,
        image_ids=[labels.images[int(i)]["id"] for i in rows],
        captions=captions,
        baseline=baseline,
        neighbours=neighbours,
        references=references,
        metrics=metrics,
    )
