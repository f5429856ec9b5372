"""The step-wise trainer: the caller drives it in chunks (GUI worker, CLI, tests alike).

It owns the model, the optimiser, the EMA copy and one torch.Generator; `run(n)` does n Adam
steps on fresh batches and returns their records. A NaN/Inf loss restores the last good weights
and raises TrainingDiverged, so nothing the user trained is lost.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from .config import RunConfig, fresh_model_reason
from .datasets import Dataset, Standardizer
from .errors import ConfigError, DataError, TrainingDiverged
from .lazy import lazy_module, no_grad
from .losses import bound_process, loss_spec, make_loss, run_source

torch = lazy_module("torch")  # imported on first use: the GUI process never needs it

if TYPE_CHECKING:
    from .nets import ScoreNet


def resolve_device(name: str) -> torch.device:
    """'auto' picks cuda, then mps, then cpu; an unavailable explicit choice is a ConfigError."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device 'cuda' was requested but no CUDA GPU is available")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError("device 'mps' was requested but MPS is not available")
    if name not in ("cpu", "cuda", "mps"):
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or mps")
    return torch.device(name)


def runs_here(config: RunConfig) -> tuple[RunConfig, str]:
    """A saved run's settings made to run on this machine: a device it lacks (a session trained
    with --device cuda, opened on a laptop) becomes 'auto'. Returns the settings and a sentence
    saying so ('' when nothing changed). The device is where a run trains, not what it learned:
    the weights are the same on any device."""
    name = config.train.device
    try:
        resolve_device(name)
    except ConfigError:
        here = device_label(resolve_device("auto"))
        return (config.with_(train=replace(config.train, device="auto")),
                f"it was set to train on {name}, which this machine lacks: it trains on {here} here")
    return config, ""


def device_label(device: torch.device) -> str:
    """Human name of the device: the GPU's name, or 'CPU'."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return "Apple GPU (MPS)" if device.type == "mps" else "CPU"


def make_adam(params, lr: float) -> torch.optim.Adam:
    """Adam with the fused kernel where this torch and device have one (CPU since torch 2.4,
    CUDA, MPS): one kernel over all parameters instead of a dozen small ops per tensor. Measured
    in benchmarks/core_speed.py; the update rule is the same, so results match plain Adam to
    rounding. Older torch builds get the default implementation."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, fused=True)
    except (RuntimeError, ValueError, TypeError):  # no fused kernel here
        return torch.optim.Adam(params, lr=lr)


POOL_BATCHES = 32  # fresh data drawn per refill, in batches
GOOD_EVERY = 100  # steps between "last good weights" snapshots (a copy of weights + Adam state)
# A finite loss this many times the first one (or 1, if larger) is a blow-up too: at lr 10 the
# default NCSN run spiked to 7.6e18 and then sat at a dead ~1.0 with finite weights (measured).
BLOWUP_FACTOR = 1e6



def check_labels(dataset: Dataset, config: RunConfig) -> None:
    """A class-conditional run (config.model.classes) needs data labelled with those classes."""
    classes = config.model.classes
    if not classes:
        return
    if not dataset.labelled:
        raise DataError(f"a class-conditional model needs labelled data; {dataset.name!r} has no class labels")
    if tuple(dataset.classes) != tuple(classes):
        raise DataError(f"the data's classes ({', '.join(dataset.classes)}) are not the model's "
                        f"({', '.join(classes)})")


@dataclass(frozen=True)
class StepRecord:
    step: int
    loss: float
    seconds: float  # wall time since the trainer was created (excluding nothing)


