"""The Python API: train a score model, sample it, score the samples, save and load it.

    import sgm_core as sgm
    run = sgm.train("moons", loss="ncsn", steps=3000, seed=0)   # a preset, a file path, or an (N, D) array
    x = run.sample(2000, sampler="annealed", seed=0)              # (2000, 2) numpy, data coordinates
    run.metrics(x)                                                # {"sw_ratio": ..., "mmd": ..., ...}
    run.save("runs/moons")  ;  run = sgm.load("runs/moons")       # a run directory, or a FILE.sgm session
    run = sgm.train("moons-labelled", conditional=True)           # class-conditional, classifier-free guidance
    x = run.sample(2000, label="1", guidance=2.0)                 # class 1 (as in the data), guidance w = 2

This is the surface the project promises (named in `sgm_core.__all__`); the CLI's sweeps and
notebooks call it, and it drives the same `Trainer`, samplers, metrics and writers as `sgm` and
the app. Arguments are checked here, at the edge: a bad one raises `ConfigError`/`DataError`
with one sentence.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any, Union

import numpy as np

from .checkpoint import LoadedRun, load_run, save_run
from .conditioning import Condition, condition_sampler, make_condition
from .config import MAX_SEED, LossConfig, ModelConfig, NoiseConfig, RunConfig, SamplerConfig, TrainConfig, whole_number
from .datasets import (
    PRESETS,
    Dataset,
    EmpiricalDataset,
    Standardizer,
    load_dataset,
    make_preset,
    source_dataset,
    validate_points,
)
from .errors import ConfigError, DataError, SessionError
from .guidance import guided
from .lazy import lazy_module
from .likelihood import ode_log_likelihood
from .limits import MAX_GUIDANCE, MAX_POINTS, MAX_SAMPLES, MAX_STEPS
from .losses import bound_process, loss_spec
from .metrics import SWBaseline, energy_distance, mmd_rbf, mode_weight_error, mode_weights
from .nets import ScoreNet
from .noise import Process, default_sigma_max
from .samplers import Sampler, make_sampler, run_sampler
from .sessions import SessionState, save_session
from .training import Trainer

torch = lazy_module("torch")  # imported on first use: the GUI process never needs it

DataLike = Union[str, os.PathLike, np.ndarray, "torch.Tensor"]  # noqa: UP007 - a forward reference: torch is lazy
ARRAY_SOURCE = "array"  # RunConfig.data of a run trained on an in-memory array (its points are saved with it)
SESSION_SUFFIX = ".sgm"
TRAIN_CHUNK = 50  # steps between progress-bar updates (the CLI's chunk)
SAMPLE_CHUNK = 65_536  # particles sampled at once, as `sgm sample`: memory stays bounded for any n
MMD_MAX_POINTS = 4000  # per set: the RBF kernel matrices are O(n^2) float64 (4000^2 = 128 MB each)
NLL_POINTS = 200  # fresh data points whose PF-ODE log-likelihood is averaged (the app's default)
NLL_STEPS = 50  # Heun steps of the PF-ODE (the app's default: ~0.3 s for a 3x128 net in 2D)
REFERENCE_SEED_OFFSET = 9  # benchmarks/quality.py's reference draws (SW directions: metrics.SW_PROJECTION_SEED)


def run_config(data: str, *, loss: str = "ncsn", steps: int | None = None, seed: int = 0,
               batch: int | None = None, lr: float | None = None, device: str = "auto", model: str = "score",
               width: int | None = None, depth: int | None = None, sigma_min: float | None = None,
               sigma_max: float | None = None, n_levels: int | None = None, sigma: float | None = None,
               ema: float | None = None, timesteps: int | None = None, schedule: str | None = None,
               t_sampling: str | None = None, source: str | None = None, dataset: Callable[[], Dataset] | None = None,
               cfg_dropout: float | None = None, classes: tuple[str, ...] | None = None) -> RunConfig:
    """The RunConfig of these settings (None keeps the config's default); the configs check every
    value, so a bad one is a ConfigError naming it. `train`, `sgm train` and the sweep specs share it.

    With `dataset` (called only once the settings are checked) and no `sigma_max`, σ_max comes
    from the data (`default_sigma_max`): the one place a run's default top noise level is chosen.
    `classes` (the data's class names) makes the net class-conditional; `cfg_dropout` is its label dropout."""

    def given(**values: Any) -> dict[str, Any]:
        return {k: v for k, v in values.items() if v is not None}

    config = RunConfig(
        data=data,
        model=ModelConfig(**given(kind=model, width=width, depth=depth, classes=classes)),
        noise=NoiseConfig(**given(sigma_min=sigma_min, sigma_max=sigma_max, n_levels=n_levels, sigma=sigma,
                                  timesteps=timesteps, schedule=schedule, t_sampling=t_sampling)),
        loss=LossConfig(**given(name=loss, source=source)),
        train=TrainConfig(**given(steps=steps, batch=batch, lr=lr, ema=ema, seed=seed, device=device,
                                  cfg_dropout=cfg_dropout)))
    if sigma_max is None and dataset is not None:
        data_set = dataset()
        top = default_sigma_max(data_set.standardizer().forward(data_set.points))
        config = config.with_(noise=replace(config.noise, sigma_max=top))
    return config


def train(data: DataLike, *, loss: str = "ncsn", steps: int | None = None, seed: int = 0, batch: int | None = None,
          lr: float | None = None, device: str = "auto", model: str = "score", width: int | None = None,
          depth: int | None = None, sigma_min: float | None = None, sigma_max: float | None = None,
          n_levels: int | None = None, sigma: float | None = None, ema: float | None = None,
          timesteps: int | None = None, schedule: str | None = None, t_sampling: str | None = None,
          source: str | None = None, progress: bool = True, conditional: bool = False, cfg_dropout: float | None = None) -> Run:
    """Train a score model on `data`: a preset name (see `sgm datasets`), a data file
    (.npy/.csv/.png/.jpg/.ply/.xyz), or an (N, 2) / (N, 3) array in data coordinates.

    The keywords are `sgm train`'s flags and the configs' fields (None: the default; noise levels
    are in standardised units). `progress` shows a tqdm bar (terminal or notebook). `conditional`
    trains a class-conditional net on labelled data (`sgm train --conditional`), its labels dropped
    to the null class with probability `cfg_dropout` (default 0.1), for classifier-free guidance."""
    if not isinstance(progress, bool):
        raise ConfigError(f"progress must be True or False, not {progress!r}")
    if not isinstance(conditional, bool):
        raise ConfigError(f"conditional must be True or False, not {conditional!r}")
    if cfg_dropout is not None and not conditional:
        raise ConfigError("cfg_dropout needs conditional=True (it drops class labels in training)")
    data_name = _source_name(data)
    load_data = cache(lambda: _dataset(data, seed))  # read once, after the settings are checked
    config = run_config(data_name, loss=loss, steps=steps, seed=seed, batch=batch, lr=lr, device=device, model=model,
                        width=width, depth=depth, sigma_min=sigma_min, sigma_max=sigma_max, n_levels=n_levels,
                        sigma=sigma, ema=ema, timesteps=timesteps, schedule=schedule, t_sampling=t_sampling,
                        source=source, dataset=load_data,
                        cfg_dropout=cfg_dropout)  # settings first: a typo fails before a file is read
    dataset = load_data()
    if conditional:
        if not dataset.labelled:
            raise DataError(f"conditional=True needs labelled data; {data_name!r} has no class labels")
        config = config.with_(model=replace(config.model, classes=dataset.classes))
    if config.loss.source:
        source_dataset(config.loss.source, dataset.dim, seed=seed)  # loads, and matches the data
    trainer = Trainer(dataset, config)
    started = time.perf_counter()
    _fit(trainer, config.train.steps, progress)
    return Run(config, trainer.ema_model.eval(), trainer.standardizer, dataset.points, trainer.step,
               trainer.loss_history(), time.perf_counter() - started, dataset, trainer)


def load(path: str | os.PathLike) -> Run:
    """A run saved by `Run.save`, `sgm train --out`, or the app (a .sgm session with a trained
    model): ready to sample and score. Its loss history is not read back (`losses` is empty)."""
    if not isinstance(path, str | os.PathLike):
        raise SessionError(f"a run is loaded from a path, not {type(path).__name__}")
    loaded = load_run(path)
    return Run(loaded.config, loaded.model, loaded.standardizer, None, loaded.step, np.zeros(0), _loaded=loaded)


@dataclass(eq=False)
class Run:
    """A trained model with its settings and data transform. `model` holds the EMA weights the
    samplers use; it maps standardised coordinates, and every method here speaks data coordinates."""

    config: RunConfig
    model: ScoreNet
    standardizer: Standardizer
    _points: np.ndarray | None  # the training data (data coordinates), if known; see `points`
    step: int
    losses: np.ndarray  # loss per training step (empty for a loaded run)
    train_seconds: float | None = None  # wall time of `train` (None for a loaded run)
    _dataset: Dataset | None = field(default=None, repr=False)
    _trainer: Trainer | None = field(default=None, repr=False)  # raw weights and Adam state, for sessions
    _loaded: LoadedRun | None = field(default=None, repr=False)  # a loaded run reads its data.npy on first use
    _process: Process | None = field(default=None, repr=False)  # see `process`

    @property
    def points(self) -> np.ndarray | None:
        """The training data (data coordinates), if known. A loaded run reads it only when asked:
        sampling never needs it, so a damaged data.npy cannot stop `run.sample` (SessionError here)."""
        if self._points is None and self._loaded is not None and self._loaded.data is not None:
            self._points = np.asarray(self._loaded.data, np.float32)
        return self._points

    @property
    def dim(self) -> int:
        return int(self.standardizer.dim)

    @property
    def process(self) -> Process:
        """The run's noising process, a flow's source loaded into it (`losses.bound_process`): the
        trainer's own for a trained run, else bound once on first use, not on every sample call."""
        if self._process is None:
            self._process = (self._trainer.process if self._trainer is not None
                             else bound_process(self.config, self.standardizer, self.dim,
                                                self._loaded.source if self._loaded is not None else None))
        return self._process

    @property
    def classes(self) -> tuple[str, ...]:
        """The class names a class-conditional run samples (`label=`); () for an unconditional run."""
        return self.config.model.classes

    @property
    def labels(self) -> np.ndarray | None:
        """The training data's class index per point (into the data's classes), if it was labelled."""
        return self._data_labels()[0]

    def class_of(self, label: object) -> int:
        """The class index of `label` as it appears in the data file (a name or a whole number);
        ConfigError/DataError with one sentence on an unconditional run or an unknown label."""
        from .datasets import class_index

        if not self.classes:
            raise ConfigError("this run is not class-conditional, so it has no classes to sample; "
                              "train it with --conditional (conditional=True) on labelled data")
        return class_index(self.classes, label)

    def score_fn(self, label: object = None, guidance: float = 0.0) -> torch.nn.Module:
        """The score function s(x, sigma) the samplers run, in standardised coordinates: the net, or
        for `label` its classifier-free-guided score with scale `guidance` (w; 0 = conditional)."""
        if label is None:
            if guidance:
                raise ConfigError("guidance needs a class label: guidance steers toward a class")
            return self.model
        w = _guidance(guidance)
        return guided(self.model, self.class_of(label), w)

    @property
    def default_sampler(self) -> str:
        """The sampler that fits the run's loss (annealed for ncsn, the reverse SDE for SDE losses, ...)."""
        return loss_spec(self.config.loss.name).default_sampler

    def __repr__(self) -> str:
        return f"Run(data={self.config.data!r}, loss={self.config.loss.name!r}, dim={self.dim}, step={self.step})"

    # -- sampling -------------------------------------------------------------------------
    def schedule(self, sampler: str | None = None, steps: int | None = None) -> Sampler:
        """The schedule `sample` runs for `sampler` (default: the loss's own) and `steps` (per level
        for annealed; None: the sampler's default). Pass it to `sample` to read what it reports
        afterwards, e.g. MALA's `acceptance_rate`."""
        steps = 0 if steps is None else whole_number(steps, "sampler steps", 1, MAX_STEPS)
        if sampler is not None and not isinstance(sampler, str):
            raise ConfigError(f"sampler must be a name, not {sampler!r}")
        return make_sampler(SamplerConfig(name=sampler or self.default_sampler, steps=steps), self.config.noise,
                            self.process)

    def sample(self, n: int = 2000, *, sampler: str | Sampler | None = None, steps: int | None = None,
               seed: int = 0, label: object = None, guidance: float = 0.0,
               given: str | Mapping[str | int, float] | Condition | None = None) -> np.ndarray:
        """`n` samples, an (n, D) float32 array in data coordinates, from `sampler` (a name, default
        the loss's own, with `steps` as in `schedule`; or a schedule from `schedule`). The same seed
        gives the same samples, whatever n's chunking. A class-conditional run samples class `label`
        (as in the data file) with guidance scale `guidance` (see `score_fn`).

        `given` ({'x': 0.5}, or 'x=0.5' as `sgm sample --given`) fixes those coordinates (data
        units) and samples the rest from the model's conditional (`sgm_core.conditioning`); a value
        far outside the data warns (RuntimeWarning) but is sampled."""
        score_fn = self.score_fn(label, guidance)
        n = whole_number(n, "n", 1, MAX_SAMPLES)
        seed = whole_number(seed, "seed", 0, MAX_SEED)
        if isinstance(sampler, Sampler):
            if steps is not None:
                raise ConfigError("give steps to `schedule`, not with a schedule")
            schedule = sampler
        else:
            schedule = self.schedule(sampler, steps)
        condition = given if isinstance(given, Condition) or given is None else self.condition(given)
        schedule = condition_sampler(schedule, condition, self.process)
        device = next(self.model.parameters()).device
        generator = torch.Generator().manual_seed(seed)
        chunks = []
        for start in range(0, n, SAMPLE_CHUNK):  # one generator across chunks: reproducible
            x = schedule.init(min(SAMPLE_CHUNK, n - start), self.dim, generator).to(device)
            chunks.append(self.standardizer.inverse(run_sampler(schedule, score_fn, x, generator)).float().cpu().numpy())
        samples = np.concatenate(chunks)
        if not np.isfinite(samples).all():
            raise ConfigError("sampling produced NaN/Inf; try a smaller step size or more steps")
        if condition is not None:  # exactly the values asked for, not their standardised round trip
            samples[:, list(condition.fixed)] = np.asarray(condition.data_values(self.standardizer), np.float32)
        return samples

    def condition(self, given: str | Mapping[str | int, float]) -> Condition:
        """The Condition (standardised units) that `sample(given=...)` holds: 'x=0.5' or {'x': 0.5}
        in data units. Warns (RuntimeWarning) when a value lies far outside the training data."""
        return make_condition(given, self.standardizer, self.dim, self._points_or_none())

    def _points_or_none(self) -> np.ndarray | None:
        try:
            return self.points
        except SessionError:  # a damaged data.npy: no range to check against, sampling still works
            return None

    # -- scoring --------------------------------------------------------------------------
    def metrics(self, samples: np.ndarray | torch.Tensor, *, seed: int = 0, nll: bool = True) -> dict[str, float]:
        """How close `samples` (data coordinates) are to the data: see `sample_metrics`; plus `nll`,
        the data's negative log-likelihood (nats per point) under the PF-ODE, for the losses whose
        net covers every noise level (ncsn, ve-sde, vp-sde, fm, ot-fm, ddpm, edm) when `nll` is True (not for a flow from a
        source: it has no prior density)."""
        seed = whole_number(seed, "seed", 0, MAX_SEED)
        out = sample_metrics(samples, self.reference(), seed=seed)
        if nll and loss_spec(self.config.loss.name).process_type.has_path and not self.config.loss.source:
            out["nll"] = self.data_nll(seed=seed)
        return out

    def reference(self) -> Dataset:
        """The distribution samples are compared with: the preset's own process (fresh draws, and
        the exact mixture), else the saved training points."""
        if self._dataset is None:
            if self.config.data in PRESETS:
                self._dataset = make_preset(self.config.data, seed=self.config.train.seed)
            elif self.points is not None:
                self._dataset = EmpiricalDataset(self.points, name=Path(self.config.data).stem)
            else:
                raise DataError("this run holds no data to compare samples with (its data.npy was not saved)")
        return self._dataset

    def data_nll(self, n_points: int = NLL_POINTS, n_steps: int = NLL_STEPS, seed: int = 0) -> float:
        """-mean log p(x) over `n_points` fresh data draws, in nats per point (data coordinates)."""
        generator = torch.Generator().manual_seed(seed + REFERENCE_SEED_OFFSET + 1)
        return -float(self.log_likelihood(self.reference().sample(n_points, generator), n_steps=n_steps).mean())

    def log_likelihood(self, points: np.ndarray | torch.Tensor, *, n_steps: int = NLL_STEPS) -> np.ndarray:
        """log p(x) per point (data coordinates, nats) by the probability-flow ODE (Song et al. 2021,
        Sec. 4.3), for the losses whose net covers every noise level; log p_data = log p_std - D log(scale)."""
        spec = loss_spec(self.config.loss.name)
        if not spec.process_type.has_path:
            raise ConfigError(f"a {spec.name} run has no likelihood: its net does not cover every noise level")
        n_steps = whole_number(n_steps, "n_steps", 1, MAX_STEPS)
        x = torch.from_numpy(validate_points(np.asarray(points.detach().cpu() if isinstance(points, torch.Tensor)
                                                        else points), min_points=1, dims=(self.dim,)))
        device = next(self.model.parameters()).device
        sde = self.process.path  # a flow from a source has no prior density: one ConfigError
        ll = ode_log_likelihood(lambda a, s: self.model(a.to(device), s.to(device)).cpu(), sde,
                                self.standardizer.forward(x), n_steps)
        return (ll - self.dim * math.log(self.standardizer.scale)).numpy()

    # -- saving ---------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write a run directory (config.json, model.safetensors, loss.csv, data.npy), or a session
        the app opens when `path` ends in .sgm (with Adam's state, so training there resumes
        exactly). Atomic: a failed save leaves the old run or file whole; SessionError."""
        if not isinstance(path, str | os.PathLike):
            raise SessionError(f"a run is saved to a path, not {type(path).__name__}")
        trainer = self._trainer
        raw = trainer.model if trainer is not None else self.model
        labels, classes = self._data_labels()
        if Path(path).suffix.lower() != SESSION_SUFFIX:
            return save_run(path, self.config, raw, self.model, self.standardizer, self.step, self.losses, self.points,
                            labels, classes)
        if self.points is None:
            raise SessionError("this run holds no data points, so it cannot become a session; save a run directory")
        return save_session(path, SessionState(
            points=self.points, source=self.config.data, run=self.config,
            sampler=SamplerConfig(name=self.default_sampler), brush_radius=0.0, model=_cpu_state(raw),
            ema=_cpu_state(self.model), standardizer=self.standardizer, step=self.step, losses=self.losses,
            resume=trainer.resume_state() if trainer is not None else None, source_points=self._source_points(),
            labels=labels, classes=classes))

    def _source_points(self) -> np.ndarray | None:
        """A flow's source points, which a session keeps (a window drawing has no other home)."""
        source = (self._trainer.source if self._trainer is not None
                  else self._loaded.source if self._loaded is not None else None)
        return None if source is None else np.asarray(source.points, np.float32)

    def _data_labels(self) -> tuple[np.ndarray | None, tuple[str, ...]]:
        """The saved points' labels and class names: a loaded run's labels.npy, a trained run's data."""
        if self._loaded is not None:
            labels = self._loaded.labels
            return labels, self._loaded.data_classes if labels is not None else ()
        if self._dataset is not None and self._dataset.labels is not None:
            return self._dataset.labels, self._dataset.classes
        return None, ()


def _guidance(value: object) -> float:
    from .config import finite_number

    return finite_number(value, "guidance", 0.0, MAX_GUIDANCE)


def sample_metrics(samples: np.ndarray | torch.Tensor, dataset: Dataset, *, seed: int = 0,
                   baseline: SWBaseline | None = None) -> dict[str, float]:
    """Samples against fresh data draws of the same size, all in data coordinates:
    `sw` (sliced 2-Wasserstein), `sw_base` (the same between fresh draws, the mean of SW_BASE_DRAWS), `sw_ratio` (their
    ratio: 1 is as close as another draw of the data), `mmd` (RBF, median bandwidth), `energy`
    (energy distance), and for mixtures `on_mode` (fraction within 3 std of a mode) and
    `weight_error` (largest mode-weight error). Seeded: the same samples give the same numbers.
    `baseline`: `sw_baseline(dataset, len(samples), seed)` built once, for many sample sets of one
    size (its 9 data draws cost ~90 ms at 1,000 points); one of another size is not used."""
    x = torch.from_numpy(validate_points(np.asarray(samples.detach().cpu() if isinstance(samples, torch.Tensor)
                                                    else samples), dims=(dataset.dim,)))
    if baseline is None or len(baseline.reference) != len(x):
        baseline = sw_baseline(dataset, len(x), seed)
    ref, base = baseline.reference, baseline.base
    sw, ratio = baseline.distance(x)
    g_sub = torch.Generator().manual_seed(seed)
    small = [v[torch.randperm(len(v), generator=g_sub)[:MMD_MAX_POINTS]] if len(v) > MMD_MAX_POINTS else v
             for v in (x, ref)]
    out = {"sw_ratio": ratio, "sw": sw, "sw_base": base, "mmd": mmd_rbf(*small),
           "energy": energy_distance(x, ref, generator=torch.Generator().manual_seed(seed))}
    if dataset.gmm is not None:
        out["on_mode"] = mode_weights(x, dataset.gmm)[1]
        out["weight_error"] = mode_weight_error(x, dataset.gmm)
    return out


def sw_baseline(dataset: Dataset, n: int, seed: int = 0) -> SWBaseline:
    """The reference draws `sample_metrics` scores n samples against: one fixed draw, and the
    data-vs-data SW averaged over several others (`SWBaseline`)."""
    return SWBaseline(dataset.sample, n, seed=seed + REFERENCE_SEED_OFFSET)


def _source_name(data: object) -> str:
    """What RunConfig.data records: the preset name or the path; ARRAY_SOURCE for arrays."""
    if isinstance(data, str | os.PathLike):
        return os.fspath(data)
    if isinstance(data, np.ndarray | torch.Tensor | list | tuple):
        return ARRAY_SOURCE
    raise DataError(f"data must be a preset name, a file path or an (N, D) array, not {type(data).__name__}")


def _dataset(data: DataLike, seed: int) -> Dataset:
    if isinstance(data, str | os.PathLike):
        return load_dataset(os.fspath(data), seed=seed)
    if isinstance(data, torch.Tensor):
        data = data.detach().cpu().numpy()
    try:
        points = np.asarray(data)
    except ValueError as exc:  # a ragged list
        raise DataError(f"data must be an (N, D) array of numbers: {exc}") from exc
    if points.ndim == 2 and len(points) > MAX_POINTS:
        raise DataError(f"data has {len(points):,} points; the most this program trains on is {MAX_POINTS:,}")
    return EmpiricalDataset(validate_points(points), name=ARRAY_SOURCE)


def _fit(trainer: Trainer, steps: int, progress: bool) -> None:
    """Train `steps` steps in chunks, with a tqdm.auto bar (steps/s, loss, ETA) when `progress`.
    No bar object at all otherwise: tqdm's monitor thread would start for nothing."""
    if not progress:
        for done in range(0, steps, TRAIN_CHUNK):
            trainer.run(min(TRAIN_CHUNK, steps - done))
        return
    from tqdm.auto import tqdm

    with tqdm(total=steps, unit="step", dynamic_ncols=True, desc=f"{trainer.config.loss.name} on {trainer.dataset.name}") as bar:
        for done in range(0, steps, TRAIN_CHUNK):
            records = trainer.run(min(TRAIN_CHUNK, steps - done))
            bar.update(len(records))
            bar.set_postfix(loss=f"{records[-1].loss:.4g}", refresh=False)


def _cpu_state(model: ScoreNet) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
