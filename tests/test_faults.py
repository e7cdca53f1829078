"""Faults as a user meets them (issue 6): a stage killed in the middle, bad input end to end, unsafe loading.

Interruption: in a copy of the project on a tiny configuration (as tests/test_pipeline.py), each long stage
script is started, SIGKILLed once it is visibly mid-way, and then checked: none of its outputs is where DVC
would take the stage as done, and `dvc repro <stage>` finishes (the training stages resume). A stage that
ends before it can be killed is rerun with more work rather than passing by default.

Bad input: each case gives one line "error: ..." naming the file or the key, exit code 1, no traceback and
no output; odd but valid images (CMYK, RGBA, 16-bit, 1x1, 5000x20) go through region extraction. Cases
already tested elsewhere are listed in the table of docs/pipeline.md (tests/test_stage_errors.py, tests/data/,
tests/regions/, tests/align/, tests/caption/, tests/metrics/, tests/report/) and not repeated here.
"""

from __future__ import annotations

import ast
import json
import os
import re
import runpy
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from dvsa.caption.checkpoint import load_checkpoint
from dvsa.caption.train import RESUME_FORMAT
from dvsa.checkpoint import read
from dvsa.data.dataset import load_karpathy
from dvsa.data.images import load_rgb
from dvsa.errors import InputError
from dvsa.metrics import coco
from dvsa.regions.checkpoint import save_region_cnn
from dvsa.regions.config import PretrainedParams
from dvsa.regions.extract import extract_regions
from dvsa.regions.pretrained import DETECTORS, ENCODERS, PretrainedRegionCNN
from dvsa.regions.shapes_net import ShapesRegionCNN
from dvsa.regions.store import N_REGIONS
from dvsa.stage import run_stage
from tests.caption.test_train import TINY as CAPTION_TINY
from tests.caption.test_train import run as run_captioner
from tests.caption.toy import write_toy
from tests.conftest import REPO, write_karpathy
from tests.project import TINY as PROJECT_TINY
from tests.project import copy_project, dvc, merge, project_env, write_params
from tests.regions.test_pretrained import small_state_dict
from tests.regions.toy import tiny_params

