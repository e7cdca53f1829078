"""Ctrl-C (SIGINT) and SIGTERM acted on between two training steps, so the trainer can save its state first."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class InterruptRequests:
    """``requested`` turns True at the first SIGINT / SIGTERM; a second one raises KeyboardInterrupt at once."""

    def __init__(self) -> None:
        self.requested = False
        self.signal: int | None = None

    def handle(self, signum: int, frame: FrameType | None) -> None:
        """The signal handler installed by interrupt_requests()."""
        if self.requested:
            raise KeyboardInterrupt
        self.requested, self.signal = True, signum


@contextmanager
def interrupt_requests() -> Iterator[InterruptRequests]:
    """While active, SIGINT / SIGTERM set ``.requested`` instead of stopping; the old handlers come back after.

    Usage: ``with interrupt_requests() as stop: ... if stop.requested: save(); raise KeyboardInterrupt``.
    Outside the main thread (where Python cannot install handlers) signals keep their usual effect.
    """
    requests = InterruptRequests()
    if threading.current_thread() is not threading.main_thread():
        yield requests
        return
    old = {s: signal.signal(s, requests.handle) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield requests
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
