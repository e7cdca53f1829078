"""DVC stage `region_snippets` (§3.2 end): the alignment model's MRF snippets of every train and val sentence
-> the region-phrase dataset, one "image" per (image, region) pair, in neuraltalk2's labels format.

Writes data/region_snippets/labels.h5, vocab.json, index.json (image row, region and box of each "image"),
and metrics/details/region_snippets.json (snippets, regions and words per snippet per split, the params): a
plain output, not a DVC metric (figures of the phrase data, not results to compare).
"""

from __future__ import annotations

import numpy as np
import torch

from dvsa.align.checkpoint import load_model
from dvsa.align.retrieval import check_inputs
from dvsa.data.labels import read_labels, write_labels
from dvsa.errors import InputError
from dvsa.io import write_json
from dvsa.metric_files import write_details
from dvsa.params import load_params
from dvsa.regiondesc.config import RegionSnippetsParams
from dvsa.regiondesc.dataset import region_phrase_dataset, snippet_statistics
from dvsa.regiondesc.snippets import mrf_snippets
from dvsa.regions.store import RegionStore
from dvsa.stage import run_stage

LABELS, VOCAB, REGIONS, MODEL = (
    "data/prepro/labels.h5",
    "data/prepro/vocab.json",
    "data/regions/regions.h5",
    "models/alignment.pt",
)
OUT = "data/region_snippets"
DETAILS = "metrics/details/region_snippets.json"
SPLITS = ("train", "val")


def main() -> None:
    params = load_params(RegionSnippetsParams, "region_snippets")
    if params.threads:
        torch.set_num_threads(params.threads)
    model, _, vocab = load_model(MODEL)
    labels = read_labels(LABELS, VOCAB)
    if vocab != labels.ix_to_word:
        raise InputError(f"{MODEL}: built with another vocabulary than {VOCAB} (rerun `dvc repro train_alignment`)")
    with RegionStore(REGIONS) as store:
        check_inputs(labels, store, REGIONS)
        image_ix = np.concatenate([labels.split_indices(s) for s in SPLITS])
        image_ix = image_ix[store.usable()[image_ix]]
        snippets = mrf_snippets(model, labels, store, image_ix, params.beta, params.max_words, params.batch_size)
        phrases = region_phrase_dataset(snippets, labels, store.boxes, params.max_length)
    for split in SPLITS:
        if not len(phrases.labels.split_indices(split)):
            raise InputError(
                f"{MODEL}: no snippet of the {split} split lies on a detected region (try another region_snippets.beta)"
            )
    write_labels(f"{OUT}/labels.h5", f"{OUT}/vocab.json", phrases.labels)
    write_json(f"{OUT}/index.json", {"regions": phrases.index}, indent=None)
    record = {
        "params": params.to_dict(),
        "regions": len(phrases.index),
        **snippet_statistics(snippets, labels, image_ix),
    }
    write_details(DETAILS, record)
    for split in SPLITS:
        m = record[split]
        print(
            f"{split}: {m['snippets']} snippets on {m['images']} images ({m['snippets_per_image']:.2f} per image, "
            f"{m['regions_per_image']:.2f} regions per image, {m['words_per_snippet']:.2f} words per snippet)"
        )
    print(f"wrote {OUT}/ ({len(phrases.index)} regions), {DETAILS}")


if __name__ == "__main__":
    run_stage(main)
