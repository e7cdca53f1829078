"""DVC stage `train_region_captioner` (§4.3): the captioner of train_captioner trained on the region-phrase
dataset of `region_snippets`, each "image" being one region (its cached fc7 and its geometry relative to the
image, R = 1) -> models/region_captioner.pt, logs/region_captioner/.

Same trainer, checkpoints and resume as train_captioner (an interrupted run leaves
models/region_captioner.resume.pt); params: the ``region_captioner`` section (a CaptionerParams).
"""

from __future__ import annotations

from dvsa.caption.config import CaptionerParams
from dvsa.caption.train import train_captioner
from dvsa.data.labels import read_labels
from dvsa.errors import InputError, ParamsError
from dvsa.features import CachedFeatures, OneRegion
from dvsa.hashing import file_digest
from dvsa.params import load_params
from dvsa.regiondesc.dataset import read_index
from dvsa.regions.store import RegionStore
from dvsa.stage import run_stage

DATA, REGIONS = "data/region_snippets", "data/regions/regions.h5"
INDEX = f"{DATA}/index.json"


def main() -> None:
    params = load_params(CaptionerParams, "region_captioner")
    if params.finetune_cnn_after >= 0:
        raise ParamsError(
            "params.yaml: region_captioner.finetune_cnn_after: the region captioner reads cached features; set -1"
        )
    labels = read_labels(f"{DATA}/labels.h5", f"{DATA}/vocab.json")
    with RegionStore(REGIONS) as store:
        rows, regions = read_index(INDEX, len(store))
        if len(rows) != len(labels.images):
            raise InputError(
                f"{INDEX}: {len(rows)} regions but {DATA}/vocab.json lists {len(labels.images)} "
                "(rerun `dvc repro region_snippets`)"
            )
        summary = train_captioner(
            params,
            labels,
            store,
            model_path="models/region_captioner.pt",
            resume_path="models/region_captioner.resume.pt",
            log_dir="logs/region_captioner",
            inputs=file_digest(INDEX),
            features=OneRegion(CachedFeatures(store, params.region_geometry), rows, regions),
        )
    val = summary["val"]
    print(
        f"kept iteration {summary['iteration']}: val loss {val['val/loss']:.3f}, "
        f"val CIDEr {val['val/CIDEr']:.3f}, val BLEU-4 {val['val/Bleu_4']:.3f} (greedy, against the val snippets)"
    )


if __name__ == "__main__":
    run_stage(main)
