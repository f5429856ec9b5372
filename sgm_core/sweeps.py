"""Sweeps: a table of runs from one TOML spec, on a local process pool or as Ray tasks.

    data = ["moons", "8gaussians"]   # a list is a sweep axis
    loss = ["ncsn", "dsm"]
    seed = [0, 1]
    steps = 3000                     # a scalar is fixed for every cell

Keys are `sgm train`'s and `sgm sample`'s flags (`SPEC_KEYS`); the cells are the product of the
lists, in the spec's order. Each cell trains, saves its run under DIR/runs/, samples and scores
(`sgm_core.api`); DIR/results.csv gets one row per finished cell, rewritten atomically after each,
so it never holds a half row. A rerun skips the cells whose rows are there (a cell is known by a
hash of its settings, so a grown spec reuses the cells it already has) and redoes any cell that
was interrupted. A cell whose run cannot be saved (a full disk) stops the sweep with exit 2 and
gets no row: results.csv names only runs that exist, and the rerun redoes that cell.
DIR/summary.md and DIR/summary.png show the main metric as a pivot table.
"""

from __future__ import annotations

import csv
import hashlib
import io
import itertools
import json
import math
import numbers
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .config import parse_toml
from .errors import ConfigError, DataError, SGMError
from .io import atomic_write, one_line
from .limits import MAX_JSON_BYTES

MAX_CELLS = 10_000  # cells in one sweep: a typo like seed = [0, ..., 99999] fails at once
RESULTS, SUMMARY_MD, SUMMARY_PNG, RUNS = "results.csv", "summary.md", "summary.png", "runs"
PR_SET_PDEATHSIG = 1  # Linux prctl(2): the signal a process gets when its parent dies
RAY_HINT = 'the ray engine needs Ray, an optional extra: pip install -e ".[cluster]"'


@dataclass(frozen=True)
class KeySpec:
    kind: type  # int, float, str or bool (float keys take integers too)
    sweepable: bool
    help: str


def _key(kind: type, help: str, sweepable: bool = True) -> KeySpec:
    return KeySpec(kind, sweepable, help)


# One place for what a spec may say. The train keys are `api.train`'s keywords (a test keeps them equal).
TRAIN_KEYS = ("data", "loss", "steps", "seed", "batch", "lr", "device", "model", "width", "depth", "sigma_min",
              "sigma_max", "n_levels", "sigma", "ema", "timesteps", "schedule", "t_sampling", "source", "conditional",
              "cfg_dropout")
SPEC_KEYS: Mapping[str, KeySpec] = MappingProxyType({
    "data": _key(str, "a preset name or a data file (relative to the working directory)"),
    "loss": _key(str, "the loss (sgm train --loss)"),
    "steps": _key(int, "training steps"),
    "seed": _key(int, "seeds training, sampling and the metrics' reference draws"),
    "batch": _key(int, "batch size"),
    "lr": _key(float, "learning rate"),
    "device": _key(str, "auto, cpu, cuda or mps"),
    "model": _key(str, "score or energy"),
    "width": _key(int, "hidden units per layer"),
    "depth": _key(int, "hidden layers"),
    "sigma_min": _key(float, "smallest noise level (standardised units)"),
    "sigma_max": _key(float, "largest noise level (standardised units)"),
    "n_levels": _key(int, "levels of the sigma ladder"),
    "sigma": _key(float, "the one noise level of dsm / dsm-eps"),
    "ema": _key(float, "EMA decay of the sampling weights"),
    "timesteps": _key(int, "ddpm: steps T of the discrete chain"),
    "schedule": _key(str, "ddpm: the beta schedule, linear or cosine"),
    "t_sampling": _key(str, "fm / ot-fm: training times uniform or logit-normal"),
    "source": _key(str, "fm / ot-fm: a preset or data file to flow from instead of Gaussian noise"),
    "conditional": _key(bool, "a class-conditional net on labelled data (sgm train --conditional)"),
    "cfg_dropout": _key(float, "--conditional: probability a label is dropped to the null class"),
    "sampler": _key(str, "the sampler (default: the loss's own)"),
    "n": _key(int, "samples drawn and scored (default 2000)"),
    "sample_steps": _key(int, "sampler steps, per level for annealed (default: the sampler's)"),
    "likelihood": _key(bool, "fill the nll column: the PF-ODE likelihood, where the loss has one (default true)"),
    "gpus": _key(float, "GPUs per cell (the ray engine reserves them; default 0)", sweepable=False),
    "metric": _key(str, "the metric of summary.md and summary.png (default sw_ratio)", sweepable=False),
})
SETTING_KEYS = tuple(k for k, v in SPEC_KEYS.items() if v.sweepable)  # what a cell is made of (its id hashes them)
METRICS = ("sw_ratio", "sw", "sw_base", "mmd", "energy", "on_mode", "weight_error", "nll")
HIGHER_IS_BETTER = ("on_mode",)
COLUMNS_AFTER = (*METRICS, "train_seconds", "sample_seconds", "run_dir", "error")
SAVE_FAILED = "save_failed"  # a row key, never a column: the cell's run was not written, so the cell is not finished
DEFAULT_N = 2000  # `sgm sample --n`'s default


