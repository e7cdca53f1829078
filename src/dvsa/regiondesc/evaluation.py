"""Table 3 of §4.3: region descriptions by four systems, scored against the region references.

Rows: the region model (the captioner trained on MRF snippets), the full-frame model (the image captioner
fed the region as a 1-region image), a nearest-neighbour baseline (the snippet of the training region with
the most similar fc7, by cosine), and human agreement (one reference against the others). Scores:
pycocoevalcap BLEU-1..4, METEOR, ROUGE_L, CIDEr; the model rows against all references of a region, the human
row against the others. Truth (dvsa.metrics.truth): each phrase judged against the region's own object
alone; ``mention_precision`` is the colour+shape precision.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from dvsa.caption.generate import caption_rows
from dvsa.caption.model import Captioner
from dvsa.data.labels import Labels
from dvsa.data.vocab import decode, tokenize
from dvsa.errors import InputError
from dvsa.features import CachedFeatures, FeatureSource, OneRegion, check_feature_dim
from dvsa.metrics.baselines import consensus_caption
from dvsa.metrics.coco import coco_scores, score_systems
from dvsa.metrics.neighbours import nearest_neighbours
from dvsa.metrics.truth import TruthMeter
from dvsa.regiondesc.config import EvaluateRegionParams
from dvsa.regiondesc.references import RegionItem, has_references, regions_to_describe
from dvsa.regions.store import RegionStore

SYSTEMS = ("region_model", "full_frame", "nn_baseline", "human")
METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")


def describe(
    model: Captioner, source: FeatureSource, n: int, vocab: dict[int, str], p: EvaluateRegionParams
) -> list[str]:
    """A description of each of the `n` rows of `source` (one region each)."""
    seqs = caption_rows(model, source, np.arange(n), p.method, p.max_length, p.beam_size, batch_size=p.batch_size).seqs
    return [decode(s, vocab) for s in seqs]


def _first_region(source: FeatureSource) -> Callable[[np.ndarray], np.ndarray]:
    """Reads (n, D) features of rows of a one-region source."""
    return lambda rows: source(rows)[0][:, 0].numpy()


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
    if len(pool_rows) == 0:
        raise InputError("region snippets: no training region for the nearest-neighbour row")
    read = _first_region(queries)
    parts = [read(np.arange(s, min(s + chunk, n_queries))) for s in range(0, n_queries, chunk)]
    q = np.concatenate(parts) if parts else np.zeros((0, queries.dim), dtype=np.float32)  # (Q, D)
    out = []
    for row in nearest_neighbours(q, pool_rows, _first_region(pool), chunk).tolist():
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


Loaded = tuple[Captioner, dict[int, str], dict[str, Any]]  # dvsa.caption.checkpoint.load_captioner's


def regions_to_evaluate(
    images: list[dict[str, Any]], store: RegionStore, p: EvaluateRegionParams, regions_path: str, dataset_path: str
) -> list[RegionItem]:
    """The detected regions of the split's usable images to describe (those matching a true object, when the
    data has them); none is an InputError."""
    if len(store) != len(images):
        raise InputError(
            f"{regions_path}: {len(store)} images but {dataset_path} has {len(images)} (rerun `dvc repro regions`)"
        )
    rows = np.array([i for i, im in enumerate(images) if im["split"] == p.split], dtype=np.int64)
    items = regions_to_describe(images, store, rows[store.usable()[rows]], p.iou_threshold)
    if not items:
        raise InputError(f"{regions_path}: no detected region of the {p.split} split to describe")
    return items


def one_region(
    model: Captioner, base: FeatureSource, items: Sequence[RegionItem], model_path: str, regions_path: str
) -> OneRegion:
    """The items' regions as 1-region images of `base`, for a captioner built for their feature size."""
    source = OneRegion(base, np.array([it.image_row for it in items]), np.array([it.region for it in items]))
    check_feature_dim(model.config["feat_dim"], source.dim, model_path, regions_path)
    return source


def describe_systems(
    items: Sequence[RegionItem],
    store: RegionStore,
    region: Loaded,
    full_frame: Loaded,
    full_frame_base: FeatureSource,
    phrases: Labels,
    pool: tuple[np.ndarray, np.ndarray],
    p: EvaluateRegionParams,
    paths: dict[str, str],
) -> dict[str, list[str]]:
    """Table 3's machine rows: the region model's, the full-frame model's (on `full_frame_base`, the features
    its checkpoint reads) and the nearest training snippet's description of each item. `pool`: the
    region-phrase dataset's (image row, region) per row; `paths` names the files for errors (the keys
    region_model, full_frame, regions)."""
    region_model, region_vocab, region_ckpt = region
    full_model, full_vocab, _ = full_frame
    geometry = bool(region_ckpt["params"].get("region_geometry", False))
    region_source = one_region(region_model, CachedFeatures(store, geometry), items, paths["region_model"],
                               paths["regions"])
    full_source = one_region(full_model, full_frame_base, items, paths["full_frame"], paths["regions"])
    fc7 = CachedFeatures(store, geometry=False)
    pool_rows, pool_regions = pool
    return {
        "region_model": describe(region_model, region_source, len(items), region_vocab, p),
        "full_frame": describe(full_model, full_source, len(items), full_vocab, p),
        "nn_baseline": nearest_snippets(
            OneRegion(fc7, region_source.image_rows, region_source.regions),
            len(items),
            OneRegion(fc7, pool_rows, pool_regions),
            phrases,
            phrases.split_indices("train"),
        ),
    }


def region_record(items: Sequence[RegionItem], descriptions: dict[str, list[str]], split: str) -> dict[str, Any]:
    """The whole record of the evaluation: its size and, on data with region references, Table 3 (scores and
    truth, human agreement included)."""
    record: dict[str, Any] = {
        "split": split,
        "n_images": len({it.image_row for it in items}),
        "n_regions": len(items),
    }
    if has_references(items):
        record.update(score_table(items, descriptions))
        record["truth"] = truth_table(items, {**descriptions, "human": [it.references[0] for it in items]})
    return record


def descriptions_json(
    items: Sequence[RegionItem], images: list[dict[str, Any]], descriptions: dict[str, list[str]]
) -> list[dict[str, Any]]:
    """data/eval/region_descriptions.json: per item its image, region, box, each system's description and,
    where it matches one, the true object and its references."""
    out = []
    for k, it in enumerate(items):
        info = images[it.image_row]
        entry = {
            "image_id": info.get("cocoid", info["imgid"]),
            "filename": info["filename"],
            "region": it.region,
            "box": [round(c, 2) for c in it.box],
            **{name: d[k] for name, d in descriptions.items()},
        }
        if it.object is not None:
            entry.update(object=it.object.get("label"), references=it.references)
        out.append(entry)
    return out


def table_lines(record: dict[str, Any]) -> list[str]:
    """Table 3 as printed: one row per system, BLEU-1..4, METEOR, ROUGE_L, CIDEr and the colour+shape precision."""
    lines = [f"{record['n_regions']} regions of {record['n_images']} {record['split']} images"]
    lines.append(f"{'':14s}" + "".join(f"{c:>9s}" for c in METRICS) + f"{'col+shape':>11s}")
    for s in SYSTEMS:
        cells = "".join(f"{record[s][c]:9.3f}" if isinstance(record[s][c], float) else f"{'n/a':>9s}" for c in METRICS)
        precision = record["truth"][s]["mention_precision"]
        lines.append(f"{s:14s}{cells}{'n/a' if precision is None else f'{precision:.3f}':>11s}")
    return lines
