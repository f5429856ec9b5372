"""Steps versus quality: each sampler at a range of step counts, scored against the data.

Few-step samplers are compared by what they cost, the network evaluations (NFE) per particle,
and what they give: SW ratio, MMD and mode-weight error against the data (`api.sample_metrics`,
the metrics every other table uses). NFE is counted, not declared: the score function is wrapped
in a counter, so Heun's two evaluations per step and annealed Langevin's levels show as they are.
The rows feed `sgm steps`' CSV and plot, and the window's Tools ▸ Steps vs quality. With `--given`
the samplers sample the conditional and are scored against the truth's conditional; with
`--class` (and `--guidance`) they sample one class and are scored against that class.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import astuple, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .conditioning import Condition, condition_sampler, conditional_reference, conditional_weights
from .config import NoiseConfig, SamplerConfig
from .datasets import Dataset, Standardizer
from .errors import ConfigError, DataError
from .io import Write, atomic_write_all
from .lazy import lazy_module
from .noise import Process
from .samplers import SAMPLER_SPECS, ScoreFn, log_density_of, make_sampler, run_sampler

torch = lazy_module("torch")  # imported on first use: the GUI process never needs it

if TYPE_CHECKING:
    from .api import Run

DEFAULT_STEPS = (1, 2, 4, 8, 16, 32, 64)  # NFE budgets of the plot: powers of two


@dataclass(frozen=True)
class StepsRow:
    """One sampler at one step count: its cost and its quality (data coordinates)."""

    sampler: str
    steps: int
    nfe: int  # network evaluations per particle, counted (score and log-density calls)
    sw_ratio: float  # sliced W2 to the data over data-vs-data (1 = as close as a second draw); inf: blew up
    mmd: float  # unbiased RBF MMD^2 to the data
    mode_weight_error: float  # largest mode-weight error (mixtures); NaN for other data


COLUMNS = tuple(f.name for f in fields(StepsRow))
QUALITY = ("sw_ratio", "mmd", "mode_weight_error")  # what the plot shows, one panel each


class _Counted:
    """A score function that counts its calls; a log-density it carries is counted too."""

    def __init__(self, score_fn: ScoreFn) -> None:
        self.score_fn, self.calls = score_fn, 0
        try:
            density = log_density_of(score_fn)
        except ConfigError:
            return  # no log_density attribute: samplers that need one say so themselves
        self.log_density = self._count(density)

    def _count(self, fn: Callable) -> Callable:
        def counted(*args):
            self.calls += 1
            return fn(*args)
        return counted

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.score_fn(x, sigma)


def check_samplers(names: Sequence[str]) -> tuple[str, ...]:
    """The names as a tuple, each one a registered sampler (ddim, ddpm... appear once registered)."""
    unknown = [n for n in names if n not in SAMPLER_SPECS]
    if unknown or not names:
        raise ConfigError(f"unknown sampler {unknown[0]!r}; choose from {', '.join(SAMPLER_SPECS)}" if unknown
                          else "give at least one sampler")
    return tuple(names)


def steps_vs_quality(score_fn: ScoreFn, process: Process, noise: NoiseConfig, dataset: Dataset,
                     standardizer: Standardizer, samplers: Sequence[str], steps: Sequence[int] = DEFAULT_STEPS, *,
                     n: int = 2000, seed: int = 0, device: torch.device | str = "cpu",
                     condition: Condition | None = None, guide: tuple[int, float] | None = None) -> list[StepsRow]:
    """Run each sampler at each step count from the same seed on `score_fn` (standardised
    coordinates, trained under `process` and `noise`) and score n samples against `dataset`.
    An impossible sampler for the process is the sampler's own ConfigError.

    With a `condition` every sampler runs on the free coordinates (`conditioning.condition_sampler`)
    and is scored against the truth's conditional p(x | x_f = v) (`conditioning.conditional_reference`):
    SW ratio and MMD against its draws, the mode-weight error against its weights.

    With a `guide` (class index c, w) every sampler runs on the classifier-free-guided score of a
    class-conditional net and is scored against class c's data (`guidance.class_reference`), as the
    window's live metrics are: under w > 0 the numbers say how far guidance moves the samples from
    the class (Ho & Salimans 2022). With both, the condition's truth is the reference, as live."""
    from .api import sample_metrics, sw_baseline  # api imports much of the core
    from .guidance import class_reference, guided

    truth = None
    if guide is not None:
        score_fn = guided(score_fn, *guide)
        if condition is None:
            dataset = class_reference(dataset, guide[0])
    if condition is not None:
        dataset, truth = conditional_reference(dataset, standardizer, condition)
    rows = []
    baseline = sw_baseline(dataset, n, seed)  # every cell is scored against the same draws
    for name in check_samplers(samplers):
        for k in steps:
            sampler = condition_sampler(make_sampler(SamplerConfig(name=name, steps=int(k)), noise, process),
                                        condition, process)
            counted = _Counted(score_fn)
            g = torch.Generator().manual_seed(seed)
            x = run_sampler(sampler, counted, sampler.init(n, dataset.dim, g).to(device), g)
            nfe = counted.calls
            samples = standardizer.inverse(x.detach().float().cpu()).numpy()
            if not np.isfinite(samples).all():
                rows.append(StepsRow(name, int(k), nfe, math.inf, math.inf, math.inf))
                continue
            m = sample_metrics(samples, dataset, seed=seed, baseline=baseline)
            weight_error = m.get("weight_error", math.nan)
            if truth is not None:
                got, want = conditional_weights(truth, condition, x.detach().double().cpu())
                weight_error = float((got - want).abs().max())
            rows.append(StepsRow(name, int(k), nfe, m["sw_ratio"], m["mmd"], weight_error))
    return rows