@dataclass(frozen=True)
class Cell:
    id: str  # a hash of the settings: the same settings are the same cell in any spec
    settings: Mapping[str, Any]  # the spec's keys in its order (no resources), this cell's values
    name: str  # its run directory under DIR/runs/


@dataclass(frozen=True)
class Spec:
    keys: tuple[str, ...]  # the setting keys the spec names, in its order
    axes: tuple[str, ...]  # the swept ones (lists), in its order
    cells: tuple[Cell, ...]
    gpus: float = 0.0
    metric: str = "sw_ratio"

    @property
    def columns(self) -> tuple[str, ...]:
        settings = self.keys if "sampler" in self.keys else (*self.keys, "sampler")  # the sampler used, always
        return ("cell", *settings, *COLUMNS_AFTER)


# --------------------------------------------------------------------------- reading a spec


def read_spec(source: str | os.PathLike | Mapping[str, Any]) -> Spec:
    """Parse and check a spec (a TOML file, or its dict): every key, type and value of every
    cell, so a bad one is one ConfigError naming it before anything trains."""
    where = "the spec"
    if not isinstance(source, Mapping | str | os.PathLike):
        raise ConfigError(f"a sweep spec is a TOML file's path or a dict of its keys, not {type(source).__name__}")
    if not isinstance(source, Mapping):
        path = Path(source)
        where = path.name
        try:
            if path.stat().st_size > MAX_JSON_BYTES:
                raise ConfigError(f"{where}: larger than {MAX_JSON_BYTES:,} bytes, so not a sweep spec")
            text = path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            raise ConfigError(f"no spec file {str(path)!r}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{where}: not UTF-8 text") from None
        except OSError as exc:
            raise ConfigError(f"cannot read {str(path)!r}: {exc.strerror or exc}") from None
        source = parse_toml(text, where)
    values: dict[str, list[Any]] = {}
    axes = []
    for key, value in source.items():
        spec = SPEC_KEYS.get(key)
        if spec is None:
            raise ConfigError(f"{where}: unknown key {key!r}; known keys: {', '.join(SPEC_KEYS)}")
        if isinstance(value, list):
            if not spec.sweepable:
                raise ConfigError(f"{where}: {key} cannot be swept; give one value")
            if not value:
                raise ConfigError(f"{where}: {key} is an empty list; give at least one value")
            axes.append(key)
        items = [_check_type(where, key, spec, item) for item in (value if isinstance(value, list) else [value])]
        duplicate = next((v for i, v in enumerate(items) if v in items[:i]), None)
        if duplicate is not None:
            raise ConfigError(f"{where}: {key} lists {duplicate!r} twice")
        values[key] = items
    gpus = values.pop("gpus", [0.0])[0]
    if not (math.isfinite(gpus) and 0 <= gpus <= 64):
        raise ConfigError(f"{where}: gpus must be from 0 to 64, not {gpus:g}")
    metric = values.pop("metric", ["sw_ratio"])[0]
    if metric not in METRICS:
        raise ConfigError(f"{where}: unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    keys = tuple(values)
    if not keys:  # an empty file (or gpus/metric alone) would run one cell of every default: a mistake, not a sweep
        raise ConfigError(f"{where} names no settings, so it has no cells to run; give at least one key, e.g. "
                          'data = ["moons", "8gaussians"]')
    n_cells = math.prod(len(v) for v in values.values())
    if n_cells > MAX_CELLS:
        raise ConfigError(f"{where}: the spec makes {n_cells:,} cells; the most one sweep runs is {MAX_CELLS:,}")
    cells = tuple(_cell(dict(zip(keys, combo, strict=True)), axes) for combo in itertools.product(*values.values()))
    for cell in cells:
        _check_cell(where, cell.settings)
    return Spec(keys, tuple(axes), cells, float(gpus), metric)


def _check_type(where: str, key: str, spec: KeySpec, value: object) -> Any:
    """`value` as the key's plain type (numpy numbers from a Python caller too), or a ConfigError."""
    number = {int: numbers.Integral, float: numbers.Real}.get(spec.kind)
    if isinstance(value, bool) == (spec.kind is bool) and isinstance(value, number or spec.kind):
        try:
            return spec.kind(value)
        except OverflowError:  # float(10**400): TOML integers have no size limit
            raise ConfigError(f"{where}: {key} = {_short(value)} is too large a number") from None
    kind = {int: "a whole number", float: "a number", str: "a string", bool: "true or false"}[spec.kind]
    lists = " or a list of them" if spec.sweepable else ""
    raise ConfigError(f"{where}: {key} must be {kind}{lists}, not {_short(value)}")


def _short(value: object, limit: int = 40) -> str:
    """A value's repr for a message, cut to `limit` characters (a 400-digit integer, a long list)."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check_cell(where: str, settings: Mapping[str, Any]) -> None:
    """What `run_cell` would refuse, refused now: every config value, the sampler, n, the data."""
    from .api import run_config
    from .config import MAX_SEED, SamplerConfig, whole_number
    from .datasets import PRESETS
    from .limits import MAX_SAMPLES, MAX_STEPS

    try:
        train = {k: settings[k] for k in TRAIN_KEYS if k in settings}
        train.pop("conditional", None)  # needs the data's classes: checked when the cell trains
        run_config(train.pop("data", "8gaussians"), **train)
        whole_number(settings.get("seed", 0), "seed", 0, MAX_SEED)
        if "sampler" in settings:
            SamplerConfig(name=settings["sampler"])
        whole_number(settings.get("n", DEFAULT_N), "n", 2, MAX_SAMPLES)
        if "sample_steps" in settings:
            whole_number(settings["sample_steps"], "sample_steps", 1, MAX_STEPS)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    data = settings.get("data", "8gaussians")
    if data not in PRESETS and not Path(data).is_file():
        raise ConfigError(f"{where}: data {data!r} is neither a preset nor an existing file")


def _cell(settings: dict[str, Any], axes: list[str]) -> Cell:
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    label = "-".join(_slug(settings[k]) for k in axes) or "cell"
    return Cell(digest, MappingProxyType(settings), f"{label[:80]}-{digest}")


def _slug(value: object) -> str:
    text = Path(value).stem if isinstance(value, str) and os.sep in value else str(value)
    return re.sub(r"[^A-Za-z0-9.]+", "_", text).strip("_") or "x"


# --------------------------------------------------------------------------- one cell


def run_cell(settings: Mapping[str, Any], run_dir: str, threads: int = 1) -> dict[str, Any]:
    """Train, save, sample and score one cell: its results row. A user-level failure (training
    diverged, sampling produced NaN) is the row's `error`, not the sweep's end; a failed save
    (a full disk) is the row's SAVE_FAILED, which ends the sweep. Module-level and pickle-friendly:
    process pools and Ray run it as is."""
    import torch

    from .api import train

    torch.set_num_threads(threads)
    row: dict[str, Any] = dict(settings)
    train_kwargs = {k: settings[k] for k in TRAIN_KEYS if k in settings}
    seed = settings.get("seed", 0)
    try:
        if "source" in train_kwargs:
            train_kwargs["source"] = _resolved(train_kwargs["source"])
        run = train(_resolved(train_kwargs.pop("data", "8gaussians")), progress=False, **train_kwargs)
        row["train_seconds"] = run.train_seconds
        try:
            run.save(run_dir)
        except SGMError as exc:
            return {**row, SAVE_FAILED: one_line(str(exc))}
        row["sampler"] = settings.get("sampler", run.default_sampler)
        started = time.perf_counter()
        x = run.sample(settings.get("n", DEFAULT_N), sampler=row["sampler"], steps=settings.get("sample_steps"), seed=seed)
        row["sample_seconds"] = time.perf_counter() - started
        row.update(run.metrics(x, seed=seed, nll=settings.get("likelihood", True)))
    except SGMError as exc:
        row["error"] = one_line(str(exc))
    return row


def _resolved(data: str) -> str:
    """A data file as an absolute path: pool and Ray workers may start in another directory."""
    from .datasets import PRESETS

    return data if data in PRESETS else str(Path(data).resolve())


def _init_worker(parent: int) -> None:
    """A pool worker: one torch thread (two on a busy 2-core box ran 100x slower: FACTS.md), and
    on Linux it dies with the sweep: a driver killed outright (SIGKILL, OOM) would otherwise leave
    workers training on, writing run dirs that the resumed sweep is rewriting."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL))
        except (OSError, AttributeError):  # no prctl in this libc: the worker ends after its cell instead
            pass
        if os.getppid() != parent:  # the driver died before prctl took effect
            os._exit(1)
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


# --------------------------------------------------------------------------- engines

Task = tuple[Cell, str]  # a cell and its run directory
Engine = Callable[[list[Task], int, str | None, float], Iterator[tuple[Cell, dict[str, Any]]]]


def _local_engine(tasks: list[Task], workers: int, address: str | None, gpus: float) -> Iterator[tuple[Cell, dict]]:
    """A pool of `workers` spawned processes (spawn: no forked torch or thread state), one torch
    thread each (`gpus`: checked by `sweep`; every cell then uses this machine's GPU); rows come
    back as cells finish. On any exit (Ctrl+C, SIGTERM, an error) the
    workers are stopped, so no orphan keeps training."""
    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    pool = ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(os.getpid(),))
    finished = False
    try:
        cells = {pool.submit(run_cell, dict(cell.settings), run_dir): cell for cell, run_dir in tasks}
        pending = set(cells)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                yield cells[future], future.result()
        finished = True
    finally:
        if not finished:
            _stop_workers(pool)
        pool.shutdown(wait=True, cancel_futures=True)


