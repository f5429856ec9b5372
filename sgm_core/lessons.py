"""Lessons: one-click experiments, stored as JSON in assets/lessons/, run by the same core.

A lesson names its data, its run settings, one or more *variants* (e.g. plain vs annealed
Langevin) and the claims its caption makes (its "expect" list). `run_lesson` trains (or uses the
analytic truth score), samples every variant from the same starting particles, and measures the
metrics in `METRICS`; `evaluate_claims` turns the measurements into typed `Claim` records: one
per expectation, plus one "has learned" claim per trained network (a lesson that measures an
untrained net shows nothing). The CLI prints them (or writes JSON); the engine measures them live
(`live_claims`: the variant on screen from its own particles and net, the others headless), and
the lesson bar draws each `Claim.line`. A caption names only numbers that one of its claims checks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .config import (
    LossConfig,
    ModelConfig,
    NoiseConfig,
    RunConfig,
    SamplerConfig,
    TrainConfig,
    _from_dict,
    parse_json,
    whole_number,
)
from .datasets import load_dataset
from .errors import ConfigError
from .lazy import lazy_module
from .limits import MAX_JSON_BYTES, MAX_SAMPLES, MAX_STEPS
from .losses import loss_spec
from .metrics import SW_SEED, SWBaseline, mode_weight_error, mode_weights
from .noise import LinearInterpolant
from .samplers import make_sampler, run_sampler
from .truth import perturb, reference_score_fn, relative_score_error

torch = lazy_module("torch")  # imported on first use: the GUI process never needs it

LESSON_DIR = Path(__file__).resolve().parent.parent / "assets" / "lessons"


@dataclass(frozen=True)
class Variant:
    label: str
    sampler: SamplerConfig
    run: RunConfig
    guide: tuple[str, float] | None = None  # (class label, guidance w): sample that class, guided (Ho & Salimans 2022)


@dataclass(frozen=True)
class Lesson:
    id: str
    title: str
    caption: str  # what to watch, shown in the GUI
    data: str
    score: str  # "truth" (analytic/empirical reference) or "learned" (train each variant)
    train_steps: int
    particles: int
    variants: tuple[Variant, ...]
    expect: tuple[dict[str, Any], ...]
    view: dict[str, Any] = field(default_factory=dict)


def _run_config(base: dict[str, Any], data: str) -> RunConfig:
    parts = {"model": ModelConfig, "noise": NoiseConfig, "loss": LossConfig, "train": TrainConfig}
    return RunConfig(data=data, **{k: _from_dict(cls, base.get(k, {})) for k, cls in parts.items()})


def _sections(raw: object, what: str) -> dict[str, dict[str, Any]]:
    """A lesson's `run` block: an object of setting objects (model, noise, loss, train)."""
    if not isinstance(raw, dict) or not all(isinstance(v, dict) for v in raw.values()):
        raise ConfigError(f"{what} must be an object of setting objects")
    return raw


def _of_type(raw: dict[str, Any], key: str, kind: type, default: Any = ...) -> Any:
    """raw[key] (or its default), which must be a `kind` (str, list, dict)."""
    value = raw[key] if default is ... else raw.get(key, default)
    if not isinstance(value, kind):
        raise ConfigError(f"{key!r} has the wrong type ({type(value).__name__})")
    return value


def parse_lesson(raw: dict[str, Any]) -> Lesson:
    """A Lesson from its JSON object; any malformed part is one ConfigError sentence."""
    lesson_id = raw.get("id", "?") if isinstance(raw, dict) else "?"
    try:
        if not isinstance(raw, dict):
            raise ConfigError(f"a lesson must be a JSON object, not {type(raw).__name__}")
        data = _of_type(raw, "data", str)
        base_run = _sections(raw.get("run", {}), "'run'")
        variants = []
        for v in _of_type(raw, "variants", list):
            if not isinstance(v, dict):
                raise ConfigError("each variant must be an object")
            own = _sections(v.get("run", {}), "a variant's 'run'")
            run = {k: {**base_run.get(k, {}), **own.get(k, {})} for k in ("model", "noise", "loss", "train")}
            variants.append(Variant(_of_type(v, "label", str), _from_dict(SamplerConfig, v.get("sampler", {})),
                                    _run_config(run, data), _guide(v.get("guidance"))))
        if not variants:
            raise ConfigError("it has no variants")
        expect = _of_type(raw, "expect", list, [])
        if not all(isinstance(e, dict) and isinstance(e.get("metric"), str) for e in expect):
            raise ConfigError("each expectation must be an object with a 'metric'")
        _check_expectations(expect, {v.label for v in variants})
        score = _of_type(raw, "score", str, "learned")
        if score not in ("truth", "learned"):
            raise ConfigError(f"score must be 'truth' or 'learned', not {score[:40]!r}")
        return Lesson(
            id=_of_type(raw, "id", str), title=_of_type(raw, "title", str), caption=_of_type(raw, "caption", str),
            data=data, score=score,
            train_steps=whole_number(raw.get("train_steps", 0), "train_steps", 0, MAX_STEPS),
            particles=whole_number(raw.get("particles", 2000), "particles", 1, MAX_SAMPLES),
            variants=tuple(variants), expect=tuple(expect), view=dict(_of_type(raw, "view", dict, {})))
    except KeyError as exc:
        raise ConfigError(f"lesson {str(lesson_id)[:40]} is malformed: it has no {exc}") from exc
    except ConfigError as exc:
        raise ConfigError(f"lesson {str(lesson_id)[:40]} is malformed: {exc}") from exc


def _guide(raw: object) -> tuple[str, float] | None:
    """A variant's {"class": K, "w": W} (K as in the data; W >= 0), or None."""
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - {"class", "w"} or "class" not in raw:
        raise ConfigError("a variant's 'guidance' must be an object with a 'class' and optionally 'w'")
    from .config import finite_number
    from .limits import MAX_GUIDANCE

    return str(raw["class"]), finite_number(raw.get("w", 0.0), "guidance w", 0.0, MAX_GUIDANCE)