# tests/project.py's tiny configuration, with a smaller region network (the features only need to exist)
TINY = merge(PROJECT_TINY, {"regions": {"shapes": {"net": {"channels": [8, 16, 16, 32], "fc6_dim": 32, "fc7_dim": 64}}}})


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository (git-listed files) on TINY, with every stage up to `regions` run."""
    root = copy_project(tmp_path_factory.mktemp("faults"), TINY)
    dvc(root, "repro", "preprocess", "regions")
    return root


# ---------------------------------------------------------------------------------------------------------
# Interruption


@dataclass(frozen=True)
class Kill:
    stage: str
    sizes: list[dict[str, Any]]  # params overrides, more work each: the next is tried when a run ends too soon
    midway: Callable[[Path], bool]  # the run is visibly in the middle
    restore_tiny: bool = False  # back to TINY after the rerun (else every later stage would be out of date)
    via_dvc: bool = False  # kill `dvc repro <stage>` and the stage it runs, as one process group


def _some(pattern: str, at_least: int = 1) -> Callable[[Path], bool]:
    return lambda root: len(list(root.glob(pattern))) >= at_least


KILLS = [
    Kill("dataset", [{"dataset": {"shapes": {"n_train": 400}}}, {"dataset": {"shapes": {"n_train": 4000}}}],
         _some("data/.dataset.*.tmp/images/*.png", 20), restore_tiny=True),
    Kill("region_cnn", [{"regions": {"shapes": {"train": {"epochs": 3}}}}, {"regions": {"shapes": {"train": {"epochs": 12}}}}],
         _some("models/region_cnn.resume.pt")),  # saved after the first epoch
    Kill("regions", [{"regions": {"batch_size": 4, "shard_size": 8}}, {"regions": {"batch_size": 1, "shard_size": 4}}],
         _some("data/regions.work/shard-*.h5")),  # a shard is finished (the rerun resumes from it)
    Kill("train_alignment", [{"alignment": {"epochs": 8}}, {"alignment": {"epochs": 32}}],
         _some("models/alignment.resume.pt")),  # saved after the first epoch
    Kill("train_captioner", [{"captioner": {"max_iters": 60}}, {"captioner": {"max_iters": 240}}],
         _some("models/captioner.resume.pt"), via_dvc=True),  # saved at the first validation (iteration 6)
]


RESUME_FILES = {"region_cnn": "models/region_cnn.resume.pt", "train_alignment": "models/alignment.resume.pt",
                "train_captioner": "models/captioner.resume.pt"}


def stage_outs(root: Path, stage: str) -> tuple[list[str], list[str], list[str]]:
    """Of `stage` in dvc.yaml: the outs DVC takes as its result, the persistent outs, and the logs (metrics,
    plots, and the other files of dvclive's folder, logs/<stage>/, which grow epoch by epoch)."""
    spec = yaml.safe_load((root / "dvc.yaml").read_text())["stages"][stage]
    plots = [m if isinstance(m, str) else next(iter(m)) for m in spec.get("plots", [])]
    logs = [m if isinstance(m, str) else next(iter(m)) for m in spec.get("metrics", [])] + plots
    live_dirs = tuple(f"{Path(p).parents[1]}/" for p in plots)  # logs/<stage>/plots/metrics -> logs/<stage>/
    outs, persist = [], []
    for out in spec["outs"]:
        path, opts = (out, {}) if isinstance(out, str) else next(iter(out.items()))
        (logs if path.startswith(live_dirs) else persist if (opts or {}).get("persist") else outs).append(path)
    return outs, persist, logs


def lock_outs(root: Path, stage: str) -> list[dict[str, Any]]:
    """The outputs (path and hash) recorded for `stage` in dvc.lock."""
    return yaml.safe_load((root / "dvc.lock").read_text())["stages"].get(stage, {}).get("outs", [])


def remove(root: Path, paths: list[str]) -> None:
    for p in paths:
        target = root / p
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)


def kill_midway(root: Path, kill: Kill, log: Path) -> bool:
    """Run the stage and SIGKILL it (with all it started) as soon as `kill.midway(root)` holds; False if it
    ended first."""
    command = ["-m", "dvc", "repro", kill.stage] if kill.via_dvc else [f"stages/{kill.stage}.py"]
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, *command], cwd=root, env=project_env(root),
                                stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
        deadline = time.monotonic() + 300
        while proc.poll() is None and not kill.midway(root):
            assert time.monotonic() < deadline, f"{kill.stage} never got mid-way"
            time.sleep(0.01)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        code = proc.wait()
    if code == -signal.SIGKILL:
        return True
    assert code == 0, f"{kill.stage} failed instead of being killed:\n{log.read_text()[-3000:]}"
    return False


@pytest.mark.slow
@pytest.mark.parametrize("kill", KILLS, ids=[k.stage for k in KILLS])
def test_stage_killed_midway_leaves_nothing_done_and_reruns(project: Path, kill: Kill, tmp_path: Path) -> None:
    outs, persist, logs = stage_outs(project, kill.stage)
    before = lock_outs(project, kill.stage)
    for size in kill.sizes:
        write_params(project, size)
        remove(project, outs + persist + logs)  # as `dvc repro` does before running it (and a fresh start)
        if kill_midway(project, kill, tmp_path / "stderr.txt"):
            break
    else:
        pytest.fail(f"{kill.stage} finished before it could be killed, even with {kill.sizes[-1]}: add a larger size")

    left = [p for p in outs if (project / p).exists()]
    assert not left, f"killed {kill.stage} left {left} where DVC takes them as its result"
    assert kill.stage in json.loads(dvc(project, "status", kill.stage, "--json").stdout)

    rerun = dvc(project, "repro", kill.stage)
    assert f"Running stage '{kill.stage}'" in rerun.stdout  # run, not restored from DVC's run cache
    assert all((project / p).exists() for p in outs)
    folders = {(project / p).parent for p in outs}
    stale = [str(t) for f in folders for t in f.glob(".*.tmp")]
    assert not stale, f"temporaries of the killed run are left: {stale}"
    resume = RESUME_FILES.get(kill.stage)
    if resume:  # the trainers: the state saved at the last validation, and none once finished
        resumed = re.search(rf"{resume}: resuming at iteration (\d+)", rerun.stdout)
        assert resumed and int(resumed[1]) >= 1, rerun.stdout
        assert not (project / resume).exists()
    if kill.restore_tiny:  # back to TINY (from DVC's run cache): the same files, so no later stage reruns
        write_params(project, {"dataset": TINY["dataset"]})
        dvc(project, "repro", kill.stage)
        assert lock_outs(project, kill.stage) == before


