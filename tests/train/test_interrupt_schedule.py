"""dvsa.train.interrupt (Ctrl-C between steps) and dvsa.train.schedule (neuraltalk2's lr decay)."""

from __future__ import annotations

import os
import signal

import pytest
import torch

from dvsa.train.interrupt import interrupt_requests
from dvsa.train.schedule import halving_lr, set_lr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_first_signal_is_a_request_second_stops(signum: int) -> None:
    before = signal.getsignal(signum)
    with interrupt_requests() as stop:
        assert not stop.requested
        try:
            os.kill(os.getpid(), signum)
        except KeyboardInterrupt:
            pytest.fail("the first signal stopped at once")
        assert stop.requested and stop.signal == signum
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signum)
    assert signal.getsignal(signum) == before


def test_halving_lr() -> None:
    assert halving_lr(0.4, 0, 10, 5) == 0.4
    assert halving_lr(0.4, 10, 10, 5) == 0.4  # decay starts after i0
    assert halving_lr(0.4, 15, 10, 5) == pytest.approx(0.2)
    assert halving_lr(0.4, 20, 10, 5) == pytest.approx(0.1)
    assert halving_lr(0.4, 11, 10, 5) == pytest.approx(0.4 * 2 ** (-1 / 5))
    assert halving_lr(0.4, 10_000, -1, 5) == 0.4  # i0 < 0: never


def test_set_lr_is_what_the_step_applies() -> None:
    w = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.SGD([w], lr=1.0)
    set_lr(opt, halving_lr(0.4, 15, 10, 5))
    w.grad = torch.ones(3)
    opt.step()
    assert torch.allclose(w.detach(), torch.full((3,), -0.2))
