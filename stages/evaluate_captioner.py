"""DVC stage `evaluate_captioner`: captions for the test split, COCO metrics of the model and of the
nearest-neighbour baseline, test perplexity, and the HTML report.

Writes data/eval/captions.json ([{image_id, caption}]), metrics/captioning.json, reports/index.html and
reports/captioning/ (thumbnails); links the figures of reports/alignment/ when that stage made them.
"""

from __future__ import annotations

from pathlib import Path

from dvsa.caption.checkpoint import load_captioner
from dvsa.data.dataset import load_dataset
from dvsa.data.labels import read_labels
from dvsa.evaluate.captioning import check_compatible, evaluate_captions
from dvsa.evaluate.config import EvaluateCaptioningParams
from dvsa.evaluate.report import write_report
from dvsa.io import write_json
from dvsa.params import load_params
from dvsa.regions.store import RegionStore
from dvsa.stage import run_stage

LABELS, VOCAB = "data/prepro/labels.h5", "data/prepro/vocab.json"
REGIONS, DATASET, MODEL = "data/regions/regions.h5", "data/dataset/dataset.json", "models/captioner.pt"
CAPTIONS, METRICS = "data/eval/captions.json", "metrics/captioning.json"
REPORT, FIGURES = "reports/index.html", "reports/alignment"


def main() -> None:
    params = load_params(EvaluateCaptioningParams, "evaluate.captioning")
    model, vocab, _ = load_captioner(MODEL)
    labels = read_labels(LABELS, VOCAB)
    dataset = load_dataset(DATASET)
    with RegionStore(REGIONS) as store:
        check_compatible(model, vocab, labels, store, MODEL)
        ev = evaluate_captions(model, labels, store, dataset, params)
    write_json(CAPTIONS, [{"image_id": i, "caption": c} for i, c in zip(ev.image_ids, ev.captions)])
    shown = write_report(REPORT, ev, dataset, params.report_images, FIGURES)
    write_json(METRICS, ev.metrics)
    _print_table(ev.metrics)
    figures = "with" if Path(FIGURES).is_dir() else "without"
    print(f"wrote {CAPTIONS}, {METRICS}, {REPORT} ({shown} images, {figures} alignment figures)")


def _print_table(m: dict) -> None:
    print(f"{m['n_images']} {m['split']} images   {'model':>8s} {'NN':>8s} {'margin':>8s}")
    for metric, value in m["model"].items():
        nn, margin = m["nn_baseline"].get(metric), m["margin"].get(metric)
        cells = [f"{v:8.3f}" if isinstance(v, float) else f"{str(v or ''):>8s}" for v in (value, nn, margin)]
        print(f"{metric:18s} {' '.join(cells)}")


if __name__ == "__main__":
    run_stage(main)
