"""The BRNN of eqs. (2)-(6) and the region embedding of eq. (1)."""

from __future__ import annotations

import torch

from dvsa.align.config import AlignmentParams
from dvsa.align.model import BRNN, AlignmentModel, RegionEmbedding


def _brnn() -> BRNN:
    torch.manual_seed(0)
    return BRNN(vocab_size=20, word_embedding_size=8, hidden_size=16)


def test_backward_direction_reads_the_future() -> None:
    brnn = _brnn()
    a = torch.tensor([[3, 4, 5, 6, 7, 0]])
    b = torch.tensor([[3, 4, 5, 6, 9, 0]])  # only word 4 differs
    sa, _ = brnn(a)
    sb, _ = brnn(b)
    for t in range(4):  # every earlier word sees the change through h^b
        assert not torch.allclose(sa[0, t], sb[0, t]), t


def test_forward_direction_reads_the_past_and_words_are_independent_of_padding() -> None:
    brnn = _brnn()
    short, _ = brnn(torch.tensor([[3, 4, 5, 0, 0, 0, 0]]))
    batch, mask = brnn(torch.tensor([[3, 4, 5, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6, 7]]))
    assert torch.allclose(short[0], batch[0], atol=1e-6)
    assert mask.tolist()[0] == [True] * 3 + [False] * 4
    assert torch.all(batch[0, 3:] == 0)
    changed_first, _ = brnn(torch.tensor([[9, 4, 5, 0]]))
    assert not torch.allclose(changed_first[0, 2], short[0, 2])  # the last word sees the first through h^f


def test_backward_recurrence_starts_at_each_sentences_last_word() -> None:
    brnn = _brnn()
    s, _ = brnn(torch.tensor([[3, 4, 0, 0]]))
    # by hand, eqs. (2)-(6): h^b of the last word has no successor
    with torch.no_grad():
        e = torch.relu(brnn.W_e(brnn.W_w(torch.tensor([3, 4]))))
        hf0 = torch.relu(e[0] + brnn.W_f(torch.zeros(16)))
        hf1 = torch.relu(e[1] + brnn.W_f(hf0))
        hb1 = torch.relu(e[1] + brnn.W_b(torch.zeros(16)))
        hb0 = torch.relu(e[0] + brnn.W_b(hb1))
        want = torch.relu(brnn.W_d(torch.stack([hf0 + hb0, hf1 + hb1])))
    assert torch.allclose(s[0, :2], want, atol=1e-6)


def test_region_embedding_is_affine_on_real_regions_and_zero_on_padding() -> None:
    torch.manual_seed(0)
    emb = RegionEmbedding(feat_dim=10, hidden_size=4, feat_norm="none")
    feats = torch.randn(2, 5, 10)
    mask = torch.tensor([[True, True, False, False, False], [True] * 5])
    v = emb(feats, mask)
    assert v.shape == (2, 5, 4)
    assert torch.allclose(v[0, :2], feats[0, :2] @ emb.proj.weight.T + emb.proj.bias, atol=1e-6)
    assert torch.all(v[0, 2:] == 0)


def test_l2_feature_norm_makes_the_embedding_scale_free() -> None:
    torch.manual_seed(0)
    emb = RegionEmbedding(feat_dim=10, hidden_size=4, feat_norm="l2")
    feats, mask = torch.rand(2, 3, 10), torch.ones(2, 3, dtype=torch.bool)
    assert torch.allclose(emb(feats, mask), emb(1000 * feats, mask), atol=1e-5)
    unit = feats / feats.norm(dim=-1, keepdim=True)
    assert torch.allclose(emb(feats, mask), unit @ emb.proj.weight.T + emb.proj.bias, atol=1e-6)


def test_alignment_model_shapes() -> None:
    model = AlignmentModel(vocab_size=12, feat_dim=10, p=AlignmentParams(hidden_size=6, word_embedding_size=5))
    v = model.embed_images(torch.randn(3, 20, 10), torch.ones(3, 20, dtype=torch.bool))
    s, mask = model.embed_sentences(torch.tensor([[1, 2, 0], [3, 4, 5]]))
    assert v.shape == (3, 20, 6) and s.shape == (2, 3, 6) and mask.shape == (2, 3)
