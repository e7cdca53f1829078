"""The captioner's one split evaluation (``evaluate_split``: captions decoded from a feature source and the
perplexity of the split's captions), used twice:

- ``evaluate_captions``, the evaluate_captioner stage's: the model's captions, the nearest-neighbour
  baseline's, the COCO metrics of both against the dataset's raw reference sentences, the per-metric margin,
  the test perplexity and, on data with true objects (the shapes world), the truth of both systems' captions
  (dvsa.metrics.truth), of the model's captions when asked for a count or a relation (``ask``), and whether the
  model tells a relation reference from its direction flipped (``direction_pairs``);
- ``validate``, the trainer's validation: the val loss, the CIDEr / BLEU-4 of greedy captions against the
  vocabulary's references (fast path: no Java) and the first predictions, as neuraltalk2's val_predictions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from dvsa.caption.config import EvaluateCaptioningParams
from dvsa.caption.generate import caption_rows, perplexity
from dvsa.caption.mirror import AXIS_OF, Mirror
from dvsa.caption.model import Captioner, token_logprobs
from dvsa.data.labels import Labels
from dvsa.data.vocab import decode, tokenize
from dvsa.errors import InputError
from dvsa.features import GEOMETRY_DIM, FeatureSource, check_feature_dim, check_rows
from dvsa.metrics.baselines import nearest_neighbour_captions
from dvsa.metrics.coco import METRICS, coco_scores, score_systems
from dvsa.metrics.repetition import repetition_share
from dvsa.metrics.truth import CLAIM_WORDS, FLIPPED, Judgement, TruthMeter, judge
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
    asked: dict[str, list[str]] = field(default_factory=dict)  # claim kind -> the captions asked for one (`ask`)
    asked_truth: dict[str, list[Judgement]] = field(default_factory=dict)  # and their judgements


def check_compatible(
    model: Captioner, vocab: dict[int, str], labels: Labels, store: RegionStore, model_path: str, feat_dim: int
) -> None:
    """The captioner fits the labels and the regions, whose features (with their geometry) are feat_dim-d."""
    if vocab != labels.ix_to_word:
        raise InputError(f"{model_path}: trained with another vocabulary (rerun `dvc repro train_captioner`)")
    check_feature_dim(model.config["feat_dim"], feat_dim, model_path, str(store.path))
    check_rows(labels, store, str(store.path))


@dataclass
class SplitCaptions:
    """What evaluate_split gives for rows of a split."""

    captions: list[str]  # (N,) decoded to words
    attention: np.ndarray | None  # (N, T, R) the attention of the step that emitted each word
    perplexity: float  # of every caption of the rows (words and END)


def evaluate_split(
    model: Captioner,
    source: FeatureSource,
    labels: Labels,
    rows: np.ndarray,
    method: str = "greedy",
    max_length: int = 16,
    beam_size: int = 3,
    temperature: float = 1.0,
    batch_size: int = 50,
    seed: int = 0,
    progress: bool = False,
) -> SplitCaptions:
    """Captions of `rows` decoded from `source` (dvsa.caption.generate.caption_rows) and the perplexity of
    their reference captions; leaves the model in eval mode."""
    decoded = caption_rows(
        model,
        source,
        rows,
        method=method,
        max_length=max_length,
        beam_size=beam_size,
        temperature=temperature,
        batch_size=batch_size,
        seed=seed,
        progress=progress,
    )
    captions = [decode(s, labels.ix_to_word) for s in decoded.seqs]
    return SplitCaptions(captions, decoded.attention, perplexity(model, source, labels, rows, batch_size))


def validate(
    model: Captioner, source: FeatureSource, labels: Labels, rows: np.ndarray, n_predictions: int
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """The trainer's validation: val loss (log perplexity of all captions of `rows`), CIDEr / BLEU-4 of greedy
    captions against the vocabulary's references (fast path: no METEOR, no PTB tokenizer, no warnings), and
    the first `n_predictions` (image id, caption) pairs, as neuraltalk2's val_predictions. The model is left
    in train mode."""
    out = evaluate_split(model, source, labels, rows, method="greedy", max_length=labels.max_length)
    refs = {int(i): [decode(c, labels.ix_to_word) for c in labels.captions(int(i))] for i in rows}
    hyps = {int(i): c for i, c in zip(rows, out.captions)}
    scores = coco_scores(refs, hyps, meteor=False, ptb=False, warn=False)
    predictions = [{"image_id": labels.images[int(i)]["id"], "caption": hyps[int(i)]} for i in rows[:n_predictions]]
    model.train()
    metrics = {"val/loss": math.log(out.perplexity), "val/CIDEr": scores["CIDEr"], "val/Bleu_4": scores["Bleu_4"]}
    return metrics, predictions


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
    out = evaluate_split(
        model,
        source,
        labels,
        rows,
        method=params.method,
        max_length=params.max_length,
        beam_size=params.beam_size,
        temperature=params.temperature,
        batch_size=params.batch_size,
        seed=params.seed,
        progress=progress,
    )
    captions = out.captions
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
    model_scores["perplexity"] = out.perplexity
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
        "repeats_phrase": {  # the share of captions that repeat a noun phrase (dvsa.metrics.repetition)
            "model": repetition_share(tokenize(c) for c in captions),
            "nn_baseline": repetition_share(tokenize(c) for c in baseline),
            "references": repetition_share(tokenize(r) for refs in references for r in refs),
        },
    }
    truth = baseline_truth = None
    asked: dict[str, Asked] = {}
    images = [dataset["images"][int(i)] for i in rows]
    if all("objects" in im for im in images):
        meters = {"model": TruthMeter(), "nn_baseline": TruthMeter()}
        truth = [meters["model"].add(tokenize(c), im["objects"], im.get("background")) for c, im in zip(captions, images)]
        baseline_truth = [
            meters["nn_baseline"].add(tokenize(c), im["objects"], im.get("background")) for c, im in zip(baseline, images)
        ]
        metrics["truth"] = {name: m.summary() for name, m in meters.items()}
        asked = ask(model, source, labels, rows, images, params)
        metrics["truth_asked"] = {kind: a.summary for kind, a in asked.items()}
        metrics["direction_pairs"] = direction_pairs(model, source, labels, rows, images, params.batch_size,
                                                     geometry=source.dim == store.dim + GEOMETRY_DIM)
    return CaptionEvaluation(
        rows=rows,
        image_ids=[labels.images[int(i)]["id"] for i in rows],
        captions=captions,
        baseline=baseline,
        references=references,
        metrics=metrics,
        attention=out.attention,
        truth=truth,
        baseline_truth=baseline_truth,
        asked={kind: a.captions for kind, a in asked.items()},
        asked_truth={kind: a.truth for kind, a in asked.items()},
    )


@dataclass
class Asked:
    """The captions of a split asked for one kind of claim, their judgements and the truth summary."""

    captions: list[str]
    truth: list[Judgement]
    summary: dict[str, Any]


def ask(
    model: Captioner,
    source: FeatureSource,
    labels: Labels,
    rows: np.ndarray,
    images: list[dict[str, Any]],
    params: EvaluateCaptioningParams,
) -> dict[str, Asked]:
    """What the captioner says when asked for a count or a relation: each image's most likely caption that
    holds a word of that kind (dvsa.metrics.truth.CLAIM_WORDS; constrained beam search, params.beam_size beams
    per state), judged like the captions. A captioner that never states a relation unasked still shows here
    whether it knows one: {kind: its Asked}, the kinds whose words the vocabulary has."""
    index = {w: i for i, w in labels.ix_to_word.items()}
    out = {}
    for kind, words in CLAIM_WORDS.items():
        required = [index[w] for w in words if w in index]
        if not required:
            continue
        decoded = caption_rows(model, source, rows, method="beam", max_length=params.max_length,
                               beam_size=params.beam_size, batch_size=params.batch_size, required=required)
        captions = [decode(s, labels.ix_to_word) for s in decoded.seqs]
        meter = TruthMeter()
        truth = [meter.add(tokenize(c), im["objects"], im.get("background")) for c, im in zip(captions, images)]
        out[kind] = Asked(captions, truth, meter.summary())
    return out


def direction_pairs(
    model: Captioner,
    source: FeatureSource,
    labels: Labels,
    rows: np.ndarray,
    images: list[dict[str, Any]],
    batch_size: int = 50,
    geometry: bool = False,
) -> dict[str, float | int | None]:
    """Minimal pairs of direction: each reference sentence of `rows` with one relation word, true of its image,
    against the same sentence with that word flipped (dvsa.metrics.truth.FLIPPED: left <-> right, above <->
    below, ...) where the flipped one is false, both teacher forced (no decoding, so it measures what the
    captioner knows of directions even where it never states one).

    `preferred`: the share of pairs whose reference the model finds more likely (words and END). It mixes two
    things: which direction words follow the subject, where synonyms make one direction's words rarer ("under"
    is one of three words for below, "over" one of two for above), and where the landmark is. `word_frequency`
    is the first part alone: the share a model that knows only how often each word occurs in the train
    captions gets. `landmark`: the share of pairs whose words after the direction word (the landmark and END)
    are more likely after the true direction than after the flipped one; a model that ignores the direction
    word when it names the landmark gets 0.5 exactly, whatever its word frequencies. `mirror` (with
    `geometry`, features followed by their boxes): the share of pairs whose direction word loses ground to its
    flip when the image's boxes are mirrored on the relation's axis (dvsa.caption.mirror; left / right:
    left-right), log p(true word) - log p(flipped word) at that word; a model that does not read the boxes
    gets 0.5, one whose direction word follows the boxes 1 (0 if it reads them backwards). Ties count half."""
    index = {w: i for i, w in labels.ix_to_word.items()}
    pairs: list[tuple[int, list[int], list[int], int]] = []  # (position in rows, reference, flipped, flipped at)
    for k, im in enumerate(images):
        for sentence in im.get("sentences", []):
            tokens = tokenize(sentence["raw"])
            at = [t for t, w in enumerate(tokens) if w in FLIPPED]
            if len(at) != 1 or any(w not in index for w in tokens) or FLIPPED[tokens[at[0]]] not in index:
                continue
            flipped = [*tokens[: at[0]], FLIPPED[tokens[at[0]]], *tokens[at[0] + 1 :]]
            background = im.get("background")
            if judge(tokens, im["objects"], background).true and not judge(flipped, im["objects"], background).true:
                pairs.append((k, [index[w] for w in tokens], [index[w] for w in flipped], at[0]))
    if not pairs:
        return {"preferred": None, "landmark": None, "mirror": None, "word_frequency": None, "n_pairs": 0}
    train = labels.split_indices("train")
    words = np.concatenate([labels.captions(int(i)).reshape(-1) for i in train]) if len(train) else np.zeros(0, np.int64)
    frequency = np.bincount(words.astype(np.int64), minlength=len(labels.ix_to_word) + 1)  # (V + 1,) 0 = padding
    by_frequency = sum(float(np.sign(frequency[ref[at]] - frequency[flip[at]]) + 1) / 2 for _, ref, flip, at in pairs)
    model.eval()
    device = next(model.parameters()).device
    wins = landmark = mirrored = 0.0
    for s in range(0, len(pairs), batch_size):
        chunk = pairs[s : s + batch_size]
        feats, mask = source(rows[[k for k, _, _, _ in chunk]])  # (b, R, D), (b, R)
        width = max(len(ids) for _, ids, _, _ in chunk) + 1  # every row ends in END
        seqs = torch.zeros(2 * len(chunk), width, dtype=torch.long)  # (2b, L): references, then flipped
        for j, (_, ref, flip, _) in enumerate(chunk):
            seqs[j, : len(ref)], seqs[len(chunk) + j, : len(flip)] = torch.tensor(ref), torch.tensor(flip)
        positions = torch.tensor([at for _, _, _, at in chunk])[:, None]  # (b, 1): where the direction word is
        feats, mask, seqs = torch.cat([feats, feats]).to(device), torch.cat([mask, mask]).to(device), seqs.to(device)
        with torch.no_grad():
            logp = token_logprobs(model(feats, mask, seqs, seq_per_img=1), seqs).cpu()  # (2b, L + 1)
        after = torch.arange(width + 1)[None, :] > positions  # (b, L + 1)
        ref_lp, flip_lp = logp[: len(chunk)], logp[len(chunk) :]  # (b, L + 1) each
        wins += _share_won(ref_lp.sum(1), flip_lp.sum(1))
        landmark += _share_won((ref_lp * after).sum(1), (flip_lp * after).sum(1))
        if geometry:
            axes = torch.tensor([[AXIS_OF[labels.ix_to_word[ref[at]]] == axis for axis in (0, 1)]
                                 for _, ref, _, at in chunk])  # (b, 2): the relation's axis
            with torch.no_grad():
                mirrored_feats = Mirror.boxes(feats, mask, torch.cat([axes, axes]).to(device))
                logp_m = token_logprobs(model(mirrored_feats, mask, seqs, seq_per_img=1), seqs).cpu()  # (2b, L + 1)
            lead = (ref_lp.gather(1, positions) - flip_lp.gather(1, positions))[:, 0]  # (b,) the true word's lead
            lead_m = (logp_m[: len(chunk)].gather(1, positions) - logp_m[len(chunk) :].gather(1, positions))[:, 0]
            mirrored += _share_won(lead, lead_m)
    n = len(pairs)
    return {"preferred": wins / n, "landmark": landmark / n, "mirror": mirrored / n if geometry else None,
            "word_frequency": by_frequency / n, "n_pairs": n}


def _share_won(a: Tensor, b: Tensor) -> float:
    """How many of the rows a (N,) beats b (N,), ties counting half."""
    return float((a > b).sum()) + 0.5 * float((a == b).sum())


