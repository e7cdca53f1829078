"""DVC stage `evaluate_captioner`: captions for the test split, COCO metrics of the model and of the
nearest-neighbour baseline, test perplexity, the truth of the captions (shapes world), and the HTML report.

A captioner that finetuned its CNN encodes the regions from pixels with its own CNN weights (the region CNN
of models/region_cnn.pt with the finetuned encoder); otherwise the cached features of regions.h5 are used.

Writes data/eval/captions.json ([{image_id, caption}]), data/eval/captions_coco.json (COCO's
results format, for pycocotools' loadRes), data/eval/captions_per_image.csv (per-image scores),
metrics/captioning.json (test CIDEr, BLEU-4, captions entirely true: the DVC metric),
metrics/details/captioning.json (the whole record: METEOR, ROUGE_L, perplexity, the baseline, every truth
figure, and the truth of the captions asked for a count or a relation), reports/index.html (its images orderable by per-image CIDEr, worst first) and reports/captioning/
(thumbnails); links the figures of reports/alignment/ when that stage made them.
"""

from __future__ import annotations

from pathlib import Path

from dvsa.caption.checkpoint import load_captioner
from dvsa.caption.cnn import checkpoint_source
from dvsa.caption.config import EvaluateCaptioningParams
from dvsa.caption.evaluation import check_compatible, evaluate_captions
from dvsa.data.dataset import load_dataset
from dvsa.data.labels import read_labels
from dvsa.device import load_compute, resolve_device
from dvsa.features import without_skipped
from dvsa.io import write_csv, write_json
from dvsa.metric_files import write_metrics
from dvsa.metrics.coco_results import write_results
from dvsa.params import load_params
from dvsa.regions.data import image_records
from dvsa.regions.store import RegionStore
from dvsa.report.page import write_report
from dvsa.report.per_image import caption_table
from dvsa.stage import run_stage

LABELS, VOCAB = "data/prepro/labels.h5", "data/prepro/vocab.json"
REGIONS, DATASET, MODEL = "data/regions/regions.h5", "data/dataset/dataset.json", "models/captioner.pt"
CAPTIONS, COCO_RESULTS = "data/eval/captions.json", "data/eval/captions_coco.json"
PER_IMAGE = "data/eval/captions_per_image.csv"
METRICS, DETAILS = "metrics/captioning.json", "metrics/details/captioning.json"
# the headline figures (dvsa.metric_files): the model's test CIDEr and BLEU-4 (Table 2) and the share of its
# captions that the truth judge finds entirely true of the image (shapes world)
HEADLINE = {"CIDEr": "model.CIDEr", "Bleu_4": "model.Bleu_4", "all_true": "truth.model.captions_true"}
REPORT, FIGURES = "reports/index.html", "reports/alignment"
REGION_CNN = "models/region_cnn.pt"


def main() -> None:
    params = load_params(EvaluateCaptioningParams, "evaluate.captioning")
    device = resolve_device(load_compute())
    model, vocab, ckpt = load_captioner(MODEL)
    model.to(device)
    labels = read_labels(LABELS, VOCAB)
    dataset = load_dataset(DATASET)
    with RegionStore(REGIONS) as store:
        labels = without_skipped(labels, store)
        source = checkpoint_source(
            ckpt, store, REGION_CNN, lambda: [r.path for r in image_records(dataset, DATASET)], device
        )
        check_compatible(model, vocab, labels, store, MODEL, source.dim)
        ev = evaluate_captions(model, labels, store, dataset, params, source)
        boxes = store.boxes
    write_json(CAPTIONS, [{"image_id": i, "caption": c} for i, c in zip(ev.image_ids, ev.captions)])
    write_results(COCO_RESULTS, dict(zip(ev.image_ids, ev.captions)))
    per_image = caption_table(ev, dataset)
    write_csv(PER_IMAGE, per_image)
    shown = write_report(REPORT, ev, dataset, params.report_images, FIGURES, boxes, per_image)
    write_metrics(METRICS, DETAILS, ev.metrics, HEADLINE)
    _print_table(ev.metrics)
    figures = "with" if Path(FIGURES).is_dir() else "without"
    print(f"wrote {CAPTIONS}, {METRICS}, {REPORT} ({shown} images, {figures} alignment figures)")


def _print_table(m: dict) -> None:
    print(f"{m['n_images']} {m['split']} images   {'model':>8s} {'NN':>8s} {'margin':>8s}")
    rows = [(k, v, m["nn_baseline"].get(k), m["margin"].get(k)) for k, v in m["model"].items()]
    if "truth" in m:
        rows += [(f"truth: {k}", v, m["truth"]["nn_baseline"][k], None) for k, v in m["truth"]["model"].items()]
    if "direction_pairs" in m:
        rows += [(f"direction pairs: {k}", m["direction_pairs"][k], None, None) for k in ("preferred", "landmark", "mirror", "word_frequency")]
    for kind, summary in m.get("truth_asked", {}).items():
        rows += [(f"asked for a {kind}: {k}", summary[k], None, None)
                 for k in (f"{kind}_precision", f"n_{kind}s", "captions_true")]
    for metric, *values in rows:
        cells = [f"{v:8.3f}" if isinstance(v, float) else f"{str('' if v is None else v):>8s}" for v in values]
        print(f"{metric:28s} {' '.join(cells)}")


if __name__ == "__main__":
    run_stage(main)
