"""`sgm`: the headless command line over the same core the GUI uses.

    sgm datasets
    sgm train DATA --out RUN_DIR|FILE.sgm [--config FILE.toml|.json] [--loss LOSS] [--steps N] [--seed S] ...
              [--conditional [--cfg-dropout P]]
    sgm sample RUN_DIR|FILE.sgm --out FILE.npy [--n N] [--sampler NAME] [--steps K] [--seed S] [--class K [--guidance W]]
    sgm render RUN_DIR|FILE.sgm --out FILE.gif|FILE.mp4 [--frames F] [--fps R] [--size WxH] ...
    sgm steps RUN_DIR|FILE.sgm --samplers heun,euler --steps 1,2,4,8 --out table.csv [--plot fig.png]
              [--given x=V] [--class K [--guidance W]]
    sgm sweep SPEC.toml --out DIR [--workers N] [--engine local|ray] [--address ADDR]

Every user error (bad data, unknown name, unwritable output, a full disk, diverged run) exits with
code 2 and one line on stderr; nothing half-written is left behind. SIGTERM (what `kill`,
`timeout` and a closing terminal send) is handled like Ctrl+C: the run stops and cleans up.
Every count has a ceiling from `sgm_core.limits`, so no flag can ask for gigabytes.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from . import limits
from .errors import DataError, SGMError

if TYPE_CHECKING:
    from .config import RunConfig
    from .datasets import Dataset

SESSION_SUFFIX = ".sgm"
EXIT_ERROR, EXIT_SIGINT, EXIT_SIGTERM = 2, 130, 143  # 128 + the signal's number, as shells report it
EXIT_SIGPIPE = 141  # stdout's reader left (`sgm datasets | head -1`): what a tool killed by SIGPIPE reports
AUTO = "auto"  # --sigma-max auto: the data's diameter (Song & Ermon 2020, technique 1)
# Each `sgm train` flag and the RunConfig field it sets: (section, field). One table, so --config
# files and flags speak the same names and a flag overrides exactly its field.
TRAIN_FLAGS = {
    "model": ("model", "kind"), "width": ("model", "width"), "depth": ("model", "depth"),
    "sigma_min": ("noise", "sigma_min"), "sigma_max": ("noise", "sigma_max"), "levels": ("noise", "n_levels"),
    "sigma": ("noise", "sigma"), "timesteps": ("noise", "timesteps"), "schedule": ("noise", "schedule"),
    "t_sampling": ("noise", "t_sampling"),
    "loss": ("loss", "name"), "source": ("loss", "source"),
    "steps": ("train", "steps"), "batch": ("train", "batch"), "lr": ("train", "lr"), "ema": ("train", "ema"),
    "seed": ("train", "seed"), "device": ("train", "device"), "cfg_dropout": ("train", "cfg_dropout"),
}
EXIT_CLAIM_FAILED = 1  # `sgm lesson`: the run finished, but a claim did not hold (or a net did not learn)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str):  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message}\n")


def _count(ceiling: int, lowest: int = 1):
    """An argparse type: an integer in [lowest, ceiling]; the ceiling is documented in --help."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < lowest:
            raise argparse.ArgumentTypeError(
                f"must be a positive integer, got {value}" if lowest == 1 else f"must be at least {lowest}, got {value}")
        if value > ceiling:
            raise argparse.ArgumentTypeError(f"must be at most {ceiling:,}, got {value:,}")
        return value

    return parse


_seed = _count(2**63 - 1, lowest=0)  # torch generators take 64-bit seeds


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def _number_or_auto(text: str) -> float | str:
    """A float, or the word `auto` (resolved from the data once it is loaded)."""
    if text == AUTO:
        return AUTO
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number or {AUTO}, got {text!r}") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(name.strip() for name in text.split(",") if name.strip())


