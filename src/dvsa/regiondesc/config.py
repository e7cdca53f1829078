"""Params of the `region_snippets` (section ``region_snippets``) and `evaluate_region_captioner`
(``evaluate.region_captioning``) stages; `train_region_captioner` reads ``region_captioner``, a
CaptionerParams."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal


@dataclass
class RegionSnippetsParams:
    """Which MRF segments (eqs. (10)-(12)) of the train and val sentences become region phrases."""

    threads: int = field(default=1, metadata={"min": 0})  # torch CPU threads (0: torch's default)
    beta: float = 1.0  # eq. (12): higher = longer segments
    batch_size: int = field(default=100, metadata={"min": 1})  # images embedded at a time
    max_words: int = field(default=6, metadata={"min": 1})  # longer segments are clauses, not phrases: left out
    max_length: int = field(default=8, metadata={"min": 1})  # labels.h5 width (words kept per phrase)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EvaluateRegionParams:
    """Describing the test regions that match a true object, and scoring the descriptions (Table 3)."""

    split: Literal["val", "test"] = "test"
    threads: int = field(default=1, metadata={"min": 0})  # torch CPU threads (0: torch's default)
    iou_threshold: float = field(default=0.5, metadata={"gt": 0.0, "max": 1.0})  # detection <-> true object
    method: Literal["beam", "greedy"] = "beam"
    beam_size: int = field(default=3, metadata={"min": 1})
    max_length: int = field(default=8, metadata={"min": 1})  # words per generated description
    batch_size: int = field(default=100, metadata={"min": 1})  # regions per decoding batch
    n_figures: int = field(default=6, metadata={"min": 0})  # Figure-6-like pictures in reports/regions/
