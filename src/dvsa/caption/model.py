"""The captioner: neuraltalk2's protos.cnn -> protos.expander -> protos.lm, with attention over the regions.

Token indices: words are 1..V as in vocab.json; index 0 is START when fed to the network and END when
predicted (the zero padding of labels.h5 then reads as END), so both tables have V + 1 rows.

The image is the 20 regions of regions.h5 (region 0 = the whole image), x_i (B, R, D) (fc7, and the box
geometry when ``region_geometry``), with a mask of the real ones. Features are standardised with the
statistics of the training features (``FeatureNorm``; they follow the CNN while it is finetuned), then
encoded v_i = ReLU(W_e x_i + b_e) (the paper's eq. (1) with a ReLU, as neuraltalk2's encoder).

- ``image: whole`` (neuraltalk2, the paper's multimodal RNN): only region 0. The LSTM reads x_{-1} = v_0 at
  step 0, START at step 1, then the words; ``rnn_type: rnn`` is eq. (13) instead: h_t = f(W_hx x_t +
  W_hh h_{t-1} + b_h + 1(t=1) ⊙ b_v) with b_v = W_hi v_0, f = ReLU. y_t = softmax(W_oh h_t + b_o).
- ``image: regions`` (default, LSTM only): the LSTM reads the mean of the real v_i at step 0 and, at every
  step t, attends over the real regions with its output h_t (spatial attention in the style of
  Show-Attend-Tell / Lu et al. 2017): z_ti = w_a . tanh(W_v v_i + W_h h_t), α_t = softmax_i(z_t) over the
  real regions, c_t = Σ_i α_ti v_i, o_t = tanh(W_c [h_t; c_t]) and y_t = softmax(W_o o_t + b_o). o_{t-1} is
  fed back with the word at step t (Luong et al. 2015's input feeding): the LSTM knows what it looked at,
  so that "A left of B" can look for a B other than A.
- ``relative_geometry`` (image: regions, features with their geometry): the attention also sees where each
  region lies relative to the focus of the last step, the box f_t = Σ_i α_{t-1,i} b_i (the whole image before
  the first step): r_ti = (x0_i - x1_f, x1_i - x0_f, y0_i - y1_f, y1_i - y0_f), the four signed gaps whose
  signs are the grammar's right of / left of / below / above (x0(B) >= x1(A) is "B right of A"). Then
  z_ti = w_a . tanh(W_v v_i + W_h h_t + W_r r_ti) and o_t = tanh(W_c [h_t; c_t; Σ_i α_ti r_ti]): having
  named A, the LSTM can ask for a region right of it, and knows on which side of A what it attends lies.
  Absolute boxes alone (the geometry in x_i) make "right of A" a comparison of two regions' features that
  additive attention cannot form.
- ``coverage`` (image: regions, features with their geometry): the attention also sees how much of each
  region the caption has looked at already (the coverage of Tu et al. 2016 and See et al. 2017, in box space):
  s_ti = Σ_j C_tj IoU(b_j, b_i) with C_t = Σ_{t'<t} α_t', so that a region and the detections overlapping it
  count as seen; z_ti = w_a . tanh(W_v v_i + W_h h_t [+ W_r r_ti] + w_s s_ti) and o_t = tanh(W_c [h_t; c_t;
  ...; Σ_i α_ti s_ti]). "A and A" is then a choice between a second A and the one already named.
- ``pair_attention`` (image: regions, features with their geometry): a second attention, over the ordered
  pairs (j, k) of the K = PAIR_REGIONS most confident detections, each p_jk = ReLU(P v_j + Q v_k + G g_jk)
  (g_jk the signed gaps of box k to box j, as r_ti above), and a null pair p_0 = 0 for images without two detections:
  β_t = softmax(w_p . tanh(W_p p + W_q h_t)), c'_t = Σ β_t p and o_t = tanh(W_c [h_t; c_t; ...; c'_t]).
  "A left of B" is then one pair, its direction in the pair's gaps and its landmark in v_k, where the
  attention over single regions must bind two regions looked at in different steps (and, having named A,
  looks at the whole image while it says the direction).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from dvsa.features import GEOMETRY_DIM

IMAGE_INPUTS = ("regions", "whole")
RELATIVE_GAPS = ("x0 - x1(focus)", "x1 - x0(focus)", "y0 - y1(focus)", "y1 - y0(focus)")
PAIR_REGIONS = 6  # pair_attention: the pairs of this many most confident detections (the world has <= 4 objects)


class DecodeState(NamedTuple):
    """What decoding carries from one step to the next, for B rows (images or beams)."""

    rnn: tuple[Tensor, ...]  # each (num_layers, B, H): (h, c) for the LSTM, (h,) for the RNN
    regions: Tensor | None = None  # (B, R, E) encoded regions v_i (image: regions), else None
    keys: Tensor | None = None  # (B, R, A) W_v v_i
    mask: Tensor | None = None  # (B, R) bool, real regions
    alpha: Tensor | None = None  # (B, R) attention of the last step
    feed: Tensor | None = None  # (B, H) o_{t-1}, the last attended output, fed back with the next word
    boxes: Tensor | None = None  # (B, R, 4) the boxes x0, y0, x1, y1 relative to the image (relative_geometry, coverage)
    coverage: Tensor | None = None  # (B, R) C_t, the attention summed over the steps so far (coverage)
    overlap: Tensor | None = None  # (B, R, R) IoU between the real regions' boxes (coverage)
    pairs: Tensor | None = None  # (B, P, A) the pair features p, the null pair first (pair_attention)
    pair_keys: Tensor | None = None  # (B, P, A) W_p p
    pair_mask: Tensor | None = None  # (B, P) bool, real pairs and the null one

    def select(self, index: Tensor) -> DecodeState:
        """The state of batch rows `index` (B',)."""
        rows = (
            self.regions, self.keys, self.mask, self.alpha, self.feed, self.boxes, self.coverage, self.overlap,
            self.pairs, self.pair_keys, self.pair_mask,
        )
        return DecodeState(
            tuple(s.index_select(1, index) for s in self.rnn),
            *(None if x is None else x.index_select(0, index) for x in rows),
        )


class BatchDropout(nn.Module):
    """Dropout whose mask of batch row i does not depend on how the batch is split among ranks.

    Inside ``Captioner.batch_rows(start, total, seed)`` (a training step) the mask of all `total` rows of the
    global batch is drawn from a generator seeded by the step, and this rank's rows start.. are cut from it: a
    data-parallel step drops the units one process would. Outside, it is plain dropout (torch's RNG).
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p
        self.rows: tuple[int, int, torch.Generator] | None = None  # start, total, generator

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.rows is None:
            return F.dropout(x, self.p, True)
        start, total, generator = self.rows
        keep = torch.empty((total, *x.shape[1:])).bernoulli_(1.0 - self.p, generator=generator)  # (total, ...)
        return x * keep[start : start + len(x)].to(x.device, x.dtype) / (1.0 - self.p)


def expand(x: Tensor, seq_per_img: int) -> Tensor:
    """neuraltalk2's FeatExpander: (B, ...) -> (B * seq_per_img, ...), row b repeated for its captions."""
    return x.repeat_interleave(seq_per_img, dim=0)


def _local(moments: Tensor) -> Tensor:
    """The moments of this process alone (no data-parallel reduction)."""
    return moments


class FeatureNorm(nn.Module):
    """(x - mean) / std per feature dimension, with statistics of the training features.

    The statistics are buffers, set once from the cached features (``set``) and, while the CNN is being
    finetuned, followed as the CNN moves by an exponential moving average of the training batches' real
    regions (``track``), as BatchNorm's running statistics; they are never batch statistics.
    """

    eps = 1e-4

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("var", torch.ones(dim))

    def set(self, mean: Tensor, var: Tensor) -> None:
        self.mean.copy_(mean)
        self.var.copy_(var)

    @torch.no_grad()
    def track(
        self, feats: Tensor, mask: Tensor, momentum: float, reduce: Callable[[Tensor], Tensor] = _local
    ) -> None:
        """Move the statistics towards those of the real rows of feats (B, R, D), mask (B, R): those of the
        whole batch when `reduce` sums the (3, D) moments (count, sum, sum of squares) over the ranks of a
        data-parallel run (the trainer passes dvsa.distributed.all_reduce_sum; model code stays free of
        process groups)."""
        real = feats[mask].double()  # (n, D)
        moments = reduce(torch.stack([real.new_full(real.shape[1:], len(real)), real.sum(0), (real**2).sum(0)]))
        n = float(moments[0, 0])
        if n < 2:
            return
        mean = moments[1] / n  # (D,)
        var = (moments[2] / n - mean**2).clamp(min=0)  # (D,)
        self.mean.mul_(1 - momentum).add_(momentum * mean.float())
        self.var.mul_(1 - momentum).add_(momentum * var.float())

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) / torch.sqrt(self.var + self.eps)


