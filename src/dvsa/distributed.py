"""The processes of a torch.distributed run, as a stage sees them: its rank, the world size, and collectives.

A stage launched by ``python -m dvsa.launch`` (torchrun's launcher, see dvc.yaml) finds RANK, WORLD_SIZE and
LOCAL_RANK in its environment; ``process_group(compute, device)`` joins the group (gloo on the CPU, nccl on
CUDA) and yields the :class:`World`. A stage started without torchrun is a world of one: every helper here is
then a no-op, so one code path serves both.

Conventions of the stages: every rank computes its share; rank 0 alone writes outputs, logs and resume files;
the group waits for rank 0 before it ends, so that no launcher returns (and DVC hashes the outputs) before they
are written, on any node.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import numpy as np
import torch
import torch.distributed as dist

from dvsa.device import ComputeParams
from dvsa.errors import ParamsError

# How long a rank waits for the others in one collective: extraction ranks can finish their shards hours apart
TIMEOUT = timedelta(hours=12)
EXIT_PEER_FAILED = 3  # a rank's exit code when a collective failed because another rank is gone
T = TypeVar("T")


@dataclass(frozen=True)
class World:
    """This process's place in the run: global rank, number of processes, rank on its node."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the one that writes outputs, logs and resume files."""
        return self.rank == 0

    def say(self, log: Callable[[str], None]) -> Callable[[str], None]:
        """`log` on rank 0, silence on the others (rank 0 says it once for all)."""
        return log if self.main else _silent

    def share(self, n: int) -> slice:
        """This rank's contiguous part of n items (e.g. the images of a global batch); sizes differ by at most 1."""
        bounds = self._bounds(n)
        return slice(int(bounds[self.rank]), int(bounds[self.rank + 1]))

    def share_sizes(self, n: int) -> list[int]:
        """How many of n items each rank's `share` holds, in rank order."""
        return np.diff(self._bounds(n)).tolist()

    def _bounds(self, n: int) -> np.ndarray:
        return np.linspace(0, n, self.size + 1).round().astype(int)  # (size + 1,)


ONE_PROCESS = World()  # a run without torchrun: the default world of the functions that take one


def _silent(line: str) -> None:
    """A log that says nothing."""


def current_world() -> World:
    """The World of this process, from torchrun's environment (a world of one without it)."""
    try:
        env = os.environ
        return World(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))
    except ValueError as e:
        raise ParamsError(f"RANK / WORLD_SIZE / LOCAL_RANK in the environment are not integers ({e})") from None


def backend_for(compute: ComputeParams, device: torch.device) -> str:
    """compute.backend, with auto = nccl on CUDA and gloo on the CPU."""
    if compute.backend == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if compute.backend == "nccl" and device.type != "cuda":
        raise ParamsError("compute.backend: nccl needs CUDA tensors; this run is on the CPU (use gloo or auto)")
    return compute.backend


@contextmanager
def process_group(compute: ComputeParams, device: torch.device) -> Iterator[World]:
    """Join the torchrun group (when WORLD_SIZE > 1) for the body; on success wait for every rank, then leave."""
    world = current_world()
    if world.size == 1:
        yield world
        return
    _die_with_parent()
    backend = backend_for(compute, device)
    dist.init_process_group(backend, timeout=TIMEOUT, device_id=device if backend == "nccl" else None)
    try:
        yield world
        dist.barrier()
    except (RuntimeError, dist.DistError) as e:
        if not _peer_gone(e):
            raise
        sys.exit(EXIT_PEER_FAILED)  # another rank failed first and reports it; torchrun stops this one anyway
    finally:
        dist.destroy_process_group()


def _peer_gone(error: BaseException) -> bool:
    """A collective failed because another rank is gone (it crashed, or was killed)."""
    return isinstance(error, dist.DistNetworkError) or any(
        text in str(error) for text in ("Connection closed by peer", "Connection reset by peer", "Broken pipe")
    )


def _die_with_parent() -> None:
    """torchrun starts each rank in a session of its own: SIGKILL the launcher and the ranks would run on,
    writing outputs nobody waits for. On Linux the kernel sends this rank SIGKILL when its launcher dies."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
        if os.getppid() == 1:  # the launcher died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)


def active() -> bool:
    return dist.is_available() and dist.is_initialized()


def barrier() -> None:
    if active():
        dist.barrier()


def all_reduce_sum(values: torch.Tensor) -> torch.Tensor:
    """The sum over ranks of a tensor (in place; returned)."""
    if active():
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def broadcast_object(obj: T, src: int = 0) -> T:
    """Rank `src`'s `obj` on every rank (e.g. a decision only rank 0 can take)."""
    if not active():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_objects(obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order."""
    if not active():
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def average_gradients(parameters: list[torch.nn.Parameter]) -> None:
    """Replace each parameter's gradient by its mean over the ranks, in one all_reduce (for a module that is
    not in DistributedDataParallel; every rank must hold a gradient for the same parameters)."""
    if not active():
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])  # (sum of numel,)
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= dist.get_world_size()
    for g, part in zip(grads, flat.split([g.numel() for g in grads])):
        g.copy_(part.view_as(g))


def data_parallel(model: torch.nn.Module, world: World) -> torch.nn.Module:
    """`model` in DistributedDataParallel when there are several ranks (the backward pass averages its
    gradients over them; its weights start as rank 0's), else `model` itself."""
    if world.size == 1:
        return model
    device = next(model.parameters()).device
    # buffers (e.g. the captioner's feature statistics) are kept equal by the code that changes them: no
    # broadcast at each forward, which would also make a forward on rank 0 alone (validation) wait for the others
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device] if device.type == "cuda" else None, forward_sync_buffers=False
    )


def gather_rows(x: torch.Tensor, sizes: list[int]) -> torch.Tensor:
    """Concatenate every rank's `x` (N_r, *rest) along dim 0, in rank order, keeping the autograd graph.

    `sizes` are the ranks' N_r (e.g. ``World.share_sizes``), which may differ (the other sizes must agree).
    The backward pass gives each rank the gradient of its own rows summed over all ranks' losses, so a loss
    that every rank computes on the gathered rows reaches the weights world-size times, which
    DistributedDataParallel's averaging then divides back.
    """
    if not active():
        return x
    padded = torch.cat([x, x.new_zeros((max(sizes) - len(x), *x.shape[1:]))])  # (max N_r, *rest)
    parts = _AllGather.apply(padded)  # (world * max N_r, *rest)
    step = max(sizes)
    return torch.cat([parts[r * step : r * step + n] for r, n in enumerate(sizes)])


class _AllGather(torch.autograd.Function):
    """all_gather with the backward of a sum over ranks (an all_reduce, then this rank's block)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad.chunk(dist.get_world_size())[dist.get_rank()]