def _stop_workers(pool) -> None:
    """Kill a pool's worker processes: Python 3.14's `terminate_workers`, else what it does."""
    if hasattr(pool, "terminate_workers"):
        pool.terminate_workers()
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        process.terminate()


def _ray_engine(tasks: list[Task], workers: int, address: str | None, gpus: float) -> Iterator[tuple[Cell, dict]]:
    """One Ray task per cell (1 CPU, `gpus` GPUs). No address: a local runtime of `workers` CPUs;
    `auto` or `ray://...`: that cluster (DIR must then be on a filesystem every node shares). A
    runtime the caller already started (ray.init in a notebook) is used and left running."""
    try:
        import ray
    except ImportError:
        raise ConfigError(RAY_HINT) from None
    import logging

    started = not ray.is_initialized()
    if started:
        try:
            if address:
                ray.init(address=address, logging_level=logging.WARNING)
            else:
                ray.init(num_cpus=workers, include_dashboard=False, logging_level=logging.WARNING)
        except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError...: all mean "no cluster"
            raise ConfigError(f"cannot start Ray{f' at {address}' if address else ''}: {one_line(str(exc))}") from None
    pending: dict[Any, Cell] = {}
    try:
        if gpus > 0 and ray.cluster_resources().get("GPU", 0) < gpus:
            raise ConfigError(f"the spec asks gpus = {gpus:g} per cell but the Ray cluster has "
                              f"{ray.cluster_resources().get('GPU', 0):g} GPUs")
        remote = ray.remote(num_cpus=1, num_gpus=gpus)(run_cell)
        pending = {remote.remote(dict(cell.settings), run_dir): cell for cell, run_dir in tasks}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                cell = pending.pop(ref)
                yield cell, ray.get(ref)
    finally:
        for ref in pending:
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()


