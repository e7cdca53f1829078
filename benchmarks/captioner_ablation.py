"""Captioner ablations over seeds: train with params.yaml's `captioner:` plus overrides, evaluate on the test
split as the evaluate_captioner stage does, and print one table of means and min-max ranges.

Reads the default pipeline's upstream outputs (data/prepro, data/regions/regions.h5, data/dataset); each run
trains in a temporary folder (models/ and logs/ are not touched) and writes one JSON record. The truth
figures come from the truth judge after training, as in the stage: nothing in training or model selection
reads them (the kept weights are those of the best val CIDEr).

    python benchmarks/captioner_ablation.py run NAME SEED [KEY=VALUE ...]   # e.g. sc_greedy 1 self_critical_after=750
    python benchmarks/captioner_ablation.py table [NAME ...]                # rows in this order
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from dvsa.caption.checkpoint import load_captioner
from dvsa.caption.config import CaptionerParams, EvaluateCaptioningParams
from dvsa.caption.evaluation import evaluate_captions
from dvsa.caption.train import train_captioner
from dvsa.data.dataset import load_dataset
from dvsa.data.labels import read_labels
from dvsa.features import CachedFeatures, without_skipped
from dvsa.hashing import file_digest
from dvsa.metrics.cider_d import document_frequencies_for
from dvsa.params import load_params
from dvsa.regions.store import RegionStore

LABELS, VOCAB = "data/prepro/labels.h5", "data/prepro/vocab.json"
REGIONS, DATASET = "data/regions/regions.h5", "data/dataset/dataset.json"
OUT = Path("benchmarks/results/captioner_ablation")
COLUMNS = {  # column -> (path in the record, format)
    "CIDEr": ("model.CIDEr", "{:.3f}"),
    "BLEU-4": ("model.Bleu_4", "{:.3f}"),
    "METEOR": ("model.METEOR", "{:.3f}"),
    "ROUGE_L": ("model.ROUGE_L", "{:.3f}"),
    "mentions": ("truth.model.mention_precision", "{:.3f}"),
    "entirely true": ("truth.model.captions_true", "{:.3f}"),
    "counts": ("truth.model.count_precision", "{:.3f}"),
    "n counts": ("truth.model.n_counts", "{:.0f}"),
    "relations": ("truth.model.relation_precision", "{:.3f}"),
    "n relations": ("truth.model.n_relations", "{:.0f}"),
    "objects named": ("truth.model.objects_named", "{:.3f}"),
    "asked counts": ("truth_asked.count.count_precision", "{:.3f}"),
    "asked relations": ("truth_asked.relation.relation_precision", "{:.3f}"),
    "direction pairs": ("direction_pairs.preferred", "{:.3f}"),
    "landmark pairs": ("direction_pairs.landmark", "{:.3f}"),
    "mirror pairs": ("direction_pairs.mirror", "{:.3f}"),
    "repeats": ("repeats_phrase.model", "{:.3f}"),
    "train s": ("train_seconds", "{:.0f}"),
}


def run(name: str, seed: int, overrides: list[str]) -> dict[str, Any]:
    torch.set_num_threads(1)
    changes = {k: _value(v) for k, v in (o.split("=", 1) for o in overrides)}
    params = replace(load_params(CaptionerParams, "captioner"), seed=seed, **changes)
    evaluate = load_params(EvaluateCaptioningParams, "evaluate.captioning")
    labels = read_labels(LABELS, VOCAB)
    dataset = load_dataset(DATASET)
    df = document_frequencies_for(LABELS, "train") if params.self_critical_after >= 0 else None
    with RegionStore(REGIONS) as store, tempfile.TemporaryDirectory() as tmp:
        labels = without_skipped(labels, store)
        start = time.perf_counter()
        summary = train_captioner(params, labels, store, Path(tmp) / "captioner.pt", Path(tmp) / "resume.pt",
                                  Path(tmp) / "logs", progress=False, cider_df=df)
        seconds = time.perf_counter() - start
        model, _, ckpt = load_captioner(Path(tmp) / "captioner.pt")
        ev = evaluate_captions(model, labels, store, dataset, evaluate, CachedFeatures(store, params.region_geometry),
                               progress=False)
    record = {"name": name, "seed": seed, "overrides": changes, "regions_sha256": file_digest(REGIONS),
              "train_seconds": seconds, "best_iteration": summary["iteration"], "val": summary["val"], **ev.metrics,
              "captions": dict(zip(map(str, ev.image_ids), ev.captions))}
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{name}-{seed}.json").write_text(json.dumps(record, indent=1))
    return record


def _value(text: str) -> Any:
    """A KEY=VALUE override's value: a number when it reads as one (YAML 1.1 reads 1e-4 as a string)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return yaml.safe_load(text)


def _get(record: dict[str, Any], path: str) -> float | None:
    value: Any = record
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value if isinstance(value, (int, float)) else None


def table(names: list[str]) -> str:
    records: dict[str, list[dict[str, Any]]] = {}
    for f in sorted(OUT.glob("*.json")):
        r = json.loads(f.read_text())
        records.setdefault(r["name"], []).append(r)
    names = names or sorted(records)
    lines = ["| row | seeds | " + " | ".join(COLUMNS) + " |", "|---|---|" + "---|" * len(COLUMNS)]
    for name in names:
        rs = records.get(name, [])
        cells = []
        for path, fmt in COLUMNS.values():
            values = [v for v in (_get(r, path) for r in rs) if v is not None]
            if not values:
                cells.append("–")
            elif len(values) == 1:
                cells.append(fmt.format(values[0]))
            else:
                cells.append(f"{fmt.format(np.mean(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})")
        lines.append(f"| {name} | {len(rs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("name")
    r.add_argument("seed", type=int)
    r.add_argument("overrides", nargs="*", help="captioner params as KEY=VALUE (YAML values)")
    t = sub.add_parser("table")
    t.add_argument("names", nargs="*")
    a = parser.parse_args()
    if a.command == "run":
        rec = run(a.name, a.seed, a.overrides)
        print(f"{a.name} seed {a.seed}: " + ", ".join(
            f"{c} {fmt.format(v)}" for c, (p, fmt) in COLUMNS.items() if (v := _get(rec, p)) is not None))
    else:
        print(table(a.names))


if __name__ == "__main__":
    main()
