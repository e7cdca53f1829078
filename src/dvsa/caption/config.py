"""Params of the `train_captioner` stage (params.yaml `captioner:`, neuraltalk2's train.lua options) and of the
`evaluate_captioner` stage (`evaluate.captioning`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from dvsa.errors import ParamsError


@dataclass
class CaptionerParams:
    seed: int = 123
    threads: int = field(default=1, metadata={"min": 0})  # torch CPU threads while training (0: torch's default)
    # the model: attention over the regions (default) or the whole-image feature (neuraltalk2, the paper)
    image: Literal["regions", "whole"] = "regions"
    rnn_type: Literal["lstm", "rnn"] = "lstm"  # neuraltalk2's LSTM, or the paper's multimodal RNN (eq. 13)
    rnn_size: int = field(default=256, metadata={"min": 1})
    num_layers: int = field(default=1, metadata={"min": 1, "max": 4})
    input_encoding_size: int = field(default=256, metadata={"min": 1})
    # each region's fc7 followed by its detected box (relative to the image) and detection score
    region_geometry: bool = True
    att_size: int = field(default=256, metadata={"min": 1})  # image: regions, the attention's hidden size
    # image: regions with region_geometry: the attention also sees each region's signed gaps to the box it
    # attended at the last step (left of / right of / above / below it), see dvsa.caption.model
    relative_geometry: bool = False
    # image: regions with region_geometry: the attention also sees how much of each region (in box overlap) the
    # caption has looked at already, so that "A and A" names a second A (coverage, see dvsa.caption.model)
    coverage: bool = False
    # image: regions with region_geometry: a second attention over pairs of detections, each pair's features
    # holding both regions and the gaps between their boxes (see dvsa.caption.model)
    pair_attention: bool = False
    # cross-entropy training with region_geometry: each image's boxes mirrored left-right, and independently
    # top-bottom, with this probability, its captions' direction words swapped (dvsa.caption.mirror)
    mirror_prob: float = field(default=0.0, metadata={"min": 0.0, "max": 1.0})
    drop_prob_lm: float = field(default=0.2, metadata={"min": 0.0, "max": 0.9})
    # standardize: features -> (x - mean) / std with the train split's statistics before the encoder; while
    # the CNN is finetuned the statistics follow it (moving average, this momentum per iteration)
    feat_norm: Literal["standardize", "none"] = "standardize"
    feat_norm_momentum: float = field(default=0.01, metadata={"gt": 0.0, "max": 1.0})
    # batches
    batch_size: int = field(default=16, metadata={"min": 1})  # images per batch
    seq_per_img: int = field(default=5, metadata={"min": 1})  # captions per image per batch
    max_iters: int = field(default=1500, metadata={"min": 1})
    # Adam, as neuraltalk2: alpha = beta1, beta = beta2
    learning_rate: float = field(default=4e-4, metadata={"gt": 0.0})
    optim_alpha: float = field(default=0.8, metadata={"min": 0.0, "max": 0.999999})
    optim_beta: float = field(default=0.999, metadata={"min": 0.0, "max": 0.999999})
    optim_epsilon: float = field(default=1e-8, metadata={"gt": 0.0})
    weight_decay: float = field(default=0.0, metadata={"min": 0.0})  # L2 on the language model's weights
    grad_clip: float = field(default=0.1, metadata={"gt": 0.0})  # each gradient element clamped to ±grad_clip
    # eps = eps0 * 2^(-(i - i0) / T) for i > i0 = learning_rate_decay_start (-1: no decay), T = ..._every
    learning_rate_decay_start: int = field(default=500, metadata={"min": -1})
    learning_rate_decay_every: int = field(default=500, metadata={"min": 1})
    # neuraltalk2's protos.cnn: -1 = never finetune (cached regions.h5 features); i >= 0 = the region CNN
    # encodes the regions from pixels, and is trained (backward + its own Adam) from iteration i on
    finetune_cnn_after: int = field(default=-1, metadata={"min": -1})
    cnn_learning_rate: float = field(default=1e-5, metadata={"gt": 0.0})
    cnn_optim_alpha: float = field(default=0.8, metadata={"min": 0.0, "max": 0.999999})
    cnn_optim_beta: float = field(default=0.999, metadata={"min": 0.0, "max": 0.999999})
    cnn_weight_decay: float = field(default=0.0, metadata={"min": 0.0})  # L2 on the CNN only
    # training images through the CNN: random crop keeping >= 1 - augment_crop of each side, brightness
    # x U(1 -+ augment_brightness); never a horizontal flip (captions say left / right)
    augment_crop: float = field(default=0.1, metadata={"min": 0.0, "max": 0.5})
    augment_brightness: float = field(default=0.1, metadata={"min": 0.0, "max": 0.5})
    # validation: loss and greedy-caption language metrics on the first val_images val images
    val_every: int = field(default=250, metadata={"min": 1})
    val_images: int = field(default=200, metadata={"min": 1})
    val_predictions: int = field(default=30, metadata={"min": 0})  # val captions kept per validation in history.json
    # training stops with an error when the loss is not finite or exceeds explode_factor x the first loss
    explode_factor: float = field(default=3.0, metadata={"gt": 1.0})
    # self-critical sequence training (Rennie et al., CVPR 2017; self-critical.pytorch's names): from iteration
    # self_critical_after on (-1: never) the loss is -(r(w^s) - b) sum_t log p(w^s_t) over train_sample_n
    # captions sampled per image, r = cider_reward_weight CIDEr-D + bleu_reward_weight BLEU-4 against the
    # image's train references; b: the reward of the greedy caption (greedy) or the mean reward of the image's
    # other samples (mean, "new self-critical"). The LM's Adam then runs at sc_learning_rate, halved every
    # sc_learning_rate_decay_every iterations from sc_learning_rate_decay_start iterations into the phase (-1: never)
    self_critical_after: int = field(default=-1, metadata={"min": -1})
    train_sample_n: int = field(default=5, metadata={"min": 1})
    sc_baseline: Literal["greedy", "mean"] = "greedy"
    cider_reward_weight: float = field(default=1.0, metadata={"min": 0.0})
    bleu_reward_weight: float = field(default=0.0, metadata={"min": 0.0})
    sc_learning_rate: float = field(default=5e-5, metadata={"gt": 0.0})
    sc_learning_rate_decay_start: int = field(default=-1, metadata={"min": -1})
    sc_learning_rate_decay_every: int = field(default=500, metadata={"min": 1})

    def __post_init__(self) -> None:
        if self.image == "regions" and self.rnn_type != "lstm":
            raise ParamsError("captioner.rnn_type: rnn (the multimodal RNN of eq. 13) needs captioner.image: whole")
        if self.relative_geometry and (self.image != "regions" or not self.region_geometry):
            raise ParamsError("captioner.relative_geometry: needs image: regions and region_geometry: true")
        if self.coverage and (self.image != "regions" or not self.region_geometry):
            raise ParamsError("captioner.coverage: needs image: regions and region_geometry: true")
        if self.pair_attention and (self.image != "regions" or not self.region_geometry):
            raise ParamsError("captioner.pair_attention: needs image: regions and region_geometry: true")
        if self.mirror_prob > 0 and not self.region_geometry:
            raise ParamsError("captioner.mirror_prob: mirrors the boxes, needs region_geometry: true")
        if self.self_critical_after >= 0:
            if self.sc_baseline == "mean" and self.train_sample_n < 2:
                raise ParamsError("captioner.sc_baseline: mean (the other samples' reward) needs train_sample_n >= 2")
            if self.cider_reward_weight + self.bleu_reward_weight <= 0:
                raise ParamsError("captioner.cider_reward_weight + bleu_reward_weight: must be > 0 for self-critical training")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