class Killed(Exception):
    """Stands for a SIGKILL: nothing of the trainer's own interrupt handling runs."""


def test_captioner_resumes_exactly_from_the_save_a_kill_leaves(tmp_path: Path) -> None:
    """A SIGKILL leaves the resume file of the last validation, not the one a Ctrl-C writes (that one is
    tested in tests/caption/test_train.py; the alignment trainer's per-epoch save in tests/align/test_train.py)."""
    toy = write_toy(tmp_path / "toy")
    params = replace(CAPTION_TINY, drop_prob_lm=0.5)  # validation (and resume save) every 10 iterations
    run_captioner(toy, tmp_path / "whole", params)

    def die(iteration: int) -> None:
        if iteration == 15:
            raise Killed

    with pytest.raises(Killed):
        run_captioner(toy, tmp_path / "killed", params, on_iteration=die)
    assert read(tmp_path / "killed" / "captioner.resume.pt", RESUME_FORMAT)["state"]["iteration"] == 10
    assert run_captioner(toy, tmp_path / "killed", params)["resumed"]
    a, b = (load_checkpoint(tmp_path / d / "captioner.pt") for d in ("whole", "killed"))
    assert a["history"] == b["history"]
    for k in a["state_dict"]:
        assert torch.equal(a["state_dict"][k], b["state_dict"][k]), k


# ---------------------------------------------------------------------------------------------------------
# Bad input: one line "error: ...", exit code 1, no traceback, nothing written


