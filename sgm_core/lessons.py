"""Lessons: one-click experiments, stored as JSON in assets/lessons/, run by the same core.

A lesson names its data, its run settings, and one or more *variants* (e.g. plain vs annealed
Langevin). `run_lesson` trains (or uses the analytic truth score), samples every variant from
the same starting particles, and measures what the caption claims; `check_lesson` tests each
claim in the file's "expect" list. The GUI loads the same files to set up its views.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .config import LossConfig, ModelConfig, NoiseConfig, RunConfig, SamplerConfig, TrainConfig, _from_dict
from .datasets import load_dataset
from .errors import ConfigError
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


def parse_lesson(raw: dict[str, Any]) -> Lesson:
    try:
        base_run = raw.get("run", {})
        variants = []
        for v in raw["variants"]:
            run = {k: {**base_run.get(k, {}), **v.get("run", {}).get(k, {})} for k in ("model", "noise", "loss", "train")}
            variants.append(Variant(v["label"], _from_dict(SamplerConfig, v.get("sampler", {})), _run_config(run, raw["data"])))
        return Lesson(
            id=raw["id"], title=raw["title"], caption=raw["caption"], data=raw["data"], score=raw.get("score", "learned"),
            train_steps=int(raw.get("train_steps", 0)), particles=int(raw.get("particles", 2000)),
            variants=tuple(variants), expect=tuple(raw.get("expect", [])), view=dict(raw.get("view", {})))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"lesson {raw.get('id', '?')} is malformed: {exc}") from exc


def load_lessons(directory: Path = LESSON_DIR) -> list[Lesson]:
    """All lessons, in file-name order (files are numbered 01-..., 02-...)."""
    return [parse_lesson(json.loads(p.read_text())) for p in sorted(directory.glob("*.json"))]


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