def _counts(ceiling: int):
    """An argparse type: comma-separated integers in [1, ceiling]."""
    one = _count(ceiling)
    return lambda text: tuple(one(part.strip()) for part in text.split(","))


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 512x512, got {text!r}") from None
    if not (16 <= w <= limits.MAX_SIDE and 16 <= h <= limits.MAX_SIDE):
        raise argparse.ArgumentTypeError(f"size must be between 16x16 and {limits.MAX_SIDE}x{limits.MAX_SIDE}, got {text}")
    return w, h


def _guidance_scale(text: str) -> float:
    from .limits import MAX_GUIDANCE

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 <= value <= MAX_GUIDANCE:
        raise argparse.ArgumentTypeError(f"must be from 0 to {MAX_GUIDANCE:g}, got {text}")
    return value


def _class_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--class", dest="label", default=None, metavar="K",
                        help="sample class K (a label as it appears in the data file) of a run trained with --conditional")
    parser.add_argument("--guidance", type=_guidance_scale, default=None, metavar="W",
                        help="--class: classifier-free guidance scale w (Ho & Salimans 2022; 0 = the plain "
                             "class-conditional score, the default; larger sharpens toward the class)")


def _class_request(args: argparse.Namespace) -> tuple[str | None, float]:
    if args.guidance is not None and args.label is None:
        raise DataError("--guidance needs --class K: guidance steers toward a class")
    return args.label, 0.0 if args.guidance is None else args.guidance