def call_stage(name: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run stages/<name>.py's main() as its __main__ does (in this process, in the current directory);
    return (exit code, stderr)."""
    main = runpy.run_path(str(REPO / "stages" / f"{name}.py"), run_name="stage")["main"]
    capsys.readouterr()
    try:
        run_stage(main)
        code = 0
    except SystemExit as e:
        code = int(e.code or 0)
    return code, capsys.readouterr().err


def assert_one_error(code: int, err: str, *fragments: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 1 and len(lines) == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty project folder as the current directory, with torch on one thread."""
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tmp_path
    torch.set_num_threads(threads)


@pytest.mark.parametrize(
    ("stage", "params", "message"),
    [
        ("region_cnn", "regions: {shapes: {net: {fc7_dim: big}}}", "regions.shapes.net.fc7_dim: expected an integer, got 'big'"),
        ("region_cnn", "regions: {backbone: resnet}", "regions.backbone: expected one of"),
        ("regions", "regions: {detect: {nms_iuo: 0.5}}", "regions.detect.nms_iuo: unknown key"),
        ("regions", "regions: {feats_dtype: float64}", "regions.feats_dtype: expected one of"),
        ("train_alignment", "alignment: {epochs: 1.5}", "alignment.epochs: expected an integer, got 1.5"),
        ("train_alignment", "alignment: {hidden: 8}", "alignment.hidden: unknown key"),
        ("evaluate_alignment", "evaluate: {alignment: {split: train}}", "evaluate.alignment.split: expected one of"),
        ("train_captioner", "captioner: {rnn_size: big}", "captioner.rnn_size: expected an integer, got 'big'"),
        ("train_captioner", "captioner: {lr: 0.1}", "captioner.lr: unknown key"),
        ("evaluate_captioner", "evaluate: {captioning: {method: topk}}", "evaluate.captioning.method: expected one of"),
        ("train_captioner", "captioning: {rnn_size: 8}", "captioning: unknown section"),
        ("regions", "regions: [1, 2", "not valid YAML"),
    ],
)
def test_bad_params_are_one_line_naming_the_key(workdir: Path, capsys: pytest.CaptureFixture[str], stage: str,
                                                 params: str, message: str) -> None:
    (workdir / "params.yaml").write_text(params + "\n")
    assert_one_error(*call_stage(stage, capsys), f"params.yaml: {message}")
    assert files_under(workdir) == {workdir / "params.yaml"}


@pytest.mark.parametrize(
    ("stage", "message"),
    [
        ("region_cnn", "data/dataset/dataset.json: file not found"),
        ("regions", "data/dataset/dataset.json: file not found"),
        ("train_alignment", "data/prepro/vocab.json: file not found"),
        ("evaluate_alignment", "models/alignment.pt: file not found"),
        ("train_captioner", "data/prepro/vocab.json: file not found"),
        ("evaluate_captioner", "models/captioner.pt: file not found"),
    ],
)
def test_missing_input_file_is_one_line_naming_it(workdir: Path, capsys: pytest.CaptureFixture[str], stage: str,
                                                   message: str) -> None:
    (workdir / "params.yaml").write_text("")
    assert_one_error(*call_stage(stage, capsys), message)
    assert files_under(workdir) == {workdir / "params.yaml"}


def test_missing_pretrained_weights_is_one_line(workdir: Path, capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(workdir / "empty_torch_home"))
    (workdir / "params.yaml").write_text("regions:\n  backbone: vgg16\n")
    folder = workdir / "empty_torch_home" / "hub" / "checkpoints"
    line = assert_one_error(*call_stage("region_cnn", capsys), "vgg16-397923af.pth not found", f"{folder}/")
    assert "regions.vgg16.encoder_weights" in line  # and how to fix it
    assert files_under(workdir) == {workdir / "params.yaml"}


def odd_images(folder: Path) -> dict[str, tuple[int, int]]:
    """Valid images in unusual formats, modes and shapes: {file name: (width, height)}."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
    Image.fromarray(rgb).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(rng.integers(0, 255, (40, 50, 4), dtype=np.uint8), "RGBA").save(folder / "rgba.png")
    Image.fromarray(rng.integers(0, 65535, (40, 50), dtype=np.uint16)).save(folder / "gray16.png")
    Image.fromarray(rgb[:1, :1]).save(folder / "one_pixel.png")
    Image.fromarray(rng.integers(0, 255, (20, 5000, 3), dtype=np.uint8)).save(folder / "wide.jpg")
    Image.fromarray(rng.integers(0, 255, (5000, 20, 3), dtype=np.uint8)).save(folder / "tall.png")
    return {"cmyk.jpg": (50, 40), "rgba.png": (50, 40), "gray16.png": (50, 40), "one_pixel.png": (1, 1),
            "wide.jpg": (5000, 20), "tall.png": (20, 5000)}


def karpathy_project(root: Path, files: list[str]) -> Path:
    """A project folder whose params.yaml points the dataset stage at a Karpathy json over `files`
    (in root/src/images/sub/), and a tiny untrained shapes region CNN in models/region_cnn.pt."""
    json_path, images = write_karpathy(root / "src", n_images=len(files))
    data = json.loads(json_path.read_text())
    for image, name in zip(data["images"], files):
        (images / "sub" / image["filename"]).unlink()
        image["filename"] = name
    json_path.write_text(json.dumps(data))
    regions = tiny_params()
    save_region_cnn(ShapesRegionCNN(regions.net, ["blue circle", "red square"]), regions, root / "models/region_cnn.pt")
    params = {"dataset": {"source": "karpathy", "karpathy": {"json": str(json_path), "images": str(images)}},
              "regions": regions.to_dict()}
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return images / "sub"


def test_odd_images_go_through_the_dataset_and_regions_stages(workdir: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    folder = workdir / "src" / "images" / "sub"
    sizes = odd_images(folder)
    karpathy_project(workdir, list(sizes))
    assert call_stage("dataset", capsys)[0] == 0
    code, err = call_stage("regions", capsys)
    assert code == 0, err
    with h5py.File(workdir / "data/regions/regions.h5") as f:
        boxes, n, feats = f["boxes"][()], f["n_regions"][()], f["feats"][()]
    assert feats.shape[:2] == (len(sizes), N_REGIONS) and np.isfinite(feats).all()
    for i, (w, h) in enumerate(sizes.values()):
        assert 1 <= n[i] <= N_REGIONS
        np.testing.assert_allclose(boxes[i, 0], [0, 0, w, h])  # region 0: the whole image, in its own pixels
        real = boxes[i, : n[i]]
        assert (real[:, 0] >= 0).all() and (real[:, 2] <= w + 1e-3).all() and (real[:, 3] <= h + 1e-3).all()


@pytest.mark.parametrize("backbone", ["alexnet", "vgg16"])
def test_odd_images_through_the_pretrained_encoders(workdir: Path, monkeypatch: pytest.MonkeyPatch,
                                                    backbone: str) -> None:
    hub = workdir / "torch_home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    monkeypatch.setenv("TORCH_HOME", str(workdir / "torch_home"))
    detector = "fasterrcnn_mobilenet_v3_large_320_fpn"
    torch.save(small_state_dict(ENCODERS[backbone].build, 0), hub / ENCODERS[backbone].filename)
    torch.save(small_state_dict(DETECTORS[detector].build, 1), hub / DETECTORS[detector].filename)
    model = PretrainedRegionCNN.assemble(backbone, PretrainedParams(detector=detector, min_size=96, max_size=160))
    sizes = odd_images(workdir / "images")
    names = list(sizes) if backbone == "alexnet" else ["one_pixel.png", "wide.jpg", "tall.png"]
    out = extract_regions(model, [load_rgb(workdir / "images" / name) for name in names])
    assert np.isfinite(out.feats).all()
    for i, name in enumerate(names):
        np.testing.assert_allclose(out.boxes[i, 0], [0, 0, *sizes[name]])
        assert out.n_regions[i] >= 1


def test_truncated_jpeg_is_one_line_at_the_regions_stage(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = workdir / "src" / "images" / "sub"
    sizes = odd_images(folder)
    data = (folder / "wide.jpg").read_bytes()
    (folder / "wide.jpg").write_bytes(data[: len(data) // 2])  # the header is whole: the dataset stage accepts it
    karpathy_project(workdir, list(sizes))
    assert call_stage("dataset", capsys)[0] == 0
    assert_one_error(*call_stage("regions", capsys), f"{folder / 'wide.jpg'}: cannot read image")
    assert not (workdir / "data/regions").exists() or not any((workdir / "data/regions").iterdir())
    assert not (workdir / "metrics").exists()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: p.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg"), "cannot read image"),
        (lambda p: p.unlink(), "image file not found"),
    ],
    ids=["corrupt", "missing"],
)
def test_corrupt_or_missing_image_is_one_line_at_the_dataset_stage(
    workdir: Path, capsys: pytest.CaptureFixture[str], damage: Callable[[Path], object], message: str
) -> None:
    folder = workdir / "src" / "images" / "sub"
    sizes = odd_images(folder)
    karpathy_project(workdir, list(sizes))
    damage(folder / "cmyk.jpg")
    assert_one_error(*call_stage("dataset", capsys), f"{folder / 'cmyk.jpg'}: {message}")
    assert not (workdir / "data").exists() or not any((workdir / "data").rglob("*"))


@pytest.mark.slow  # the project fixture
def test_alignment_nan_loss_is_one_line_and_leaves_no_model(project: Path, workdir: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    (workdir / "data").symlink_to(project / "data")
    (workdir / "params.yaml").write_text(yaml.safe_dump({"alignment": {**TINY["alignment"], "lr": 1e30}}))
    assert_one_error(*call_stage("train_alignment", capsys), "loss exploded at iteration", "of the alignment", "lower alignment.lr")
    assert not (workdir / "models").exists() or not any((workdir / "models").iterdir())


@pytest.mark.slow  # the project fixture
def test_without_java_meteor_is_unavailable_with_one_warning(project: Path, workdir: Path,
                                                              capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    dvc(project, "repro", "train_captioner")
    monkeypatch.chdir(project)
    monkeypatch.setenv("PATH", str(workdir))  # a PATH without java
    assert not coco.java_available()
    code, err = call_stage("evaluate_captioner", capsys)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if "java" in line]
    assert warnings == ["warning: java not found: METEOR unavailable, simple tokenizer instead of PTB"], err
    metrics = json.loads((project / "metrics/details/captioning.json").read_text())
    assert metrics["model"]["METEOR"] == "unavailable" and metrics["unavailable"]["METEOR"] == "java not found"
    assert isinstance(metrics["model"]["CIDEr"], float)


# ---------------------------------------------------------------------------------------------------------
# Security


def unsafe_loads(source: str) -> list[str]:
    """Calls in `source` that may unpickle arbitrary objects: torch.load without weights_only=True,
    pickle.load(s), numpy loads with allow_pickle=True, torch.hub.load (which downloads and runs code)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module in ("torch", "pickle") and any(
            a.name in ("load", "loads") for a in node.names
        ):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        kw = {k.arg: k.value for k in node.keywords}
        if name == "torch.load" or name.endswith(".torch.load"):
            value = kw.get("weights_only")
            if not (isinstance(value, ast.Constant) and value.value is True):
                found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif name in ("pickle.load", "pickle.loads", "torch.hub.load"):
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
        elif isinstance(kw.get("allow_pickle"), ast.Constant) and kw["allow_pickle"].value is True:
            found.append(f"line {node.lineno}: {ast.unparse(node)}")
    return found


def test_the_unsafe_load_check_finds_unsafe_loads() -> None:
    source = ("torch.load(p)\ntorch.load(p, weights_only=False)\ntorch.load(\n    p,\n    weights_only=True,\n)\n"
              "pickle.loads(b)\nnp.load(p, allow_pickle=True)\ntorch.hub.load('a', 'b')\nfrom torch import load\n")
    assert {f.split(":")[0] for f in unsafe_loads(source)} == {f"line {i}" for i in (1, 2, 7, 8, 9, 10)}


def test_every_checkpoint_and_weights_file_loads_with_weights_only() -> None:
    sources = [p for d in ("src", "stages", "benchmarks") for p in sorted((REPO / d).rglob("*.py"))]
    assert len(sources) > 20
    found = {str(p.relative_to(REPO)): unsafe_loads(p.read_text()) for p in sources}
    assert {k: v for k, v in found.items() if v} == {}
    loaders = {str(p.relative_to(REPO)) for p in sources if "torch.load(" in p.read_text()}
    assert loaders == {"src/dvsa/checkpoint.py", "src/dvsa/regions/pretrained.py"}  # dvsa's files, torchvision's


def test_absolute_image_paths_cannot_escape_the_images_folder(karpathy: tuple[Path, Path]) -> None:
    """../ paths: tests/data/test_dataset.py and tests/test_stage_errors.py; here an absolute one."""
    json_path, images = karpathy
    data = json.loads(json_path.read_text())
    data["images"][1]["filepath"] = str(images.parent.parent)  # an existing folder outside the images root
    json_path.write_text(json.dumps(data))
    with pytest.raises(InputError, match=r"images\[1\]: path .* escapes the images folder"):
        load_karpathy(json_path, images, "train")
