"""DVC stage `region_cnn`: the detector + 4096-d region encoder -> models/region_cnn.pt.

``regions.backbone: shapes`` trains it on the shapes world's object classes (logs in logs/region_cnn/);
``vgg16`` / ``alexnet`` assemble it from pretrained torchvision weight files (no training).
"""

from __future__ import annotations

import time
from pathlib import Path

from dvsa.data.dataset import load_dataset
from dvsa.live import open_live
from dvsa.params import load_params
from dvsa.regions.checkpoint import save_region_cnn
from dvsa.regions.config import RegionsParams
from dvsa.regions.data import image_records
from dvsa.regions.pretrained import PretrainedRegionCNN
from dvsa.regions.train import train_region_cnn
from dvsa.stage import run_stage

DATASET = Path("data/dataset/dataset.json")
MODEL = Path("models/region_cnn.pt")
LOGS = Path("logs/region_cnn")


def main() -> None:
    params = load_params(RegionsParams, "regions")
    if params.backbone != "shapes":
        model = PretrainedRegionCNN.assemble(params.backbone, params.pretrained)
        save_region_cnn(model, params, MODEL)
        print(f"region_cnn: {params.backbone} + {params.pretrained.detector} assembled -> {MODEL}")
        return
    records = image_records(load_dataset(DATASET), DATASET)
    start = time.perf_counter()
    with open_live(LOGS) as live:

        def log(epoch: int, metrics: dict[str, float]) -> None:
            for name, value in metrics.items():
                live.log_metric(name, value)
            live.next_step()

        model, metrics = train_region_cnn(records, params, log)
    seconds = time.perf_counter() - start
    save_region_cnn(model, params, MODEL, {"epochs": params.train.epochs, "seconds": seconds, "metrics": metrics})
    print(f"region_cnn: {len(model.classes)} classes, {params.train.epochs} epochs in {seconds:.0f} s, "
          f"val object accuracy {metrics.get('val_object_accuracy', float('nan')):.3f} -> {MODEL}")


if __name__ == "__main__":
    run_stage(main)
