from __future__ import annotations

import pytest
import torch

from dvsa.caption.model import Captioner, expand, language_model_criterion

V, D = 7, 12


def model(rnn_type: str, num_layers: int = 1) -> Captioner:
    torch.manual_seed(0)
    return Captioner(V, D, rnn_type, rnn_size=10, num_layers=num_layers, input_encoding_size=8, drop_prob_lm=0.5).eval()


def test_expander_repeats_each_image_for_its_captions() -> None:
    x = torch.arange(6.0).view(3, 2)
    out = expand(x, 2)
    assert out.shape == (6, 2)
    assert torch.equal(out, torch.tensor([[0.0, 1], [0, 1], [2, 3], [2, 3], [4, 5], [4, 5]]))


@pytest.mark.parametrize("rnn_type", ["lstm", "rnn"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_forward_shapes_and_normalisation(rnn_type: str, num_layers: int) -> None:
    m = model(rnn_type, num_layers)
    feats = torch.randn(3, D)
    labels = torch.randint(1, V + 1, (6, 5))
    out = m(feats, labels, seq_per_img=2)
    assert out.shape == (6, 6, V + 1)
    assert torch.allclose(out.exp().sum(-1), torch.ones(6, 6), atol=1e-5)


@pytest.mark.parametrize("rnn_type", ["lstm", "rnn"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_teacher_forcing_equals_step_by_step(rnn_type: str, num_layers: int) -> None:
    m = model(rnn_type, num_layers)
    feats = torch.randn(2, D)
    labels = torch.randint(1, V + 1, (2, 4))
    full = m(feats, labels, seq_per_img=1)  # (2, 5, V + 1)
    logprobs, state = m.start(feats)
    steps = [logprobs]
    for t in range(4):
        logprobs, state = m.step(labels[:, t], state)
        steps.append(logprobs)
    assert torch.allclose(full, torch.stack(steps, dim=1), atol=1e-5)


@pytest.mark.parametrize("rnn_type", ["lstm", "rnn"])
def test_the_image_changes_the_prediction(rnn_type: str) -> None:
    m = model(rnn_type)
    labels = torch.randint(1, V + 1, (1, 4))
    a = m(torch.randn(1, D), labels, 1)
    b = m(torch.randn(1, D), labels, 1)
    assert not torch.allclose(a, b)


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
    m = model("lstm")
    feats, labels = torch.randn(2, D), torch.randint(1, V + 1, (2, 4))
    assert torch.equal(m(feats, labels, 1), m(feats, labels, 1))
    m.train()
    assert not torch.equal(m(feats, labels, 1), m(feats, labels, 1))