ENGINES: Mapping[str, Engine] = MappingProxyType({"local": _local_engine, "ray": _ray_engine})


# --------------------------------------------------------------------------- the sweep


def sweep(spec: str | os.PathLike | Mapping[str, Any], out: str | os.PathLike, *, workers: int | None = None,
          engine: str = "local", address: str | None = None, log: Callable[[str], None] | None = None
          ) -> list[dict[str, str]]:
    """Run every cell of `spec` (a TOML file or its dict) not yet in OUT/results.csv, on `engine`
    ("local": a pool of `workers` processes, default one per CPU; "ray": Ray tasks, a cluster at
    `address`), then write OUT/summary.md and OUT/summary.png. Returns the rows in spec order, as
    results.csv holds them (text; "" where a metric does not apply)."""
    if engine not in ENGINES:
        raise ConfigError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if address is not None and engine != "ray":
        raise ConfigError("an address is for the ray engine (--engine ray)")
    workers = _cpu_count() if workers is None else workers
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 1024:
        raise ConfigError(f"workers must be from 1 to 1,024, not {workers!r}")
    if engine == "ray":
        _require_ray()
    if not isinstance(out, str | os.PathLike):
        raise ConfigError(f"a sweep's out is a folder path, not {type(out).__name__}")
    say = log or (lambda line: print(line, file=sys.stderr))
    parsed = read_spec(spec)
    if engine == "local" and parsed.gpus > 0:
        _require_cuda(parsed.gpus)
    out = Path(out)
    runs = _prepare(out)
    stored, damaged = _read_results(out / RESULTS)
    if damaged:
        say(f"sweep: {out / RESULTS}: {damaged}; those cells are not counted as finished and run again")
    rows = {cell.id: {column: stored[cell.id].get(column) or "" for column in parsed.columns}
            for cell in parsed.cells if cell.id in stored}
    if len(stored) > len(rows):  # never drop a finished row: another spec's sweep, or a smaller spec
        raise DataError(f"{out / RESULTS} holds {len(stored) - len(rows)} finished cells that are not in this spec; "
                        "use another --out (a spec may grow in place, not lose cells)")
    todo = [cell for cell in parsed.cells if cell.id not in rows]
    say(f"sweep: {len(parsed.cells)} cells; skipping {len(rows)} finished; {len(todo)} to run")
    tasks = [(cell, str((runs / cell.name).resolve())) for cell in todo]
    started = time.perf_counter()
    if tasks:
        results = ENGINES[engine](tasks, workers, address, parsed.gpus)
        try:
            for i, (cell, row) in enumerate(_progress(results, len(tasks)), 1):
                if row.get(SAVE_FAILED):
                    kept = f"the {len(rows)} finished cell(s) are in {out / RESULTS}" if rows else "no cell has finished"
                    raise DataError(f"sweep stopped: cell {cell.name} trained but its run was not saved "
                                    f"({row[SAVE_FAILED]}); {kept}; rerun the same command to resume")
                done = _csv_row({**row, "cell": cell.id, "run_dir": f"{RUNS}/{cell.name}"})
                rows[cell.id] = {column: done.get(column, "") for column in parsed.columns}  # as read back from the file
                _write_results(out / RESULTS, parsed, rows)
                say(f"[{i}/{len(tasks)}] {_describe(cell, parsed, rows[cell.id])}")
        finally:
            close = getattr(results, "close", None)
            if close is not None:  # stop the workers now, not when the traceback lets the generator go
                close()
    ordered = [rows[cell.id] for cell in parsed.cells]
    write_summary(out, parsed, ordered, ran=f"{len(tasks)} cell(s) on engine {engine} with {workers} worker(s) in "
                                            f"{time.perf_counter() - started:.1f} s wall")
    say(f"wrote {out / RESULTS}, {out / SUMMARY_MD} and {out / SUMMARY_PNG}")
    return ordered


