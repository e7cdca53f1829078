"""DVC stage `evaluate_region_captioner` (§4.3, Table 3, Figure 6): the test regions that match a true object
(IoU >= iou_threshold, the best detection per object) described by the region model, the full-frame
captioner (fed the region as a 1-region image), the nearest training snippet (fc7 cosine) and, as human
agreement, one reference against the rest; pycocoevalcap scores and the truth of each row's phrases against
the region's own object (dvsa.regiondesc.evaluation).

Writes metrics/region_captioning.json (the region model's CIDEr: the DVC metric),
metrics/details/region_captioning.json (the whole record: every row's BLEU, METEOR, ROUGE_L, CIDEr and
colour+shape precision), data/eval/region_descriptions.json
and reports/regions/*.png. Data without region references (real photos): every detected region of the split
is described and drawn, and nothing is scored.
"""

from __future__ import annotations

import torch

from dvsa.caption.checkpoint import load_captioner
from dvsa.caption.cnn import checkpoint_source
from dvsa.data.dataset import load_dataset
from dvsa.data.labels import read_labels
from dvsa.io import atomic_path, write_json
from dvsa.metric_files import write_metrics
from dvsa.params import load_params
from dvsa.regiondesc.config import EvaluateRegionParams
from dvsa.regiondesc.dataset import read_index
from dvsa.regiondesc.evaluation import (
    describe_systems,
    descriptions_json,
    region_record,
    regions_to_evaluate,
    table_lines,
)
from dvsa.regiondesc.figure import write_figures
from dvsa.regions.data import image_records
from dvsa.regions.store import RegionStore
from dvsa.stage import run_stage

DATASET, REGIONS, REGION_CNN = "data/dataset/dataset.json", "data/regions/regions.h5", "models/region_cnn.pt"
SNIPPETS = "data/region_snippets"
REGION_MODEL, FULL_FRAME = "models/region_captioner.pt", "models/captioner.pt"
DESCRIPTIONS, FIGURES = "data/eval/region_descriptions.json", "reports/regions"
METRICS, DETAILS = "metrics/region_captioning.json", "metrics/details/region_captioning.json"
HEADLINE = {"region_CIDEr": "region_model.CIDEr"}  # Table 3's figure of the region model (dvsa.metric_files)


def main() -> None:
    params = load_params(EvaluateRegionParams, "evaluate.region_captioning")
    if params.threads:
        torch.set_num_threads(params.threads)
    dataset = load_dataset(DATASET)
    images = dataset["images"]
    region, full_frame = load_captioner(REGION_MODEL), load_captioner(FULL_FRAME)
    phrases = read_labels(f"{SNIPPETS}/labels.h5", f"{SNIPPETS}/vocab.json")
    with RegionStore(REGIONS) as store:
        items = regions_to_evaluate(images, store, params, REGIONS, DATASET)
        full_base = checkpoint_source(
            full_frame[2], store, REGION_CNN, lambda: [r.path for r in image_records(dataset, DATASET)]
        )
        pool = read_index(f"{SNIPPETS}/index.json", len(store))
        paths = {"region_model": REGION_MODEL, "full_frame": FULL_FRAME, "regions": REGIONS}
        descriptions = describe_systems(items, store, region, full_frame, full_base, phrases, pool, params, paths)
    record = region_record(items, descriptions, params.split)
    write_json(DESCRIPTIONS, descriptions_json(items, images, descriptions), indent=None)
    with atomic_path(FIGURES) as tmp:
        n_figures = write_figures(items, dataset, descriptions["region_model"], params.n_figures, tmp)
    write_metrics(METRICS, DETAILS, record, HEADLINE)
    if "region_model" in record:
        print("\n".join(table_lines(record)))
    else:
        print(f"no region references in {DATASET} (objects[k].descriptions): region descriptions written, not scored")
    print(
        f"wrote {DESCRIPTIONS} ({len(items)} regions of {record['n_images']} images), "
        f"{n_figures} figures in {FIGURES}/, {METRICS}"
    )


if __name__ == "__main__":
    run_stage(main)