class Captioner(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        feat_dim: int,
        image: str = "regions",
        rnn_type: str = "lstm",
        rnn_size: int = 256,
        num_layers: int = 1,
        input_encoding_size: int = 256,
        att_size: int = 256,
        drop_prob_lm: float = 0.5,
        relative_geometry: bool = False,
        coverage: bool = False,
        pair_attention: bool = False,
    ) -> None:
        super().__init__()
        if rnn_type not in ("lstm", "rnn"):
            raise ValueError(f"rnn_type must be lstm or rnn, got {rnn_type!r}")
        if image not in IMAGE_INPUTS:
            raise ValueError(f"image must be one of {IMAGE_INPUTS}, got {image!r}")
        if image == "regions" and rnn_type != "lstm":
            raise ValueError("image: regions needs rnn_type: lstm (the multimodal RNN of eq. 13 reads the whole image)")
        if relative_geometry and (image != "regions" or feat_dim < GEOMETRY_DIM):
            raise ValueError("relative_geometry needs image: regions and features followed by their geometry")
        if coverage and (image != "regions" or feat_dim < GEOMETRY_DIM):
            raise ValueError("coverage needs image: regions and features followed by their geometry")
        if pair_attention and (image != "regions" or feat_dim < GEOMETRY_DIM):
            raise ValueError("pair_attention needs image: regions and features followed by their geometry")
        self.config: dict[str, Any] = dict(
            vocab_size=vocab_size,
            feat_dim=feat_dim,
            image=image,
            rnn_type=rnn_type,
            rnn_size=rnn_size,
            num_layers=num_layers,
            input_encoding_size=input_encoding_size,
            att_size=att_size,
            drop_prob_lm=drop_prob_lm,
            relative_geometry=relative_geometry,
            coverage=coverage,
            pair_attention=pair_attention,
        )
        self.vocab_size, self.image, self.rnn_type, self.num_layers = vocab_size, image, rnn_type, num_layers
        self.relative_geometry, self.coverage, self.pair_attention = relative_geometry, coverage, pair_attention
        between = drop_prob_lm if num_layers > 1 else 0.0
        self.feat_norm = FeatureNorm(feat_dim)
        self.encoder = nn.Linear(feat_dim, input_encoding_size)  # W_e, b_e
        if image == "regions":
            self.cells = nn.ModuleList(
                nn.LSTMCell(input_encoding_size + rnn_size if layer == 0 else rnn_size, rnn_size)
                for layer in range(num_layers)
            )
            self.between = BatchDropout(between)
        elif rnn_type == "lstm":
            self.core: nn.LSTM | nn.RNN = nn.LSTM(
                input_encoding_size, rnn_size, num_layers, batch_first=True, dropout=between
            )
        else:
            self.bias = nn.Linear(input_encoding_size, rnn_size)  # b_v = W_hi v
            self.core = nn.RNN(
                input_encoding_size, rnn_size, num_layers, nonlinearity="relu", batch_first=True, dropout=between
            )
        if image == "regions":
            self.att_regions = nn.Linear(input_encoding_size, att_size, bias=False)  # W_v
            self.att_query = nn.Linear(rnn_size, att_size)  # W_h
            self.att_score = nn.Linear(att_size, 1, bias=False)  # w_a
            gaps = len(RELATIVE_GAPS) if relative_geometry else 0
            self.att_relative = nn.Linear(gaps, att_size, bias=False) if relative_geometry else None  # W_r
            self.att_seen = nn.Linear(1, att_size, bias=False) if coverage else None  # w_s
            pair = att_size if pair_attention else 0
            self.att_out = nn.Linear(rnn_size + input_encoding_size + gaps + int(coverage) + pair, rnn_size)  # W_c
        if pair_attention:
            self.pair_subject = nn.Linear(input_encoding_size, att_size)  # P (and the bias)
            self.pair_object = nn.Linear(input_encoding_size, att_size, bias=False)  # Q
            self.pair_gaps = nn.Linear(len(RELATIVE_GAPS), att_size, bias=False)  # G
            self.pair_key = nn.Linear(att_size, att_size)  # W_p
            self.pair_query = nn.Linear(rnn_size, att_size, bias=False)  # W_q
            self.pair_score = nn.Linear(att_size, 1, bias=False)  # w_p
        self.embed = nn.Embedding(vocab_size + 1, input_encoding_size)  # W_w; row 0 = START
        self.drop = BatchDropout(drop_prob_lm)
        self.logit = nn.Linear(rnn_size, vocab_size + 1)  # W_o, b_o; output 0 = END

    # ---- the image ------------------------------------------------------------------------------------

    def encode(self, feats: Tensor, mask: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """feats (B, R, D), mask (B, R) -> the image input x_{-1} (B, E), and for attention the regions
        v_i (B, R, E) and their keys W_v v_i (B, R, A) (None, None for ``image: whole``)."""
        if self.image == "whole":
            return F.relu(self.encoder(self.feat_norm(feats[:, 0]))), None, None
        v = F.relu(self.encoder(self.feat_norm(feats)))  # (B, R, E)
        m = mask[:, :, None].to(v.dtype)  # (B, R, 1)
        pooled = (v * m).sum(1) / m.sum(1).clamp_min(1.0)  # (B, E)
        return pooled, v, self.att_regions(v)

    def encode_pairs(self, v: Tensor, feats: Tensor, mask: Tensor) -> tuple[Tensor, Tensor, Tensor] | None:
        """pair_attention: the pairs p (B, P, A) of the encoded regions v (B, R, E) (the null pair first, then
        (j, k), j != k, of the PAIR_REGIONS detections of highest score in feats (B, R, D)), their keys W_p p
        (B, P, A) and mask (B, P); None without pair_attention."""
        if not self.pair_attention:
            return None
        geometry = feats[:, 1:, -GEOMETRY_DIM:]  # (B, R - 1, 6) of the detections
        k = min(PAIR_REGIONS, geometry.shape[1])
        top = geometry[..., -1].masked_fill(~mask[:, 1:], -1.0).topk(k, dim=1).indices  # (B, K)
        top_v = v[:, 1:].gather(1, top[..., None].expand(-1, -1, v.shape[-1]))  # (B, K, E)
        top_boxes = geometry[..., :4].gather(1, top[..., None].expand(-1, -1, 4))  # (B, K, 4)
        top_mask = mask[:, 1:].gather(1, top)  # (B, K)
        gaps = signed_gaps(top_boxes[:, None, :, :], top_boxes[:, :, None, :])  # (B, K, K, 4): of box k to box j
        pre = self.pair_subject(top_v)[:, :, None] + self.pair_object(top_v)[:, None, :] + self.pair_gaps(gaps)
        j, kk = torch.nonzero(~torch.eye(k, dtype=torch.bool, device=v.device), as_tuple=True)  # (K (K - 1),)
        pairs = F.relu(pre[:, j, kk])  # (B, K (K - 1), A)
        pairs = torch.cat([pairs.new_zeros(len(v), 1, pairs.shape[-1]), pairs], dim=1)  # (B, P, A)
        pair_mask = torch.cat([mask.new_ones(len(v), 1), top_mask[:, j] & top_mask[:, kk]], dim=1)  # (B, P)
        return pairs, self.pair_key(pairs), pair_mask

    def boxes(self, feats: Tensor) -> Tensor | None:
        """The regions' boxes (B, R, 4) relative to the image, from the geometry that follows fc7 in feats
        (B, R, D) (dvsa.features.region_geometry: x0, y0, x1, y1, area, score); None when neither
        relative_geometry nor coverage reads them."""
        return feats[..., -GEOMETRY_DIM : -GEOMETRY_DIM + 4] if self.relative_geometry or self.coverage else None

    def attend(
        self, h: Tensor, regions: Tensor, keys: Tensor, mask: Tensor, gaps: Tensor | None = None,
        seen: Tensor | None = None, pairs: tuple[Tensor, Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Attention of queries h (N, T, H) over regions (N, R, E) with keys (N, R, A), mask (N, R) and, with
        relative_geometry, the gaps r (N, R, 4) of each region to the last focus, with coverage how much of
        each region was seen s (N, R): the attended outputs tanh(W_c [h; c; Σ α r; Σ α s]) (N, T, H) and the
        weights α (N, T, R) (0 on padding)."""
        pre = keys[:, None] + self.att_query(h)[:, :, None]  # (N, T, R, A)
        if gaps is not None and self.att_relative is not None:
            pre = pre + self.att_relative(gaps)[:, None]
        if seen is not None and self.att_seen is not None:
            pre = pre + self.att_seen(seen[..., None])[:, None]
        z = self.att_score(torch.tanh(pre))[..., 0]  # (N, T, R)
        alpha = z.masked_fill(~mask[:, None], float("-inf")).softmax(dim=-1)  # (N, T, R)
        context = [h, alpha @ regions]  # (N, T, H), (N, T, E)
        if gaps is not None:
            context.append(alpha @ gaps)  # (N, T, 4)
        if seen is not None:
            context.append(alpha @ seen[..., None])  # (N, T, 1)
        if pairs is not None:
            values, pair_keys, pair_mask = pairs
            z_pair = self.pair_score(torch.tanh(pair_keys[:, None] + self.pair_query(h)[:, :, None]))[..., 0]  # (N, T, P)
            beta = z_pair.masked_fill(~pair_mask[:, None], float("-inf")).softmax(dim=-1)  # (N, T, P)
            context.append(beta @ values)  # (N, T, A)
        return torch.tanh(self.att_out(torch.cat(context, dim=-1))), alpha

    # ---- training -------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def batch_rows(self, start: int, total: int, seed: int) -> Iterator[None]:
        """Within: the dropout masks of caption rows start.. of a global batch of `total` rows, drawn for the
        whole batch from a generator seeded by `seed` (see BatchDropout). nn.LSTM / nn.RNN's own dropout
        between layers (``image: whole`` with num_layers > 1) stays torch's."""
        generator = torch.Generator().manual_seed(seed)
        drops = [m for m in self.modules() if isinstance(m, BatchDropout)]
        for m in drops:
            m.rows = (start, total, generator)
        try:
            yield
        finally:
            for m in drops:
                m.rows = None

    def forward(self, feats: Tensor, mask: Tensor, labels: Tensor, seq_per_img: int) -> Tensor:
        """Teacher-forced log-probabilities.

        feats (B, R, D), mask (B, R) real regions, labels (B * S, L) 0-padded words; returns
        (B * S, L + 1, V + 1): row t predicts word t (t < L) and END after the last word.
        """
        return self.forward_with_attention(feats, mask, labels, seq_per_img)[0]

    def forward_with_attention(
        self, feats: Tensor, mask: Tensor, labels: Tensor, seq_per_img: int
    ) -> tuple[Tensor, Tensor | None]:
        """``forward`` and the attention weights (B * S, L + 1, R) (None for ``image: whole``)."""
        n = labels.shape[0]
        image, regions, keys = self.encode(feats, mask)
        image = expand(image, seq_per_img)  # (N, E)
        words = self.embed(labels)  # (N, L, E)
        start = self.embed(labels.new_zeros(n, 1))  # (N, 1, E)
        if regions is not None and keys is not None:
            boxes, pairs = self.boxes(feats), self.encode_pairs(regions, feats, mask)
            state = self._initial_state(
                image, expand(regions, seq_per_img), expand(keys, seq_per_img), expand(mask, seq_per_img),
                None if boxes is None else expand(boxes, seq_per_img),
                None if pairs is None else tuple(expand(x, seq_per_img) for x in pairs),  # type: ignore[arg-type]
            )
            outs, alphas = [], []
            for x in torch.cat([start, words], dim=1).unbind(1):  # START, w_1 .. w_L: (N, E) each
                out, state = self._attend_step(x, state)
                outs.append(out)
                alphas.append(state.alpha)
            out = torch.stack(outs, dim=1)  # (N, L + 1, H)
            return F.log_softmax(self.logit(self.drop(out)), dim=-1), torch.stack(alphas, dim=1)  # type: ignore[arg-type]
        if self.rnn_type == "lstm":
            out, _ = self.core(torch.cat([image[:, None], start, words], dim=1))  # (N, L + 2, H)
            out = out[:, 1:]  # (N, L + 1, H)
        else:
            h1 = self._first_rnn_step(start[:, 0], self.bias(image))  # (layers, N, H)
            rest, _ = self.core(words, h1.contiguous())  # (N, L, H)
            out = torch.cat([h1[-1][:, None], rest], dim=1)  # (N, L + 1, H)
        return F.log_softmax(self.logit(self.drop(out)), dim=-1), None  # (N, L + 1, V + 1)

    def _initial_state(
        self, image: Tensor, regions: Tensor, keys: Tensor, mask: Tensor, boxes: Tensor | None = None,
        pairs: tuple[Tensor, Tensor, Tensor] | None = None,
    ) -> DecodeState:
        """The attention LSTM's state after reading the image x_{-1} (N, E) at step 0."""
        n, h = image.shape[0], self.cells[0].hidden_size
        zeros = image.new_zeros(self.num_layers, n, h)
        coverage = overlap = None
        if self.coverage and boxes is not None:
            coverage, overlap = mask.new_zeros(mask.shape, dtype=image.dtype), self._overlap(boxes, mask)
        state = DecodeState(
            (zeros, zeros), regions, keys, mask, None, image.new_zeros(n, h), boxes, coverage, overlap, *(pairs or ())
        )
        return self._attend_step(image, state)[1]

    @staticmethod
    def _overlap(boxes: Tensor, mask: Tensor) -> Tensor:
        """IoU (N, R, R) between the boxes (N, R, 4) of the real regions (mask (N, R)); 0 with padding."""
        lo = torch.maximum(boxes[:, :, None, :2], boxes[:, None, :, :2])  # (N, R, R, 2)
        hi = torch.minimum(boxes[:, :, None, 2:], boxes[:, None, :, 2:])
        inter = (hi - lo).clamp_min(0).prod(-1)  # (N, R, R)
        area = (boxes[..., 2:] - boxes[..., :2]).clamp_min(0).prod(-1)  # (N, R)
        iou = inter / (area[:, :, None] + area[:, None, :] - inter).clamp_min(1e-9)
        return iou * (mask[:, :, None] & mask[:, None, :])

    @staticmethod
    def _gaps(boxes: Tensor, alpha: Tensor | None) -> Tensor:
        """r_ti (N, R, 4): the signed gaps of each region's box to the focus f = Σ_i α_i b_i (N, 4) of the last
        step's attention α (N, R) (region 0, the whole image, before the first step)."""
        focus = boxes[:, 0] if alpha is None else (alpha[:, :, None] * boxes).sum(1)  # (N, 4)
        return signed_gaps(boxes, focus[:, None])

    def _attend_step(self, x: Tensor, state: DecodeState) -> tuple[Tensor, DecodeState]:
        """One step of the attention LSTM: input [x; o_{t-1}] (N, E + H) -> o_t (N, H) and the new state."""
        assert (
            state.regions is not None and state.keys is not None and state.mask is not None and state.feed is not None
        )
        inp = torch.cat([x, state.feed], dim=1)
        hs, cs = [], []
        for layer, cell in enumerate(self.cells):
            h, c = cell(inp, (state.rnn[0][layer], state.rnn[1][layer]))
            hs.append(h)
            cs.append(c)
            inp = self.between(h)
        gaps = None if state.boxes is None or not self.relative_geometry else self._gaps(state.boxes, state.alpha)
        seen = None
        if state.coverage is not None and state.overlap is not None:
            seen = (state.coverage[:, None] @ state.overlap)[:, 0]  # (N, R): s_i = Σ_j C_j IoU(j, i)
        pairs = None
        if state.pairs is not None and state.pair_keys is not None and state.pair_mask is not None:
            pairs = (state.pairs, state.pair_keys, state.pair_mask)
        out, alpha = self.attend(h[:, None], state.regions, state.keys, state.mask, gaps, seen, pairs)  # (N, 1, H), (N, 1, R)
        coverage = None if state.coverage is None else state.coverage + alpha[:, 0]
        return out[:, 0], state._replace(
            rnn=(torch.stack(hs), torch.stack(cs)), alpha=alpha[:, 0], feed=out[:, 0], coverage=coverage
        )

    def _first_rnn_step(self, x1: Tensor, bias: Tensor) -> Tensor:
        """Eq. (13) at t = 1 with h_0 = 0: the image bias b_v enters the first layer. (layers, N, H)."""
        core = self.core
        hs = []
        inp = x1  # (N, E)
        for layer in range(self.num_layers):
            w_ih, b_ih, b_hh = (getattr(core, f"{k}_l{layer}") for k in ("weight_ih", "bias_ih", "bias_hh"))
            pre = F.linear(inp, w_ih, b_ih + b_hh)
            h = F.relu(pre + bias if layer == 0 else pre)  # (N, H)
            hs.append(h)
            inp = F.dropout(h, core.dropout, self.training)
        return torch.stack(hs)

    # ---- step by step, for decoding ---------------------------------------------------------------------

    def start(self, feats: Tensor, mask: Tensor) -> tuple[Tensor, DecodeState]:
        """Feed the image and START: log-probabilities of the first word (B, V + 1) and the state."""
        b = feats.shape[0]
        image, regions, keys = self.encode(feats, mask)
        start = self.embed(feats.new_zeros(b, 1, dtype=torch.long))  # (B, 1, E)
        if regions is not None and keys is not None:
            state = self._initial_state(
                image, regions, keys, mask, self.boxes(feats), self.encode_pairs(regions, feats, mask)
            )
            return self.step_embedded(start[:, 0], state)
        if self.rnn_type == "lstm":
            out, rnn = self.core(torch.cat([image[:, None], start], dim=1))  # (B, 2, H)
            h, rnn_state = out[:, -1], tuple(rnn)
        else:
            h1 = self._first_rnn_step(start[:, 0], self.bias(image))  # (layers, B, H)
            h, rnn_state = h1[-1], (h1,)
        return self._logprobs(h), DecodeState(rnn_state)

    def step(self, tokens: Tensor, state: DecodeState) -> tuple[Tensor, DecodeState]:
        """Feed words (B,) from `state`: log-probabilities of the next word (B, V + 1) and the new state."""
        return self.step_embedded(self.embed(tokens), state)

    def step_embedded(self, x: Tensor, state: DecodeState) -> tuple[Tensor, DecodeState]:
        """Feed embedded words x (B, E) from `state`."""
        if state.feed is not None:
            out, state = self._attend_step(x, state)
            return self._logprobs(out), state
        x = x[:, None]  # (B, 1, E)
        if self.rnn_type == "lstm":
            out, rnn = self.core(x, (state.rnn[0], state.rnn[1]))
            rnn_state = tuple(rnn)
        else:
            out, h = self.core(x, state.rnn[0])
            rnn_state = (h,)
        return self._logprobs(out[:, 0]), state._replace(rnn=rnn_state)

    def _logprobs(self, h: Tensor) -> Tensor:
        return F.log_softmax(self.logit(self.drop(h)), dim=-1)  # (B, V + 1)


def signed_gaps(boxes: Tensor, to: Tensor) -> Tensor:
    """(x0 - x1', x1 - x0', y0 - y1', y1 - y0') of boxes (..., 4) to the boxes `to` (..., 4) (broadcast), each
    x0, y0, x1, y1: x0 - x1' >= 0 is "right of", x1 - x0' <= 0 "left of", y0 - y1' >= 0 "below", y1 - y0' <=
    0 "above" (the grammar's relations, dvsa.data.shapes_grammar.relation)."""
    x0, y0, x1, y1 = boxes.unbind(-1)
    tx0, ty0, tx1, ty1 = to.unbind(-1)
    return torch.stack([x0 - tx1, x1 - tx0, y0 - ty1, y1 - ty0], dim=-1)


def language_model_criterion(logprobs: Tensor, labels: Tensor) -> Tensor:
    """neuraltalk2's masked cross-entropy: mean -log p over the words and the END of every caption.

    logprobs (N, L + 1, V + 1), labels (N, L) 0-padded; the target after a caption's last word is END (0),
    positions after it are masked out.
    """
    return language_model_nll(logprobs, labels) / predicted_tokens(labels)


def language_model_nll(logprobs: Tensor, labels: Tensor) -> Tensor:
    """The sum of -log p over the words and the END of every caption (see language_model_criterion)."""
    n, length = labels.shape
    target = torch.cat([labels, labels.new_zeros(n, 1)], dim=1)  # (N, L + 1)
    mask = torch.arange(length + 1, device=labels.device)[None, :] <= (labels > 0).sum(dim=1)[:, None]  # (N, L + 1)
    nll = -logprobs.gather(2, target[:, :, None])[:, :, 0]  # (N, L + 1)
    return (nll * mask).sum()


def token_logprobs(logprobs: Tensor, seqs: Tensor) -> Tensor:
    """log p of each word of each caption and of its END, when it has one (a row without a 0 fills its T
    positions: capped, not ended); 0 after. logprobs (N, T + 1, V + 1), seqs (N, T) 0 after END -> (N, T + 1)."""
    n, length = seqs.shape
    predicted = (seqs > 0).sum(dim=1) + (seqs == 0).any(dim=1)  # (N,) words + END
    target = torch.cat([seqs, seqs.new_zeros(n, 1)], dim=1)  # (N, T + 1)
    mask = torch.arange(length + 1, device=seqs.device)[None, :] < predicted[:, None]  # (N, T + 1)
    return logprobs.gather(2, target[:, :, None])[:, :, 0] * mask


def sequence_logprob(logprobs: Tensor, seqs: Tensor) -> Tensor:
    """log p of each caption (the sum of ``token_logprobs``): (N, T + 1, V + 1), (N, T) -> (N,)."""
    return token_logprobs(logprobs, seqs).sum(dim=1)


def predicted_tokens(labels: Tensor | np.ndarray) -> int:
    """How many targets language_model_nll sums over: each caption's words and its END."""
    return int((labels > 0).sum()) + len(labels)


def build_captioner(config: dict[str, Any]) -> Captioner:
    """A Captioner from the `config` dict stored in a checkpoint."""
    return Captioner(**config)
