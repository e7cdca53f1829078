"""The one training loop of dvsa, as neuraltalk2's train.lua main loop (docs/design.md, "Trainer contract").

A trainer (region CNN, alignment model, captioner, region captioner) brings only what is its own: its
parameter groups (each with its optimizer, learning-rate schedule and gradient policy: the LM and the CNN
apart, as train.lua), the loss of iteration i (its batches), a validation that returns metrics and the score
that picks the kept weights, the weights to keep, and the model file's payload. This loop owns the rest:
the counter, the learning rates, L2 then the element-wise clamp, the divergence stop, the validation cadence
and the best weights, dvclive and history.json (every validation with its predictions), the progress bar,
SIGINT / SIGTERM, resume, and the data-parallel hooks (gradients of parameters outside
DistributedDataParallel averaged, rank 0 validates and writes, every rank stops at the same iteration).

Random numbers: before iteration i the torch RNG is seeded by (seed, i) and the rank, and a trainer draws
its batch order and augmentation from RNGs seeded the same way (``step_seed``, ``step_rng``); so a resumed
run needs no saved RNG state and continues with the same numbers, whatever the number of processes.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from tqdm import tqdm

from dvsa.checkpoint import save
from dvsa.distributed import ONE_PROCESS, World, all_reduce_sum, average_gradients, barrier
from dvsa.errors import TrainingError
from dvsa.hashing import code_digest
from dvsa.io import write_json
from dvsa.train.interrupt import interrupt_requests
from dvsa.train.resume import ResumeKey, Stateful, load_resume, save_resume
from dvsa.train.schedule import set_lr

if TYPE_CHECKING:
    from dvclive import Live

HISTORY = "history.json"
Weights = dict[str, dict[str, torch.Tensor]]  # named state dicts (e.g. "lm", "cnn")


@dataclass
class Group:
    """Parameters updated by one optimizer. Gradient policy: ``l2 * θ`` added to the gradient, then each
    element clamped to ±clamp (train.lua; 0 = off). A trainer whose optimizer applies its own weight decay
    (the alignment model, the region CNN) sets l2 = 0, so its clamp acts on the loss gradient alone."""

    params: list[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    lr: Callable[[int], float]  # learning rate at iteration i (0-based)
    l2: float = 0.0
    clamp: float = 0.0
    active: Callable[[int], bool] = lambda i: True  # updated at iteration i (the CNN: from finetune_cnn_after)
    reduce: bool = False  # average the gradients across ranks (parameters outside DistributedDataParallel)


@dataclass
class Step:
    """One iteration's loss: the tensor this rank backpropagates, and the whole batch's value (every rank)."""

    loss: torch.Tensor
    value: float
    logged: dict[str, float] = field(default_factory=dict)  # more figures averaged into the train rows


@dataclass
class Validation:
    metrics: dict[str, float]  # "val/..." figures
    score: float  # higher is better: the weights of the best score are kept
    predictions: list[dict[str, Any]] = field(default_factory=list)  # neuraltalk2's val_predictions


class Trainer(Protocol):
    name: str  # e.g. "captioner": the progress bar's and the messages' name
    groups: list[Group]

    def step(self, iteration: int) -> Step: ...

    def validate(self) -> Validation: ...

    def weights(self) -> Weights: ...

    def stateful(self) -> dict[str, Stateful]: ...

    def model_file(self, state: LoopState) -> tuple[str, dict[str, Any]]: ...  # (format tag, payload)


@dataclass(frozen=True)
class Plan:
    iterations: int
    val_every: int  # iterations between validations (and resume saves); 0: never (the last weights are kept)
    log_every: int  # iterations per logged train row (their mean)
    seed: int
    explode_factor: float = math.inf  # a loss above this x the first one stops training
    lower: str = ""  # what to lower when the loss diverges, named in the error


@dataclass(frozen=True)
class Files:
    model: Path
    resume: Path
    logs: Path  # dvclive's folder; history.json goes in it


@dataclass
class LoopState:
    """What, besides the trainer's weights and optimizers, determines the rest of a run (the resume file)."""

    iteration: int = 0  # iterations completed
    first_loss: float | None = None
    best_score: float = -math.inf
    best_iteration: int = 0
    best_metrics: dict[str, float] = field(default_factory=dict)
    best_weights: Weights = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)  # train and val rows, as logged
    val_history: list[dict[str, Any]] = field(default_factory=list)  # each validation with its predictions
    window: dict[str, list[float]] = field(default_factory=dict)  # train figures since the last train row


