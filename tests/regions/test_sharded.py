"""Sharded extraction under torchrun (issue 13), on the CPU with gloo: the `regions` stage launched as dvc.yaml
does, ``python -m dvsa.launch --nproc-per-node N stages/regions.py`` (loopback rendezvous), on a toy project of
400 images in 50 shards of 8.

Two processes write the regions.h5 of one, bit for bit, each image extracted once; the shards a run leaves (a
bad image, a killed rank) are reused by a rerun with another number of processes; a killed rank stops the stage
with one line and nothing DVC would take as its output. The bits also do not depend on torch's thread count,
which torchrun sets to 1 per rank where one process gets every core.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from dvsa.distributed import World
from dvsa.errors import InputError
from dvsa.regions.data import image_records
from dvsa.regions.extract import open_shards, write_regions
from dvsa.regions.shapes_net import ShapesRegionCNN
from dvsa.regions.shards import Shard, ShardFolder
from tests.conftest import REPO
from tests.regions.test_resume import toy_project
from tests.regions.toy import tiny_params, write_toy_dataset
from tests.train.test_data_parallel import rank_pid

STAGE = str(REPO / "stages" / "regions.py")
N_IMAGES, SHARD = 400, 8
REGIONS = {"shard_size": SHARD, "batch_size": 3}  # 50 shards; batches never cross one (3 + 3 + 2)
BAR = "regions, rank 0 of 2:"  # rank 0's progress bar, on stderr


def launch(root: Path, nproc: int) -> subprocess.Popen[str]:
    """The stage as dvc.yaml runs it; the thread count left to torchrun (1 per rank) and torch (every core)."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"} | {"PYTHONPATH": str(REPO / "src")}
    return subprocess.Popen(
        [sys.executable, "-m", "dvsa.launch", "--nproc-per-node", str(nproc), STAGE],
        cwd=root,
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def finish(proc: subprocess.Popen[str], expect: int = 0) -> tuple[str, str]:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == expect, err[-3000:]
    assert "Traceback" not in err, err[-3000:]
    return out, err


def shard_files(root: Path) -> list[int]:
    return sorted(int(p.stem.split("-")[1]) for p in (root / "data/regions.work").glob("shard-*.h5"))


def assert_same_regions(root: Path, reference: Path) -> None:
    """regions.h5 (every dataset: dtype, shape, chunks, values, attributes; the file's attributes; then the
    bytes) and the metrics files are the reference's."""
    a_path, b_path = root / "data/regions/regions.h5", reference / "data/regions/regions.h5"
    with h5py.File(a_path) as a, h5py.File(b_path) as b:
        assert dict(a.attrs) == dict(b.attrs)
        names: list[str] = []
        b.visit(names.append)
        seen: list[str] = []
        a.visit(seen.append)
        assert seen == names
        for name in names:
            x, y = a[name], b[name]
            assert dict(x.attrs).keys() == dict(y.attrs).keys(), name
            for k in y.attrs:
                np.testing.assert_array_equal(x.attrs[k], y.attrs[k], err_msg=f"{name}.attrs[{k}]")
            if isinstance(y, h5py.Dataset):
                assert (x.dtype, x.shape, x.chunks) == (y.dtype, y.shape, y.chunks), name
                assert x[()].tobytes() == y[()].tobytes(), name  # bit for bit, NaN or not
    assert a_path.read_bytes() == b_path.read_bytes()
    for metrics in ("metrics/regions.json", "metrics/details/regions.json"):
        assert (root / metrics).read_text() == (reference / metrics).read_text()
    assert not (root / "data/regions.work").exists()


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The toy project after a run of one process (in the launcher's own process, on torch's default threads)."""
    root = toy_project(tmp_path_factory.mktemp("one"), N_IMAGES, **REGIONS)
    out, _ = finish(launch(root, 1))
    assert f"regions: {N_IMAGES} images in" in out
    return root


@pytest.mark.slow
def test_two_processes_write_the_regions_h5_of_one_each_image_once(reference: Path, tmp_path: Path) -> None:
    root = toy_project(tmp_path, N_IMAGES, **REGIONS)
    stale = root / "data/regions.work"  # left by a run on other inputs: rank 0 empties it before any rank reads it
    stale.mkdir(parents=True)
    (stale / "manifest.json").write_text(json.dumps({"key": "other inputs"}))
    (stale / "shard-000001.h5").write_text("a shard of other inputs")
    out, err = finish(launch(root, 2))
    assert_same_regions(root, reference)
    assert sum(line.startswith("regions: data/regions/regions.h5") for line in out.splitlines()) == 1  # rank 0's
    per_rank = re.search(rf"{N_IMAGES} images in .* on 2 processes \(rank 0: (\d+) in .*, rank 1: (\d+) in", out)
    assert per_rank and per_rank.groups() == ("200", "200"), out  # shards k % 2 == r: each image by one rank
    assert BAR in err and "regions:  " not in err  # one bar, rank 0's


def make_unreadable(image: Path) -> bytes:
    """Overwrite `image` with zeros of its size and keep its time: unreadable, yet the same fingerprint (which
    reads the images' size and time, not their pixels: COCO is 20 GB). Return the original bytes."""
    good, st = image.read_bytes(), image.stat()
    image.write_bytes(bytes(len(good)))
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns))
    return good


