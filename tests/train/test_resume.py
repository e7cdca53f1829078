"""dvsa.train.resume: exact resume (weights, two optimizers), one-line refusals (format, params, inputs, code),
atomic save; dvsa.hashing's digests and the data fingerprint."""

from __future__ import annotations

import os
import typing
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from dvsa.features.fingerprint import data_fingerprint
from dvsa.hashing import digest, file_digest
from dvsa.train.resume import ResumeKey, load_resume, save_resume

KEY = ResumeKey("dvsa.test.resume/1", {"lr": 0.1}, "inputs-abc", "code-1")


@dataclass
class State:
    step: int = 0
    best: dict[str, torch.Tensor] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass
class OtherState:
    step: int = 0
    extra: float = 0.0


class Run:
    """A model with dropout and two optimizers (as the captioner's LM and CNN); step i's random draws are seeded
    by i, as the loop seeds them (dvsa.train.loop), so nothing random needs saving."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 1))
        self.lm = torch.optim.Adam(self.model[2].parameters(), lr=0.01)
        self.cnn = torch.optim.SGD(self.model[0].parameters(), lr=0.01, momentum=0.9)
        self.state = State()

    @property
    def objects(self) -> dict[str, object]:
        return {"model": self.model, "lm": self.lm, "cnn": self.cnn}

    def steps(self, n: int) -> None:
        for _ in range(n):
            torch.manual_seed(self.state.step)
            x = torch.from_numpy(np.random.default_rng(self.state.step).normal(size=(16, 4)).astype(np.float32))
            loss = self.model(x).pow(2).mean()
            self.lm.zero_grad()
            self.cnn.zero_grad()
            loss.backward()
            self.lm.step()
            self.cnn.step()
            self.state.step += 1
            self.state.history.append({"loss": loss.item()})
        self.state.best = {k: v.clone() for k, v in self.model.state_dict().items()}


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(t, b.state_dict()[k]) for k, t in a.state_dict().items())


def test_resume_is_exact(tmp_path: Path) -> None:
    whole = Run()
    whole.steps(6)
    first = Run()
    first.steps(3)
    save_resume(tmp_path / "r.pt", KEY, first.state, first.objects)
    resumed = Run()
    assert load_resume(tmp_path / "r.pt", KEY, resumed.state, resumed.objects, log=pytest.fail)
    assert resumed.state.step == 3
    resumed.steps(3)
    assert _same_weights(whole.model, resumed.model)
    assert resumed.state.history == whole.state.history
    assert resumed.lm.state_dict()["state"][0]["step"] == whole.lm.state_dict()["state"][0]["step"]
    assert [p.name for p in tmp_path.iterdir()] == ["r.pt"]  # no temporary left


def test_missing_file_is_silent(tmp_path: Path) -> None:
    run = Run()
    assert not load_resume(tmp_path / "none.pt", KEY, run.state, run.objects, log=pytest.fail)


def _refusal(tmp_path: Path, run: Run, key: ResumeKey = KEY, state: object | None = None) -> str:
    lines: list[str] = []
    before = {k: v.clone() for k, v in run.model.state_dict().items()}
    assert not load_resume(tmp_path / "r.pt", key, run.state if state is None else state, run.objects,
                           log=lines.append)
    assert len(lines) == 1 and lines[0].startswith(f"ignoring {tmp_path / 'r.pt'}: "), lines
    assert lines[0].endswith("; training from scratch") and "\n" not in lines[0]
    assert all(torch.equal(v, run.model.state_dict()[k]) for k, v in before.items())  # nothing changed
    assert run.state == State()
    return lines[0]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (ResumeKey("dvsa.test.resume/2", {"lr": 0.1}, "inputs-abc", "code-1"), "format 'dvsa.test.resume/1', expected"),
        (ResumeKey("dvsa.test.resume/1", {"lr": 0.2}, "inputs-abc", "code-1"), "made with other params"),
        (ResumeKey("dvsa.test.resume/1", {"lr": 0.1}, "inputs-xyz", "code-1"), "made from other input data"),
        (ResumeKey("dvsa.test.resume/1", {"lr": 0.1}, "inputs-abc", "code-2"), "made by other code"),
    ],
)
def test_other_format_params_inputs_or_code_are_ignored(tmp_path: Path, key: ResumeKey, expected: str) -> None:
    saved = Run()
    saved.steps(1)
    save_resume(tmp_path / "r.pt", KEY, saved.state, saved.objects)
    assert expected in _refusal(tmp_path, Run(), key)


def test_unreadable_or_foreign_files_are_ignored(tmp_path: Path) -> None:
    (tmp_path / "r.pt").write_bytes(b"not a checkpoint")
    assert "not a readable torch file" in _refusal(tmp_path, Run())
    torch.save([1, 2], tmp_path / "r.pt")
    assert "a list, expected a dict" in _refusal(tmp_path, Run())


def test_a_missing_key_is_one_line_not_a_key_error(tmp_path: Path) -> None:
    saved = Run()
    save_resume(tmp_path / "r.pt", KEY, OtherState(), saved.objects)  # no 'best', no 'history'
    assert "no state.best" in _refusal(tmp_path, Run())
    save_resume(tmp_path / "r.pt", KEY, saved.state, {"model": saved.model})  # no optimizers
    assert "no objects.lm" in _refusal(tmp_path, Run())


def test_weights_that_do_not_fit_leave_everything_unchanged(tmp_path: Path) -> None:
    saved = Run()
    saved.model[2] = torch.nn.Linear(8, 3)
    save_resume(tmp_path / "r.pt", KEY, saved.state, saved.objects)
    assert "does not fit the model (RuntimeError: " in _refusal(tmp_path, Run())
    saved = Run()
    saved.steps(1)
    saved.cnn = torch.optim.SGD(saved.model.parameters(), lr=0.01)  # the model and lm fit, the last one does not
    save_resume(tmp_path / "r.pt", KEY, saved.state, saved.objects)
    assert "does not fit the cnn (ValueError: " in _refusal(tmp_path, Run())  # and the model is rolled back


def test_a_failed_save_keeps_the_previous_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    run = Run()
    save_resume(tmp_path / "r.pt", KEY, run.state, run.objects)
    old = (tmp_path / "r.pt").read_bytes()

    def killed(obj: object, f: typing.BinaryIO) -> None:
        f.write(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", killed)
    run.steps(1)
    with pytest.raises(KeyboardInterrupt):
        save_resume(tmp_path / "r.pt", KEY, run.state, run.objects)
    assert (tmp_path / "r.pt").read_bytes() == old and os.listdir(tmp_path) == ["r.pt"]


def test_digests_see_content(tmp_path: Path) -> None:
    a = np.arange(6, dtype=np.uint32)
    assert digest(a, "x") == digest(a.copy(), "x")
    assert digest(a) != digest(a.astype(np.int64)) != digest(a.reshape(2, 3))  # dtype and shape count
    b = a.copy()
    b[5] = 7
    assert digest(a) != digest(b)
    (tmp_path / "f").write_bytes(b"abc")
    first = file_digest(tmp_path / "f")
    (tmp_path / "f").write_bytes(b"abd")
    assert file_digest(tmp_path / "f") != first


def test_data_fingerprint_sees_captions_and_region_ids(tmp_path: Path) -> None:
    from dvsa.data.labels import read_labels
    from dvsa.regions.store import RegionStore
    from tests.align.conftest import make_world

    world = make_world(tmp_path / "w", n_train=4, n_val=2, n_test=2)
    labels = read_labels(world.labels_h5, world.vocab_json)
    with RegionStore(world.regions_h5) as store:
        base = data_fingerprint(labels, store)
        assert data_fingerprint(labels, store) == base
        store.image_id = store.image_id[::-1].copy()
        assert data_fingerprint(labels, store) != base
        store.image_id = store.image_id[::-1].copy()
        labels.labels = labels.labels.copy()
        labels.labels[0, 0] += 1
        assert data_fingerprint(labels, store) != base