def _require_ray() -> None:
    import importlib.util

    if importlib.util.find_spec("ray") is None:
        raise ConfigError(RAY_HINT)


def _require_cuda(gpus: float) -> None:
    """The local engine runs every cell on this machine: `gpus` means this machine's CUDA GPU."""
    import torch

    if not torch.cuda.is_available():
        raise ConfigError(f"the spec asks gpus = {gpus:g} but no CUDA GPU is visible here")


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _prepare(out: Path) -> Path:
    """OUT and OUT/runs, and what a killed run left there: atomic_write's and save_run's temp
    files (`*.tmp-*`, hidden `.NAME.tmp-*` / `.NAME.old-*` run dirs). Only names our writers
    make are removed. A cell's run dir is rewritten whole when it is redone."""
    if out.exists() and not out.is_dir():
        raise DataError(f"--out {out} exists and is not a directory")
    runs = out / RUNS
    try:
        runs.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot write to {out}: {exc.strerror or exc}") from exc
    for stale in out.glob(f"{RESULTS}.tmp-*"):
        stale.unlink(missing_ok=True)
    for stale in runs.glob(".*"):
        if re.fullmatch(r"\..+\.(tmp|old)-[0-9a-f]{8}", stale.name) and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    return runs


def _progress(rows: Iterable[tuple[Cell, dict]], total: int) -> Iterator[tuple[Cell, dict]]:
    """A tqdm bar over the cells in a terminal (no bar object otherwise: no monitor thread)."""
    if not sys.stderr.isatty():
        yield from rows
        return
    from tqdm import tqdm

    with tqdm(total=total, unit="cell", dynamic_ncols=True) as bar:
        for row in rows:
            bar.update(1)
            yield row


