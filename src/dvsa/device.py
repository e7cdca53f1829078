"""Where the heavy stages run (section ``compute`` of params.yaml): the device, mixed precision on CUDA,
image-decoding worker processes, the processes of a torch.distributed run, and out-of-memory as a one-line
error.

Every stage and ``dvsa caption`` resolve the device the same way: ``resolve_device(load_compute())``. In a
process started by torchrun (``python -m dvsa.launch``), ``cuda`` is the GPU of its LOCAL_RANK.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import torch

from dvsa.errors import DvsaError, ParamsError
from dvsa.params import DEFAULT_PARAMS, load_params

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class ComputeParams:
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: cuda when torch sees a GPU, else cpu
    # mixed precision of the forward passes, on CUDA only; fp16 keeps box coordinates to 0.5 px at 1000 px
    # (bf16: 4 px) and features within 0.3% of fp32 (bf16: 2%)
    autocast: Literal["fp16", "bf16", "off"] = "fp16"
    workers: int = field(default=2, metadata={"min": 0})  # processes decoding + resizing images (0: in the main one)
    # torch.distributed (dvc.yaml launches the scaling stages with `python -m dvsa.launch`, torchrun's launcher)
    nproc: int = field(default=1, metadata={"min": 1})  # processes per node (one per GPU, or per CPU socket)
    nnodes: int = field(default=1, metadata={"min": 1})  # machines, sharing the project folder
    backend: Literal["auto", "gloo", "nccl"] = "auto"  # auto: nccl on CUDA, gloo on the CPU
    rdzv_endpoint: str = ""  # host:port of node 0 when nnodes > 1 (torchrun's --rdzv-endpoint)


def load_compute(path: str | os.PathLike[str] = DEFAULT_PARAMS) -> ComputeParams:
    """The `compute` section: types and bounds (dvsa.params), then the checks between its keys, each a one-line
    ParamsError naming `path` and the key (torchrun would otherwise fail with a traceback)."""
    params = load_params(ComputeParams, "compute", path)
    where = f"{path}: compute"
    if params.rdzv_endpoint:
        host, _, port = params.rdzv_endpoint.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ParamsError(f"{where}.rdzv_endpoint: expected host:port, got {params.rdzv_endpoint!r}")
    if params.nnodes > 1 and not params.rdzv_endpoint:
        raise ParamsError(
            f"{where}.rdzv_endpoint: compute.nnodes: {params.nnodes} needs the host:port of the first node"
        )
    if params.backend == "nccl" and params.device == "cpu":
        raise ParamsError(f"{where}.backend: nccl needs CUDA, and compute.device is cpu (use gloo or auto)")
    return params


def resolve_device(params: ComputeParams) -> torch.device:
    """auto -> cuda if available else cpu; cuda without a usable GPU is a ParamsError."""
    if params.device == "cpu" or (params.device == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ParamsError("compute.device: cuda, but torch sees no CUDA GPU here (set compute.device: auto or cpu)")
    if "LOCAL_RANK" not in os.environ:
        return torch.device("cuda", torch.cuda.current_device())
    local_rank, count = int(os.environ["LOCAL_RANK"]), torch.cuda.device_count()
    if local_rank >= count:
        raise ParamsError(f"compute.nproc: process {local_rank} of this node has no GPU of its own ({count} seen)")
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def autocast_dtype(params: ComputeParams, device: torch.device) -> torch.dtype | None:
    """The autocast dtype on CUDA (bf16 falls back to fp16 on GPUs without bf16), None on CPU or when off."""
    if device.type != "cuda" or params.autocast == "off":
        return None
    if params.autocast == "bf16" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return AUTOCAST_DTYPES[params.autocast]


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager[object]:
    """torch.autocast on `device` with `dtype`, or nothing when dtype is None."""
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


def pin_memory(device: torch.device) -> bool:
    """DataLoader pinned memory: only worth it (and only allowed without a warning) when copying to CUDA."""
    return device.type == "cuda"


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on `device`: on CUDA through pinned memory with a non-blocking copy (the kernels that
    follow on the same stream wait for it), elsewhere as it is."""
    if device.type != "cuda" or x.device.type == "cuda":
        return x.to(device)
    return x.pin_memory().to(device, non_blocking=True)


def is_out_of_memory(error: BaseException) -> bool:
    """torch's OutOfMemoryError (CUDA), MemoryError, or the RuntimeError of torch's CPU allocator."""
    return isinstance(error, (torch.OutOfMemoryError, MemoryError)) or (
        isinstance(error, RuntimeError) and "can't allocate memory" in str(error)
    )


@contextlib.contextmanager
def out_of_memory_hint(stage: str, hint: str) -> Iterator[None]:
    """Turn running out of memory into one line naming the stage and what to lower (`hint`)."""
    try:
        yield
    except BaseException as e:
        if not is_out_of_memory(e):
            raise
        where = "GPU" if isinstance(e, torch.OutOfMemoryError) and "CUDA" in str(e) else "RAM"
        raise DvsaError(f"{stage}: out of memory ({where}); {hint}") from None
