"""Params of the `train_captioner` stage (params.yaml `captioner:`), neuraltalk2's train.lua options."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal


@dataclass
class CaptionerParams:
    seed: int = 123
    threads: int = field(default=1, metadata={"min": 0})  # torch CPU threads while training (0: torch's default)
    # the model
    rnn_type: Literal["lstm", "rnn"] = "lstm"  # neuraltalk2's LSTM, or the paper's multimodal RNN (eq. 13)
    rnn_size: int = field(default=256, metadata={"min": 1})
    num_layers: int = field(default=1, metadata={"min": 1, "max": 4})
    input_encoding_size: int = field(default=256, metadata={"min": 1})
    drop_prob_lm: float = field(default=0.2, metadata={"min": 0.0, "max": 0.9})
    # standardize: features -> (x - mean) / std with the train split's statistics before the encoder
    feat_norm: Literal["standardize", "none"] = "standardize"
    # batches
    batch_size: int = field(default=16, metadata={"min": 1})  # images per batch
    seq_per_img: int = field(default=5, metadata={"min": 1})  # captions per image per batch
    max_iters: int = field(default=1500, metadata={"min": 1})
    # Adam, as neuraltalk2: alpha = beta1, beta = beta2
    learning_rate: float = field(default=4e-4, metadata={"gt": 0.0})
    optim_alpha: float = field(default=0.8, metadata={"min": 0.0, "max": 0.999999})
    optim_beta: float = field(default=0.999, metadata={"min": 0.0, "max": 0.999999})
    optim_epsilon: float = field(default=1e-8, metadata={"gt": 0.0})
    weight_decay: float = field(default=0.0, metadata={"min": 0.0})  # L2 on every weight
    grad_clip: float = field(default=0.1, metadata={"gt": 0.0})  # each gradient element clamped to ±grad_clip
    # eps = eps0 * 2^(-(i - i0) / T) for i > i0 = learning_rate_decay_start (-1: no decay), T = ..._every
    learning_rate_decay_start: int = field(default=500, metadata={"min": -1})
    learning_rate_decay_every: int = field(default=500, metadata={"min": 1})
    # validation: loss and greedy-caption language metrics on the first val_images val images
    val_every: int = field(default=250, metadata={"min": 1})
    val_images: int = field(default=200, metadata={"min": 1})
    # training stops with an error when the loss is not finite or exceeds explode_factor x the first loss
    explode_factor: float = field(default=3.0, metadata={"gt": 1.0})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
