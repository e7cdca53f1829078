"""DVC stage `regions`: every image -> 20 regions (whole image + top 19 detections) with fc7 features
-> data/regions/regions.h5, and metrics/regions.json (recall of the true objects, detector accuracy)."""

from __future__ import annotations

from pathlib import Path

from dvsa.data.dataset import load_dataset
from dvsa.errors import ParamsError
from dvsa.io import write_json
from dvsa.params import load_params
from dvsa.regions.checkpoint import load_region_cnn
from dvsa.regions.config import RegionsParams
from dvsa.regions.data import image_records
from dvsa.regions.extract import write_regions
from dvsa.regions.metrics import object_accuracy
from dvsa.regions.shapes_net import ShapesRegionCNN
from dvsa.stage import run_stage

DATASET = Path("data/dataset/dataset.json")
MODEL = Path("models/region_cnn.pt")
OUT = Path("data/regions/regions.h5")
METRICS = Path("metrics/regions.json")


def main() -> None:
    params = load_params(RegionsParams, "regions")
    records = image_records(load_dataset(DATASET), DATASET)
    if params.detect.proposals == "oracle" and not any(len(r.boxes) for r in records):
        raise ParamsError(f"regions.detect.proposals: oracle needs the true objects of the shapes world; {DATASET} has none")
    model = load_region_cnn(MODEL)
    recall = write_regions(model, records, OUT, params.detect, params.batch_size, params.feats_dtype)
    metrics: dict[str, object] = {"n_images": len(records), **recall}
    val = [r for r in records if r.split == "val" and len(r.boxes)]
    if isinstance(model, ShapesRegionCNN) and val:
        metrics["val_detector_accuracy"] = object_accuracy(model, val, params.batch_size)
    write_json(METRICS, metrics)
    print(f"regions: {OUT}; " + ", ".join(f"{s} recall@0.5 {m['recall_iou50']:.3f} mean IoU {m['mean_best_iou']:.3f}"
                                          for s, m in recall.items()))


if __name__ == "__main__":
    run_stage(main)
