"""DVC stage `train_captioner`: labels + regions (+ images and the region CNN when it is finetuned) ->
models/captioner.pt, logs/captioner/ (dvclive curves, history.json with the val predictions).

An interrupted run (Ctrl-C) leaves models/captioner.resume.pt; the next run with the same params and
inputs resumes from it exactly. Launched by torchrun (compute.nproc processes): data-parallel, rank 0 writes
the files.
"""

from __future__ import annotations

from dvsa.caption.cnn import CaptionCNN
from dvsa.caption.config import CaptionerParams
from dvsa.caption.train import train_captioner
from dvsa.data.dataset import load_dataset
from dvsa.data.labels import read_labels
from dvsa.device import load_compute, resolve_device
from dvsa.distributed import process_group
from dvsa.features import without_skipped
from dvsa.hashing import file_digest
from dvsa.metrics.cider_d import document_frequencies_for
from dvsa.params import load_params
from dvsa.regions.checkpoint import load_region_cnn
from dvsa.regions.data import image_records
from dvsa.regions.store import RegionStore
from dvsa.stage import run_stage

LABELS, VOCAB, REGIONS = "data/prepro/labels.h5", "data/prepro/vocab.json", "data/regions/regions.h5"
DATASET, REGION_CNN = "data/dataset/dataset.json", "models/region_cnn.pt"


def main() -> None:
    params = load_params(CaptionerParams, "captioner")
    compute = load_compute()
    device = resolve_device(compute)
    labels = read_labels(LABELS, VOCAB)
    cider_df = document_frequencies_for(LABELS, "train") if params.self_critical_after >= 0 else None  # preprocess's
    cnn, paths, inputs = None, None, ""
    if params.finetune_cnn_after >= 0:
        cnn = CaptionCNN(load_region_cnn(REGION_CNN))
        paths = [r.path for r in image_records(load_dataset(DATASET), DATASET)]
        inputs = file_digest(REGION_CNN) + file_digest(DATASET)
    with RegionStore(REGIONS) as store, process_group(compute, device) as world:
        labels = without_skipped(labels, store)
        summary = train_captioner(
            params,
            labels,
            store,
            model_path="models/captioner.pt",
            resume_path="models/captioner.resume.pt",
            log_dir="logs/captioner",
            inputs=inputs,
            cnn=cnn,
            image_paths=paths,
            device=device,
            world=world,
            cider_df=cider_df,
        )
    if not world.main:
        return
    val = summary["val"]
    print(
        f"kept iteration {summary['iteration']}: val loss {val['val/loss']:.3f}, "
        f"val CIDEr {val['val/CIDEr']:.3f}, val BLEU-4 {val['val/Bleu_4']:.3f} (greedy)"
    )


if __name__ == "__main__":
    run_stage(main)
