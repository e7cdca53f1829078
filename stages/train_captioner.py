"""DVC stage `train_captioner`: labels + region-0 features -> models/captioner.pt, logs/captioner/ (dvclive).

An interrupted run (Ctrl-C) leaves models/captioner.resume.pt; the next run with the same params and
inputs resumes from it exactly.
"""

from __future__ import annotations

from dvsa.caption.config import CaptionerParams
from dvsa.caption.train import file_fingerprint, train_captioner
from dvsa.data.labels import read_labels
from dvsa.params import load_params
from dvsa.regions.store import RegionStore
from dvsa.stage import run_stage

LABELS, VOCAB, REGIONS = "data/prepro/labels.h5", "data/prepro/vocab.json", "data/regions/regions.h5"


def main() -> None:
    params = load_params(CaptionerParams, "captioner")
    labels = read_labels(LABELS, VOCAB)
    with RegionStore(REGIONS) as store:
        summary = train_captioner(
            params,
            labels,
            store,
            model_path="models/captioner.pt",
            resume_path="models/captioner.resume.pt",
            log_dir="logs/captioner",
            fingerprint=file_fingerprint(LABELS, VOCAB, REGIONS),
        )
    val = summary["val"]
    print(
        f"kept iteration {summary['iteration']}: val loss {val['val/loss']:.3f}, "
        f"val CIDEr {val['val/CIDEr']:.3f}, val BLEU-4 {val['val/Bleu_4']:.3f} (greedy)"
    )


if __name__ == "__main__":
    run_stage(main)
