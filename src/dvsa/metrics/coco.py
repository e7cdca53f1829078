"""COCO caption metrics with pycocoevalcap: PTB tokenizer, BLEU-1..4, METEOR, ROUGE_L, CIDEr.

As the COCO evaluation server: references and candidates are PTB-tokenized (lowercased, punctuation
removed), then scored at the corpus level. CIDEr is pycocoevalcap's scorer (CIDEr-D: sigma 6, clipped,
x10) whose document frequencies come from the references of the evaluated split itself, so a score is
comparable only between systems evaluated on the same images. SPICE is never computed: it downloads
Stanford models at run time, so it is listed as unavailable. The PTB tokenizer and METEOR run Java; without
``java`` METEOR is unavailable (one warning line) and tokenization falls back to ``dvsa.data.vocab.tokenize``.
The scorers' own console output is captured.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from dvsa.data.vocab import tokenize

METRICS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "SPICE")
UNAVAILABLE = "unavailable"
SPICE_REASON = "SPICE downloads Stanford CoreNLP models at run time, which this project does not allow"


def java_available() -> bool:
    return shutil.which("java") is not None


@contextmanager
def captured_output() -> Iterator[None]:
    """Send this process's stdout and stderr (file descriptors 1 and 2, so Java children too) to a
    temporary file for the duration."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def ptb_tokenize(captions: Mapping[Hashable, Sequence[str]], use_java: bool) -> dict[Hashable, list[str]]:
    """{key: [caption, ...]} -> {key: [tokenized caption, ...]} with the Stanford PTB tokenizer (or the
    project's tokenizer when Java is missing)."""
    if not use_java:
        return {k: [" ".join(tokenize(c)) for c in caps] for k, caps in captions.items()}
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    with captured_output():
        out = PTBTokenizer().tokenize({k: [{"caption": c} for c in caps] for k, caps in captions.items()})
    return {k: out.get(k, []) for k in captions}


def coco_scores(
    references: Mapping[Hashable, Sequence[str]],
    candidates: Mapping[Hashable, str],
    meteor: bool = True,
    ptb: bool = True,
    warn: bool = True,
) -> dict[str, Any]:
    """Corpus-level scores of `candidates` (one caption per key) against `references` (>= 1 per key).

    Returns {metric: float or "unavailable"} for METRICS plus ``"unavailable": {metric: reason}``.
    ``meteor=False`` / ``ptb=False`` skip Java (fast path used for validation during training).
    """
    return score_systems(references, {"system": candidates}, meteor, ptb, warn)["system"]


def score_systems(
    references: Mapping[Hashable, Sequence[str]],
    systems: Mapping[str, Mapping[Hashable, str]],
    meteor: bool = True,
    ptb: bool = True,
    warn: bool = True,
) -> dict[str, dict[str, Any]]:
    """`coco_scores` of several systems captioning the same images, tokenizing the references and starting
    METEOR once. Returns {system: scores}."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    keys = list(next(iter(systems.values()), {}))
    if not keys:
        raise ValueError("no captions to score")
    for name, candidates in systems.items():
        if set(candidates) != set(keys):
            raise ValueError(f"system {name!r} captions other images than {next(iter(systems))!r}")
    missing = [k for k in keys if not references.get(k)]
    if missing:
        raise ValueError(f"no references for {len(missing)} captions (e.g. {missing[0]!r})")
    has_java = java_available()
    if (meteor or ptb) and not has_java and warn:
        print("warning: java not found: METEOR unavailable, simple tokenizer instead of PTB", file=sys.stderr)
    use_java = ptb and has_java
    gts = ptb_tokenize({k: list(references[k]) for k in keys}, use_java)
    # one tokenizer run for every system: keys (system index, image key)
    names = list(systems)
    flat = ptb_tokenize({(n, k): [systems[name][k]] for n, name in enumerate(names) for k in keys}, use_java)
    results: dict[str, dict[str, Any]] = {}
    for n, name in enumerate(names):
        res = {k: flat[(n, k)] for k in keys}
        scores: dict[str, Any] = {}
        unavailable: dict[str, str] = {"SPICE": SPICE_REASON}
        with captured_output():
            bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
            rouge, _ = Rouge().compute_score(gts, res)
            cider, _ = Cider().compute_score(gts, res)
        for i in range(4):
            scores[f"Bleu_{i + 1}"] = float(bleu[i])
        if not (meteor and has_java):
            unavailable["METEOR"] = "java not found" if meteor else "not computed"
        scores["ROUGE_L"] = float(rouge)
        scores["CIDEr"] = float(cider)
        results[name] = {"scores": scores, "unavailable": unavailable, "res": res}
    if meteor and has_java:
        for name, value in zip(names, _meteor(gts, [results[n]["res"] for n in names])):
            results[name]["scores"]["METEOR"] = value
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        r = results[name]
        out[name] = {m: r["scores"].get(m, UNAVAILABLE) for m in METRICS}
        out[name]["unavailable"] = r["unavailable"]
    return out


def _meteor(gts: dict[Hashable, list[str]], systems: list[dict[Hashable, list[str]]]) -> list[float]:
    """METEOR 1.5 of each system, with one Java process."""
    from pycocoevalcap.meteor.meteor import Meteor

    with captured_output():
        scorer = Meteor()
        try:
            return [float(scorer.compute_score(gts, res)[0]) for res in systems]
        finally:
            del scorer
