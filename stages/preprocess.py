"""DVC stage `preprocess`: dataset.json -> data/prepro/labels.h5 + vocab.json.

Also writes metrics/preprocess.json (vocabulary size, UNK and truncation rates: the DVC metric) and
metrics/details/preprocess.json (the whole record: counts and the sentence-length histogram).
"""

from __future__ import annotations

from dvsa.data.config import PreprocessParams
from dvsa.data.dataset import load_dataset
from dvsa.data.labels import write_labels
from dvsa.data.prepro import build_labels
from dvsa.metric_files import write_metrics
from dvsa.params import load_params
from dvsa.stage import run_stage

SUMMARY = ["vocab_size", "unk_rate", "truncated_rate"]  # what `dvc exp show` compares across experiments


def main() -> None:
    params = load_params(PreprocessParams, "preprocess")
    dataset = load_dataset("data/dataset/dataset.json")
    labels, stats = build_labels(dataset, params)
    write_labels("data/prepro/labels.h5", "data/prepro/vocab.json", labels)
    write_metrics("metrics/preprocess.json", "metrics/details/preprocess.json", stats, SUMMARY)
    print(
        f"{stats['n_images']} images, {stats['n_sentences']} sentences; "
        f"vocabulary {stats['vocab_size']} of {stats['n_distinct_words']} words "
        f"({stats['n_rare_words']} rare -> UNK, UNK rate {100 * stats['unk_rate']:.2f}%); "
        f"max length {stats['max_sentence_length']}, {100 * stats['truncated_rate']:.2f}% truncated to "
        f"{params.max_length}"
    )
    print("sentence length histogram: " + ", ".join(f"{k}:{n}" for k, n in stats["length_histogram"].items()))


if __name__ == "__main__":
    run_stage(main)
