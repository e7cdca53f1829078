from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from dvsa.caption.model import Captioner, DecodeState, expand, language_model_criterion

V, D, R = 7, 12, 5
MODES = [("regions", "lstm"), ("whole", "lstm"), ("whole", "rnn")]


def model(image: str, rnn_type: str, num_layers: int = 1) -> Captioner:
    torch.manual_seed(0)
    return Captioner(
        V, D, image, rnn_type, rnn_size=10, num_layers=num_layers, input_encoding_size=8, att_size=6, drop_prob_lm=0.5
    ).eval()


def regions(b: int, n_real: list[int] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Random features (b, R, D) and a mask with n_real[i] real regions (zero features after them)."""
    n_real = n_real or [R] * b
    mask = torch.arange(R)[None, :] < torch.tensor(n_real)[:, None]  # (b, R)
    return torch.randn(b, R, D) * mask[:, :, None], mask


def test_expander_repeats_each_image_for_its_captions() -> None:
    x = torch.arange(6.0).view(3, 2)
    out = expand(x, 2)
    assert out.shape == (6, 2)
    assert torch.equal(out, torch.tensor([[0.0, 1], [0, 1], [2, 3], [2, 3], [4, 5], [4, 5]]))


@pytest.mark.parametrize("image,rnn_type", MODES)
@pytest.mark.parametrize("num_layers", [1, 2])
def test_forward_shapes_and_normalisation(image: str, rnn_type: str, num_layers: int) -> None:
    m = model(image, rnn_type, num_layers)
    feats, mask = regions(3, [5, 2, 1])
    labels = torch.randint(1, V + 1, (6, 5))
    out = m(feats, mask, labels, seq_per_img=2)
    assert out.shape == (6, 6, V + 1)
    assert torch.allclose(out.exp().sum(-1), torch.ones(6, 6), atol=1e-5)


@pytest.mark.parametrize("image,rnn_type", MODES)
@pytest.mark.parametrize("num_layers", [1, 2])
def test_teacher_forcing_equals_step_by_step(image: str, rnn_type: str, num_layers: int) -> None:
    m = model(image, rnn_type, num_layers)
    feats, mask = regions(2, [5, 3])
    labels = torch.randint(1, V + 1, (2, 4))
    full, alpha = m.forward_with_attention(feats, mask, labels, seq_per_img=1)  # (2, 5, V + 1)
    logprobs, state = m.start(feats, mask)
    steps, alphas = [logprobs], [state.alpha]
    for t in range(4):
        logprobs, state = m.step(labels[:, t], state)
        steps.append(logprobs)
        alphas.append(state.alpha)
    assert torch.allclose(full, torch.stack(steps, dim=1), atol=1e-5)
    if image == "regions":
        assert alpha is not None and torch.allclose(alpha, torch.stack(alphas, dim=1), atol=1e-6)
    else:
        assert alpha is None and all(a is None for a in alphas)


@pytest.mark.parametrize("image,rnn_type", MODES)
def test_the_image_changes_the_prediction(image: str, rnn_type: str) -> None:
    m = model(image, rnn_type)
    labels = torch.randint(1, V + 1, (1, 4))
    a = m(*regions(1), labels, 1)
    b = m(*regions(1), labels, 1)
    assert not torch.allclose(a, b)


def test_attention_ignores_padded_regions() -> None:
    m = model("regions", "lstm")
    feats, mask = regions(2, [3, 1])
    labels = torch.randint(1, V + 1, (2, 4))
    out, alpha = m.forward_with_attention(feats, mask, labels, 1)
    assert alpha is not None
    assert torch.all(alpha[0, :, 3:] == 0) and torch.all(alpha[1, :, 1:] == 0)
    assert torch.allclose(alpha.sum(-1), torch.ones(2, 5), atol=1e-6)
    noisy = feats.clone()
    noisy[0, 3:] = 1e3 * torch.randn(R - 3, D)  # whatever the padding holds
    noisy[1, 1:] = 1e3 * torch.randn(R - 1, D)
    assert torch.equal(out, m(noisy, mask, labels, 1))
    real = feats.clone()
    real[0, 2] += 1.0  # a real region does matter
    assert not torch.allclose(out[:1], m(real, mask, labels, 1)[:1])


def test_the_whole_image_model_reads_region_0_only() -> None:
    m = model("whole", "lstm")
    feats, mask = regions(1)
    labels = torch.randint(1, V + 1, (1, 4))
    other = feats.clone()
    other[0, 1:] = torch.randn(R - 1, D)
    assert torch.equal(m(feats, mask, labels, 1), m(other, mask, labels, 1))


def test_feature_norm_tracks_real_regions_only() -> None:
    m = model("regions", "lstm")
    feats, mask = regions(4, [5, 5, 2, 1])
    feats[~mask] = 1e6  # padding must not enter the statistics
    m.feat_norm.track(feats, mask, momentum=1.0)
    real = feats[mask].double()
    assert torch.allclose(m.feat_norm.mean, real.mean(0).float(), atol=1e-5)
    assert torch.allclose(m.feat_norm.var, real.var(0, unbiased=False).float(), atol=1e-4)


def test_criterion_is_mean_nll_over_words_and_end_only() -> None:
    torch.manual_seed(1)
    logprobs = torch.log_softmax(torch.randn(2, 4, V + 1), dim=-1)  # L = 3
    labels = torch.tensor([[3, 5, 0], [2, 0, 0]])
    expected = -(logprobs[0, 0, 3] + logprobs[0, 1, 5] + logprobs[0, 2, 0] + logprobs[1, 0, 2] + logprobs[1, 1, 0]) / 5
    assert torch.allclose(language_model_criterion(logprobs, labels), expected)
    garbage = logprobs.clone()
    garbage[0, 3] = -100.0  # after caption 0's END
    garbage[1, 2:] = -100.0  # after caption 1's END
    assert torch.allclose(language_model_criterion(garbage, labels), expected)


def test_criterion_predicts_end_after_a_full_length_caption() -> None:
    logprobs = torch.log_softmax(torch.randn(1, 3, V + 1), dim=-1)
    labels = torch.tensor([[1, 2]])
    expected = -(logprobs[0, 0, 1] + logprobs[0, 1, 2] + logprobs[0, 2, 0]) / 3
    assert torch.allclose(language_model_criterion(logprobs, labels), expected)


def test_dropout_is_active_in_training_only() -> None:
    m = model("regions", "lstm")
    (feats, mask), labels = regions(2), torch.randint(1, V + 1, (2, 4))
    assert torch.equal(m(feats, mask, labels, 1), m(feats, mask, labels, 1))
    m.train()
    assert not torch.equal(m(feats, mask, labels, 1), m(feats, mask, labels, 1))


def test_regions_need_an_lstm() -> None:
    with pytest.raises(ValueError, match="needs rnn_type: lstm"):
        Captioner(V, D, "regions", "rnn")


def test_relative_gaps_have_the_signs_of_the_grammar_s_relations() -> None:
    """r = (x0 - x1_f, x1 - x0_f, y0 - y1_f, y1 - y0_f) of a region to a focused one (one-hot α): its signs are
    the grammar's "right of" (x0 >= x1_f), "left of", "below" and "above" (dvsa.data.shapes_grammar)."""
    g = torch.Generator().manual_seed(0)
    corners = torch.rand(64, 2, 2, 2, generator=g)  # (pairs, box, corner, xy)
    boxes = torch.cat([corners.min(2).values, corners.max(2).values], dim=-1)  # (64, 2, 4) x0 y0 x1 y1
    gaps = Captioner._gaps(boxes, torch.tensor([[0.0, 1.0]]).expand(64, 2))[:, 0]  # region 0 to focus 1: (64, 4)
    a, b = boxes[:, 0], boxes[:, 1]  # "a <relation> b", b the focus
    assert torch.equal(gaps[:, 0] >= 0, b[:, 2] <= a[:, 0])  # a right of b
    assert torch.equal(gaps[:, 1] <= 0, a[:, 2] <= b[:, 0])  # a left of b
    assert torch.equal(gaps[:, 2] >= 0, b[:, 3] <= a[:, 1])  # a below b
    assert torch.equal(gaps[:, 3] <= 0, a[:, 3] <= b[:, 1])  # a above b
    for rel, column in (("right", 0), ("left", 1), ("below", 2), ("above", 3)):
        assert bool((gaps[:, column] >= 0).any()) and bool((gaps[:, column] < 0).any()), rel  # both signs seen
    whole = Captioner._gaps(torch.tensor([[[0.0, 0.0, 1.0, 1.0], [0.2, 0.3, 0.4, 0.6]]]), None)  # before step 1
    assert torch.allclose(whole[0, 1], torch.tensor([0.2 - 1.0, 0.4 - 0.0, 0.3 - 1.0, 0.6 - 0.0]))


def relative_model() -> tuple[Captioner, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    m = Captioner(V, D, rnn_size=10, input_encoding_size=8, att_size=6, relative_geometry=True).eval()
    feats, mask = regions(2, [5, 3])
    corners = torch.rand(2, R, 2, 2)
    feats[..., -6:-2] = torch.cat([corners.min(2).values, corners.max(2).values], dim=-1) * mask[..., None]
    return m, feats, mask


def decode_step_by_step(
    m: Captioner, feats: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor
) -> tuple[torch.Tensor, DecodeState]:
    """The log-probabilities (B, L + 1, V + 1) of feeding `labels` one step at a time, each state passed
    through `select` as beam search does, and the last state."""
    logprobs, state = m.start(feats, mask)
    steps = [logprobs]
    for t in range(labels.shape[1]):
        logprobs, state = m.step(labels[:, t], state.select(torch.arange(len(labels))))
        steps.append(logprobs)
    return torch.stack(steps, dim=1), state


def test_relative_geometry_decodes_as_it_trains_and_follows_the_focus() -> None:
    m, feats, mask = relative_model()
    labels = torch.randint(1, V + 1, (2, 4))
    full, alpha = m.forward_with_attention(feats, mask, labels, seq_per_img=1)
    assert torch.allclose(full, decode_step_by_step(m, feats, mask, labels)[0], atol=1e-5)
    moved = feats.clone()
    moved[0, 1, -6:-2] = torch.tensor([0.0, 0.0, 0.05, 0.05])  # region 1's box only, as the gaps read it
    plain = Captioner(V, D, rnn_size=10, input_encoding_size=8, att_size=6).eval()
    assert torch.allclose(m.boxes(moved)[0, 1], torch.tensor([0.0, 0.0, 0.05, 0.05]))  # type: ignore[index]
    assert plain.boxes(moved) is None
    assert not torch.allclose(full[0], m(moved, mask, labels, 1)[0])
    assert torch.equal(full[1], m(moved, mask, labels, 1)[1])  # another image's boxes do not matter


def test_relative_geometry_needs_regions_with_geometry() -> None:
    with pytest.raises(ValueError, match="relative_geometry needs image: regions"):
        Captioner(V, D, "whole", relative_geometry=True)
    with pytest.raises(ValueError, match="relative_geometry needs image: regions"):
        Captioner(V, 4, relative_geometry=True)


def test_relative_attention_ignores_padded_regions() -> None:
    m, feats, mask = relative_model()
    labels = torch.randint(1, V + 1, (2, 4))
    full = m(feats, mask, labels, seq_per_img=1)
    noisy = feats.clone()
    noisy[1, 3:] = 1e3 * torch.randn(R - 3, D)  # padding, geometry included
    assert torch.equal(full, m(noisy, mask, labels, 1))


def test_overlap_is_the_iou_of_the_real_regions() -> None:
    from torchvision.ops import box_iou

    _, feats, mask = relative_model()
    boxes = feats[..., -6:-2]
    overlap = Captioner._overlap(boxes, mask)  # (2, R, R)
    for b in range(2):
        n = int(mask[b].sum())
        assert torch.allclose(overlap[b, :n, :n], box_iou(boxes[b, :n], boxes[b, :n]), atol=1e-6)
        assert torch.all(overlap[b, n:] == 0) and torch.all(overlap[b, :, n:] == 0)


def test_coverage_sums_the_attention_and_decodes_as_it_trains() -> None:
    torch.manual_seed(0)
    m = Captioner(V, D, rnn_size=10, input_encoding_size=8, att_size=6, coverage=True).eval()
    _, feats, mask = relative_model()
    labels = torch.randint(1, V + 1, (2, 4))
    full, alpha = m.forward_with_attention(feats, mask, labels, seq_per_img=1)
    steps, state = decode_step_by_step(m, feats, mask, labels)
    assert torch.allclose(full, steps, atol=1e-5)
    assert alpha is not None and state.coverage is not None
    # C = the attention of every step so far: the image step and START + the 4 words (alpha holds the last 5)
    first = m._initial_state(*m.encode(feats, mask), mask, m.boxes(feats)).alpha
    assert torch.allclose(state.coverage, first + alpha.sum(1), atol=1e-5)
    with pytest.raises(ValueError, match="coverage needs image: regions"):
        Captioner(V, D, "whole", coverage=True)


def test_pair_attention_reads_the_pairs_of_the_most_confident_detections() -> None:
    from dvsa.caption.model import PAIR_REGIONS

    _, feats, mask = relative_model()
    feats = torch.cat([feats, feats[:, 1:]], dim=1)  # (2, 9, D): more detections than PAIR_REGIONS
    mask = torch.cat([mask, mask[:, 1:]], dim=1)
    feats[..., -1] = torch.rand(2, feats.shape[1]) * mask
    torch.manual_seed(1)
    m = Captioner(V, D, rnn_size=10, input_encoding_size=8, att_size=6, pair_attention=True).eval()
    v = m.encode(feats, mask)[1]
    assert v is not None
    pairs = m.encode_pairs(v, feats, mask)
    assert pairs is not None
    values, keys, pair_mask = pairs
    assert values.shape == (2, 1 + PAIR_REGIONS * (PAIR_REGIONS - 1), 6) and torch.equal(values[:, 0], torch.zeros(2, 6))
    assert torch.allclose(keys, m.pair_key(values))
    for b in range(2):
        scores = feats[b, 1:, -1].masked_fill(~mask[b, 1:], -1.0)
        top = (1 + scores.argsort(descending=True)[:PAIR_REGIONS]).tolist()  # the regions of the top detections
        want, real = [], []
        for j in top:
            for k in top:
                if j == k:
                    continue
                (x0, y0, x1, y1), (fx0, fy0, fx1, fy1) = feats[b, k, -6:-2], feats[b, j, -6:-2]
                gaps = torch.stack([x0 - fx1, x1 - fx0, y0 - fy1, y1 - fy0])  # of k's box to j's
                want.append(F.relu(m.pair_subject(v[b, j]) + m.pair_object(v[b, k]) + m.pair_gaps(gaps)))
                real.append(bool(mask[b, j] and mask[b, k]))
        assert torch.allclose(values[b, 1:], torch.stack(want), atol=1e-5)
        assert pair_mask[b].tolist() == [True, *real]  # the null pair, then the real ones


def test_pair_attention_decodes_as_it_trains_and_needs_geometry() -> None:
    _, feats, mask = relative_model()
    feats[..., -1] = torch.rand(2, R) * mask
    mask[1, 2:] = False  # one detection: only the null pair
    torch.manual_seed(1)
    m = Captioner(V, D, rnn_size=10, input_encoding_size=8, att_size=6, pair_attention=True).eval()
    labels = torch.randint(1, V + 1, (2, 4))
    full = m(feats, mask, labels, seq_per_img=1)
    assert torch.isfinite(full).all()
    assert torch.allclose(full, decode_step_by_step(m, feats, mask, labels)[0], atol=1e-5)
    moved = feats.clone()
    moved[0, 2, -6:-2] = 1.0 - moved[0, 2, [-4, -3, -6, -5]]  # region 2 mirrored through the centre
    pairs, moved_pairs = (m.encode_pairs(m.encode(x, mask)[1], x, mask) for x in (feats, moved))  # type: ignore[arg-type]
    assert pairs is not None and moved_pairs is not None
    assert not torch.allclose(pairs[0][0], moved_pairs[0][0]) and torch.equal(pairs[0][1], moved_pairs[0][1])
    with pytest.raises(ValueError, match="pair_attention needs image: regions"):
        Captioner(V, D, "whole", pair_attention=True)
