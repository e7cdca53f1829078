"""The image workers of the `regions` stage die with the rank they feed, and quietly: a killed rank's stage
stops with the launcher's one line, not a worker's traceback (dvsa.regions.loader.quiet_orphan)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

PARENT = """
import multiprocessing as mp, sys, time
from dvsa.regions.loader import quiet_orphan

def worker():
    quiet_orphan(0)
    time.sleep(60)

if __name__ == "__main__":
    child = mp.get_context("fork").Process(target=worker)
    child.start()
    print(child.pid, flush=True)
    time.sleep(60)
"""

HOOK = """
import sys
from dvsa.regions.loader import quiet_orphan
quiet_orphan(0)
for error in (ConnectionResetError(104, "Connection reset by peer"), BrokenPipeError(32, "Broken pipe"),
              ValueError("a real bug")):
    try:
        raise error
    except BaseException:
        sys.excepthook(*sys.exc_info())
"""


def _alive(pid: int) -> bool:
    """True while `pid` runs (a zombie left unreaped by the container's init counts as dead)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_a_worker_dies_with_the_process_it_feeds() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert _alive(child)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not _alive(child), "the worker outlived the process it feeds"
    finally:
        parent.kill()


def test_a_lost_reader_prints_nothing_and_any_other_error_its_traceback() -> None:
    run = subprocess.run([sys.executable, "-c", HOOK], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert "ConnectionResetError" not in run.stderr and "BrokenPipeError" not in run.stderr
    assert run.stderr.count("Traceback") == 1 and "ValueError: a real bug" in run.stderr
