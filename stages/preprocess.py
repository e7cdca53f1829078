"""DVC stage `preprocess`: dataset.json -> data/prepro/labels.h5 + vocab.json, and the CIDEr-D document
frequencies of the train references (labels.cider_df.train.npz, the self-critical reward's; dvsa.metrics.cider_d).

Also writes metrics/details/preprocess.json (vocabulary size, UNK and truncation rates, counts and the
sentence-length histogram): a plain output, not a DVC metric (figures of the data, not results to compare).
"""

from __future__ import annotations

from dvsa.data.config import PreprocessParams
from dvsa.data.dataset import load_dataset
from dvsa.data.labels import write_labels
from dvsa.data.prepro import build_labels
from dvsa.metric_files import write_details
from dvsa.metrics.cider_d import document_frequencies_for
from dvsa.params import load_params
from dvsa.stage import run_stage


def main() -> None:
    params = load_params(PreprocessParams, "preprocess")
    dataset = load_dataset("data/dataset/dataset.json")
    labels, stats = build_labels(dataset, params)
    write_labels("data/prepro/labels.h5", "data/prepro/vocab.json", labels)
    document_frequencies_for("data/prepro/labels.h5", "train")
    write_details("metrics/details/preprocess.json", stats)
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
