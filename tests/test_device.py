"""The `compute` section (src/dvsa/device.py): device resolution, autocast only on CUDA, out of memory as one
line. No GPU is needed: CUDA's presence is simulated where the logic depends on it."""

from __future__ import annotations

import json
import runpy
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import yaml

from dvsa.device import ComputeParams, autocast_dtype, load_compute, out_of_memory_hint, pin_memory, resolve_device
from dvsa.errors import DvsaError, ParamsError
from dvsa.stage import run_stage
from tests.conftest import REPO


def test_compute_section_is_typed(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("compute:\n  device: cpu\n  workers: 0\n")
    assert load_compute(path) == ComputeParams(device="cpu", workers=0)
    path.write_text("compute:\n  device: gpu\n")
    with pytest.raises(ParamsError, match="compute.device: expected one of 'auto', 'cpu', 'cuda'"):
        load_compute(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nproc: 0", "compute.nproc: must be >= 1, got 0"),
        ("nnodes: 0", "compute.nnodes: must be >= 1, got 0"),
        ("workers: -1", "compute.workers: must be >= 0, got -1"),
        ("nproc: two", "compute.nproc: expected an integer, got 'two'"),
        ("device: gpu", "compute.device: expected one of 'auto', 'cpu', 'cuda'"),
        ("autocast: fp32", "compute.autocast: expected one of 'fp16', 'bf16', 'off'"),
        ("backend: mpi", "compute.backend: expected one of 'auto', 'gloo', 'nccl'"),
        ("rdzv_endpoint: node0", "compute.rdzv_endpoint: expected host:port, got 'node0'"),
        ("rdzv_endpoint: 'node0:99999'", "compute.rdzv_endpoint: expected host:port"),
        ("nnodes: 2", "compute.rdzv_endpoint: compute.nnodes: 2 needs the host:port of the first node"),
        ("{device: cpu, backend: nccl}", "compute.backend: nccl needs CUDA, and compute.device is cpu"),
    ],
)
def test_bad_compute_params_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "params.yaml"
    path.write_text(f"compute: {text}\n" if text.startswith("{") else f"compute:\n  {text}\n")
    with pytest.raises(ParamsError) as e:
        load_compute(path)
    assert f"{path}: {message}" in str(e.value) and "\n" not in str(e.value)
    path.write_text("compute:\n  nnodes: 2\n  rdzv_endpoint: node0.cluster:29400\n  backend: nccl\n")
    assert load_compute(path).nnodes == 2


def run_launcher(argv: list[str]) -> None:
    from dvsa.launch import main as launch

    launch(argv)


def run_script(argv: list[str]) -> None:
    main = runpy.run_path(argv[-1], run_name="stage")["main"]
    run_stage(main)


LAUNCH = ["--nnodes", "1", "--nproc-per-node", "0", "--rdzv-endpoint="]  # as dvc.yaml writes ${compute.*}


@pytest.mark.parametrize("path", [run_script, run_launcher], ids=["stage", "launch"])
def test_nproc_0_is_one_line_on_both_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], path: Callable[..., None]
) -> None:
    """`compute.nproc: 0` stops a stage run as `python stages/x.py` and one run as dvc.yaml runs it, through
    `python -m dvsa.launch --nproc-per-node ${compute.nproc}` (torchrun would raise an AssertionError). In this
    process: each is the function its command runs."""
    (tmp_path / "params.yaml").write_text("compute:\n  nproc: 0\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOGLEVEL", "CRITICAL")
    with pytest.raises(SystemExit) as code:
        path([*LAUNCH, str(REPO / "stages/regions.py")])
    assert (code.value.code, capsys.readouterr().err.strip()) == (
        1,
        "error: params.yaml: compute.nproc: must be >= 1, got 0",
    )


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--nproc-per-node", "0"], "error: --nproc-per-node 0: must be >= 1 (params.yaml: compute.nproc)"),
        (["--nnodes", "0"], "error: --nnodes 0: expected a number >= 1 or min:max (params.yaml: compute.nnodes)"),
    ],
)
def test_launch_checks_its_options_without_params_yaml(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    option: list[str],
    message: str,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LOGLEVEL", "CRITICAL")
    with pytest.raises(SystemExit) as code:
        run_launcher([*option, str(REPO / "stages/regions.py")])
    assert (code.value.code, capsys.readouterr().err.strip()) == (1, message)


def test_resolve_device(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_device(ComputeParams(device="cpu")) == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device(ComputeParams(device="auto")) == torch.device("cpu")
    with pytest.raises(ParamsError, match="compute.device: cuda, but torch sees no CUDA GPU"):
        resolve_device(ComputeParams(device="cuda"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    assert resolve_device(ComputeParams(device="auto")) == torch.device("cuda", 0)
    assert resolve_device(ComputeParams(device="cpu")) == torch.device("cpu")


def test_autocast_and_pinned_memory_only_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert autocast_dtype(ComputeParams(autocast="bf16"), cpu) is None and not pin_memory(cpu)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert autocast_dtype(ComputeParams(autocast="bf16"), cuda) == torch.bfloat16 and pin_memory(cuda)
    assert autocast_dtype(ComputeParams(autocast="fp16"), cuda) == torch.float16
    assert autocast_dtype(ComputeParams(), cuda) == torch.float16  # the default
    assert autocast_dtype(ComputeParams(autocast="off"), cuda) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)  # e.g. a V100
    assert autocast_dtype(ComputeParams(autocast="bf16"), cuda) == torch.float16


@pytest.mark.parametrize(
    ("error", "where"),
    [
        (MemoryError(), "RAM"),
        (RuntimeError("DefaultCPUAllocator: can't allocate memory: 8 GB"), "RAM"),
        (torch.OutOfMemoryError("CUDA out of memory. Tried to allocate"), "GPU"),
    ],
)
def test_out_of_memory_is_one_line(error: BaseException, where: str) -> None:
    with pytest.raises(DvsaError) as caught, out_of_memory_hint("regions", "lower regions.batch_size (now 32)"):
        raise error
    assert str(caught.value) == f"regions: out of memory ({where}); lower regions.batch_size (now 32)"
    with pytest.raises(ValueError), out_of_memory_hint("regions", "-"):
        raise ValueError("not about memory")


def test_regions_stage_out_of_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from tests.regions.test_resume import toy_project

    root = toy_project(tmp_path, 6, shard_size=2, batch_size=2)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["compute"]["workers"] = 0
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(root)
    calls = []

    def fails_on_the_second_batch(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 2:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return extract_prepared(*args, **kwargs)

    import dvsa.regions.extract as extract

    extract_prepared = extract.extract_prepared
    monkeypatch.setattr(extract, "extract_prepared", fails_on_the_second_batch)
    main = runpy.run_path(str(REPO / "stages/regions.py"), run_name="stage")["main"]
    with pytest.raises(SystemExit) as code:
        run_stage(main)
    err = capsys.readouterr().err
    assert code.value.code == 1 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        "error: regions: out of memory (GPU); lower regions.batch_size (now 2); "
        "the finished shards in data/regions.work/ are reused by a rerun with the "
        "same params"
    )
    assert json.loads((root / "data/regions.work/manifest.json").read_text())["n_images"] == 6
    assert [p.name for p in (root / "data/regions.work").glob("shard-*")] == ["shard-000000.h5"]
