"""DVC stage `evaluate_alignment`: ranking R@K / median rank (Table 1) with chance levels, MRF snippets
(eqs. (10)-(12)), grounding accuracy on the shapes world, and Figure-5-style figures.

Writes metrics/alignment.json (R@1 and R@5 both ways, grounding: the DVC metric), metrics/details/alignment.json
(the whole record: R@10, med r, chance levels, counts, snippet and grounding details), data/eval/snippets.json,
the ranks behind R@K per image (data/eval/ranking_per_image.csv) and per sentence
(data/eval/ranking_per_sentence.csv), and reports/alignment/*.png.
"""

from __future__ import annotations

from pathlib import Path

from dvsa.align.checkpoint import load_model
from dvsa.align.config import EvaluateAlignmentParams
from dvsa.align.evaluation import evaluate, grounding, snippets_json, write_figures
from dvsa.align.ranking_table import image_table, sentence_table
from dvsa.align.retrieval import check_inputs
from dvsa.data.dataset import load_dataset
from dvsa.data.labels import read_labels
from dvsa.device import load_compute, resolve_device
from dvsa.errors import InputError
from dvsa.features import without_skipped
from dvsa.io import atomic_path, write_csv, write_json
from dvsa.metric_files import write_metrics
from dvsa.params import load_params
from dvsa.regions.store import RegionStore
from dvsa.stage import run_stage

LABELS, VOCAB = "data/prepro/labels.h5", "data/prepro/vocab.json"
REGIONS, DATASET = "data/regions/regions.h5", "data/dataset/dataset.json"
MODEL = "models/alignment.pt"
METRICS, DETAILS = "metrics/alignment.json", "metrics/details/alignment.json"
SNIPPETS, FIGURES = "data/eval/snippets.json", "reports/alignment"
PER_IMAGE, PER_SENTENCE = "data/eval/ranking_per_image.csv", "data/eval/ranking_per_sentence.csv"
# the headline figures (dvsa.metric_files): Table 1's R@1 and R@5 of image annotation (i2t: image -> its
# sentences) and of image search (t2i: sentence -> its image), and the share of words grounded on their object
HEADLINE = {
    "i2t.r1": "annotation.r1",
    "i2t.r5": "annotation.r5",
    "t2i.r1": "search.r1",
    "t2i.r5": "search.r5",
    "grounding": "grounding.overall",
}


def main() -> None:
    params = load_params(EvaluateAlignmentParams, "evaluate.alignment")
    model, model_params, vocab = load_model(MODEL)
    model.to(resolve_device(load_compute()))
    labels = read_labels(LABELS, VOCAB)
    if vocab != labels.ix_to_word:
        raise InputError(f"{MODEL}: built with another vocabulary than {VOCAB} (rerun `dvc repro train_alignment`)")
    dataset = load_dataset(DATASET)
    if len(dataset["images"]) != len(labels.images):
        raise InputError(f"{DATASET}: {len(dataset['images'])} images but {VOCAB} lists {len(labels.images)}")
    with RegionStore(REGIONS) as store:
        check_inputs(labels, store, REGIONS)
        labels = without_skipped(labels, store)
        results = evaluate(model, model_params.score, labels, store, params)
        metrics = results.metrics
        accuracy = grounding(results.sentences, store, dataset, params.iou_threshold)
        if accuracy is None:
            print(f"grounding skipped: {DATASET} has no true objects (only the generated shapes world has them)")
        else:
            metrics["grounding"] = accuracy
        write_json(SNIPPETS, snippets_json(results.sentences, labels, store))
        write_csv(PER_IMAGE, image_table(results, labels))
        write_csv(PER_SENTENCE, sentence_table(results, labels))
        with atomic_path(FIGURES) as tmp:
            figures = write_figures(results.sentences, store, dataset, params.n_figures, tmp)
    write_metrics(METRICS, DETAILS, metrics, HEADLINE)
    _print_summary(metrics, [Path(FIGURES) / f.name for f in figures])


def _print_summary(metrics: dict, figures: list[Path]) -> None:
    for d in ("annotation", "search"):
        m, c = metrics[d], metrics[f"{d}_chance"]
        print(
            f"{d:10s} R@1 {m['r1']:5.1f} ({c['r1']:.1f})  R@5 {m['r5']:5.1f} ({c['r5']:.1f})  "
            f"R@10 {m['r10']:5.1f} ({c['r10']:.1f})  med r {m['medr']:g} ({c['medr']:g})   (chance in brackets)"
        )
    if "grounding" in metrics:
        g = metrics["grounding"]
        print(f"grounding  overall {_pct(g['overall'])}  colour {_pct(g['color'])}  shape {_pct(g['shape'])}  "
              f"({g['n_words']} words)")
    print(f"wrote {METRICS}, {DETAILS}, {SNIPPETS}, {PER_IMAGE}, {PER_SENTENCE}, {len(figures)} figures in {FIGURES}/")


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f}%"


if __name__ == "__main__":
    run_stage(main)
