"""Self-critical sequence training (Rennie et al., CVPR 2017), the captioner's second loss phase.

From iteration ``self_critical_after`` on, each image of the batch gets ``train_sample_n`` captions w^s drawn
from the model's own distribution (multinomial, temperature 1, up to labels.max_length words; the decoder of
dvsa.caption.beam, batched over images x samples) and the loss is the policy gradient

    L = -(1 / T) sum_s (r(w^s) - b) sum_t log p(w^s_t)

over every sampled word and the END (when one was drawn; padding masked), T the batch's sampled tokens. The
reward r = cider_reward_weight CIDEr-D + bleu_reward_weight BLEU-4 against the image's train references
(dvsa.metrics.cider_d, on token ids, END counted as a token). The baseline b: the reward of the greedy caption
of the same image (``sc_baseline: greedy``, the original SCST), or the mean reward of the image's other n - 1
samples (``mean``, "new self-critical"). Sampling, the greedy pass and the log p of the samples all run the LM
in eval mode (no dropout), so the gradient is that of the policy that drew the samples.

Data-parallel: the uniforms that pick every sampled word are drawn for the whole global batch from the
iteration's seed and cut per rank, each rank samples and scores its share of the images, and the token count
is summed over ranks: the averaged gradient is that of one process on the same batch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from dvsa.caption.beam import greedy, sample
from dvsa.caption.config import CaptionerParams
from dvsa.caption.model import expand, sequence_logprob
from dvsa.data.labels import Labels
from dvsa.data.loader import CaptionBatch
from dvsa.distributed import ONE_PROCESS, World, all_reduce_sum
from dvsa.metrics.cider_d import CiderD, DocumentFrequencies, candidates_with_end, references_with_end
from dvsa.train.loop import Step, step_seed
from dvsa.train.schedule import halving_lr

def self_critical(params: CaptionerParams, iteration: int) -> bool:
    """Whether iteration `iteration` (0-based) takes the self-critical loss."""
    return params.self_critical_after >= 0 and iteration >= params.self_critical_after


def sc_learning_rate(params: CaptionerParams, iteration: int) -> float:
    """The LM's learning rate in the self-critical phase: sc_learning_rate, halved every
    sc_learning_rate_decay_every iterations after sc_learning_rate_decay_start iterations into the phase."""
    return halving_lr(params.sc_learning_rate, iteration - params.self_critical_after,
                      params.sc_learning_rate_decay_start, params.sc_learning_rate_decay_every)


class Reward:
    """r(w) of captions of the train images: CIDEr-D (x 10, as coco-caption reports it) and optionally BLEU-4
    against each image's references, with CIDEr-D's document frequencies from the train references."""

    def __init__(self, labels: Labels, params: CaptionerParams, df: DocumentFrequencies | None = None) -> None:
        rows = labels.split_indices("train")
        self.slot = {int(i): k for k, i in enumerate(rows)}  # labels row -> position among the train images
        self.refs = references_with_end(labels, rows)
        self.cider_weight, self.bleu_weight = params.cider_reward_weight, params.bleu_reward_weight
        self.cider = CiderD(df if df is not None else DocumentFrequencies.from_references(self.refs))
        self.prepared = self.cider.prepare(self.refs)

    def __call__(self, seqs: np.ndarray, images: Sequence[int]) -> np.ndarray:
        """seqs (N, T) sampled rows (0 after END), images (N,) their labels rows -> rewards (N,) float64."""
        cands = candidates_with_end(seqs)
        slots = [self.slot[int(i)] for i in images]
        out = np.zeros(len(cands))
        if self.cider_weight > 0:
            out += self.cider_weight * self.cider.scores(cands, slots, self.prepared)
        if self.bleu_weight > 0:
            out += self.bleu_weight * bleu4(cands, [self.refs[s] for s in slots])
        return out


def bleu4(cands: list[list[int]], refs: list[list[list[int]]]) -> np.ndarray:
    """Sentence BLEU-4 of each candidate against its references (coco-caption's BleuScorer on token ids)."""
    from pycocoevalcap.bleu.bleu_scorer import BleuScorer  # only for bleu_reward_weight > 0

    scorer = BleuScorer(n=4)
    for cand, rs in zip(cands, refs, strict=True):
        scorer += (" ".join(map(str, cand)), [" ".join(map(str, r)) for r in rs])
    _, per_sentence = scorer.compute_score(option="closest", verbose=0)
    return np.asarray(per_sentence[3], dtype=np.float64)


def self_critical_loss(
    lm: torch.nn.Module,
    forward: torch.nn.Module,
    feats: Tensor,
    mask: Tensor,
    batch: CaptionBatch,
    mine: slice,
    weight: float,
    reward: Reward,
    params: CaptionerParams,
    iteration: int,
    max_length: int,
    world: World = ONE_PROCESS,
) -> Step:
    """The policy-gradient loss of this rank's images `mine` of `batch` (features feats (b, R, D), mask (b, R);
    `forward`: the LM, or its DistributedDataParallel wrapper). The value is the whole batch's loss; the train
    rows also log the mean sampled reward and baseline."""
    n = params.train_sample_n
    lm.eval()
    generator = torch.Generator().manual_seed(step_seed(params.seed, iteration))
    uniforms = torch.rand(len(batch.image_ix) * n, max_length, generator=generator)[mine.start * n : mine.stop * n]
    uniforms = uniforms.to(feats.device)  # drawn on the CPU: the same numbers on any device
    images = batch.image_ix[mine]  # (b,)
    with torch.no_grad():
        seqs = sample(lm, expand(feats.detach(), n), expand(mask, n), max_length, uniforms=uniforms).seqs  # (b n, T)
        seqs = seqs[:, : min(max_length, int((seqs > 0).sum(dim=1).max()) + 1)]  # (b n, T'): each END kept
        r = reward(seqs.cpu().numpy(), np.repeat(images, n))  # (b n,)
        if params.sc_baseline == "greedy":
            base = np.repeat(reward(greedy(lm, feats.detach(), mask, max_length).seqs.cpu().numpy(), images), n)
        else:
            per_image = r.reshape(-1, n)  # (b, n)
            base = ((per_image.sum(axis=1, keepdims=True) - per_image) / (n - 1)).reshape(-1)
    advantage = torch.from_numpy(weight * (r - base)).to(feats.device, feats.dtype)  # (b n,)
    logp = sequence_logprob(forward(feats, mask, seqs, n), seqs)  # (b n,), with gradients
    loss = -(advantage * logp).sum()
    sums = all_reduce_sum(torch.tensor([
        weight * float(((seqs > 0).sum(dim=1) + (seqs == 0).any(dim=1)).sum()),  # tokens: words + END
        float(loss.detach()), weight * float(r.sum()), weight * float(base.sum()), weight * len(r),
    ], dtype=torch.float64, device=feats.device))  # on the LM's device: NCCL reduces CUDA tensors only
    n_tokens, loss_sum, r_sum, base_sum, n_samples = sums.tolist()
    logged = {"reward": r_sum / n_samples, "baseline": base_sum / n_samples}
    return Step(loss * (world.size / n_tokens), loss_sum / n_tokens, logged)