def _describe(cell: Cell, spec: Spec, row: Mapping[str, str]) -> str:
    where = " ".join(f"{k}={cell.settings[k]}" for k in spec.axes) or cell.name
    if row.get("error"):
        return f"{where}: error: {row['error']}"
    seconds = sum(float(row[k]) for k in ("train_seconds", "sample_seconds") if row.get(k))
    return f"{where}: {spec.metric} {_shown(_number(row.get(spec.metric)))} ({seconds:.1f} s)"


# --------------------------------------------------------------------------- results.csv


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)  # the shortest text that reads back as the same float
    return str(value)


def _csv_row(row: Mapping[str, Any]) -> dict[str, str]:
    return {k: _csv_value(v) for k, v in row.items()}


CELL_ID = re.compile(r"[0-9a-f]{10}")  # `_cell`'s digest


def _read_results(path: Path) -> tuple[dict[str, dict[str, str]], str]:
    """The complete rows of a results.csv by cell id (none when there is no file yet), and what
    was damaged ("" if nothing). `_write_results` writes every column of every row and ends the
    file with a newline, so a row with another field count, a bad cell id, or a last line without
    its newline (a file cut short) is not a finished cell; nor is anything from a line the csv
    module cannot parse (a runaway quote) on. Their cells run again."""
    try:
        if path.stat().st_size > MAX_JSON_BYTES:
            raise DataError(f"{path} is larger than {MAX_JSON_BYTES:,} bytes; it is not a sweep's results")
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, ""
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    reader = csv.reader(io.StringIO(text))
    records: list[list[str]] = []
    unreadable = ""
    try:
        records.extend(reader)
    except csv.Error as exc:
        unreadable = f"unreadable from line {reader.line_num} on ({exc})"
    if not records or not records[0] or records[0][0] != "cell":
        raise DataError(f"{path} is not a sweep's results file; choose another --out")
    header, body = records[0], records[1:]
    if body and not unreadable and not text.endswith("\n"):
        body = body[:-1]  # cut short mid-row: its fields may look whole
        unreadable = "its last row is cut short"
    rows, bad = {}, 0
    for fields in body:
        if not fields:
            continue  # a blank line
        if len(fields) != len(header) or not CELL_ID.fullmatch(fields[0]):
            bad += 1
            continue
        rows[fields[0]] = dict(zip(header, fields, strict=True))
    damage = [f"{bad} damaged row(s)"] if bad else []
    return rows, "; ".join([*damage, *([unreadable] if unreadable else [])])


