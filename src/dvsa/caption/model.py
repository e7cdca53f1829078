"""The captioner: neuraltalk2's protos.cnn -> protos.expander -> protos.lm, on a cached image feature.

Token indices: words are 1..V as in vocab.json; index 0 is START when fed to the network and END when
predicted (the zero padding of labels.h5 then reads as END), so both tables have V + 1 rows.

- ``rnn_type: lstm`` (neuraltalk2): the encoded image x_{-1} = ReLU(W_e CNN(I) + b_e) is the LSTM's input at
  step 0, START at step 1, then the words; the output after the last word predicts END.
- ``rnn_type: rnn`` (the paper's multimodal RNN, eq. 13): h_t = f(W_hx x_t + W_hh h_{t-1} + b_h + 1(t=1) ⊙ b_v)
  with b_v = W_hi CNN(I), y_t = softmax(W_oh h_t + b_o), f = ReLU, x_1 = START.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

State = tuple[Tensor, ...]  # each (num_layers, B, H): (h, c) for the LSTM, (h,) for the RNN


def expand(x: Tensor, seq_per_img: int) -> Tensor:
    """neuraltalk2's FeatExpander: (B, E) -> (B * seq_per_img, E), row b repeated for its captions."""
    return x.repeat_interleave(seq_per_img, dim=0)


