"""The alignment model: image fragments (eq. (1)) and sentence fragments from a BRNN (eqs. (2)-(6))."""

from __future__ import annotations

import torch
from torch import nn

from dvsa.align.config import AlignmentParams


class RegionEmbedding(nn.Module):
    """Eq. (1): v_i = W_m [CNN(I_b_i)] + b_m, for the cached CNN features of the 20 regions.

    With ``feat_norm="l2"`` each CNN feature is scaled to unit length first (not in the paper): fc7 features
    of different CNNs differ in scale by orders of magnitude. On the shapes world raw features train at a
    10-100x smaller lr but end lower (README, Alignment model); at the default lr they kill the sentence ReLUs.
    """

    def __init__(self, feat_dim: int, hidden_size: int, dropout: float = 0.0, feat_norm: str = "l2") -> None:
        super().__init__()
        self.proj = nn.Linear(feat_dim, hidden_size)  # W_m, b_m
        self.drop = nn.Dropout(dropout)
        self.feat_norm = feat_norm

    def forward(self, feats: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """feats (B, R, D), mask (B, R) bool of real regions -> v (B, R, h), zero at padding regions.

        Only the real regions are projected.
        """
        x = feats[mask]  # (n_real, D)
        if self.feat_norm == "l2":
            x = nn.functional.normalize(x, dim=-1)
        v = feats.new_zeros(feats.shape[:2] + (self.proj.out_features,))  # (B, R, h)
        v[mask] = self.proj(self.drop(x))  # (n_real, h)
        return v


class BRNN(nn.Module):
    """Eqs. (2)-(6): the bidirectional RNN that turns a sentence into one vector s_t per word.

    x_t = W_w I_t                                  (2)
    e_t = f(W_e x_t + b_e)                         (3)
    h^f_t = f(e_t + W_f h^f_{t-1} + b_f)           (4)
    h^b_t = f(e_t + W_b h^b_{t+1} + b_b)           (5)
    s_t = f(W_d (h^f_t + h^b_t) + b_d)             (6)
    with f the ReLU. Word index 0 is padding; each sentence's backward pass starts at its own last word.
    """

    def __init__(self, vocab_size: int, word_embedding_size: int, hidden_size: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.W_w = nn.Embedding(vocab_size + 1, word_embedding_size, padding_idx=0)
        self.W_e = nn.Linear(word_embedding_size, hidden_size)
        self.W_f = nn.Linear(hidden_size, hidden_size)  # its bias is b_f
        self.W_b = nn.Linear(hidden_size, hidden_size)  # its bias is b_b
        self.W_d = nn.Linear(hidden_size, hidden_size)
        self.drop = nn.Dropout(dropout)
        self.hidden_size = hidden_size

    def forward(self, words: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """words (B, T) int64, 0-padded -> s (B, T, h) (zero at padding) and the word mask (B, T) bool."""
        mask = words > 0  # (B, T)
        x = self.drop(self.W_w(words))  # (B, T, E)
        e = torch.relu(self.W_e(x))  # (B, T, h)
        m = mask.unsqueeze(-1).to(e.dtype)  # (B, T, 1)
        n, t_max, h = e.shape
        h_f: list[torch.Tensor] = []
        prev = e.new_zeros(n, h)  # (B, h)
        for t in range(t_max):
            prev = torch.relu(e[:, t] + self.W_f(prev))
            h_f.append(prev)
        h_b: list[torch.Tensor] = [e.new_zeros(n, h)] * t_max
        nxt = e.new_zeros(n, h)  # zero after each sentence's last word, since padding steps are masked to 0
        for t in reversed(range(t_max)):
            nxt = torch.relu(e[:, t] + self.W_b(nxt)) * m[:, t]
            h_b[t] = nxt
        hsum = torch.stack(h_f, 1) + torch.stack(h_b, 1)  # (B, T, h)
        s = torch.relu(self.W_d(self.drop(hsum))) * m  # (B, T, h)
        return s, mask


class AlignmentModel(nn.Module):
    """Region embedding (eq. (1)) + BRNN (eqs. (2)-(6)) into one h-dimensional space."""

    def __init__(self, vocab_size: int, feat_dim: int, p: AlignmentParams) -> None:
        super().__init__()
        self.regions = RegionEmbedding(feat_dim, p.hidden_size, p.dropout, p.feat_norm)
        self.brnn = BRNN(vocab_size, p.word_embedding_size, p.hidden_size, p.dropout)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def forward(
        self, feats: torch.Tensor, mask: torch.Tensor, words: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Both embeddings in one call (what DistributedDataParallel wraps): feats (B, R, D), mask (B, R),
        words (L, T) -> v (B, R, h), s (L, T, h), word mask (L, T)."""
        return (self.embed_images(feats, mask), *self.embed_sentences(words))

    def embed_images(self, feats: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, R, D), (B, R) -> v (B, R, h), on the model's device (the inputs are moved there)."""
        return self.regions(feats.to(self.device), mask.to(self.device))

    def embed_sentences(self, words: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, T) -> s (B, T, h), word mask (B, T), on the model's device (the words are moved there)."""
        return self.brnn(words.to(self.device))