def restore(image: Path, good: bytes) -> None:
    st = image.stat()
    image.write_bytes(good)
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.slow
@pytest.mark.parametrize(("first", "rerun"), [(1, 2), (2, 1)])
def test_a_rerun_with_another_number_of_processes_reuses_the_finished_shards(
    reference: Path, tmp_path: Path, first: int, rerun: int
) -> None:
    root = toy_project(tmp_path, N_IMAGES, **REGIONS)
    bad = root / "data/dataset/images" / f"{5 * SHARD + 3:04d}.png"  # in shard 5: rank 1's of 2
    good = make_unreadable(bad)
    _, err = finish(launch(root, first), expect=1)
    errors = [line for line in err.splitlines() if "error" in line]
    assert len(errors) == 1 and errors[0].startswith(f"error: data/dataset/images/{bad.name}: "), err[-3000:]
    kept = shard_files(root)
    assert 5 not in kept and ({0, 1, 2, 3, 4} if first == 1 else {1, 3}) <= set(kept), kept

    restore(bad, good)
    out, _ = finish(launch(root, rerun))
    assert f"regions: resuming: {len(kept)} of 50 shards ({len(kept) * SHARD} images) kept" in out, out
    assert f"regions: {N_IMAGES - len(kept) * SHARD} images in" in out, out  # the others only
    assert_same_regions(root, reference)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the ranks through /proc (Linux)")
def test_a_killed_rank_stops_the_stage_with_one_line_and_the_rerun_reuses_its_shards(
    reference: Path, tmp_path: Path
) -> None:
    root = toy_project(tmp_path, N_IMAGES, **REGIONS)
    proc = launch(root, 2)
    deadline = time.monotonic() + 120
    while len(shard_files(root)) < 3:  # mid-way: 3 of 50 shards written
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-3000:]
        time.sleep(0.002)
    victim = rank_pid(proc.pid, 1)
    assert victim is not None and proc.poll() is None
    os.kill(victim, signal.SIGKILL)
    _, err = finish(proc, expect=1)
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(BAR)]
    assert lines == [f"error: {STAGE}: rank 1 (pid {victim}) was killed by SIGKILL; the other ranks were stopped"]
    assert not (root / "data/regions").exists() or not any((root / "data/regions").iterdir())
    assert not (root / "metrics/regions.json").exists() and not (root / "metrics/details/regions.json").exists()
    kept = shard_files(root)
    assert 3 <= len(kept) < 50

    out, _ = finish(launch(root, 1))
    assert f"regions: resuming: {len(kept)} of 50 shards" in out, out
    assert_same_regions(root, reference)


def test_the_bits_do_not_depend_on_torchs_thread_count(tmp_path: Path) -> None:
    """A network whose detector scores (fc6 512 -> fc7 512 -> 50 classes) are summed in another order on 8
    threads than on 1, as the default shapes network's are: write_regions runs on fixed threads."""
    records = image_records(write_toy_dataset(tmp_path, {"train": 16}))
    torch.manual_seed(0)
    net = replace(tiny_params().net, fc6_dim=512, fc7_dim=512)
    model = ShapesRegionCNN(net, [f"class {k}" for k in range(49)]).eval()
    for threads in (1, 8):
        torch.set_num_threads(threads)
        write_regions(model, records, tmp_path / f"{threads}.h5", tiny_params().detect, 8, "float32")
        assert torch.get_num_threads() == threads  # restored
    assert (tmp_path / "1.h5").read_bytes() == (tmp_path / "8.h5").read_bytes()



def test_the_other_ranks_never_empty_the_work_folder(tmp_path: Path) -> None:
    """Rank 1 opens the folder as rank 0 left it (once rank 0 has listed the shards, see open_shards): a rank
    that emptied a folder it took for stale would delete the others' shards, or rank 0's fresh manifest. (No
    process group here: the broadcast of rank 0's list is a no-op.)"""
    work = tmp_path / "work"
    ShardFolder(work, "rank 0's key", 16, 4)
    (work / "shard-000001.h5").write_text("rank 1's shard")
    shards, _ = open_shards(work, "rank 0's key", 16, 4, World(rank=1, size=2))
    assert shards.done(1)
    with pytest.raises(InputError, match=r"work/manifest.json: rank 0 opened the work folder for other inputs"):
        open_shards(work, "a key computed from other code or images", 16, 4, World(rank=1, size=2))
    assert sorted(p.name for p in work.iterdir()) == ["manifest.json", "shard-000001.h5"]
    shards, todo = open_shards(work, "rank 0's key", 16, 4, World())
    assert todo == [0, 2, 3] and shards.done(1)


def test_assembled_shards_keep_no_features_in_memory(tmp_path: Path) -> None:
    """assemble streams: after a shard is written to regions.h5 nothing holds its features (an empty view
    of them would keep every shard's buffer alive, and memory would grow with the images)."""
    folder = ShardFolder(tmp_path / "work", "key", 6, 3)
    for k in range(folder.n_shards):
        n = len(folder.rows(k))
        folder.write(k, Shard(k * 3, np.ones((n, 20, 8), np.float16), np.zeros((n, 20, 4), np.float32),
                              np.zeros((n, 20), np.float32), np.full(n, 20, np.int32), np.arange(n), []))
    parts = folder.assemble(tmp_path / "regions.h5", 8, "float16")
    assert [p.feats.shape for p in parts] == [(0, 20, 8), (0, 20, 8)]
    assert all(p.feats.base is None for p in parts)
