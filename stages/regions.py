"""DVC stage `regions`: every image -> 20 regions (whole image + top 19 detections) with fc7 features
-> data/regions/regions.h5, metrics/regions.json (the region CNN's val accuracy: the DVC metric) and
metrics/details/regions.json (the whole record: recall and mean best IoU of the true objects per split, the
detector accuracy, the images skipped as unreadable).

The work goes through shards in data/regions.work/ (not a DVC output): a run that is killed, runs out of
memory or meets a bad image keeps its finished shards, and the next `dvc repro` resumes from them, with the
same or another compute.nproc. Under torchrun (dvc.yaml launches it with `python -m dvsa.launch`) each rank
extracts its share of the shards on its own device; rank 0 alone writes regions.h5 and the metrics.
"""

from __future__ import annotations

from pathlib import Path

import torch

from dvsa.data.dataset import load_dataset
from dvsa.device import ComputeParams, autocast_dtype, load_compute, out_of_memory_hint, resolve_device
from dvsa.distributed import World, process_group
from dvsa.errors import ParamsError
from dvsa.metric_files import write_metrics
from dvsa.params import load_params
from dvsa.regions.checkpoint import load_region_cnn
from dvsa.regions.config import RegionsParams
from dvsa.regions.data import image_records
from dvsa.regions.extract import extraction_threads, write_regions
from dvsa.regions.metrics import object_accuracy
from dvsa.regions.shapes_net import ShapesRegionCNN
from dvsa.regions.shards import manifest_key
from dvsa.stage import run_stage

DATASET = Path("data/dataset/dataset.json")
MODEL = Path("models/region_cnn.pt")
OUT = Path("data/regions/regions.h5")
WORK = Path("data/regions.work")
METRICS, DETAILS = Path("metrics/regions.json"), Path("metrics/details/regions.json")
HEADLINE = {"cnn_acc": "val_detector_accuracy"}  # the headline figure (dvsa.metric_files): region CNN val accuracy


def main() -> None:
    params = load_params(RegionsParams, "regions")
    compute = load_compute()
    device = resolve_device(compute)
    with process_group(compute, device) as world:
        extract(params, compute, device, world)


def extract(params: RegionsParams, compute: ComputeParams, device: torch.device, world: World) -> None:
    """This rank's share of the shards; on rank 0, then regions.h5, the metrics files and the summary."""
    amp = autocast_dtype(compute, device)
    records = image_records(load_dataset(DATASET), DATASET)
    if params.detect.proposals == "oracle" and not any(len(r.boxes) for r in records):
        raise ParamsError(
            f"regions.detect.proposals: oracle needs the true objects of the shapes world; {DATASET} has none"
        )
    model = load_region_cnn(MODEL, device)
    key = manifest_key(params, MODEL, records, device, amp)
    hint = (
        f"lower regions.batch_size (now {params.batch_size})"
        + (
            f" or regions.{params.backbone}.max_size (now {params.pretrained.max_size})"
            if params.backbone != "shapes"
            else ""
        )
        + f"; the finished shards in {WORK}/ are reused by a rerun with the same params"
    )
    with out_of_memory_hint("regions", hint):
        result = write_regions(
            model,
            records,
            OUT,
            params.detect,
            params.batch_size,
            params.feats_dtype,
            work_dir=WORK,
            key=key,
            shard_size=params.shard_size,
            on_bad_image=params.on_bad_image,
            workers=compute.workers,
            amp=amp,
            world=world,
        )
        if result is None:  # not rank 0
            return
        metrics: dict[str, object] = {
            "n_images": len(records),
            "n_skipped": len(result.skipped),
            **result.recall,
            "skipped": result.skipped,
        }
        val = [r for r in records if r.split == "val" and len(r.boxes)]
        if isinstance(model, ShapesRegionCNN) and val:
            with extraction_threads():  # the thread count could flip an argmax at a tie
                metrics["val_detector_accuracy"] = object_accuracy(model, val, params.batch_size)
    write_metrics(METRICS, DETAILS, metrics, HEADLINE)
    print(
        f"regions: {OUT}; "
        + ", ".join(
            f"{s} recall@0.5 {m['recall_iou50']:.3f} mean IoU {m['mean_best_iou']:.3f}"
            for s, m in result.recall.items()
        )
        + (f"; {len(result.skipped)} unreadable images skipped ({DETAILS})" if result.skipped else "")
    )


if __name__ == "__main__":
    run_stage(main)