class Captioner(nn.Module):
    def __init__(
        self,
        vocab_size: int,
        feat_dim: int,
        rnn_type: str = "lstm",
        rnn_size: int = 256,
        num_layers: int = 1,
        input_encoding_size: int = 256,
        drop_prob_lm: float = 0.5,
    ) -> None:
        super().__init__()
        if rnn_type not in ("lstm", "rnn"):
            raise ValueError(f"rnn_type must be lstm or rnn, got {rnn_type!r}")
        self.config: dict[str, Any] = dict(
            vocab_size=vocab_size,
            feat_dim=feat_dim,
            rnn_type=rnn_type,
            rnn_size=rnn_size,
            num_layers=num_layers,
            input_encoding_size=input_encoding_size,
            drop_prob_lm=drop_prob_lm,
        )
        self.vocab_size, self.rnn_type, self.num_layers = vocab_size, rnn_type, num_layers
        between = drop_prob_lm if num_layers > 1 else 0.0
        if rnn_type == "lstm":
            self.encoder = nn.Linear(feat_dim, input_encoding_size)  # image -> x_{-1}
            self.core: nn.LSTM | nn.RNN = nn.LSTM(
                input_encoding_size, rnn_size, num_layers, batch_first=True, dropout=between
            )
        else:
            self.encoder = nn.Linear(feat_dim, rnn_size)  # b_v = W_hi CNN(I)
            self.core = nn.RNN(
                input_encoding_size, rnn_size, num_layers, nonlinearity="relu", batch_first=True, dropout=between
            )
        # fixed feature standardisation (set from the training images; identity by default): an affine
        # reparametrisation of the linear encoder that makes the small per-image variations of fc7 visible
        self.register_buffer("feat_mean", torch.zeros(feat_dim))
        self.register_buffer("feat_std", torch.ones(feat_dim))
        self.embed = nn.Embedding(vocab_size + 1, input_encoding_size)  # W_w; row 0 = START
        self.drop = nn.Dropout(drop_prob_lm)
        self.logit = nn.Linear(rnn_size, vocab_size + 1)  # W_oh, b_o; output 0 = END

    def set_feature_stats(self, mean: Tensor, std: Tensor) -> None:
        """Standardise image features as (x - mean) / std before the encoder. mean, std (D,)."""
        self.feat_mean.copy_(mean)
        self.feat_std.copy_(std)

    def encode(self, feats: Tensor) -> Tensor:
        """(B, D) image features -> (B, E) x_{-1} = ReLU(W_e CNN(I) + b_e) for the LSTM, (B, H) b_v for the RNN."""
        x = self.encoder((feats - self.feat_mean) / self.feat_std)
        return F.relu(x) if self.rnn_type == "lstm" else x

    # ---- training -------------------------------------------------------------------------------------

    def forward(self, feats: Tensor, labels: Tensor, seq_per_img: int) -> Tensor:
        """Teacher-forced log-probabilities.

        feats (B, D) image features, labels (B * S, L) 0-padded words; returns (B * S, L + 1, V + 1): row t
        predicts word t (t < L) and END after the last word.
        """
        n = labels.shape[0]
        words = self.embed(labels)  # (N, L, E)
        start = self.embed(labels.new_zeros(n, 1))  # (N, 1, E)
        if self.rnn_type == "lstm":
            image = expand(self.encode(feats), seq_per_img)  # (N, E)
            x = torch.cat([image[:, None], start, words], dim=1)  # (N, L + 2, E)
            out, _ = self.core(x)  # (N, L + 2, H)
            out = out[:, 1:]  # (N, L + 1, H)
        else:
            bias = expand(self.encode(feats), seq_per_img)  # (N, H)
            h1 = self._first_rnn_step(start[:, 0], bias)  # (layers, N, H)
            rest, _ = self.core(words, h1.contiguous())  # (N, L, H)
            out = torch.cat([h1[-1][:, None], rest], dim=1)  # (N, L + 1, H)
        return F.log_softmax(self.logit(self.drop(out)), dim=-1)  # (N, L + 1, V + 1)

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

    def start(self, feats: Tensor) -> tuple[Tensor, State]:
        """Feed the image and START: log-probabilities of the first word (B, V + 1) and the state."""
        b = feats.shape[0]
        start = self.embed(feats.new_zeros(b, 1, dtype=torch.long))  # (B, 1, E)
        if self.rnn_type == "lstm":
            image = self.encode(feats)[:, None]  # (B, 1, E)
            out, state = self.core(torch.cat([image, start], dim=1))  # (B, 2, H)
            return self._logprobs(out[:, -1]), tuple(state)
        h1 = self._first_rnn_step(start[:, 0], self.encode(feats))  # (layers, B, H)
        return self._logprobs(h1[-1]), (h1,)

    def step(self, tokens: Tensor, state: State) -> tuple[Tensor, State]:
        """Feed words (B,) from `state`: log-probabilities of the next word (B, V + 1) and the new state."""
        x = self.embed(tokens)[:, None]  # (B, 1, E)
        if self.rnn_type == "lstm":
            out, new = self.core(x, (state[0], state[1]))
            return self._logprobs(out[:, 0]), tuple(new)
        out, h = self.core(x, state[0])
        return self._logprobs(out[:, 0]), (h,)

    def _logprobs(self, h: Tensor) -> Tensor:
        return F.log_softmax(self.logit(self.drop(h)), dim=-1)  # (B, V + 1)


def reorder_state(state: State, index: Tensor) -> State:
    """Select batch rows `index` (B',) of every state tensor (layers, B, H)."""
    return tuple(s.index_select(1, index) for s in state)


def language_model_criterion(logprobs: Tensor, labels: Tensor) -> Tensor:
    """neuraltalk2's masked cross-entropy: mean -log p over the words and the END of every caption.

    logprobs (N, L + 1, V + 1), labels (N, L) 0-padded; the target after a caption's last word is END (0),
    positions after it are masked out.
    """
    n, length = labels.shape
    target = torch.cat([labels, labels.new_zeros(n, 1)], dim=1)  # (N, L + 1)
    lengths = (labels > 0).sum(dim=1)  # (N,)
    mask = torch.arange(length + 1, device=labels.device)[None, :] <= lengths[:, None]  # (N, L + 1)
    nll = -logprobs.gather(2, target[:, :, None])[:, :, 0]  # (N, L + 1)
    return (nll * mask).sum() / mask.sum()


def build_captioner(config: dict[str, Any]) -> Captioner:
    """A Captioner from the `config` dict stored in a checkpoint."""
    return Captioner(**config)
