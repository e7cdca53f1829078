"""COCO's own formats: results files (``[{"image_id", "caption"}]``), reference annotation files, and
pycocoevalcap's ``COCOEvalCap`` over pycocotools ``COCO`` objects of them.

``cocoeval_scores`` is the standard evaluation path of other captioning codebases; it serves as a cross-check
of ``dvsa.metrics.coco.score_systems`` (same PTB tokenizer, same scorers). SPICE is stubbed out, as in
``coco.py``: it downloads Stanford models at run time. COCOEvalCap needs Java (PTB tokenizer, METEOR).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from unittest import mock

from dvsa.io import write_json
from dvsa.metrics.coco import METRICS, SPICE_REASON, UNAVAILABLE, captured_output


def results_records(candidates: Mapping[int, str]) -> list[dict[str, Any]]:
    """{image_id: caption} -> COCO results format, one record per image."""
    return [{"image_id": int(k), "caption": c} for k, c in candidates.items()]


def write_results(path: str | os.PathLike[str], candidates: Mapping[int, str]) -> None:
    write_json(path, results_records(candidates))


def write_references(path: str | os.PathLike[str], references: Mapping[int, Sequence[str]]) -> None:
    """{image_id: [caption, ...]} -> a COCO caption annotation file (images, annotations)."""
    images = [{"id": int(k)} for k in references]
    annotations = [
        {"id": n, "image_id": int(k), "caption": c}
        for n, (k, c) in enumerate(((k, c) for k, caps in references.items() for c in caps), start=1)
    ]
    write_json(path, {"info": {}, "licenses": [], "type": "captions", "images": images, "annotations": annotations})


class _NoSpice:
    """Stands in for pycocoevalcap's Spice inside COCOEvalCap.evaluate."""

    def method(self) -> str:
        return "SPICE"

    def compute_score(self, gts: Any, res: Any) -> tuple[float, list[float]]:
        return float("nan"), []


def cocoeval_scores(references: Mapping[int, Sequence[str]], candidates: Mapping[int, str]) -> dict[str, Any]:
    """Scores of `candidates` by COCOEvalCap, with both sides written in COCO format to a temporary folder.
    Same shape as ``coco.coco_scores``."""
    from pycocoevalcap.eval import COCOEvalCap
    from pycocotools.coco import COCO

    with tempfile.TemporaryDirectory() as tmp:
        refs, res = Path(tmp, "references.json"), Path(tmp, "results.json")
        write_references(refs, {k: references[k] for k in candidates})
        write_results(res, candidates)
        with captured_output(), mock.patch("pycocoevalcap.eval.Spice", _NoSpice):
            coco = COCO(str(refs))
            evaluator = COCOEvalCap(coco, coco.loadRes(str(res)))
            evaluator.evaluate()
    scores: dict[str, Any] = {m: float(evaluator.eval[m]) for m in METRICS if m != "SPICE"}
    scores["SPICE"] = UNAVAILABLE
    scores["unavailable"] = {"SPICE": SPICE_REASON}
    return scores