def run_steps_vs_quality(run: Run, samplers: Sequence[str], steps: Sequence[int] = DEFAULT_STEPS, *,
                         n: int = 2000, seed: int = 0, given: str | Condition | None = None,
                         label: object = None, guidance: float = 0.0) -> list[StepsRow]:
    """`steps_vs_quality` on a trained run: its EMA net, its process, its data; `given`
    ('x=0.5' as `sgm steps --given`, or `run.condition`'s) scores conditional samples against the
    truth's conditional; `label` (as in the data file) with `guidance` w samples that class of a
    class-conditional run (`Run.score_fn`) and scores it against the class's data."""
    device = next(run.model.parameters()).device
    condition = given if isinstance(given, Condition) or given is None else run.condition(given)
    guide = None
    if label is not None or guidance:
        run.score_fn(label, guidance)  # a bad label, w, or an unconditional run: its one-sentence error
        guide = (run.class_of(label), float(guidance))
    return steps_vs_quality(run.model, run.process, run.config.noise, run.reference(), run.standardizer, samplers, steps,
                            n=n, seed=seed, device=device, condition=condition, guide=guide)


def write_outputs(rows: Sequence[StepsRow], table: str | os.PathLike, plot: str | os.PathLike | None = None) -> None:
    """The rows as CSV (header: COLUMNS) and, given `plot`, their figure as PNG, written together
    (`io.atomic_write_all`): a failed plot leaves no table behind. One DataError naming the path."""
    def write_table(f) -> None:
        out = csv.writer(f)
        out.writerow(COLUMNS)
        for row in rows:
            out.writerow([f"{v:.6g}" if isinstance(v, float) else v for v in astuple(row)])

    writes: list[Write] = [(Path(table), write_table, "w", None)]
    if plot is not None:
        writes.append(_png_write(plot_rows(rows), Path(plot)))
    atomic_write_all(writes)


PLOT_PANEL = (360, 300)  # pixels per quality panel
PLOT_MARGIN = (56, 36, 16, 44)  # left, top, right, bottom
PLOT_COLORS = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
               (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))  # tab10