def _check_expectations(expect: list[dict[str, Any]], labels: set[str]) -> None:
    """Each expectation names a known metric, variants of this lesson, and one claim form (see `evaluate_claims`)."""
    for e in expect:
        if e["metric"] not in METRICS:
            raise ConfigError(f"unknown metric {e['metric'][:40]!r} in an expectation")
        if "ratio_at_least" in e:
            named, numbers = [e.get("worse"), e.get("better")], [e["ratio_at_least"]]
        elif "above" in e or "below" in e:
            named, numbers = [e.get("variant")], [e[k] for k in ("above", "below") if k in e]
        else:
            raise ConfigError("an expectation needs 'above', 'below' or 'ratio_at_least'")
        for label in named:
            if not (isinstance(label, str) and label in labels):
                raise ConfigError(f"an expectation names {str(label)[:40]!r}, which is not one of its variants")
        if not all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in numbers):
            raise ConfigError("an expectation's bound must be a finite number")


def load_lesson_file(path: str | Path) -> Lesson:
    """One lesson file: size-checked before it is read, then parsed and checked (ConfigError)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            raise ConfigError(f"lesson file {path.name} is {size:,} bytes; the most this program reads is "
                              f"{MAX_JSON_BYTES:,}")
        blob = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read lesson file {path.name}: {exc.strerror or exc}") from exc
    return parse_lesson(parse_json(blob, f"lesson file {path.name}"))


def load_lessons(directory: Path = LESSON_DIR) -> list[Lesson]:
    """All lessons, in file-name order (files are numbered 01-..., 02-...)."""
    return [load_lesson_file(p) for p in sorted(directory.glob("*.json"))]


def lesson_by_id(lesson_id: str, directory: Path = LESSON_DIR) -> Lesson:
    for lesson in load_lessons(directory):
        if lesson.id == lesson_id:
            return lesson
    raise ConfigError(f"no lesson {lesson_id!r}")


# --------------------------------------------------------------------------- what a lesson measures

SHARE = "share"  # a metric in [0, 1], said as a percentage
METRICS: Mapping[str, tuple[str, str]] = MappingProxyType({
    # name: (what it is, in the words a claim's sentence uses; "share" or "number")
    "on_mode": ("share of particles within 3 std of a mode", SHARE),
    "mode_spread": ("spread around the modes over that of the law the sampler targets (the data smoothed "
                    "by its last σ, or the clean data when the sampler ends with a Tweedie step; 1 = alike, "
                    "0 = collapsed)", "number"),
    "mode_weight_error": ("largest gap between the particles' mode weights and the true weights", "number"),
    "stayed_in_basin": ("share of particles that end in the mode noise-free ascent from their start reaches", SHARE),
    "sw_ratio": ("sliced Wasserstein distance to the data over that of other data draws, their mean (inf: a particle "
                 "is not finite)", "number"),
    "off_data": ("share of particles farther than 3σ (the sampler's last σ) from every data point", SHARE),
    "off_data_exact": ("the same share for the same sampler, from the first 250 of the same starts, driven by the "
                       "exact score", SHARE),
    "score_error": ("relative score error near the data (q_σ draws) at the net's own σ", "number"),
    "score_error_untrained": ("the same error before training", "number"),
    "score_error_drop": ("1 - trained / untrained score error", SHARE),
    "score_error_clean": ("relative error against the clean data score at the clean data points, each net at its own "
                          "σ: like for like across losses", "number"),
    "smoothing_bias": ("the same error of the exact σ-smoothed score a one-σ net learns (0 for sm, ssm)", "number"),
    "score_error_far": ("mean relative score error |s_θ - s|² / |s|² at start-box points farther than 10σ from every "
                        "data point (per point, so regions of a small true score count as much as those of a large one)",
                        "number"),
    "far_wrong_share": ("share of those far points where that pointwise error exceeds 0.5", SHARE),
    "loss_first": ("mean training loss over the first 10% of steps", "number"),
    "loss_last": ("mean training loss over the last 10% of steps", "number"),
    "loss_drop": ("(first - last) / |first| of the training loss: > 0 when it falls, for negative losses "
                  "(sm, ssm) too", "number"),
    "loss_floor": ("the training loss of the exact score (Monte Carlo)", "number"),
    "loss_zero": ("the training loss of predicting s = 0 (exact)", "number"),
    "gap_closed": ("share of the gap from predicting zero to the exact score's loss that training closed "
                   "((zero - last) / (zero - floor))", SHARE),
    "seconds_per_step": ("seconds per training step (machine-dependent)", "number"),
    "class_on_mode": ("share of particles within 3 std of a mode of the class they were asked for", SHARE),
    "class_spread": ("spread of each of that class's modes' particles about their own mean, over the class's "
                     "own spread (1 = alike; guidance shrinks it)", "number"),
    "class_offset": ("distance from each of that class's modes to the mean of its particles, in the mode's std "
                     "(0 = centred on the data's mode)", "number"),
    "variance_ratio": ("the particles' mean squared distance to their mode over that of the law the sampler targets "
                       "(the data smoothed by its σ): 1 = unbiased", "number"),
    "ula_variance": ("that ratio in closed form for unadjusted Langevin at this step size ε, each mode taken as a "
                     "Gaussian alone of per-axis variance v: 1 / (1 - ε/2v)", "number"),
    "acceptance_rate": ("share of MALA's proposals accepted over the whole run", SHARE),
})
# What the live checks call each metric (one place: the CLI's sentences and the window's checks).
METRIC_NAMES: Mapping[str, str] = MappingProxyType({
    "on_mode": "share on a mode", "mode_spread": "spread around the modes", "mode_weight_error": "mode-weight error",
    "stayed_in_basin": "share that stayed in its basin", "sw_ratio": "SW ratio to the data",
    "off_data": "share off the data", "off_data_exact": "share off the data with the exact score",
    "score_error": "score error near the data", "score_error_untrained": "untrained score error",
    "score_error_drop": "drop of the score error", "score_error_clean": "score error against the clean data",
    "smoothing_bias": "smoothing bias", "score_error_far": "mean score error far from the data",
    "far_wrong_share": "share of far points where the score is wrong", "loss_first": "first loss",
    "loss_last": "last loss", "loss_drop": "drop of the loss", "loss_floor": "loss of the exact score",
    "loss_zero": "loss of predicting zero", "gap_closed": "share of the loss gap closed",
    "seconds_per_step": "seconds per step", "class_on_mode": "share on the class's modes",
    "class_spread": "spread on the class's modes", "class_offset": "offset from the class's modes",
    "variance_ratio": "variance over the target's",
    "ula_variance": "closed form for unadjusted Langevin", "acceptance_rate": "acceptance rate",
})
# The numbers a bound claim rests on, shown beside it (a caption that names them finds them on screen).
BEHIND: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "gap_closed": ("loss_zero", "loss_floor", "loss_last"), "loss_drop": ("loss_first", "loss_last"),
    "score_error_drop": ("score_error_untrained", "score_error"),
    "score_error_clean": ("smoothing_bias", "seconds_per_step"),
    "variance_ratio": ("ula_variance", "acceptance_rate"),
})
# Measured on sampled particles: a lesson whose claims name none of these samples nothing.
PARTICLE_METRICS = frozenset({"on_mode", "mode_spread", "mode_weight_error", "stayed_in_basin", "sw_ratio",
                              "off_data", "off_data_exact", "class_on_mode", "class_spread", "class_offset",
                              "variance_ratio", "ula_variance", "acceptance_rate"})
FLOOR_METRICS = frozenset({"loss_floor", "loss_zero", "gap_closed"})
CLEAN_METRICS = frozenset({"score_error_clean", "smoothing_bias"})
LEARNED_ERROR = 0.5  # a trained net has learned when its score error is at most this ...
LEARNED_FRACTION = 0.5  # ... and at most this fraction of its untrained error (flows: of its untrained SW ratio)
# A flow (fm, ot-fm) has no score worth judging: velocity -> score divides by t, which is 0.001 at its
# own σ, and ot-fm's net learns the OT-coupled velocity, which has no closed form. It has learned when
# its samples with many solver steps (the same for every flow) are near the data (see `learned_measure`).
LEARNED_SW_RATIO = 3.0  # a flow has learned when its many-step SW ratio is at most this ...
FLOW_CHECK_SAMPLER = SamplerConfig("heun", steps=32)  # ... with these steps, whatever its lesson samples with
FLOW_CHECK_PARTICLES = 1000  # particles of that check, and of each of the two data draws its SW ratio uses
FAR_SIGMAS = 10.0  # "far from the data": more than this many σ from every data point
FAR_WRONG = 0.5  # a pointwise |s_θ - s|² / |s|² above this is "wrong" (|s_θ - s| > 0.71 |s|)
OFF_DATA_SIGMAS = 3.0  # a particle is "on the data" within this many σ of a data point
FLOOR_SAMPLES = 50_000  # Monte-Carlo draws for the exact-score loss (s.e. ~1e-3 of D/2, measured)
CLEAN_SIGMA = 1e-3  # "clean data": the floor relative_score_error puts under every σ
ERROR_POINTS = 1000  # clean data points whose q_σ draws measure the score error
REFERENCE_POINTS = 2000  # data points that define "near the data" (distances) and the empirical truth
EXACT_PARTICLES = 250  # off_data_exact runs the first 250 starts (binomial s.e. <= 0.9% at a 2% share) ...
EXACT_REFERENCE_POINTS = 1000  # ... with the empirical score of 1000 points (spacing ~σ/10 on the segment)


@dataclass(frozen=True)
class Claim:
    """One measured statement of a lesson: `value` against `threshold`, and whether it holds.

    Ratio claims compare two variants: value = worse / better, threshold = the least ratio."""

    name: str  # stable id, e.g. "mode_weight_error[plain Langevin] ≥ 3× [annealed Langevin]"
    value: float
    threshold: float
    holds: bool
    sentence: str  # the same in words, with the numbers behind it
    line: str = ""  # the live check: short, every number it rests on, its threshold and a ✓ or ✗

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "value": _json_number(self.value), "threshold": _json_number(self.threshold),
                "holds": self.holds}


@dataclass(frozen=True)
class TrainedNet:
    """A network a lesson trained, judged by its `learned_measure`: a score net by its score error
    near the data at its own σ, a flow by the SW ratio of its many-step samples; each against the
    same measure of its untrained (seeded initial) net."""

    name: str  # the variant's label
    sigma: float  # the σ of its score error (see `own_sigma`)
    sigma_is: str  # why that σ
    trained: float  # the measure of the trained net ...
    untrained: float  # ... and of the net it started from
    measure: str = "score_error"  # "score_error" | "sw_ratio" (see `learned_measure`)

    def to_json(self) -> dict[str, Any]:
        base = {"name": self.name, "learned_by": self.measure}
        if self.measure == "sw_ratio":
            return {**base, "solver": _check_solver(), "sw_ratio_trained": _json_number(self.trained),
                    "sw_ratio_untrained": _json_number(self.untrained)}
        return {**base, "sigma": self.sigma, "sigma_is": self.sigma_is,
                "score_error_trained": _json_number(self.trained),
                "score_error_untrained": _json_number(self.untrained)}


def _json_number(value: float) -> float | None:
    """JSON has no inf or NaN: those are null (a claim's `holds` still says what happened)."""
    return float(value) if math.isfinite(value) else None


def own_sigma(run: RunConfig) -> tuple[float, str]:
    """The σ at which a trained net is judged, and why: its one σ (dsm, dsm-eps); 0, the clean
    data score, for unconditional nets (sm, ssm; evaluated at the 1e-3 floor of
    `relative_score_error`); σ_min for ladders and VE SDEs, the last level annealed Langevin and
    the Tweedie step use, so the one the samples show; the VP marginal std at t = eps for vp-sde."""
    process = _process(run)
    why = {"single": "the one σ it is trained at", "none": "the clean data score (an unconditional net ignores σ)",
           "vp": "the VP marginal std at t = eps, where sampling ends"}
    return process.final_sigma, why.get(process.kind, "σ_min: the last level the sampler uses, which the samples show")


def _process(run: RunConfig):
    """The run's noising process (how its loss noises data)."""
    return loss_spec(run.loss.name).process(run.noise)


def learned_measure(run: RunConfig) -> str:
    """What "has learned" measures for the net of `run`, the one place this is decided: "sw_ratio"
    for flows (a LinearInterpolant process: fm, ot-fm), the SW ratio of samples with
    FLOW_CHECK_SAMPLER's many steps, whose velocity-to-score conversion at their own σ (t = eps)
    divides by t and whose OT-coupled target (ot-fm; Tong et al. 2024) has no closed form;
    "score_error" for score-based nets, the relative score error near the data at `own_sigma`."""
    return "sw_ratio" if isinstance(_process(run), LinearInterpolant) else "score_error"


def _check_solver() -> str:
    return f"{FLOW_CHECK_SAMPLER.steps} {FLOW_CHECK_SAMPLER.name.capitalize()} steps"


def lesson_training_config(lesson: Lesson, variant: Variant) -> RunConfig:
    """A variant's run with the lesson's step count (the learning-rate schedule spans it), as the GUI trains it."""
    return replace(variant.run, train=replace(variant.run.train, steps=lesson.train_steps))


# --------------------------------------------------------------------------- training and sampling, cached
# Lessons share networks and particle runs (lesson 5 retrains lesson 4's one-σ net, lesson 8 reruns lesson 3's
# annealed sampler): both are pure functions of hashable settings, so a small cache serves them once per process.

@dataclass(frozen=True)
class _Net:
    model: torch.nn.Module  # the EMA weights, read-only
    sigma: float  # own_sigma of its run
    error_untrained: float  # its `learned_measure`, before ...
    error_trained: float  # ... and after training
    losses: tuple[float, ...]
    seconds_per_step: float


@dataclass(frozen=True)
class LiveVariant:
    """What the window ran for the variant it shows, in the lesson's standardised coordinates:
    where its particles began and ended their sampler's schedule (None: nothing sampled yet), and
    the net it trained with its loss curve (None for truth lessons). `run_lesson` measures these
    in place of its own headless run of that variant."""

    start: torch.Tensor | None = None
    end: torch.Tensor | None = None
    model: torch.nn.Module | None = None
    losses: tuple[float, ...] = ()
    seconds_per_step: float = math.nan
    acceptance_rate: float | None = None  # MALA's accepted / proposed over the chain's run so far


@lru_cache(maxsize=16)
def _untrained_error(data: str, seed: int, run: RunConfig) -> float:
    """The learned measure of the net `run` starts from (its seeded initial weights), as `_trained` measures it."""
    from .training import Trainer

    dataset, standardizer = _data(data, seed)
    return _net_error(Trainer(dataset, run, standardizer).score_fn(), data, seed, run)


def _net_error(model: torch.nn.Module, data: str, seed: int, run: RunConfig) -> float:
    """What "has learned" judges (`learned_measure`): the relative score error near the data at the
    net's own σ, or a flow's SW ratio with FLOW_CHECK_SAMPLER."""
    dataset, standardizer = _data(data, seed)
    if learned_measure(run) == "sw_ratio":
        sampler = make_sampler(FLOW_CHECK_SAMPLER, run.noise, run.loss.name)
        g = torch.Generator().manual_seed(seed + 7)
        device = next(model.parameters()).device
        x = run_sampler(sampler, model, sampler.init(FLOW_CHECK_PARTICLES, dataset.dim, g).to(device), g)
        return _sw_ratio(standardizer.inverse(x.float().cpu()), _sw_baseline(dataset, seed, FLOW_CHECK_PARTICLES))
    reference, _ = reference_score_fn(dataset, standardizer, kind=_process(run))
    device = next(model.parameters()).device
    return relative_score_error(model, reference, _near_points(dataset, standardizer, ERROR_POINTS),
                                own_sigma(run)[0], _process(run), seed=3, device=device)


def _live_net(data: str, seed: int, run: RunConfig, live: LiveVariant) -> _Net:
    """The window's trained net, judged as `_trained` judges a headless one."""
    return _Net(live.model, own_sigma(run)[0], _untrained_error(data, seed, run),
                _net_error(live.model, data, seed, run), live.losses, live.seconds_per_step)


def _data(name: str, seed: int):
    dataset = load_dataset(name, seed=seed)
    return dataset, dataset.standardizer()


def _near_points(dataset, standardizer, n: int) -> torch.Tensor:
    return torch.as_tensor(standardizer.forward(dataset.points[:n]), dtype=torch.float32)


# Room for every lesson's nets at three seeds (9 x 3 = 27 runs, each a small MLP): a window that
# checks lessons live trains a headless variant once per session, and the test suite's live checks
# reuse the nets tests/test_lessons.py trained at seed 0 (straight-paths' headless FM and OT-FM: 50 s
# of its live check when trained again, 6 s when cached, on a loaded 2-core machine).
@lru_cache(maxsize=32)
def _trained(data: str, seed: int, run: RunConfig) -> _Net:
    from .training import Trainer  # torch's nets: loaded where a lesson trains, not where it is listed

    dataset, standardizer = _data(data, seed)
    trainer = Trainer(dataset, run, standardizer)
    before = _net_error(trainer.score_fn(), data, seed, run)
    t0 = time.perf_counter()
    trainer.run(run.train.steps)
    seconds = (time.perf_counter() - t0) / max(run.train.steps, 1)
    return _Net(trainer.score_fn().requires_grad_(False), own_sigma(run)[0], before,
                _net_error(trainer.score_fn(), data, seed, run), tuple(trainer.loss_history().tolist()), seconds)


def _score(data: str, score: str, run: RunConfig, seed: int, guide: tuple[str, float] | None = None):
    """The score a variant samples with: the reference (truth lessons) or its trained net; with
    `guide` (class, w) the class's guided score (the exact one of a labelled mixture, or `Guided`)."""
    from .datasets import class_index
    from .guidance import Guided
    from .truth import guided_reference_fn

    dataset, standardizer = _data(data, seed)
    if guide is not None:
        if not dataset.labelled:
            raise ConfigError(f"a guided variant needs labelled data; {data!r} has none")
        c = class_index(dataset.classes, guide[0])
    if score == "learned":
        model = _trained(data, seed, run).model
        return model if guide is None else Guided(model, c, guide[1])
    if guide is not None:
        return guided_reference_fn(dataset, standardizer, c, guide[1], _process(run))
    return reference_score_fn(dataset, standardizer, kind=_process(run))[0]


@lru_cache(maxsize=64)  # (1000, D) tensors: a few MB in all
def _particles(data: str, score: str, run: RunConfig, sampler_cfg: SamplerConfig, seed: int,
               n: int, keep: int | None = None,
               guide: tuple[str, float] | None = None) -> tuple[torch.Tensor, torch.Tensor, float | None]:
    """(start, end, MALA's acceptance rate or None) particles in standardised coordinates, started on one generator seed, so every
    variant whose sampler starts in the same box starts from the same particles. `keep` runs only
    the first `keep` of those starts, with the exact score of the first EXACT_REFERENCE_POINTS
    data points: the exact-score comparison of a learned lesson, at a fraction of the cost of an
    empirical score over every point (it is quadratic)."""
    dataset, standardizer = _data(data, seed)
    sampler = make_sampler(sampler_cfg, run.noise, run.loss.name)
    g = torch.Generator().manual_seed(seed + 5)
    start = sampler.init(n, dataset.dim, g)
    if keep is None:
        end = run_sampler(sampler, _score(data, score, run, seed, guide), start.clone(), g)
        return start, end, getattr(sampler, "acceptance_rate", None)
    exact, _ = reference_score_fn(dataset, standardizer, max_points=EXACT_REFERENCE_POINTS,
                                  kind=_process(run))
    return start[:keep], run_sampler(sampler, exact, start[:keep].clone(), g), None


# --------------------------------------------------------------------------- metrics of one variant

def _sw_baseline(dataset, seed: int, n: int) -> SWBaseline:
    """The reference draws of a lesson's SW ratios: the window's Metrics draw the same (SW_SEED)."""
    return SWBaseline(dataset.sample, n, seed=seed + SW_SEED)


def _sw_ratio(samples: torch.Tensor, baseline: SWBaseline) -> float:
    if not torch.isfinite(samples).all():
        return math.inf  # a particle flew off: no finite distance describes that
    return baseline.distance(samples)[1]


def _mode_spread(samples: torch.Tensor, gmm) -> float:
    """RMS distance of samples to their mode's mean, over the same for the mixture `gmm`."""
    x = samples.double()
    idx = gmm.responsibilities(x).argmax(1)
    rms = ((x - gmm.means[idx]) ** 2).sum(1).mean().sqrt()
    expected = torch.diagonal(gmm.covs, dim1=-2, dim2=-1).sum(-1)[idx].mean().sqrt()
    return float(rms / expected)


def _ula_variance(samples: torch.Tensor, gmm, step_size: float) -> float:
    """`variance_ratio` in closed form for unadjusted Langevin at `step_size` (in the units of
    `gmm`), each mode alone an isotropic Gaussian N(mu, v I): x' = x - (ε/v)(x - mu) + sqrt(2ε) z
    has the stationary variance v' = (1 - ε/v)² v' + 2ε, so v' = v / (1 - ε/2v) (stable for ε < 2v;
    inf beyond). Weighted as `_mode_spread` weighs the modes: by the particles in each."""
    v = (torch.diagonal(gmm.covs, dim1=-2, dim2=-1).sum(-1) / gmm.dim)[gmm.responsibilities(samples.double()).argmax(1)]
    if bool((step_size >= 2 * v).any()):
        return math.inf
    return float((v / (1 - step_size / (2 * v))).sum() / v.sum())


def _distance_to_data(x: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    """Distance of each row of x to its nearest data point (inf for non-finite rows)."""
    d = torch.cdist(x.double(), data.double()).min(1).values
    return torch.where(torch.isfinite(d), d, torch.full_like(d, math.inf))


def _far_score_errors(score_fn, reference, data: torch.Tensor, sampler, sigma: float, dim: int,
                      n: int = 4000) -> torch.Tensor:
    """Pointwise relative score errors |s_θ - s|² / |s|² at points drawn like the sampler's
    starting particles but farther than FAR_SIGMAS·σ from every data point: where the net never
    saw a training sample. Pointwise, because the true score far away grows like distance / σ²:
    a ratio of means would only weigh the farthest corners."""
    x = sampler.init(n, dim, torch.Generator().manual_seed(29))
    x = x[_distance_to_data(x, data) > FAR_SIGMAS * sigma].float()
    sig = torch.full((len(x),), float(sigma))
    with torch.no_grad():
        learned = score_fn(x, sig).double()
    truth = reference(x, sig).double()
    return ((learned - truth) ** 2).sum(1) / (truth**2).sum(1).clamp_min(1e-12)


def _clean_errors(dataset, standardizer, model, run: RunConfig) -> dict[str, float]:
    """Like for like across losses: every net (at its own σ) and the exact σ-smoothed score it
    targets, against one clean-data score at the same points (clean data, moved by the 1e-3 floor
    of `relative_score_error`, whose reference this is)."""
    kind = _process(run)
    reference, _ = reference_score_fn(dataset, standardizer, kind=kind)
    x = perturb(_near_points(dataset, standardizer, ERROR_POINTS), CLEAN_SIGMA, kind,
                torch.Generator().manual_seed(3))
    sigma = max(own_sigma(run)[0], CLEAN_SIGMA)
    own, clean = torch.full((len(x),), sigma), torch.full((len(x),), CLEAN_SIGMA)
    truth = reference(x, clean).double()

    def error(score: torch.Tensor) -> float:
        return float(((score.double() - truth) ** 2).sum(1).mean() / (truth**2).sum(1).mean().clamp_min(1e-12))

    with torch.no_grad():
        learned = model(x, own)
    return {"score_error_clean": error(learned), "smoothing_bias": error(reference(x, own))}


def loss_floor(dataset, standardizer, run: RunConfig, generator: torch.Generator,
               n: int = FLOOR_SAMPLES) -> tuple[float, float, float]:
    """The training loss of the exact score, its Monte-Carlo standard error, and the loss of
    predicting s = 0 (exact), for one-σ DSM and score matching.

    DSM at one σ (Vincent 2011), loss ½σ^p|s(x̃) + z/σ|² (p = 0 dsm, 2 dsm-eps): expanding the
    square with E[z | x̃] = -σ ∇log q_σ(x̃) gives, at s = ∇log q_σ, ½σ^p (D/σ² - E_q|∇log q_σ|²).
    Score matching (sm; ssm, whose projections have E vvᵀ = I): -½ E_p|∇log p|². Averaging
    |∇log q|² over draws has far less variance than the loss itself. Predicting s = 0 scores
    ½σ^p D/σ² (D/2 for dsm-eps): the gap between the two is all that training can remove."""
    spec = loss_spec(run.loss.name)
    if spec.noise not in ("single", "none"):
        raise ConfigError(f"the exact-score loss is worked out for one-σ DSM and score matching, not {spec.name}")
    sigma = float(run.noise.sigma) if spec.noise == "single" else 0.0
    reference, _ = reference_score_fn(dataset, standardizer)
    x = standardizer.forward(dataset.sample(n, generator)).double()
    if sigma > 0:
        x = x + sigma * torch.randn(x.shape, generator=generator, dtype=x.dtype)
    sq = (reference(x, sigma) ** 2).sum(1).double()
    if spec.noise == "none":
        return float(-0.5 * sq.mean()), float(0.5 * sq.std() / math.sqrt(n)), 0.0
    weight = sigma**2 if spec.name == "dsm-eps" else 1.0
    per = 0.5 * weight * (dataset.dim / sigma**2 - sq)
    return float(per.mean()), float(per.std() / math.sqrt(n)), 0.5 * weight * dataset.dim / sigma**2


def loss_summary(losses: Sequence[float]) -> dict[str, float]:
    """Means of the first and last tenth of a training curve, and loss_drop = (first - last) / |first|:
    positive when the loss falls, for the negative losses of sm and ssm too (a plain
    1 - last / first reads "the loss went up" when -15.6 falls to -118.5)."""
    k = max(1, len(losses) // 10)
    first, last = sum(losses[:k]) / k, sum(losses[-k:]) / k
    return {"loss_first": first, "loss_last": last, "loss_drop": (first - last) / max(abs(first), 1e-12)}


def run_lesson(lesson: Lesson, seed: int = 0, n_eval: int | None = None,
               live: Mapping[str, LiveVariant] | None = None) -> dict[str, dict[str, float]]:
    """Measure every variant: for trained ones their learned measure before and after training
    (`learned_measure`: the score error near the data at their own σ, or a flow's many-step SW
    ratio), the loss curve and seconds per step; for lessons whose claims name a
    particle metric, the samples (SW ratio, mode weights, distance to the data). Metrics that
    cost extra (far-field error, exact-score loss, basins) are measured when a claim names them.
    `live` gives, by label, what the window ran for a variant (its net and particles): those
    are measured instead of a headless run; the other variants run headless (cached)."""
    live = live or {}
    wanted = {e["metric"] for e in lesson.expect}
    dataset, standardizer = _data(lesson.data, seed)
    n = n_eval or lesson.particles
    near = _near_points(dataset, standardizer, REFERENCE_POINTS)
    sample = bool(wanted & PARTICLE_METRICS)
    if sample:
        baseline = _sw_baseline(dataset, seed, n)
    results: dict[str, dict[str, float]] = {}
    for variant in lesson.variants:
        out: dict[str, float] = {}
        run = lesson_training_config(lesson, variant)
        shown = live.get(variant.label)
        score_fn = _score(lesson.data, lesson.score, run, seed, variant.guide) if lesson.score == "truth" else None
        if variant.guide is not None:
            shown = None  # measured headless: the window shows it guided, but its class and w are the user's to move
        if lesson.score == "learned":
            net = (_live_net(lesson.data, seed, run, shown) if shown is not None and shown.model is not None
                   else _trained(lesson.data, seed, run))
            score_fn = net.model if variant.guide is None else _score(lesson.data, "learned", run, seed, variant.guide)
            if learned_measure(run) == "sw_ratio":
                out.update(learned_sw_ratio=net.error_trained, learned_sw_ratio_untrained=net.error_untrained)
            else:
                out.update(score_error=net.error_trained, score_error_untrained=net.error_untrained,
                           score_error_drop=1 - net.error_trained / max(net.error_untrained, 1e-12),
                           score_sigma=net.sigma)
            out.update(seconds_per_step=net.seconds_per_step, **loss_summary(net.losses))
            if wanted & FLOOR_METRICS:
                floor, se, zero = loss_floor(dataset, standardizer, run, torch.Generator().manual_seed(seed + 13))
                out.update(loss_floor=floor, loss_floor_se=se, loss_zero=zero,
                           gap_closed=(zero - out["loss_last"]) / (zero - floor))
            if wanted & CLEAN_METRICS:
                out.update(_clean_errors(dataset, standardizer, net.model, run))
        sampler = make_sampler(variant.sampler, variant.run.noise, variant.run.loss.name)
        if wanted & {"score_error_far", "far_wrong_share"}:
            reference, _ = reference_score_fn(dataset, standardizer, kind=_process(run))
            errors = _far_score_errors(score_fn, reference, near, sampler, own_sigma(run)[0], dataset.dim)
            out["score_error_far"] = float(errors.mean()) if len(errors) else math.nan
            out["far_wrong_share"] = float((errors > FAR_WRONG).double().mean()) if len(errors) else math.nan
        if sample:
            out.update(_sample_metrics(lesson, run, variant.sampler, seed, n, wanted, baseline, near,
                                       score_fn, shown, variant.guide))
        results[variant.label] = out
    return results


def _sample_metrics(lesson: Lesson, run: RunConfig, sampler_cfg: SamplerConfig, seed: int, n: int, wanted: set[str],
                    baseline: SWBaseline, near: torch.Tensor, score_fn,
                    shown: LiveVariant | None = None, guide: tuple[str, float] | None = None) -> dict[str, float]:
    """Particle metrics of one variant: its headless run, or the window's (`shown`) with the
    exact-score and gradient-ascent comparisons run from the window's own starts."""
    dataset, standardizer = _data(lesson.data, seed)
    sampler = make_sampler(sampler_cfg, run.noise, run.loss.name)
    if shown is None or shown.end is None:
        start, x, accepted = _particles(lesson.data, lesson.score, run, sampler_cfg, seed, n, guide=guide)
    else:  # the schedule's last move (e.g. the Tweedie denoise), as `run_sampler` ends a headless run
        with torch.no_grad():
            start, x, accepted = shown.start, sampler.finish(score_fn, shown.end), shown.acceptance_rate
    last_sigma = sampler.sigma_at(sampler.n_steps)
    samples = standardizer.inverse(x.float())

    def off(particles: torch.Tensor) -> float:
        return float((~(_distance_to_data(particles, near) <= OFF_DATA_SIGMAS * last_sigma)).double().mean())

    def from_start(cfg: SamplerConfig, score, starts: torch.Tensor) -> torch.Tensor:
        return run_sampler(make_sampler(cfg, run.noise, run.loss.name), score, starts.clone(),
                           torch.Generator().manual_seed(seed + 5))

    out = {"sw_ratio": _sw_ratio(samples, baseline)}
    # off_data only where a claim reads it: at a flow's or Heun's last σ (1e-3), "3σ from every data
    # point" is finer than the reference points are spaced
    if "off_data" in wanted:
        out["off_data"] = off(x)
    if accepted is not None:
        out["acceptance_rate"] = float(accepted)
    if "off_data_exact" in wanted and lesson.score == "learned":
        keep = min(len(start), EXACT_PARTICLES)
        if shown is None or shown.end is None:
            exact_end = _particles(lesson.data, lesson.score, run, sampler_cfg, seed, n, keep=keep)[1]
        else:
            exact, _ = reference_score_fn(dataset, standardizer, max_points=EXACT_REFERENCE_POINTS, kind=_process(run))
            exact_end = from_start(sampler_cfg, exact, start[:keep])
        out["off_data_exact"] = off(exact_end)
    gmm = dataset.gmm
    if guide is not None and gmm is not None and gmm.labels is not None and torch.isfinite(samples).all():
        from .datasets import class_index
        from .metrics import class_mode_stats

        c = class_index(dataset.classes, guide[0])
        stats = class_mode_stats(samples, gmm, c)
        own = gmm.given_class(c)
        std = torch.diagonal(own.covs, dim1=-2, dim2=-1)  # (K_c, D) per-axis variances of the class's modes
        out.update(class_on_mode=stats["on_class"],
                   class_spread=stats["spread"] / float(std.sum(-1).sqrt().mean()),
                   class_offset=stats["offset"] / float(std.max(-1).values.sqrt().mean()))
    # All-mode measures; a guided sample is one class's, measured by the class_* metrics above
    if gmm is not None and guide is None and torch.isfinite(samples).all():
        out["mode_weight_error"] = mode_weight_error(samples, gmm)
        out["on_mode"] = mode_weights(samples, gmm)[1]
        target = gmm if getattr(sampler, "denoise", False) else gmm.perturbed(last_sigma * float(standardizer.scale))
        out["mode_spread"] = _mode_spread(samples, target)
        out["variance_ratio"] = out["mode_spread"] ** 2
        if sampler.name in ("langevin", "mala"):
            out["ula_variance"] = _ula_variance(samples, target, sampler.step_size * float(standardizer.scale) ** 2)
        if "stayed_in_basin" in wanted and sampler.name == "langevin":
            ascent_cfg = replace(sampler_cfg, noise_scale=0.0)  # lesson 2's gradient-ascent variant: one run
            if shown is None or shown.end is None:
                ascent = _particles(lesson.data, lesson.score, run, ascent_cfg, seed, n)[1]
            else:
                ascent = from_start(ascent_cfg, score_fn, start)
            end = gmm.responsibilities(samples.double()).argmax(1)
            basin = gmm.responsibilities(standardizer.inverse(ascent.float()).double()).argmax(1)
            out["stayed_in_basin"] = float((end == basin).double().mean())
    return out


def needs_particles(lesson: Lesson) -> bool:
    """Whether the lesson's claims are measured on sampled particles (else on the trained nets alone)."""
    return any(e["metric"] in PARTICLE_METRICS for e in lesson.expect)


def live_claims(lesson: Lesson, label: str, shown: LiveVariant, seed: int = 0) -> list[Claim]:
    """The lesson's claims with variant `label` measured from what the window ran (`shown`, in the
    lesson's standardised coordinates): the one definition of each claim, headless and live."""
    return evaluate_claims(lesson, run_lesson(lesson, seed, live={label: shown}))


def lesson_coordinates(lesson: Lesson, seed: int = 0):  # noqa: ANN201 - a Standardizer
    """The standardisation of the lesson's data that its measurements use."""
    return _data(lesson.data, seed)[1]


# --------------------------------------------------------------------------- claims

def _said(metric: str, value: float) -> str:
    if not math.isfinite(value):
        return "not finite"
    return f"{value:.1%}" if METRICS.get(metric, ("", ""))[1] == SHARE else f"{value:.3g}"


def _mark(holds: bool) -> str:
    return "✓" if holds else "✗"


def _bound_claim(lesson_id: str, e: dict[str, Any], results: dict[str, dict[str, float]]) -> list[Claim]:
    metric, variant = e["metric"], e["variant"]
    value = _measured(lesson_id, results, variant, metric)
    claims = []
    for key, sign, holds in (("above", ">", value > e.get("above", math.nan)),
                             ("below", "<", value < e.get("below", math.nan))):
        if key in e:
            threshold = float(e[key])
            name = METRIC_NAMES[metric]
            behind = [f"{METRIC_NAMES[m]} {_said(m, results[variant][m])}" for m in BEHIND.get(metric, ())
                      if m in results[variant]]
            shown = f" ({', '.join(behind)})" if behind else ""
            claims.append(Claim(f"{metric}[{variant}] {sign} {threshold:g}", value, threshold, bool(holds),
                                f"{variant}: {name} = {_said(metric, value)} (claim: {key} "
                                f"{_said(metric, threshold)}) — {METRICS[metric][0]}",
                                f"{variant}: {name} {_said(metric, value)}{shown} — {_mark(holds)} {key} "
                                f"{_said(metric, threshold)}"))
    return claims


def _ratio_claim(lesson_id: str, e: dict[str, Any], results: dict[str, dict[str, float]]) -> Claim:
    metric, worse, better, r = e["metric"], e["worse"], e["better"], float(e["ratio_at_least"])
    a, b = _measured(lesson_id, results, worse, metric), _measured(lesson_id, results, better, metric)
    ratio = a / b if b > 0 else (math.inf if a > 0 else math.nan)
    name, holds = METRIC_NAMES[metric], bool(ratio >= r)
    return Claim(f"{metric}[{worse}] ≥ {r:g}× [{better}]", ratio, r, holds,
                 f"{name}: {worse} {_said(metric, a)}, {better} {_said(metric, b)}, ratio {ratio:.3g} "
                 f"(claim: at least {r:g}×) — {METRICS[metric][0]}",
                 f"{worse} {name} {_said(metric, a)} — {better} {_said(metric, b)} — {_mark(holds)} "
                 f"{ratio:.3g}×, at least {r:g}×")


def _measured(lesson_id: str, results: dict[str, dict[str, float]], variant: str, metric: str) -> float:
    try:
        return float(results[variant][metric])
    except KeyError as exc:
        raise ConfigError(f"lesson {lesson_id}: {metric} of {variant!r} was not measured") from exc


def trained_networks(results: dict[str, dict[str, float]], lesson: Lesson | None = None) -> list[TrainedNet]:
    """One record per network the lesson trained (the variants with an untrained measure)."""
    whys = {v.label: own_sigma(v.run)[1] for v in lesson.variants} if lesson is not None else {}
    nets = []
    for label, m in results.items():
        if "score_error_untrained" in m:
            nets.append(TrainedNet(label, float(m["score_sigma"]), whys.get(label, ""), float(m["score_error"]),
                                   float(m["score_error_untrained"])))
        elif "learned_sw_ratio_untrained" in m:
            nets.append(TrainedNet(label, math.nan, "", float(m["learned_sw_ratio"]),
                                   float(m["learned_sw_ratio_untrained"]), "sw_ratio"))
    return nets


def learned_claim(net: TrainedNet) -> Claim:
    """A trained net has learned when its measure (`learned_measure`) is at most an absolute bound
    (LEARNED_ERROR for a score error, LEARNED_SW_RATIO for a flow's SW ratio) and at most
    LEARNED_FRACTION of the same measure of its untrained net."""
    bound = LEARNED_SW_RATIO if net.measure == "sw_ratio" else LEARNED_ERROR
    threshold = min(bound, LEARNED_FRACTION * net.untrained)
    value, holds = net.trained, bool(net.trained <= threshold)
    if net.measure == "sw_ratio":
        what, short = f"SW ratio to the data with {_check_solver()}", f"SW ratio with {_check_solver()}"
    else:
        what, short = f"score error near the data at σ = {net.sigma:g}", f"score error at σ = {net.sigma:g}"
    return Claim(f"learned[{net.name}]", value, threshold, holds,
                 f"{net.name}: {what} is {_said('sw_ratio', value)} (untrained {_said('sw_ratio', net.untrained)}); "
                 f"learned means at most {threshold:.3g} (≤ {bound:g} and ≤ {LEARNED_FRACTION:g}× untrained)",
                 f"{net.name} learned: {short} {_said('sw_ratio', value)}, untrained "
                 f"{_said('sw_ratio', net.untrained)} — {_mark(holds)} at most {threshold:.3g}")


def evaluate_claims(lesson: Lesson, results: dict[str, dict[str, float]]) -> list[Claim]:
    """Every claim of the lesson, measured: its "expect" list in order, then one `learned_claim`
    per trained network. Pure: the same results give the same claims.

    Expectation forms: {"metric", "variant", "above"|"below": value} (strict) and
    {"metric", "worse", "better", "ratio_at_least": r} (worse ≥ r × better)."""
    claims: list[Claim] = []
    for e in lesson.expect:
        if "ratio_at_least" in e:
            claims.append(_ratio_claim(lesson.id, e, results))
        else:
            claims.extend(_bound_claim(lesson.id, e, results))
    claims.extend(learned_claim(net) for net in trained_networks(results, lesson))
    return claims


def check_lesson(lesson: Lesson, results: dict[str, dict[str, float]]) -> list[str]:
    """Each claim that fails, as a sentence; [] when the lesson shows all it claims."""
    return [f"{lesson.id}: {c.sentence}" for c in evaluate_claims(lesson, results) if not c.holds]
