"""Batched beam search vs the same beam search run one image at a time: images/s of each, their ratio
(target >= 5x) and whether the captions are identical.

Uses the trained models/captioner.pt on the test split's region-0 features of data/regions/regions.h5 when
both exist (the pipeline has run), else a randomly initialised captioner of the default size on random
features.

    python benchmarks/decode.py [--beam-size 3] [--n-images 200] [--batch-size 200] [--threads N]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from dvsa.caption.beam import beam_search
from dvsa.caption.checkpoint import load_captioner
from dvsa.caption.config import CaptionerParams
from dvsa.caption.model import Captioner
from dvsa.data.labels import read_labels
from dvsa.regions.store import RegionStore


def trained_or_random(a: argparse.Namespace) -> tuple[Captioner, torch.Tensor, str]:
    if Path(a.model).is_file() and Path(a.regions).is_file() and Path(a.labels).is_file():
        model, _, _ = load_captioner(a.model)
        labels = read_labels(a.labels, Path(a.labels).with_name("vocab.json"))
        rows = labels.split_indices("test")[: a.n_images]
        with RegionStore(a.regions) as store:
            feats = torch.from_numpy(store.feats(rows, region=0))
        return model, feats, f"trained {a.model}, {len(rows)} test images of {a.regions}"
    p = CaptionerParams()
    torch.manual_seed(0)
    model = Captioner(a.vocab, 4096, p.rnn_type, p.rnn_size, p.num_layers, p.input_encoding_size, p.drop_prob_lm).eval()
    feats = torch.relu(torch.randn(a.n_images, 4096))
    return model, feats, f"random default-size captioner (vocab {a.vocab}), {a.n_images} random features"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="models/captioner.pt")
    parser.add_argument("--regions", default="data/regions/regions.h5")
    parser.add_argument("--labels", default="data/prepro/labels.h5")
    parser.add_argument("--beam-size", type=int, default=3)
    parser.add_argument("--max-length", type=int, default=16)
    parser.add_argument("--n-images", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=200, help="images per batched call")
    parser.add_argument("--vocab", type=int, default=90, help="vocabulary of the random model")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    a = parser.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    model, feats, what = trained_or_random(a)
    n = len(feats)
    beam_search(model, feats[:4], a.beam_size, a.max_length)  # warm-up

    start = time.perf_counter()
    batched = torch.cat(
        [beam_search(model, feats[s : s + a.batch_size], a.beam_size, a.max_length)[0] for s in range(0, n, a.batch_size)]
    )
    t_batched = time.perf_counter() - start

    start = time.perf_counter()
    single = torch.cat([beam_search(model, feats[i : i + 1], a.beam_size, a.max_length)[0] for i in range(n)])
    t_single = time.perf_counter() - start

    same = int((batched == single).all(dim=1).sum())
    print(f"{what}; beam {a.beam_size}, length cap {a.max_length}, threads {torch.get_num_threads()}")
    print(f"batched ({a.batch_size} images per call): {n / t_batched:8.1f} images/s  ({t_batched:.2f} s)")
    print(f"one image at a time:            {n / t_single:8.1f} images/s  ({t_single:.2f} s)")
    print(f"speed-up: {t_single / t_batched:.1f}x (target >= 5x)")
    print(f"identical captions: {same}/{n}" + ("" if same == n else "  <-- MISMATCH"))
    lengths = (batched > 0).sum(dim=1).float()
    print(f"mean caption length {lengths.mean():.1f} words; {int((lengths == 0).sum())} empty")
    if same != n:
        rows = np.nonzero(~(batched == single).all(dim=1).numpy())[0][:3]
        print(f"first differing images: {rows.tolist()}")


if __name__ == "__main__":
    main()
