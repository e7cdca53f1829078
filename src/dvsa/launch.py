"""``python -m dvsa.launch [torchrun options] stages/<stage>.py``: torchrun, as the scaling stages' launcher.

It takes torchrun's own options (torch.distributed.run's parser) and differs from ``torchrun`` in three ways:

- one process on one node (``compute.nproc: 1``, ``compute.nnodes: 1``, the default) runs the stage script in
  this process, as ``python stages/<stage>.py`` always has: no rendezvous, same signals, same output;
- more than one node needs ``--rdzv-endpoint`` (``compute.rdzv_endpoint``) and then uses the c10d rendezvous;
- a failure is one line on stderr (``error: ...``), not torchrun's report: the DvsaError of the lowest failed
  rank (rank 0 prints its own; dvsa.stage leaves the others' in torchrun's error file), else the rank that
  died first and how (a signal, an exit code); ranks that only saw it go (dvsa.distributed.EXIT_PEER_FAILED)
  or that torchrun then stopped (SIGTERM) are named only when no other rank failed.

dvc.yaml writes the options from params.yaml's ``compute`` section (``${compute.nproc}``, ...), so DVC
reruns a stage when they change.
"""

from __future__ import annotations

import logging
import os
import runpy
import signal
import sys
from typing import TYPE_CHECKING

from dvsa.device import load_compute
from dvsa.distributed import EXIT_PEER_FAILED
from dvsa.errors import DvsaError
from dvsa.params import DEFAULT_PARAMS
from dvsa.stage import EXIT_ERROR, EXIT_INTERRUPTED

if TYPE_CHECKING:
    from torch.distributed.elastic.multiprocessing.errors import ProcessFailure



def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("LOGLEVEL", "CRITICAL")  # torch.distributed.elastic's loggers read it when imported
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, parse_min_max_nnodes, run

    args = parse_args(sys.argv[1:] if argv is None else argv)
    _check_compute(args.nproc_per_node, args.nnodes)
    _, max_nodes = parse_min_max_nnodes(args.nnodes)
    if max_nodes == 1 and str(args.nproc_per_node) == "1":
        sys.argv = [args.training_script, *args.training_script_args]
        runpy.run_path(args.training_script, run_name="__main__")
        return
    if max_nodes > 1:
        if not args.rdzv_endpoint:
            _fail(f"compute.nnodes: {args.nnodes} needs compute.rdzv_endpoint, the host:port of the first node")
        if args.rdzv_backend == "static":
            args.rdzv_backend = "c10d"
    logging.getLogger("torch.distributed").setLevel(logging.CRITICAL)
    try:
        run(args)
    except ChildFailedError as e:
        _report(args.training_script, e.failures)
    except (SignalException, KeyboardInterrupt):
        print("interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)


def _check_compute(nproc: str, nnodes: str) -> None:
    """params.yaml's compute section (when there is one here: dvc runs the stages at the project root), then the
    two options dvc.yaml writes from it: a bad value is one line naming the key, not torchrun's traceback."""
    try:
        if DEFAULT_PARAMS.is_file():
            load_compute(DEFAULT_PARAMS)
    except DvsaError as e:
        _fail(str(e))
    if str(nproc).lstrip("-").isdigit() and int(nproc) < 1:  # torchrun also takes auto, cpu, gpu
        _fail(f"--nproc-per-node {nproc}: must be >= 1 ({DEFAULT_PARAMS}: compute.nproc)")
    low, _, high = str(nnodes).partition(":")
    if not all(n.isdigit() and int(n) >= 1 for n in (low, high or low)):
        _fail(f"--nnodes {nnodes}: expected a number >= 1 or min:max ({DEFAULT_PARAMS}: compute.nnodes)")


def _report(script: str, failures: dict[int, ProcessFailure]) -> None:
    """Exit with one line for the failed ranks (see the module's docstring)."""
    reported = {r: f for r, f in failures.items() if isinstance(f.message, str) and f.message.startswith("error:")}
    if reported:
        rank = min(reported)
        if rank != 0:
            _print_line(reported[rank].message)
        sys.exit(EXIT_ERROR)
    stopped_by_others = (EXIT_PEER_FAILED, -signal.SIGTERM)  # what torchrun does to the rest once one has failed
    codes = {f.exitcode for f in failures.values()}
    if EXIT_INTERRUPTED in codes and codes <= {EXIT_INTERRUPTED, *stopped_by_others}:
        print("interrupted", file=sys.stderr)
        sys.exit(EXIT_INTERRUPTED)
    rank, failure = min(
        failures.items(), key=lambda item: (item[1].exitcode in stopped_by_others, item[1].timestamp, item[0])
    )
    code = failure.exitcode
    why = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"exited with code {code}"
    _fail(f"{script}: rank {rank} (pid {failure.pid}) {why}; the other ranks were stopped")


def _fail(message: str) -> None:
    _print_line(f"error: {message}")
    sys.exit(1)


def _print_line(line: str) -> None:
    """`line` on stderr, from the start of a line: the ranks share this stderr, and one that was stopped or
    killed may have left its progress bar's line open (tqdm ends it only when the bar closes). A carriage return
    goes back to its start (on a terminal, ESC[K also clears the bar); read line by line (str.splitlines,
    Python's universal newlines), the line is one of its own."""
    print(("\r\033[K" if sys.stderr.isatty() else "\r") + line, file=sys.stderr)


if __name__ == "__main__":
    main()