def build_parser() -> argparse.ArgumentParser:
    from .config import BETA_SCHEDULES, TIME_SAMPLINGS
    from .losses import LOSSES
    from .samplers import SAMPLERS

    parser = _Parser(prog="sgm", description="Score Field Playground, headless: train score models and sample them.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    sub.add_parser("datasets", help="list the preset datasets")

    train = sub.add_parser("train", help="train a score model on a preset or a data file")
    train.add_argument("data", nargs="?", default=None,
                       help="a preset name (see `sgm datasets`) or a .npy/.csv/.png/.jpg/.ply/.xyz file (or `data` in --config)")
    train.add_argument("--out", required=True,
                       help="run directory to write (config.json, model.safetensors, loss.csv), or a FILE.sgm session "
                            "the app opens")
    train.add_argument("--config", default=None,
                       help="FILE.toml or FILE.json with the run's sections (data, [model], [noise], [loss], [train]); "
                            "the flags below override it")
    train.add_argument("--loss", default=None, help=f"one of {', '.join(LOSSES)} (default ncsn)")
    train.add_argument("--source", default=None,
                       help="fm / ot-fm: a preset or data file to flow from instead of Gaussian noise")
    train.add_argument("--steps", type=_count(limits.MAX_STEPS), default=None,
                       help=f"optimiser steps (default 10000, at most {limits.MAX_STEPS:,})")
    train.add_argument("--seed", type=_seed, default=None, help="seeds the init, the data draws and the loss noise (default 0)")
    train.add_argument("--device", default=None, choices=["auto", "cpu", "cuda", "mps"])
    train.add_argument("--model", default=None, choices=["score", "energy"])
    train.add_argument("--width", type=int, default=None, help="hidden units per layer (default 128)")
    train.add_argument("--depth", type=int, default=None, help="hidden layers (default 3)")
    train.add_argument("--batch", type=_count(limits.MAX_BATCH), default=None,
                       help=f"batch size (default 512, at most {limits.MAX_BATCH:,})")
    train.add_argument("--lr", type=_positive_float, default=None, help="learning rate (default 5e-3)")
    train.add_argument("--ema", type=float, default=None, help="EMA decay of the sampling weights, in [0, 1) (default 0.999)")
    train.add_argument("--sigma-min", type=float, default=None, help="smallest noise level, standardised units (default 0.01)")
    train.add_argument("--sigma-max", type=_number_or_auto, default=None,
                       help="largest noise level (default: the data's diameter, at least 3), or auto: the diameter itself")
    train.add_argument("--levels", type=int, default=None, help="levels of the ncsn sigma ladder (default 16)")
    train.add_argument("--sigma", type=float, default=None, help="the one noise level of dsm / dsm-eps (default 0.1)")
    train.add_argument("--timesteps", type=int, default=None, help="ddpm: steps T of the discrete chain (default 1000)")
    train.add_argument("--schedule", default=None, choices=list(BETA_SCHEDULES), help="ddpm: the beta schedule (default linear)")
    train.add_argument("--t-sampling", default=None, choices=list(TIME_SAMPLINGS),
                       help="fm / ot-fm: training times uniform (default) or logit-normal (Esser et al. 2024)")
    train.add_argument("--conditional", action="store_true",
                       help="a class-conditional net s(x, σ, c) with a learned null class, for classifier-free "
                            "guidance; DATA must carry labels (a label/class column, .npz labels, a *-labelled preset)")
    train.add_argument("--cfg-dropout", type=float, default=None,
                       help="--conditional: probability a label is dropped to the null class in training (default 0.1)")

    sample = sub.add_parser("sample", help="draw samples from a trained run")
    sample.add_argument("run", help="run directory written by `sgm train`, or a .sgm session with a trained model")
    sample.add_argument("--out", required=True, help="output .npy (or .csv) file, in the data's own coordinates")
    sample.add_argument("--n", type=_count(limits.MAX_SAMPLES), default=2000,
                        help=f"number of samples (default 2000, at most {limits.MAX_SAMPLES:,})")
    sample.add_argument("--sampler", default=None, help=f"one of {', '.join(SAMPLERS)} (default: the run's loss's own)")
    sample.add_argument("--steps", type=_count(limits.MAX_STEPS), default=None,
                        help="sampler steps (per level for annealed)")
    sample.add_argument("--seed", type=_seed, default=0)
    _class_flags(sample)
    sample.add_argument("--given", default=None, metavar="x=V[,y=V]",
                        help="fix these coordinates (data units; z too in 3D) and sample the rest from the model's "
                             "conditional")

    render = sub.add_parser("render", help="render an animation of Langevin particles (GIF or MP4), no display needed")
    render.add_argument("run", help="run directory written by `sgm train`, or a .sgm session with a trained model")
    render.add_argument("--out", required=True, help="output .gif or .mp4")
    render.add_argument("--frames", type=_count(limits.MAX_FRAMES), default=60,
                        help=f"frames (default 60, at most {limits.MAX_FRAMES:,})")
    render.add_argument("--fps", type=_count(100), default=20, help="frames per second (default 20, at most 100)")
    render.add_argument("--size", type=_size, default=(512, 512), help="WxH in pixels (default 512x512)")
    render.add_argument("--sampler", default=None, help=f"one of {', '.join(SAMPLERS)}")
    render.add_argument("--n", type=_count(limits.MAX_SAMPLES), default=2000,
                        help=f"number of particles (default 2000, at most {limits.MAX_SAMPLES:,})")
    render.add_argument("--seed", type=_seed, default=0)
    render.add_argument("--steps", type=_count(limits.MAX_STEPS), default=None,
                        help="sampler steps (per level for annealed)")
    render.add_argument("--no-axes", dest="axes", action="store_false",
                        help="no axes (in 2D the frame has data-unit ticks beside the plot by default)")
    render.add_argument("--no-legend", dest="legend", action="store_false",
                        help="no legend (by default one below the plot names the field, particles and data)")
    _class_flags(render)
    render.add_argument("--given", default=None, metavar="x=V[,y=V]",
                        help="animate the conditional: these coordinates fixed (data units), the rest sampled")

    steps = sub.add_parser("steps", help="steps versus quality: SW ratio, MMD and mode-weight error per sampler and NFE")
    steps.add_argument("run", help="run directory written by `sgm train`, or a .sgm session with a trained model")
    steps.add_argument("--samplers", required=True, type=_names,
                       help=f"comma-separated, from {', '.join(SAMPLERS)}")
    steps.add_argument("--steps", type=_counts(limits.MAX_STEPS), default="1,2,4,8,16,32,64",
                       help="comma-separated step counts (default 1,2,4,8,16,32,64)")
    steps.add_argument("--out", required=True, help="output table.csv: sampler, steps, nfe, sw_ratio, mmd, mode_weight_error")
    steps.add_argument("--plot", default=None, help="also a figure.png of the three metrics against NFE")
    steps.add_argument("--n", type=_count(limits.MAX_SAMPLES, lowest=2), default=2000,
                       help=f"samples per cell (default 2000, at most {limits.MAX_SAMPLES:,})")
    steps.add_argument("--seed", type=_seed, default=0)
    steps.add_argument("--given", default=None, metavar="x=V[,y=V]",
                       help="fix these coordinates (data units) and score each sampler's conditional samples against "
                            "the truth's conditional (exact for a preset mixture, the smoothed data otherwise)")
    _class_flags(steps)  # scored against that class's data

    sub.add_parser("lessons", help="list the built-in lessons")
    lesson = sub.add_parser("lesson", help="run a lesson headless and print what it measures")
    lesson.add_argument("id", help="lesson id (see `sgm lessons`)")
    lesson.add_argument("--seed", type=_seed, default=0)
    lesson.add_argument("--json", action="store_true",
                        help="print one JSON object: every claim {name, value, threshold, holds} and every trained "
                             "net's score error near the data at its own σ, before and after training")

    sweep = sub.add_parser("sweep", help="train, sample and score every cell of a TOML spec; resumable")
    sweep.add_argument("spec", help="SPEC.toml: keys as the train/sample flags; a list is a sweep axis")
    sweep.add_argument("--out", required=True, help="folder for results.csv, runs/, summary.md and summary.png")
    sweep.add_argument("--workers", type=_count(1024), default=None,
                       help="processes (local) or CPUs of a local Ray runtime (default: the CPU count)")
    sweep.add_argument("--engine", default="local", choices=["local", "ray"],
                       help='local: a process pool (default); ray: one Ray task per cell (pip install -e ".[cluster]")')
    sweep.add_argument("--address", default=None, help="Ray cluster to use: auto or ray://HOST:PORT (default: a local one)")
    return parser


def cmd_datasets(args: argparse.Namespace) -> int:
    from .datasets import PRESETS

    width = max(len(name) for name in PRESETS)
    for name, spec in PRESETS.items():
        print(f"{name:<{width}}  {spec.dim}D  {spec.description}")
    return 0


def _prepare_out_dir(path: Path) -> bool:
    """Check up front that the run directory can be written and may hold a run (so an unwritable
    path or a folder of other files fails before training). Returns whether we created it, so a
    failed run can remove exactly what it made."""
    from .checkpoint import check_run_target

    if path.exists() and not path.is_dir():
        raise DataError(f"--out {path} exists and is not a directory")
    check_run_target(path.resolve() if path.is_symlink() else path)  # as save_run will see it
    created = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".sgm-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise DataError(f"cannot write to {path}: {exc.strerror or exc}") from exc
    return created


def _check_out_file(path: Path) -> None:
    """A session file's folder must exist and be writable before training starts."""
    if path.is_dir():
        raise DataError(f"--out {path} is a directory; a session needs a file name ending in {SESSION_SUFFIX}")
    folder = path.parent
    if not folder.is_dir():
        raise DataError(f"cannot write {path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise DataError(f"cannot write {path}: the folder {folder} is not writable")


def train_config(args: argparse.Namespace) -> tuple[RunConfig, Dataset]:
    """The run's settings, from defaults < --config file < flags, and its data. `--sigma-max auto`
    becomes the standardised data's diameter; every value is checked by the configs themselves
    (a bad one is one ConfigError naming it) before any output is touched."""
    from dataclasses import replace

    from .config import RunConfig, read_settings_file
    from .datasets import load_dataset, source_dataset
    from .noise import default_sigma_max, sigma_max_from_data

    settings = {k: dict(v) if isinstance(v, dict) else v
                for k, v in (read_settings_file(args.config) if args.config else {}).items()}
    for dest, (section, name) in TRAIN_FLAGS.items():
        if getattr(args, dest) is not None:
            settings.setdefault(section, {})[name] = getattr(args, dest)
    if args.data is not None:
        settings["data"] = args.data
    if "data" not in settings:
        raise DataError("sgm train needs DATA: a preset, a data file, or `data = ...` in the --config file")
    chosen = settings.get("noise", {}).get("sigma_max")
    if chosen == AUTO:
        del settings["noise"]["sigma_max"]
    if args.cfg_dropout is not None and not args.conditional:
        raise DataError("--cfg-dropout needs --conditional (it drops class labels in training)")
    config = RunConfig.from_json(settings)  # settings first: a typo fails before a file is read
    dataset = load_dataset(config.data, seed=config.train.seed)
    if args.conditional:
        if not dataset.labelled:
            raise DataError(f"--conditional needs labelled data; {config.data!r} has no class labels (give a CSV a "
                            "label or class column, an .npz a labels array, or use a *-labelled preset)")
        config = config.with_(model=replace(config.model, classes=dataset.classes))
    if chosen is None or chosen == AUTO:  # auto: the diameter itself; unset: never below 3 (api.run_config's rule)
        standardised = dataset.standardizer().forward(dataset.points)
        top = sigma_max_from_data(standardised, seed=config.train.seed) if chosen == AUTO else default_sigma_max(standardised)
        config = config.with_(noise=replace(config.noise, sigma_max=top))
    if config.loss.source:
        source_dataset(config.loss.source, dataset.dim, seed=config.train.seed)  # loads, and matches the data
    return config, dataset


def cmd_train(args: argparse.Namespace) -> int:
    from .checkpoint import save_run
    from .config import SamplerConfig
    from .losses import loss_spec
    from .sessions import SessionState, save_session
    from .training import Trainer, device_label

    config, dataset = train_config(args)
    spec = loss_spec(config.loss.name)
    out = Path(args.out)
    as_session = out.suffix.lower() == SESSION_SUFFIX
    if as_session:
        _check_out_file(out)
        created = False
    else:
        created = _prepare_out_dir(out)
    try:
        trainer = Trainer(dataset, config)
        print(f"training {config.loss.name} on {dataset.name} ({dataset.dim}D, {len(dataset.points)} points) "
              f"on {device_label(trainer.device)}", file=sys.stderr)
        _train_with_progress(trainer, config.train.steps)
        if as_session:  # what File > Open session in the app reads: data, settings, weights, training state
            save_session(out, SessionState(
                points=dataset.points, source=config.data, run=config, sampler=SamplerConfig(name=spec.default_sampler),
                brush_radius=0.0, model=_cpu_state(trainer.model), ema=_cpu_state(trainer.ema_model),
                standardizer=trainer.standardizer, step=trainer.step, losses=trainer.loss_history(),
                resume=trainer.resume_state(), labels=dataset.labels, classes=dataset.classes,
                source_points=None if trainer.source is None else trainer.source.points))
        else:
            save_run(out, config, trainer.model, trainer.ema_model, trainer.standardizer, trainer.step,
                     trainer.loss_history(), dataset.points, dataset.labels, dataset.classes)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    print(f"wrote {out} (final loss {trainer.losses[-1]:.4g})" if len(trainer.losses) else f"wrote {out}", file=sys.stderr)
    return 0


def _cpu_state(model) -> dict:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


def _train_with_progress(trainer, steps: int) -> None:
    """Train in chunks; a tqdm bar (steps/s, loss, ETA) when stderr is a terminal."""
    from tqdm import tqdm

    chunk = 50
    if not sys.stderr.isatty():
        # No bar at all: tqdm starts its monitor thread even for a disabled bar and never stops
        # it, which would leak a thread from every in-process `main([...])` call.
        for done in range(0, steps, chunk):
            trainer.run(min(chunk, steps - done))
        return
    with tqdm(total=steps, unit="step", dynamic_ncols=True) as bar:
        done = 0
        while done < steps:
            n = min(chunk, steps - done)
            records = trainer.run(n)
            done += n
            bar.update(n)
            bar.set_postfix(loss=f"{records[-1].loss:.4g}")


def cmd_sample(args: argparse.Namespace) -> int:
    from .api import load
    from .io import check_output, save_points

    out = Path(args.out)
    if out.suffix.lower() not in (".npy", ".csv"):
        raise DataError(f"--out must end in .npy or .csv, got {out.name}")
    check_output(out)  # a missing or read-only folder fails now, not after sampling
    label, guidance = _class_request(args)
    run = load(args.run)
    if label is not None:
        run.class_of(label)  # an unconditional run or an unknown class: one sentence before sampling
    schedule = run.schedule(args.sampler, args.steps)
    condition = _warned(run.condition, args.given) if args.given is not None else None
    samples = run.sample(args.n, sampler=schedule, seed=args.seed, label=label, guidance=guidance,
                         given=condition)  # in bounded chunks
    save_points(out, samples)
    rate = getattr(schedule, "acceptance_rate", None)  # MALA reports how many proposals it accepted
    accepted = f", {rate:.1%} of proposals accepted" if rate is not None else ""
    asked = f", class {label}, guidance {guidance:g}" if label is not None else ""
    given = f", given {condition.describe(run.standardizer)}" if condition is not None else ""
    print(f"wrote {len(samples)} samples ({schedule.name}{accepted}{asked}{given}) to {out}", file=sys.stderr)
    return 0


def _warned(fn, *args, **kwargs):
    """fn(*args, **kwargs), its RuntimeWarnings printed as plain lines on stderr (a far-off --given)."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        out = fn(*args, **kwargs)
    for w in caught:
        print(str(w.message), file=sys.stderr)
    return out


def cmd_render(args: argparse.Namespace) -> int:
    from .render import render_run

    label, guidance = _class_request(args)
    _warned(render_run, args.run, args.out, frames=args.frames, fps=args.fps, size=args.size,
            sampler=args.sampler, n=args.n, seed=args.seed, steps=args.steps, axes=args.axes,
            legend=args.legend, label=label, guidance=guidance, given=args.given)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def cmd_steps(args: argparse.Namespace) -> int:
    from .api import load
    from .io import check_output
    from .steps import check_samplers, run_steps_vs_quality, write_outputs

    samplers = check_samplers(args.samplers)  # every name known before anything runs
    out, plot = Path(args.out), Path(args.plot) if args.plot else None
    if out.suffix.lower() != ".csv":
        raise DataError(f"--out must end in .csv, got {out.name}")
    if plot is not None and plot.suffix.lower() != ".png":
        raise DataError(f"--plot must end in .png, got {plot.name}")
    for path in (out, plot) if plot is not None else (out,):
        check_output(path)  # a missing or read-only folder fails now, not after every sampler ran
    label, guidance = _class_request(args)
    run = load(args.run)
    condition = _warned(run.condition, args.given) if args.given is not None else None  # checked before anything runs
    rows = run_steps_vs_quality(run, samplers, args.steps, n=args.n, seed=args.seed, given=condition,
                                label=label, guidance=guidance)
    write_outputs(rows, out, plot)  # both or neither
    for row in rows:
        print(f"{row.sampler:<12} steps={row.steps:<5} nfe={row.nfe:<5} sw_ratio={row.sw_ratio:.3g} mmd={row.mmd:.3g} "
              f"mode_weight_error={row.mode_weight_error:.3g}")
    given = f" (given {condition.describe(run.standardizer)})" if condition is not None else ""
    asked = f" (class {label}, guidance {guidance:g}, scored against that class)" if label is not None else ""
    print(f"wrote {out}" + (f" and {plot}" if plot else "") + given + asked, file=sys.stderr)
    return 0


def cmd_lessons(args: argparse.Namespace) -> int:
    from .lessons import load_lessons

    for lesson in load_lessons():
        print(f"{lesson.id:<18} {lesson.title}")
    return 0


def cmd_lesson(args: argparse.Namespace) -> int:
    """Run a lesson headless: exit 0 when every claim holds (each trained net's "learned" claim
    included), 1 when one fails, naming it on stderr; a bad id is a ConfigError (exit 2)."""
    import json

    from .lessons import evaluate_claims, lesson_by_id, run_lesson, trained_networks

    lesson = lesson_by_id(args.id)
    if not args.json:
        print(lesson.title)
        print(lesson.caption)
    results = run_lesson(lesson, seed=args.seed)
    claims = evaluate_claims(lesson, results)
    failed = [c for c in claims if not c.holds]
    if args.json:
        measured = {label: {k: (v if math.isfinite(v) else None) for k, v in m.items()} for label, m in results.items()}
        print(json.dumps({"lesson": lesson.id, "seed": args.seed, "claims": [c.to_json() for c in claims],
                          "trained": [t.to_json() for t in trained_networks(results, lesson)],
                          "measured": measured}))
    else:
        for label, metrics in results.items():
            shown = ", ".join(f"{k}={v:.3g}" for k, v in metrics.items())
            print(f"  {label}: {shown}")
        for claim in claims:
            print(f"  {'✓' if claim.holds else '✗'} {claim.sentence}")
        print("  the effect is shown" if not failed else "  the effect was not shown with this seed")
    for claim in failed:
        print(f"sgm: lesson {lesson.id} (seed {args.seed}) failed: {claim.sentence}", file=sys.stderr)
    return EXIT_CLAIM_FAILED if failed else 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from .sweeps import sweep

    sweep(args.spec, args.out, workers=args.workers, engine=args.engine, address=args.address)
    return 0


COMMANDS = {"datasets": cmd_datasets, "train": cmd_train, "sample": cmd_sample, "render": cmd_render, "steps": cmd_steps,
            "lessons": cmd_lessons, "lesson": cmd_lesson,
            "sweep": cmd_sweep}


class Terminated(BaseException):
    """SIGTERM arrived: unwinds like KeyboardInterrupt, so every `finally` and temp-file cleanup runs."""


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


@contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """While a command runs, SIGTERM raises `Terminated` instead of killing the process outright
    (the default action skips all cleanup and leaves `*.tmp-*` files and empty run dirs)."""
    if threading.current_thread() is not threading.main_thread():  # signal handlers live in the main thread
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


OUT_OF_MEMORY_WORDS = ("out of memory", "can't allocate memory", "cannot allocate memory")  # torch's allocators


def _out_of_memory(exc: BaseException) -> bool:
    """MemoryError, or torch's own: `torch.OutOfMemoryError` (CUDA, MPS) and the CPU allocator's
    RuntimeError ("DefaultCPUAllocator: can't allocate memory"). By name: no torch import here."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and any(words in str(exc).lower() for words in OUT_OF_MEMORY_WORDS)


def _stdout_gone() -> bool:
    """Is stdout a pipe whose reader has gone? poll(2) reports POLLERR for it. False where there is
    no poll (Windows) or stdout is no file (a test's capture), so a BrokenPipeError from any other
    pipe stays an error with its message."""
    try:
        import select

        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poller.poll(0))
    except (AttributeError, OSError, ValueError):
        return False


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with _sigterm_unwinds():
            code = COMMANDS[args.command](args)
            sys.stdout.flush()  # a closed pipe's error surfaces here, not in the interpreter's exit flush
            return code
    except SGMError as exc:
        print(f"sgm: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except (MemoryError, RuntimeError) as exc:
        if not _out_of_memory(exc):
            raise  # a RuntimeError that is a bug: its traceback is the report
        print("sgm: error: not enough memory for this request; try fewer points, samples or a smaller net",
              file=sys.stderr)
        return EXIT_ERROR
    except OSError as exc:  # the environment, not the input: a full disk, a vanished folder, permissions
        if isinstance(exc, BrokenPipeError) and _stdout_gone():
            # Quiet, as Unix tools are; stdout to devnull so the exit flush does not fail again
            # (Python's signal docs, "Note on SIGPIPE").
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return EXIT_SIGPIPE
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"sgm: error: {_one_line(exc.strerror or exc)}{where}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("sgm: interrupted", file=sys.stderr)
        return EXIT_SIGINT
    except Terminated:
        print("sgm: terminated", file=sys.stderr)
        return EXIT_SIGTERM


if __name__ == "__main__":
    sys.exit(main())
