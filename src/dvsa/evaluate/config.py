"""Params of the `evaluate_captioner` stage (params.yaml `evaluate.captioning`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class EvaluateCaptioningParams:
    split: Literal["test", "val"] = "test"
    method: Literal["beam", "greedy", "sample"] = "beam"
    beam_size: int = field(default=3, metadata={"min": 1, "max": 50})
    temperature: float = field(default=1.0, metadata={"gt": 0.0})  # for method: sample
    max_length: int = field(default=16, metadata={"min": 1})  # length cap of generated captions
    batch_size: int = field(default=50, metadata={"min": 1})
    seed: int = 123  # for method: sample
    report_images: int = field(default=60, metadata={"min": 0})  # images in reports/index.html