class Trainer:
    """Fits s_theta to `dataset` (standardised with a kept transform) under `config`."""

    def __init__(self, dataset: Dataset, config: RunConfig, standardizer: Standardizer | None = None,
                 source: Dataset | None = None) -> None:
        check_labels(dataset, config)
        from .guidance import WithLabels  # torch.nn at import: bound here, engine-side, not once a step

        self._with_labels = WithLabels
        self.dataset = dataset
        self.source = run_source(config, dataset.dim, source)  # a flow's source distribution (None: N(0, I))
        self.config = config
        self.spec = loss_spec(config.loss.name)
        self.device = resolve_device(config.train.device)
        self.standardizer = standardizer or dataset.standardizer()
        seed = config.train.seed
        with torch.random.fork_rng(devices=[]):  # reproducible nn.Linear init, global RNG untouched
            torch.manual_seed(seed)
            self.model: ScoreNet = self.spec.make_model(dataset.dim, config.model, config.noise).to(self.device)
        self.ema_model: ScoreNet = copy.deepcopy(self.model).requires_grad_(False)
        # Parameter lists fetched once: Module.parameters() walks the module tree, and the clip and
        # the EMA need them every step (~4% of a small net's step). Weights are only ever loaded in
        # place (load_state_dict), so these stay the live tensors.
        self._params = list(self.model.parameters())
        self._ema_params = list(self.ema_model.parameters())
        self.optimizer = make_adam(self._params, config.train.lr)
        self.process = bound_process(config, self.standardizer, dataset.dim, self.source)
        self.loss_fn = make_loss(config.loss, config.noise, self.process)
        self.data_generator = torch.Generator().manual_seed(seed + 1)
        self.noise_generator = torch.Generator(self.device if self.device.type == "cuda" else "cpu").manual_seed(seed + 2)
        self.step = 0
        self._loss_buf = np.zeros(1024)  # grows by doubling: one float64 per step, no per-frame copies
        self._n_losses = 0
        self._pool: torch.Tensor | None = None
        self._label_pool: torch.Tensor | None = None  # a class-conditional run's labels, null where dropped
        self._pool_at = 0
        self._started = time.perf_counter()
        self._good_state = self._snapshot()
        self._blowup_at: float | None = None  # set by the first loss (BLOWUP_FACTOR)

    def retarget(self, dataset: Dataset, config: RunConfig, source: Dataset | None = None) -> None:
        """Go on training these weights, with Adam's state and the loss history, on other data or
        settings (fine-tuning). The standardiser is refitted, so σ keeps its meaning on the new
        data. ConfigError when `fresh_model_reason` says the model cannot follow."""
        reason = fresh_model_reason(self.config, config, self.dataset.dim, dataset.dim)
        if reason is not None:
            raise ConfigError(f"cannot keep the model: {reason}")
        check_labels(dataset, config)
        self.dataset, self.config, self.source = dataset, config, run_source(config, dataset.dim, source)
        self.standardizer = dataset.standardizer()
        self.process = bound_process(config, self.standardizer, dataset.dim, self.source)
        self.loss_fn = make_loss(config.loss, config.noise, self.process)
        output = self.spec.parameterisation(config.noise)
        for net in (self.model, self.ema_model):  # the parameterisation follows the noise settings
            if type(net.output) is type(output):  # (an energy net's stays a score)
                net.output = output
        self._pool, self._pool_at = None, 0  # the next batch comes from the new data
        self._blowup_at = None  # the new data's first loss is the new yardstick

    # -- training -------------------------------------------------------------------------
    def lr_at(self, step: int) -> float:
        """Cosine decay from lr to lr/10 over config.train.steps, then flat."""
        cfg = self.config.train
        frac = min(step / max(cfg.steps, 1), 1.0)
        return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))

    def batch(self) -> torch.Tensor:
        """The next batch of fresh draws, standardised, on the device. Draws come from a pool
        refilled POOL_BATCHES batches at a time: one sampler call instead of one per step."""
        return self.labelled_batch()[0]

    @property
    def class_conditional(self) -> bool:
        return bool(self.config.model.classes)

    def labelled_batch(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`batch` and, for a class-conditional run, its labels: each the null class with
        probability cfg_dropout (Ho & Salimans 2022, Alg. 1), drawn with the data; else None."""
        b = self.config.train.batch
        if self._pool is None or self._pool_at + b > len(self._pool):
            n = b * POOL_BATCHES
            if self.class_conditional:
                x, y = self.dataset.sample_labelled(n, self.data_generator)
                from .guidance import drop_labels  # torch.nn at import: only where labels train

                y = drop_labels(y, self.config.train.cfg_dropout, self.model.null_class, self.data_generator)
                self._label_pool = y.to(self.device)
            else:
                x = self.dataset.sample(n, self.data_generator)
                self._label_pool = None
            self._pool = self.standardizer.forward(x).to(self.device, torch.float32)
            self._pool_at = 0
        self._pool_at += b
        rows = slice(self._pool_at - b, self._pool_at)
        return self._pool[rows], None if self._label_pool is None else self._label_pool[rows]

    def train_step(self) -> float:
        cfg = self.config.train
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr_at(self.step)
        x, labels = self.labelled_batch()
        score_fn = self.model if labels is None else self._with_labels(self.model, labels)
        loss = self.loss_fn(score_fn, x, self.noise_generator).mean()
        value = float(loss.detach())
        if self._blowup_at is None:
            self._blowup_at = BLOWUP_FACTOR * max(1.0, abs(value)) if math.isfinite(value) else 0.0
        if not math.isfinite(value) or abs(value) > self._blowup_at:
            failed_step = self.step + 1  # before restore_good rolls self.step back
            self.restore_good()
            raise TrainingDiverged(
                f"training diverged at step {failed_step:,} (loss {value:.3g}); the last good model "
                f"(step {self.step:,}) is back — try a smaller learning rate", failed_step)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            self._clip_gradients(cfg.grad_clip)
        self.optimizer.step()
        self._update_ema()
        self.step += 1
        self._append_loss(value)
        return value

    def run(self, n_steps: int) -> list[StepRecord]:
        """Do n_steps optimiser steps; returns their records. Keeps a good-weights checkpoint."""
        records = []
        for _ in range(n_steps):
            loss = self.train_step()
            records.append(StepRecord(self.step, loss, time.perf_counter() - self._started))
        if records and self.step - self._good_state["step"] >= GOOD_EVERY and self._weights_finite():
            self.mark_good()
        return records

    @no_grad
    def _clip_gradients(self, max_norm: float) -> None:
        """Scale the gradients to a global norm of at most max_norm: what clip_grad_norm_ does,
        in three foreach kernels without its per-call grouping (half its ~60 us per step)."""
        grads = [p.grad for p in self._params if p.grad is not None]
        if not grads:
            return
        total = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        torch._foreach_mul_(grads, torch.clamp(max_norm / (total + 1e-6), max=1.0))

    @no_grad
    def _update_ema(self) -> None:
        decay = self.config.train.ema
        if decay <= 0:
            self.ema_model.load_state_dict(self.model.state_dict())
            return
        decay = min(decay, (1 + self.step) / (10 + self.step))  # warm-up: early EMA tracks the net
        torch._foreach_lerp_(self._ema_params, self._params, 1 - decay)

    def _weights_finite(self) -> bool:
        return all(torch.isfinite(p).all() for p in self._params)

    def _snapshot(self) -> dict:
        return {
            "model": {k: v.detach().clone() for k, v in self.model.state_dict().items()},
            "ema": {k: v.detach().clone() for k, v in self.ema_model.state_dict().items()},
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "step": self.step,
        }

    def mark_good(self) -> None:
        """Take the current weights as the ones a divergence falls back to."""
        self._good_state = self._snapshot()

    def restore_good(self) -> None:
        state = self._good_state
        self.model.load_state_dict(state["model"])
        self.ema_model.load_state_dict(state["ema"])
        # A copy: Adam keeps the loaded tensors and updates them in place, which would corrupt
        # the snapshot for the next fall-back.
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        self.step = state["step"]
        self._n_losses = min(self._n_losses, self.step)

    # -- resuming -------------------------------------------------------------------------
    def resume_state(self) -> dict[str, torch.Tensor]:
        """Beyond the weights, what makes training go on exactly as if it was never interrupted:
        Adam's moments and step counts, the data and noise generators, and the unused rest of
        the data pool. Flat name -> CPU tensor, ready for safetensors."""
        out: dict[str, torch.Tensor] = {}
        for i, p in enumerate(self._params):
            for name, value in self.optimizer.state.get(p, {}).items():
                if torch.is_tensor(value):
                    out[f"adam.{i}.{name}"] = value.detach().cpu().clone()
        out["rng.data"] = self.data_generator.get_state()
        out["rng.noise"] = self.noise_generator.get_state()
        if self._pool is not None and self._pool_at < len(self._pool):
            out["pool"] = self._pool[self._pool_at:].detach().cpu().clone()
            if self._label_pool is not None:
                out["pool.labels"] = self._label_pool[self._pool_at:].detach().cpu().clone()
        return out

    def load_resume_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Restore what `resume_state` returned; a ConfigError if it does not fit this trainer
        (another architecture). Generator states from another device kind are skipped: the run
        then continues with fresh draws, as close as that allows."""
        per_param: dict[int, dict[str, torch.Tensor]] = {}
        for key, value in tensors.items():
            if key.startswith("adam."):
                _, index, name = key.split(".", 2)
                per_param.setdefault(int(index), {})[name] = value
        if per_param:
            # Adam keeps no state for a parameter that never had a gradient (an energy net's
            # output bias: the score -dE/dx does not depend on it), so the saved state may cover
            # a subset of the parameters, never more.
            if not set(per_param) <= set(range(len(self._params))):
                raise ConfigError("the saved optimiser state does not fit this model")
            for i, values in per_param.items():
                for name, value in values.items():
                    if name.startswith("exp_avg") and value.shape != self._params[i].shape:
                        raise ConfigError("the saved optimiser state does not fit this model")
            state = self.optimizer.state_dict()
            state["state"] = {i: dict(values) for i, values in per_param.items()}
            self.optimizer.load_state_dict(state)
        for key, generator in (("rng.data", self.data_generator), ("rng.noise", self.noise_generator)):
            if key in tensors:
                try:
                    generator.set_state(tensors[key].to(torch.uint8))
                except RuntimeError:  # a CUDA generator's state on a CPU run, or the reverse
                    pass
        pool, labels = tensors.get("pool"), tensors.get("pool.labels")
        if pool is not None and pool.ndim == 2 and pool.shape[1] == self.dataset.dim:
            if not self.class_conditional:
                self._pool, self._pool_at = pool.to(self.device, torch.float32), 0
            elif (labels is not None and labels.shape == (len(pool),) and not labels.is_floating_point()
                  and bool(((labels >= 0) & (labels <= self.model.null_class)).all())):
                self._pool, self._pool_at = pool.to(self.device, torch.float32), 0
                self._label_pool = labels.to(self.device, torch.int64)

    # -- using the model ------------------------------------------------------------------
    def score_fn(self, ema: bool = True):
        """s(x, sigma) in standardised coordinates (the EMA weights by default)."""
        return self.ema_model if ema else self.model

    def elapsed(self) -> float:
        return time.perf_counter() - self._started

    def _append_loss(self, value: float) -> None:
        if self._n_losses == len(self._loss_buf):
            self._loss_buf = np.concatenate([self._loss_buf, np.zeros_like(self._loss_buf)])
        self._loss_buf[self._n_losses] = value
        self._n_losses += 1

    @property
    def losses(self) -> np.ndarray:
        """The loss of every step so far (a read-only view; copy before keeping it)."""
        view = self._loss_buf[:self._n_losses]
        view.flags.writeable = False
        return view

    @losses.setter
    def losses(self, values) -> None:
        values = np.asarray(values, dtype=np.float64).reshape(-1)
        self._loss_buf = np.zeros(max(1024, 2 * len(values)))
        self._loss_buf[:len(values)] = values
        self._n_losses = len(values)

    def loss_history(self) -> np.ndarray:
        """A copy of the loss history (safe to keep across threads)."""
        return self.losses.copy()
