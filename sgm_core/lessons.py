"""Lessons: one-click experiments, stored as JSON in assets/lessons/, run by the same core.

A lesson names its data, its run settings, and one or more *variants* (e.g. plain vs annealed
Langevin). `run_lesson` trains (or uses the analytic truth score), samples every variant from
the same starting particles, and measures what the caption claims; `check_lesson` tests each
claim in the file's "expect" list. The GUI loads the same files to set up its views.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

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
from .limits import MAX_JSON_BYTES, MAX_SAMPLES, MAX_STEPS
from .losses import loss_spec
from .metrics import mode_weight_error, mode_weights, sliced_wasserstein
from .samplers import make_sampler, run_sampler
from .training import Trainer
from .truth import reference_score_fn, relative_score_error

LESSON_DIR = Path(__file__).resolve().parent.parent / "assets" / "lessons"


@dataclass(frozen=True)
class Variant:
    label: str
    sampler: SamplerConfig
    run: RunConfig


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
                                    _run_config(run, data)))
        if not variants:
            raise ConfigError("it has no variants")
        expect = _of_type(raw, "expect", list, [])
        if not all(isinstance(e, dict) and isinstance(e.get("metric"), str) for e in expect):
            raise ConfigError("each expectation must be an object with a 'metric'")
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


def run_lesson(lesson: Lesson, seed: int = 0, n_eval: int | None = None) -> dict[str, dict[str, float]]:
    """Measure every variant: sample quality (SW ratio, mode weights), and for trained variants
    the loss drop, the score-error drop, and seconds per training step."""
    dataset = load_dataset(lesson.data, seed=seed)
    n = n_eval or lesson.particles
    g_ref = torch.Generator().manual_seed(seed + 11)
    ref, ref2 = dataset.sample(n, g_ref), dataset.sample(n, g_ref)
    base_sw = sliced_wasserstein(ref2, ref, torch.Generator().manual_seed(123))
    results: dict[str, dict[str, float]] = {}
    for variant in lesson.variants:
        out: dict[str, float] = {}
        trainer = Trainer(dataset, variant.run)
        standardizer = trainer.standardizer
        if lesson.score == "truth":
            score_fn, _ = reference_score_fn(dataset, standardizer, kind=loss_spec(variant.run.loss.name).perturbation)
        else:
            reference, _ = reference_score_fn(dataset, standardizer, kind=trainer.spec.perturbation)
            err0 = _score_error(trainer, reference, variant)
            t0 = time.perf_counter()
            trainer.run(lesson.train_steps)
            out["seconds_per_step"] = (time.perf_counter() - t0) / max(lesson.train_steps, 1)
            losses = trainer.loss_history()
            k = max(1, len(losses) // 10)
            out["loss_drop"] = float(1 - losses[-k:].mean() / losses[:k].mean())
            out["score_error"] = _score_error(trainer, reference, variant)
            out["score_error_drop"] = float(1 - out["score_error"] / max(err0, 1e-12))
            score_fn = trainer.score_fn()
        sampler = make_sampler(variant.sampler, variant.run.noise, variant.run.loss.name)
        g = torch.Generator().manual_seed(seed + 5)  # identical starting particles for every variant
        x = run_sampler(sampler, score_fn, sampler.init(n, dataset.dim, g), g)
        samples = standardizer.inverse(x.float())
        out["sw_ratio"] = sliced_wasserstein(samples, ref, torch.Generator().manual_seed(123)) / base_sw
        if dataset.gmm is not None:
            out["mode_weight_error"] = mode_weight_error(samples, dataset.gmm)
            out["on_mode"] = mode_weights(samples, dataset.gmm)[1]
            out["mode_spread"] = _mode_spread(samples, dataset.gmm)
        results[variant.label] = out
    return results


def _mode_spread(samples: torch.Tensor, gmm) -> float:
    """RMS distance of samples to their mode's mean, over the same for the mixture itself:
    1 means samples spread like the data, 0 means they collapsed onto the modes."""
    x = samples.double()
    idx = gmm.responsibilities(x).argmax(1)
    rms = ((x - gmm.means[idx]) ** 2).sum(1).mean().sqrt()
    expected = torch.diagonal(gmm.covs, dim1=-2, dim2=-1).sum(-1)[idx].mean().sqrt()
    return float(rms / expected)


def _score_error(trainer: Trainer, reference, variant: Variant) -> float:
    """Relative Fisher divergence at the variant's smallest training level, on noisy data."""
    noise = variant.run.noise
    sigma = noise.sigma if variant.run.loss.name in ("dsm", "dsm-eps") else noise.sigma_min
    x = torch.as_tensor(trainer.standardizer.forward(trainer.dataset.points[:1000]), dtype=torch.float32)
    return relative_score_error(trainer.score_fn(), reference, x, sigma, trainer.spec.perturbation, seed=3,
                                device=trainer.device)


def check_lesson(lesson: Lesson, results: dict[str, dict[str, float]]) -> list[str]:
    """Each expectation that fails, as a sentence; [] when the lesson shows what it claims.

    Forms: {"metric", "variant", "below"|"above": value} and
    {"metric", "worse", "better", "ratio_at_least": r} (worse/better are variant labels).
    """
    failures = []
    for e in lesson.expect:
        m = e["metric"]
        if "ratio_at_least" in e:
            worse, better = results[e["worse"]][m], results[e["better"]][m]
            if not worse >= e["ratio_at_least"] * better:
                failures.append(f"{lesson.id}: {m} of {e['worse']} ({worse:.3g}) is not ≥ {e['ratio_at_least']}× "
                                f"that of {e['better']} ({better:.3g})")
        else:
            value = results[e["variant"]][m]
            if "below" in e and not value < e["below"]:
                failures.append(f"{lesson.id}: {m} of {e['variant']} is {value:.3g}, expected < {e['below']}")
            if "above" in e and not value > e["above"]:
                failures.append(f"{lesson.id}: {m} of {e['variant']} is {value:.3g}, expected > {e['above']}")
    return failures