def _write_results(path: Path, spec: Spec, rows: Mapping[str, Mapping[str, str]]) -> None:
    """Rewrite results.csv whole (temp file, fsync, read back, rename): never a half row."""
    ordered = [rows[cell.id] for cell in spec.cells if cell.id in rows]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=spec.columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(ordered)
    text = buf.getvalue()

    def verify(tmp: Path) -> None:
        if tmp.read_text(encoding="utf-8") != text:
            raise DataError(f"{path} did not read back as written")

    try:
        atomic_write(path, lambda f: f.write(text), mode="w", verify=verify)
    except OSError as exc:
        raise DataError(f"cannot write {path}: {exc.strerror or exc}") from exc


# --------------------------------------------------------------------------- summary


def _number(text: str | None) -> float | None:
    try:
        value = float(text) if text else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def _shown(value: float | None) -> str:
    return "—" if value is None else f"{value:.3g}"


@dataclass(frozen=True)
class Pivot:
    """The mean of one column by the first swept key (rows) and the second (columns), over any
    further keys (seeds, say)."""

    metric: str
    row_key: str | None
    col_key: str | None
    row_labels: tuple[str, ...]
    col_labels: tuple[str, ...]
    values: tuple[tuple[float | None, ...], ...]
    averaged: tuple[str, ...]  # the swept keys the means run over


def pivot(spec: Spec, rows: list[Mapping[str, str]], metric: str) -> Pivot:
    row_key = spec.axes[0] if spec.axes else None
    col_key = spec.axes[1] if len(spec.axes) > 1 else None

    row_labels = main_labels(spec, row_key) if row_key else ("",)
    col_labels = main_labels(spec, col_key) if col_key else ("",)
    sums: dict[tuple[str, str], list[float]] = {}
    for cell, row in zip(spec.cells, rows, strict=True):
        value = _number(row.get(metric))
        if value is not None:
            at = (str(cell.settings[row_key]) if row_key else "", str(cell.settings[col_key]) if col_key else "")
            sums.setdefault(at, []).append(value)
    values = tuple(tuple((sum(v) / len(v)) if (v := sums.get((r, c))) else None for c in col_labels)
                   for r in row_labels)
    return Pivot(metric, row_key, col_key, row_labels, col_labels, values, spec.axes[2:])


def _markdown(p: Pivot) -> str:
    corner = f"{p.row_key} \\ {p.col_key}" if p.col_key else (p.row_key or "")
    heads = list(p.col_labels) if p.col_key else [p.metric]
    lines = [f"| {corner} | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    lines += [f"| {label} | " + " | ".join(_shown(v) for v in values) + " |"
              for label, values in zip(p.row_labels, p.values, strict=True)]
    return "\n".join(lines)


def write_summary(out: Path, spec: Spec, rows: list[Mapping[str, str]], *, ran: str) -> None:
    """summary.md (pivots of the main metric and of the training time) and summary.png (a heat
    map of the main metric), both written atomically. `ran` says what this invocation did."""
    main = pivot(spec, rows, spec.metric)
    better = "higher" if spec.metric in HIGHER_IS_BETTER else "lower"
    over = f"; mean over {', '.join(main.averaged)}" if main.averaged else ""
    sizes = " x ".join(f"{len(main_labels(spec, k))} {k}" for k in spec.axes) or "1 cell"
    total = {k: sum(v for r in rows if (v := _number(r.get(k))) is not None) for k in ("train_seconds", "sample_seconds")}
    errors = [f"- {c.name}: {r['error']}" for c, r in zip(spec.cells, rows, strict=True) if r.get("error")]
    text = (f"# Sweep summary\n\n{len(rows)} cells ({sizes}). This run: {ran}. All cells together: "
            f"{total['train_seconds']:.1f} s training, {total['sample_seconds']:.1f} s sampling.\n\n"
            f"## {spec.metric} ({better} is better{over})\n\n{_markdown(main)}\n\n"
            f"## training seconds ({'mean over ' + ', '.join(main.averaged) if main.averaged else 'per cell'})\n\n"
            f"{_markdown(pivot(spec, rows, 'train_seconds'))}\n")
    if errors:
        text += "\n## errors\n\n" + "\n".join(errors) + "\n"
    try:
        atomic_write(out / SUMMARY_MD, lambda f: f.write(text), mode="w")
    except OSError as exc:
        raise DataError(f"cannot write {out / SUMMARY_MD}: {exc.strerror or exc}") from exc
    from .video import save_png

    save_png(out / SUMMARY_PNG, heat_map(main, better))


