"""Params of the `train_alignment` (section ``alignment``) and `evaluate_alignment` (``evaluate.alignment``) stages."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal


@dataclass
class AlignmentParams:
    """The alignment model (eqs. (1)-(9)) and its training loop.

    The paper uses h = 1000-1600 and frozen 300-d word2vec vectors; here the word embeddings are learned from
    scratch (no pretrained vectors ship with the project) and the sizes default smaller for the shapes world.
    """

    seed: int = 123
    threads: int = field(default=1, metadata={"min": 0})  # torch CPU threads while training (0: torch's default)
    hidden_size: int = field(default=256, metadata={"min": 1})  # h: size of v_i, e_t, h_t^f, h_t^b, s_t
    word_embedding_size: int = field(default=128, metadata={"min": 1})  # size of x_t = W_w I_t
    feat_norm: Literal["l2", "none"] = "l2"  # scale each region's CNN feature to unit length before eq. (1)
    score: Literal["max", "sum"] = "max"  # "max": eq. (8); "sum": eq. (7)
    margin: float = field(default=1.0, metadata={"gt": 0.0})  # eq. (9)
    dropout: float = field(default=0.0, metadata={"min": 0.0, "max": 0.9})  # non-recurrent layers only
    optimizer: Literal["sgd", "adam"] = "sgd"  # SGD with momentum as in the paper, Adam as an option
    lr: float = field(default=0.001, metadata={"gt": 0.0})
    momentum: float = field(default=0.9, metadata={"min": 0.0, "max": 0.999})
    weight_decay: float = field(default=1e-4, metadata={"min": 0.0})
    grad_clip: float = field(default=5.0, metadata={"min": 0.0})  # element-wise clip; 0 disables
    batch_size: int = field(default=100, metadata={"min": 2})  # images per batch
    seq_per_img: int = field(default=5, metadata={"min": 1})  # sentences per image per batch
    epochs: int = field(default=6, metadata={"min": 1})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EvaluateAlignmentParams:
    """Ranking, MRF snippets (eqs. (10)-(12)), grounding and figures on the test split."""

    split: Literal["val", "test"] = "test"
    batch_size: int = field(default=100, metadata={"min": 1})  # images per block of the score matrix
    beta: float = field(default=1.0)  # eq. (12): reward for neighbouring words sharing a region
    iou_threshold: float = field(default=0.5, metadata={"gt": 0.0, "max": 1.0})
    n_figures: int = field(default=4, metadata={"min": 0})
