"""DVC stage `region_cnn`: the detector + 4096-d region encoder -> models/region_cnn.pt.

``regions.backbone: shapes`` trains it on the shapes world's object classes (on ``compute.device``; curves and
history.json in logs/region_cnn/; an interrupted run leaves models/region_cnn.resume.pt and resumes from it); ``vgg16`` / ``alexnet`` assemble it from pretrained torchvision weight files (no training):
region_cnn.pt then references the files by path + sha256 instead of copying them, and logs/region_cnn/ gets
the sizes of the two networks.
"""

from __future__ import annotations

import time
from pathlib import Path

from dvsa.data.dataset import load_dataset
from dvsa.device import load_compute, out_of_memory_hint, resolve_device
from dvsa.live import open_live
from dvsa.params import load_params
from dvsa.regions.checkpoint import save_region_cnn
from dvsa.regions.config import RegionsParams
from dvsa.regions.data import image_records
from dvsa.regions.pretrained import PretrainedRegionCNN
from dvsa.regions.train import train_region_cnn
from dvsa.stage import run_stage
from dvsa.train.loop import HISTORY, Files, LoopState, write_history

DATASET = Path("data/dataset/dataset.json")
MODEL = Path("models/region_cnn.pt")
RESUME = Path("models/region_cnn.resume.pt")
LOGS = Path("logs/region_cnn")


def assemble(params: RegionsParams) -> None:
    model = PretrainedRegionCNN.assemble(params.backbone, params.pretrained)
    sizes = {
        "encoder_parameters_M": sum(p.numel() for m in (model.trunk, model.fc) for p in m.parameters()) / 1e6,
        "detector_parameters_M": sum(p.numel() for p in model.detector.parameters()) / 1e6,
    }
    with open_live(LOGS) as live:
        for name, value in sizes.items():
            live.log_metric(name, round(value, 3))
        live.next_step()
    write_history(LOGS / HISTORY, LoopState())  # nothing trained: no validation
    save_region_cnn(model, params, MODEL)
    print(
        f"region_cnn: {params.backbone} + {params.pretrained.detector} assembled -> {MODEL} (references "
        f"{model.weights['encoder']['path']} and {model.weights['detector']['path']})"
    )


def main() -> None:
    params = load_params(RegionsParams, "regions")
    if params.backbone != "shapes":
        assemble(params)
        return
    device = resolve_device(load_compute())
    records = image_records(load_dataset(DATASET), DATASET)
    start = time.perf_counter()
    with out_of_memory_hint("region_cnn", f"lower regions.train.batch_size (now {params.train.batch_size})"):
        st = train_region_cnn(records, params, Files(MODEL, RESUME, LOGS), device)
    print(
        f"region_cnn: {params.train.epochs} epochs in {time.perf_counter() - start:.0f} s, kept iteration "
        f"{st.best_iteration}: val object accuracy {st.best_metrics.get('val/object_accuracy', float('nan')):.3f} "
        f"-> {MODEL}"
    )


if __name__ == "__main__":
    run_stage(main)