def train(
    trainer: Trainer,
    plan: Plan,
    files: Files,
    key: ResumeKey,
    world: World = ONE_PROCESS,
    progress: bool = True,
    on_iteration: Callable[[int], None] | None = None,
    log: Callable[[str], None] = print,
) -> tuple[LoopState, bool]:
    """Train (or resume) to `plan.iterations`, write the model file; returns the final state and whether it
    resumed. `on_iteration(i)` runs after iteration i (1-based). The state is meaningful on rank 0 only."""
    key = replace(key, code=code_digest(type(trainer).__module__))
    st = LoopState()
    resumed = load_resume(files.resume, key, st, trainer.stateful(), log=world.say(log))
    if resumed:
        world.say(log)(f"{files.resume}: resuming at iteration {st.iteration}")
    from dvsa.live import open_live  # dvclive (DVC's) only for a run that logs: update() and the steps need neither

    live = open_live(files.logs) if world.main else None
    for row in st.history:
        _log(live, row)
    bar = tqdm(total=plan.iterations, initial=st.iteration, desc=f"train {trainer.name}", unit="it",
               disable=not (progress and world.main))
    try:
        with interrupt_requests() as interrupted:
            while st.iteration < plan.iterations:
                it = st.iteration
                torch.manual_seed(step_seed(plan.seed, it) + world.rank)
                step = trainer.step(it)
                _check_divergence(step.value, st, plan, trainer.name, it)
                update(trainer.groups, step.loss, it)
                st.iteration = it + 1
                _train_row(st, plan, step, trainer.groups[0].lr(it), live, bar)
                if plan.val_every and (st.iteration % plan.val_every == 0 or st.iteration == plan.iterations):
                    if world.main:
                        _validate(trainer, st, live, files, key, bar.write if progress else log)
                    barrier()  # the others wait for rank 0's validation
                bar.update(1)
                if on_iteration is not None:
                    on_iteration(st.iteration)
                if _agreed(interrupted.requested, world):
                    if world.main:
                        save_resume(files.resume, key, st, trainer.stateful())
                    barrier()  # torchrun stops every rank as soon as one exits: not before rank 0 has saved
                    raise KeyboardInterrupt
    except TrainingError:
        if world.main:
            files.resume.unlink(missing_ok=True)
        raise
    finally:
        bar.close()
    if world.main:
        _finish(trainer, st, live, files)
    return st, resumed


def update(groups: list[Group], loss: torch.Tensor, iteration: int) -> None:
    """train.lua's update: gradients of `loss`, then for each active group its averaging across ranks, L2 then
    clamp, its learning rate at `iteration`, and its optimizer's step."""
    for g in groups:
        g.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    for g in groups:
        if not g.active(iteration):
            continue
        if g.reduce:
            average_gradients(g.params)
        gradient_policy(g)
        set_lr(g.optimizer, g.lr(iteration))
        g.optimizer.step()


def gradient_policy(g: Group) -> None:
    """As train.lua: add the L2 gradient l2 * θ, then clamp each element to ±clamp."""
    for p in g.params:
        if p.grad is None:
            continue
        if g.l2 > 0:
            p.grad.add_(p.detach(), alpha=g.l2)
        if g.clamp > 0:
            p.grad.clamp_(-g.clamp, g.clamp)


def step_seed(seed: int, iteration: int) -> int:
    """The seed of iteration `iteration`'s random draws (the same on every rank)."""
    return int(np.random.SeedSequence([seed, iteration]).generate_state(1)[0])


