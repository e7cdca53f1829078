"""DVC stage `evaluate_region_captioner` (§4.3, Table 3, Figure 6): the test regions that match a true object
(IoU >= iou_threshold, the best detection per object) described by the region model, the full-frame
captioner (fed the region as a 1-region image), the nearest training snippet (fc7 cosine) and, as human
agreement, one reference against the rest; pycocoevalcap scores and the truth of each row's phrases against
the region's own object.

Writes metrics/region_captioning.json (CIDEr, METEOR, ROUGE_L, BLEU-4 per row and the colour+shape precision:
the DVC metric), metrics/details/region_captioning.json (the whole record), data/eval/region_descriptions.json
and reports/regions/*.png. Data without region references (real photos): every detected region of the split
is described and drawn, and nothing is scored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from dvsa.caption.checkpoint import load_captioner
from dvsa.caption.cnn import checkpoint_source
from dvsa.caption.features import CachedFeatures
from dvsa.caption.model import Captioner
from dvsa.data.dataset import image_path, load_dataset
from dvsa.data.images import load_rgb
from dvsa.data.labels import read_labels
from dvsa.errors import InputError
from dvsa.io import atomic_path, write_json
from dvsa.metrics import write_metrics
from dvsa.params import load_params
from dvsa.regiondesc.config import EvaluateRegionParams
from dvsa.regiondesc.dataset import read_index
from dvsa.regiondesc.evaluation import SYSTEMS, describe, nearest_snippets, score_table, truth_table
from dvsa.regiondesc.features import ImageSource, OneRegion
from dvsa.regiondesc.figure import figure_name, region_figure
from dvsa.regiondesc.references import RegionItem, has_references, regions_to_describe
from dvsa.regions.data import image_records
from dvsa.regions.store import RegionStore
from dvsa.stage import run_stage

DATASET, REGIONS, REGION_CNN = "data/dataset/dataset.json", "data/regions/regions.h5", "models/region_cnn.pt"
SNIPPETS = "data/region_snippets"
REGION_MODEL, FULL_FRAME = "models/region_captioner.pt", "models/captioner.pt"
DESCRIPTIONS, FIGURES = "data/eval/region_descriptions.json", "reports/regions"
METRICS, DETAILS = "metrics/region_captioning.json", "metrics/details/region_captioning.json"
SUMMARY = [f"{s}.{m}" for s in SYSTEMS for m in ("CIDEr", "METEOR", "ROUGE_L", "Bleu_4")] + [
    f"truth.{s}.mention_precision" for s in SYSTEMS
]


def _one_region(model: Captioner, base: ImageSource, items: list[RegionItem], path: str) -> OneRegion:
    source = OneRegion(base, np.array([it.image_row for it in items]), np.array([it.region for it in items]))
    if model.config["feat_dim"] != source.dim:
        raise InputError(f"{path}: expects {model.config['feat_dim']}-d features but {REGIONS} gives {source.dim}-d")
    return source


def main() -> None:
    params = load_params(EvaluateRegionParams, "evaluate.region_captioning")
    if params.threads:
        torch.set_num_threads(params.threads)
    dataset = load_dataset(DATASET)
    images = dataset["images"]
    region_model, region_vocab, region_ckpt = load_captioner(REGION_MODEL)
    full_model, full_vocab, full_ckpt = load_captioner(FULL_FRAME)
    phrases = read_labels(f"{SNIPPETS}/labels.h5", f"{SNIPPETS}/vocab.json")
    with RegionStore(REGIONS) as store:
        if len(store) != len(images):
            raise InputError(
                f"{REGIONS}: {len(store)} images but {DATASET} has {len(images)} (rerun `dvc repro regions`)"
            )
        rows = np.array([i for i, im in enumerate(images) if im["split"] == params.split], dtype=np.int64)
        items = regions_to_describe(images, store, rows[store.usable()[rows]], params.iou_threshold)
        if not items:
            raise InputError(f"{REGIONS}: no detected region of the {params.split} split to describe")
        geometry = bool(region_ckpt["params"].get("region_geometry", False))
        region_source = _one_region(region_model, CachedFeatures(store, geometry), items, REGION_MODEL)
        full_base = checkpoint_source(
            full_ckpt, store, REGION_CNN, lambda: [r.path for r in image_records(dataset, DATASET)]
        )
        full_source = _one_region(full_model, full_base, items, FULL_FRAME)
        pool_rows, pool_regions = read_index(f"{SNIPPETS}/index.json", len(store))
        fc7 = CachedFeatures(store, geometry=False)
        descriptions = {
            "region_model": describe(region_model, region_source, len(items), region_vocab, params),
            "full_frame": describe(full_model, full_source, len(items), full_vocab, params),
            "nn_baseline": nearest_snippets(
                OneRegion(fc7, region_source.image_rows, region_source.regions),
                len(items),
                OneRegion(fc7, pool_rows, pool_regions),
                phrases,
                phrases.split_indices("train"),
            ),
        }
    record: dict[str, Any] = {
        "split": params.split,
        "n_images": len({it.image_row for it in items}),
        "n_regions": len(items),
    }
    if has_references(items):
        record.update(score_table(items, descriptions))
        record["truth"] = truth_table(items, {**descriptions, "human": [it.references[0] for it in items]})
    write_json(DESCRIPTIONS, _descriptions_json(items, images, descriptions), indent=None)
    with atomic_path(FIGURES) as tmp:
        n_figures = _write_figures(items, dataset, descriptions["region_model"], params.n_figures, tmp)
    write_metrics(METRICS, DETAILS, record, SUMMARY)
    if "region_model" in record:
        _print_table(record)
    else:
        print(f"no region references in {DATASET} (objects[k].descriptions): region descriptions written, not scored")
    print(
        f"wrote {DESCRIPTIONS} ({len(items)} regions of {record['n_images']} images), "
        f"{n_figures} figures in {FIGURES}/, {METRICS}"
    )


def _descriptions_json(items: list[RegionItem], images: list[dict], descriptions: dict[str, list[str]]) -> list[dict]:
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


def _write_figures(items: list[RegionItem], dataset: dict, descriptions: list[str], n: int, out_dir: Path) -> int:
    """Figures of `n` images spread evenly over those with described regions."""
    out_dir.mkdir(parents=True)
    by_image: dict[int, list[int]] = {}
    for k, it in enumerate(items):
        by_image.setdefault(it.image_row, []).append(k)
    rows = list(by_image)
    picks = sorted({int(round(x)) for x in np.linspace(0, len(rows) - 1, min(n, len(rows)))}) if n else []
    for rank, j in enumerate(picks):
        info = dataset["images"][rows[j]]
        ks = by_image[rows[j]]
        image = load_rgb(image_path(dataset["image_root"], info))
        region_figure(image, [items[k].box for k in ks], [descriptions[k] for k in ks]).save(
            out_dir / figure_name(rank + 1, info["filename"])
        )
    return len(picks)


def _print_table(record: dict) -> None:
    cols = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr")
    print(f"{record['n_regions']} regions of {record['n_images']} {record['split']} images")
    print(f"{'':14s}" + "".join(f"{c:>9s}" for c in cols) + f"{'col+shape':>11s}")
    for s in SYSTEMS:
        cells = "".join(f"{record[s][c]:9.3f}" if isinstance(record[s][c], float) else f"{'n/a':>9s}" for c in cols)
        precision = record["truth"][s]["mention_precision"]
        print(f"{s:14s}{cells}{'n/a' if precision is None else f'{precision:.3f}':>11s}")


if __name__ == "__main__":
    run_stage(main)
