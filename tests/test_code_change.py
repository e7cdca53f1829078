"""A code change always retrains (issue 18): in a copy of the project, a change to a trainer's loss makes
`dvc repro` of its stage train again, from the start, to other weights.

One copy on the tiny params is built up to the four trainers; then each trainer's loss is changed in turn (a
small string replacement on the copy's source, which must find the original text) and only its stage is
rerun (`dvc repro --single-item`: the stages upstream keep their outputs, so the model can differ only
through the code change). The captioner and the region captioner share the captioner's code: one change
retrains both. That a rerun without a change writes the same bytes is test_pipeline's
test_a_forced_rerun_changes_no_tracked_file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.project import TINY, copy_project, dvc

pytestmark = pytest.mark.slow

MODELS = ("region_cnn", "alignment", "captioner", "region_captioner")

# trainer -> (the file of its loss, the original text, the changed text, the stages to rerun, the models they write)
EDITS = {
    "region_cnn": (
        "src/dvsa/regions/train.py",
        '"cls": F.cross_entropy(logits, label),',
        '"cls": 2 * F.cross_entropy(logits, label),',
        ("region_cnn",),
        ("region_cnn",),
    ),
    "alignment": (
        "src/dvsa/align/score.py",
        "return (rank_sentences * off).sum() + (rank_images * off).sum()",
        "return 2 * (rank_sentences * off).sum() + (rank_images * off).sum()",
        ("train_alignment",),
        ("alignment",),
    ),
    "captioner": (  # the first word of every caption counts twice (a plain scale is all but lost in Adam)
        "src/dvsa/caption/model.py",
        "return (nll * mask).sum()",
        "return (nll * mask).sum() + (nll * mask)[:, 0].sum()",
        ("train_captioner", "train_region_captioner"),
        ("captioner", "region_captioner"),
    ),
}


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The copy, built up to the four trainers, and the md5 of each model file."""
    root = copy_project(tmp_path_factory.mktemp("project"), TINY)
    dvc(root, "repro", "train_captioner", "train_region_captioner")
    return root, {m: md5(root / f"models/{m}.pt") for m in MODELS}


@pytest.mark.parametrize("trainer", EDITS)
def test_a_loss_change_retrains(project: tuple[Path, dict[str, str]], trainer: str) -> None:
    root, before = project
    file, old, new, stages, models = EDITS[trainer]
    source = root / file
    text = source.read_text()
    assert text.count(old) == 1, f"{file} no longer holds `{old}`: point EDITS[{trainer!r}] at the loss"
    source.write_text(text.replace(old, new))
    try:
        done = dvc(root, "repro", "--single-item", *stages)
    finally:
        source.write_text(text)
    out = done.stdout + done.stderr
    for stage in stages:
        assert f"Running stage '{stage}'" in out, f"dvc did not rerun {stage} after a change to {file}:\n{out}"
    assert "resuming" not in out, f"a changed loss resumed from the old run's state:\n{out}"
    for m in models:
        assert md5(root / f"models/{m}.pt") != before[m], f"models/{m}.pt is byte-identical after a change to {file}"