def step_rng(seed: int, iteration: int, rank: int = 0) -> np.random.Generator:
    """A numpy RNG of iteration `iteration` on `rank` (augmentation)."""
    return np.random.default_rng([seed, iteration, rank])


def cpu_copy(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in state_dict.items()}


def _check_divergence(value: float, st: LoopState, plan: Plan, name: str, it: int) -> None:
    if st.first_loss is None:
        st.first_loss = value
    if not math.isfinite(value) or value > plan.explode_factor * st.first_loss:
        raise TrainingError(
            f"the loss exploded at iteration {it + 1} of the {name}: {value:.4g} (first loss {st.first_loss:.4g}); "
            f"lower {plan.lower}"
        )


def _train_row(st: LoopState, plan: Plan, step: Step, lr: float, live: Live | None, bar: tqdm) -> None:
    """Average the train figures over `plan.log_every` iterations into one logged row."""
    for name, value in {"loss": step.value, **step.logged}.items():
        st.window.setdefault(name, []).append(value)
    if len(st.window["loss"]) == plan.log_every or st.iteration == plan.iterations:
        row = {"step": st.iteration, **{f"train/{k}": float(np.mean(v)) for k, v in st.window.items()}}
        row["train/lr"] = lr
        st.window = {}
        st.history.append(row)
        _log(live, row)
        bar.set_postfix(loss=f"{row['train/loss']:.3f}")


def _validate(trainer: Trainer, st: LoopState, live: Live | None, files: Files, key: ResumeKey,
              log: Callable[[str], None]) -> None:
    """Validate, keep the weights when the score is the best so far, log, save the resume file."""
    v = trainer.validate()
    row = {"step": st.iteration, **v.metrics}
    st.history.append(row)
    st.val_history.append({**row, "predictions": v.predictions})
    _log(live, row)
    if v.score > st.best_score:
        st.best_score, st.best_iteration, st.best_metrics = v.score, st.iteration, v.metrics
        st.best_weights = {name: cpu_copy(w) for name, w in trainer.weights().items()}
    log(f"{trainer.name} iteration {st.iteration}: " + ", ".join(f"{k} {x:.4g}" for k, x in v.metrics.items()))
    save_resume(files.resume, key, st, trainer.stateful())
    write_history(files.logs / HISTORY, st)


def _finish(trainer: Trainer, st: LoopState, live: Live | None, files: Files) -> None:
    """The model file (the best validation's weights, or the last ones without validation), the logs' summary,
    and no resume file: a finished run never makes a later one skip training."""
    if not st.val_history:
        st.best_iteration, st.best_weights = st.iteration, {n: cpu_copy(w) for n, w in trainer.weights().items()}
    if live is not None:
        live.summary["best"] = {"iteration": st.best_iteration, **{k[4:]: x for k, x in st.best_metrics.items()}}
        live.end()
    write_history(files.logs / HISTORY, st)
    save(files.model, *trainer.model_file(st))
    files.resume.unlink(missing_ok=True)


def write_history(path: Path, st: LoopState) -> None:
    """neuraltalk2's checkpoint json: the train loss curve and every validation with its val_predictions."""
    write_json(
        path,
        {
            "loss_history": {str(r["step"]): r["train/loss"] for r in st.history if "train/loss" in r},
            "val_history": st.val_history,
            "best_iteration": st.best_iteration,
        },
    )


def _agreed(requested: bool, world: World) -> bool:
    """Whether any rank was asked to stop (SIGINT / SIGTERM): every rank then stops at the same iteration."""
    if world.size == 1:
        return requested
    return bool(all_reduce_sum(torch.tensor([float(requested)])).item() > 0)


def _log(live: Live | None, row: dict[str, float]) -> None:
    if live is None:
        return
    live.step = int(row["step"])
    for name, value in row.items():
        if name != "step":
            live.log_metric(name, value)
    live.next_step()