def plot_rows(rows: Sequence[StepsRow]) -> np.ndarray:
    """SW ratio, MMD and mode-weight error against log2 NFE, one line per sampler, as an
    (H, W, 3) uint8 image drawn with Pillow (no plotting library needed)."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=13)
    names = list(dict.fromkeys(r.sampler for r in rows))
    pw, ph = PLOT_PANEL
    left, top, right, bottom = PLOT_MARGIN
    image = Image.new("RGB", (pw * len(QUALITY), ph + 24 * ((len(names) + 3) // 4)), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    nfes = [r.nfe for r in rows if r.nfe > 0]
    x_lo, x_hi = math.log2(min(nfes, default=1)), math.log2(max(nfes, default=2))
    x_hi = x_hi if x_hi > x_lo else x_lo + 1
    for p, metric in enumerate(QUALITY):
        x0, x1, y0, y1 = p * pw + left, (p + 1) * pw - right, top, ph - bottom
        values = [getattr(r, metric) for r in rows if math.isfinite(getattr(r, metric)) and r.nfe > 0]
        lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
        hi = hi if hi > lo else lo + 1e-12 + abs(lo) * 0.1 + 1e-3
        y_of = math.log10 if lo > 0 else float  # ratios on a log axis; MMD^2 (may dip below 0) linear
        y_lo, y_hi = y_of(lo), y_of(hi)

        def at(nfe: int, value: float, x0=x0, x1=x1, y0=y0, y1=y1, y_lo=y_lo, y_hi=y_hi, y_of=y_of):
            return (x0 + (math.log2(nfe) - x_lo) / (x_hi - x_lo) * (x1 - x0),
                    y1 - (y_of(value) - y_lo) / (y_hi - y_lo) * (y1 - y0))

        draw.rectangle((x0, y0, x1, y1), outline=(0, 0, 0))
        draw.text((x0, 8), f"{metric} (lower is better)", fill=(0, 0, 0), font=font)
        for value in (lo, hi):
            draw.text((4 + p * pw, at(2 ** x_lo, value)[1] - 7), f"{value:.3g}", fill=(60, 60, 60), font=font)
        for e in range(math.ceil(x_lo), math.floor(x_hi) + 1):
            x, _ = at(2**e, lo)
            draw.line((x, y1, x, y1 + 4), fill=(0, 0, 0))
            draw.text((x - 8, y1 + 6), str(2**e), fill=(60, 60, 60), font=font)
        draw.text(((x0 + x1) // 2 - 40, y1 + 22), "network evaluations", fill=(60, 60, 60), font=font)
        for i, name in enumerate(names):
            color = PLOT_COLORS[i % len(PLOT_COLORS)]
            pts = [at(r.nfe, getattr(r, metric)) for r in rows
                   if r.sampler == name and r.nfe > 0 and math.isfinite(getattr(r, metric))]
            if len(pts) > 1:
                draw.line(pts, fill=color, width=2)
            for x, y in pts:
                draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=color)
    for i, name in enumerate(names):  # the legend, four to a row
        x, y = left + (i % 4) * 200, ph + 4 + 24 * (i // 4)
        draw.rectangle((x, y + 4, x + 14, y + 14), fill=PLOT_COLORS[i % len(PLOT_COLORS)])
        draw.text((x + 20, y + 2), name, fill=(0, 0, 0), font=font)
    return np.asarray(image, dtype=np.uint8)


def _png_write(image: np.ndarray, path: Path) -> Write:
    """An (H, W, 3) image as PNG, decoded again before it replaces `path`."""
    from PIL import Image, UnidentifiedImageError

    def verify(tmp: Path) -> None:
        try:
            with Image.open(tmp) as check:
                check.load()
        except (UnidentifiedImageError, EOFError, ValueError, SyntaxError) as exc:
            raise DataError(f"the PNG written does not read back ({exc})") from exc

    return path, lambda f: Image.fromarray(image).save(f, format="PNG"), "wb", verify