def main_labels(spec: Spec, key: str) -> tuple[str, ...]:
    """The values of a swept key, as text, in the spec's order."""
    return tuple(dict.fromkeys(str(c.settings[key]) for c in spec.cells))


HEAT_ANCHORS = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))  # viridis stops
CELL_W, CELL_H, PAD = 96, 34, 10  # pixels


def heat_layout(p: Pivot, font: Any) -> tuple[int, int, int]:
    """(x of the first value column, image width, image height) in pixels: cell (i, j) spans
    x0 + j * CELL_W and 2 * CELL_H + i * CELL_H, each CELL_W - 2 by CELL_H - 2 pixels."""
    from PIL import Image, ImageDraw

    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    x0 = max([int(measure.textlength(s, font=font)) for s in p.row_labels] + [40]) + 2 * PAD
    width = max(x0 + CELL_W * len(p.col_labels) + PAD, int(measure.textlength(_title(p), font=font)) + 2 * PAD)
    return x0, width, 2 * CELL_H + CELL_H * len(p.row_labels) + PAD


def _title(p: Pivot, better: str = "lower") -> str:
    return f"{p.metric} ({better} is better" + (f"; mean over {', '.join(p.averaged)})" if p.averaged else ")")


def heat_font() -> Any:
    from PIL import ImageFont

    return ImageFont.load_default(size=14)


def heat_map(p: Pivot, better: str = "lower") -> Any:
    """The pivot as an (H, W, 3) uint8 image: one coloured cell per value, its number written in
    it; bright is better (the colour scale runs from the worst to the best value shown)."""
    import numpy as np
    from PIL import Image, ImageDraw

    from .render import colormap

    font = heat_font()
    table = colormap(HEAT_ANCHORS)
    x0, width, height = heat_layout(p, font)
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    draw.text((PAD, PAD // 2), _title(p, better), fill=(0, 0, 0), font=font)
    head = f"{p.row_key or ''}  \\  {p.col_key}" if p.col_key else (p.row_key or "")
    draw.text((PAD, CELL_H + 8), head, fill=(90, 90, 90), font=font)
    shown = [v for row in p.values for v in row if v is not None]
    lo, hi = (min(shown), max(shown)) if shown else (0.0, 1.0)
    for j, label in enumerate(p.col_labels if p.col_key else (p.metric,)):
        draw.text((x0 + j * CELL_W + 6, CELL_H + 8), label[:12], fill=(0, 0, 0), font=font)
    for i, (label, values) in enumerate(zip(p.row_labels, p.values, strict=True)):
        y = 2 * CELL_H + i * CELL_H
        draw.text((PAD, y + 8), label, fill=(0, 0, 0), font=font)
        for j, value in enumerate(values):
            x = x0 + j * CELL_W
            if value is None:
                draw.rectangle((x, y, x + CELL_W - 2, y + CELL_H - 2), fill=(220, 220, 220))
                draw.text((x + 6, y + 8), "—", fill=(0, 0, 0), font=font)
                continue
            t = 0.5 if hi == lo else (value - lo) / (hi - lo)
            t = t if better == "higher" else 1 - t
            color = tuple(int(c) for c in table[int(round(t * (len(table) - 1)))])
            draw.rectangle((x, y, x + CELL_W - 2, y + CELL_H - 2), fill=color)
            ink = (0, 0, 0) if sum(color) > 380 else (255, 255, 255)
            draw.text((x + 6, y + 8), _shown(value), fill=ink, font=font)
    return np.asarray(image, dtype=np.uint8)
