"""The self-critical reward: captions scored per second by dvsa.metrics.cider_d and by pycocoevalcap's
CiderScorer on the same input, in one run, their ratio (goal >= 10x) and the largest difference of scores.

One step's input is what a training step scores: --images images x --samples candidates each, against each
image's references. The references are the train split of data/prepro/labels.h5 when it exists, else
five captions of the shapes world's grammar on each of --corpus random scenes (no images are drawn); the
candidates are real captions of other images (every length, repeated n-grams), each followed by END as the
reward expects.

Timed, over --steps steps of different images, the best of --repeats runs of each:
- pycocoevalcap, full: CiderScorer on the token ids as strings, compute_score (as its Cider does; the
  document frequencies of the step's own references);
- pycocoevalcap, injected: the training document frequencies injected, compute_cider alone (its most
  favourable path, as the peer's training reward);
- ours: CiderD.prepare of the step's references + CiderD.scores with the training frequencies; and
  scores alone on references prepared beforehand.
The check: ours equals pycocoevalcap's compute_score with the same (the step's) document frequencies.

    python benchmarks/cider_reward.py [--images 16] [--samples 5] [--steps 30] [--repeats 3] [--corpus 1500]
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pycocoevalcap.cider.cider_scorer import CiderScorer

from dvsa.data.labels import read_labels
from dvsa.data.shapes_grammar import captions
from dvsa.data.shapes_render import BACKGROUNDS
from dvsa.data.shapes_scene import sample_scene
from dvsa.data.vocab import tokenize
from dvsa.metrics.cider_d import END, CiderD, DocumentFrequencies, document_frequencies_for, references_with_end

Refs = list[list[list[int]]]


def shapes_references(n_images: int, seed: int = 0) -> Refs:
    """Five captions of the grammar on each of `n_images` scenes drawn as the world draws them, ids + END."""
    sentences = []
    for i in range(n_images):
        rng = np.random.default_rng([seed, i])
        objects = sample_scene(rng, int(rng.integers(1, 5)), 128)
        background = BACKGROUNDS[rng.integers(len(BACKGROUNDS))]
        r = random.Random(int(rng.integers(2**63)))
        sentences.append([tokenize(c) for c in captions(objects, background, 5, r)])
    words = sorted({w for image in sentences for s in image for w in s})
    ix = {w: k + 1 for k, w in enumerate(words)}
    return [[[ix[w] for w in s] + [END] for s in image] for image in sentences]


def corpus(a: argparse.Namespace) -> tuple[Refs, DocumentFrequencies, str]:
    labels_h5 = Path(a.labels)
    if labels_h5.is_file() and labels_h5.with_name("vocab.json").is_file():
        labels = read_labels(labels_h5, labels_h5.with_name("vocab.json"))
        refs = references_with_end(labels, labels.split_indices("train"))
        return refs, document_frequencies_for(labels_h5), f"the train split of {labels_h5} ({len(refs)} images)"
    refs = shapes_references(a.corpus)
    return refs, DocumentFrequencies.from_references(refs), f"{a.corpus} images of the shapes world's captions"


def text(seq: list[int]) -> str:
    return " ".join(map(str, seq))


def pycocoevalcap_scores(cands: list[list[int]], refs: Refs, df: dict | None) -> np.ndarray:
    """CiderScorer on strings: compute_score (df None) or compute_cider with the frequencies `df` injected."""
    scorer = CiderScorer(n=4, sigma=6.0)
    for c, r in zip(cands, refs):
        scorer += (text(c), [text(s) for s in r])
    if df is None:
        return scorer.compute_score()[1]
    scorer.document_frequency = df
    return np.array(scorer.compute_cider())


def best(run: Callable[[], object], repeats: int) -> float:
    """The shortest wall time of `repeats` calls of `run`, in seconds."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--corpus", type=int, default=1500)
    ap.add_argument("--labels", default="data/prepro/labels.h5")
    a = ap.parse_args()
    refs, df, where = corpus(a)
    metric = CiderD(df)
    df_text = {tuple(str(t) for t in k): float(v) for k, v in df.to_dict().items()}
    rng = np.random.default_rng(0)
    all_sentences = [s for image in refs for s in image]
    steps = []
    for _ in range(a.steps):
        images = rng.choice(len(refs), a.images, replace=False)
        cands = [all_sentences[k] for k in rng.choice(len(all_sentences), a.images * a.samples)]
        steps.append(([refs[i] for i in images], cands, np.repeat(np.arange(a.images), a.samples)))
    n = a.steps * a.images * a.samples

    prepared = [metric.prepare(step_refs) for step_refs, _, _ in steps]
    theirs_full = best(lambda: [pycocoevalcap_scores(c, [r[i] for i in im], None) for r, c, im in steps], a.repeats)
    theirs_injected = best(lambda: [pycocoevalcap_scores(c, [r[i] for i in im], df_text) for r, c, im in steps],
                           a.repeats)
    ours = best(lambda: [metric.scores(c, im, metric.prepare(r)) for r, c, im in steps], a.repeats)
    ours_scores = best(lambda: [metric.scores(c, im, p) for (_, c, im), p in zip(steps, prepared)], a.repeats)

    diff = 0.0
    for step_refs, cands, image_of in steps:  # the same frequencies on both sides: the step's own
        per_candidate = [step_refs[i] for i in image_of]
        own = CiderD(DocumentFrequencies.from_references(per_candidate))
        expected = pycocoevalcap_scores(cands, per_candidate, None)
        diff = max(diff, float(np.abs(own.scores(cands, image_of, own.prepare(step_refs)) - expected).max()))

    print(f"references: {where}; {a.steps} steps of {a.images} images x {a.samples} candidates ({n} captions), "
          f"best of {a.repeats}")
    print(f"pycocoevalcap CiderScorer, compute_score:        {n / theirs_full:10.0f} captions/s")
    print(f"pycocoevalcap CiderScorer, injected df:          {n / theirs_injected:10.0f} captions/s")
    print(f"dvsa CiderD, prepare + scores:                   {n / ours:10.0f} captions/s")
    print(f"dvsa CiderD, scores (references prepared):       {n / ours_scores:10.0f} captions/s")
    print(f"ratio, prepare + scores vs injected df:          {theirs_injected / ours:10.1f}x (goal >= 10x)")
    print(f"ratio, prepare + scores vs compute_score:        {theirs_full / ours:10.1f}x")
    print(f"largest |ours - pycocoevalcap| (same df):        {diff:10.2e}")


if __name__ == "__main__":
    main()
