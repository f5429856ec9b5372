"""Time to quality: training seconds until the samples' sliced-Wasserstein distance to fresh data
is within 1.5x of the data-vs-data baseline, per 2D preset and loss.

Two sweeps, in one run so their times compare: benchmarks/sweeps/time_to_quality.toml (the
default settings; its ncsn is issue 15's reference, "today's ncsn") and time_to_quality_fast.toml
(the settings that train fastest at small budgets: lr 2e-2, and logit-normal times for fm; ncsn at
the same lr, so the table separates the method from the learning rate). Each trains every preset x
loss at a ladder of budgets, each its own run with its own learning-rate decay, on a local pool or on
Ray; the tables report the smallest budget that reaches the target, its training seconds and its
ratio, then issue 15's target: the fastest of fm / edm against ncsn. Appends to benchmarks/RESULTS.md.

    python benchmarks/time_to_quality.py [--presets a,b] [--losses ncsn,fm,edm] [--budgets 500,1000,...]
                                         [--workers N] [--engine local|ray] [--address A] [--out DIR]

--losses and --budgets narrow the default-settings sweep only (e.g. --losses ncsn, the reference alone:
~15 min on 2 cores with the fast sweep); --no-fast skips the second sweep.
"""

from __future__ import annotations

import argparse
import copy
import math
from datetime import date
from pathlib import Path

from results import append_results  # noqa: E402 - benchmarks/ is on sys.path when run as a script
from sweep_spec import add_sweep_arguments, machine, run_spec

TARGET = 1.5  # SW2(samples, data) / SW2(data, data)
GOAL = 0.5  # issue 15: the fastest of ours within half of ncsn's time
MODERN = ("fm", "edm")  # the methods the target is about


def ratio_text(ratio: float) -> str:
    """The SW ratio, or what it means when sampling blew up (Langevin on a score that is wrong
    far from the data can throw particles to infinity)."""
    if not math.isfinite(ratio):
        return "not finite (particles diverged)"
    return f"{ratio:.3g} (particles diverged)" if ratio > 1e3 else f"{ratio:.2f}"


def first_reaching(rows: list[dict[str, str]]) -> dict[tuple[str, str], dict[str, str]]:
    """Per (preset, loss): the row of the smallest budget at the target (`reached` set), else the
    largest budget's row."""
    out: dict[tuple[str, str], dict[str, str]] = {}
    for row in sorted(rows, key=lambda r: int(r["steps"])):
        key = (row["data"], row["loss"])
        if key in out and out[key]["reached"]:
            continue
        ratio = float(row["sw_ratio"]) if row.get("sw_ratio") else math.inf
        out[key] = {**row, "reached": "yes" if ratio <= TARGET else "", "ratio": str(ratio)}
    return out


def per_loss_table(title: str, first: dict[tuple[str, str], dict[str, str]]) -> list[str]:
    lines = [title, "| preset | loss | training s to 1.5x | steps | SW ratio then |", "|---|---|---|---|---|"]
    for (preset, loss), row in first.items():
        if row["reached"]:
            lines.append(f"| {preset} | {loss} | {float(row['train_seconds']):.2f} | {row['steps']} | "
                         f"{ratio_text(float(row['ratio']))} |")
        else:
            lines.append(f"| {preset} | {loss} | > {float(row['train_seconds'] or 'nan'):.2f} (not reached) | "
                         f"{row['steps']} | {row['error'] or ratio_text(float(row['ratio']))} |")
    return lines


def seconds(row: dict[str, str] | None) -> float:
    """Training seconds to the target; inf when it was not reached (or not run)."""
    return float(row["train_seconds"]) if row and row["reached"] else math.inf


def cell_text(row: dict[str, str] | None) -> str:
    if row is None:
        return "—"
    return f"{float(row['train_seconds']):.2f} s ({row['steps']})" if row["reached"] else f"not by {row['steps']}"


def ratio_cell(ours: float, reference: dict[str, str] | None) -> str:
    """ours / ncsn's seconds; where ncsn never reached the target, against its largest budget's
    seconds: an upper bound, written < r."""
    if reference is None or not math.isfinite(ours):
        return "—"
    r = ours / float(reference["train_seconds"])
    return f"{r:.2f}×" if reference["reached"] else f"< {r:.2f}×"


def target_table(default: dict, fast: dict, fast_name: str) -> list[str]:
    """Issue 15's target per preset: the fastest of the MODERN losses in either sweep against ncsn
    at its defaults (the reference) and against ncsn in the fast sweep (`fast_name`, e.g. "lr 0.02")."""
    arms = {f"{loss}{tag}": (first, loss) for tag, first in (("", default), (", fast", fast)) for loss in MODERN}
    lines = [f"| preset | ncsn, defaults | ncsn, {fast_name} | fastest {' / '.join(MODERN)} | ÷ ncsn defaults | "
             f"÷ ncsn {fast_name} |", "|---|---|---|---|---|---|"]
    met = 0
    presets = list(dict.fromkeys(p for p, _ in (*default, *fast)))
    for preset in presets:
        ref, ref_fast = default.get((preset, "ncsn")), fast.get((preset, "ncsn"))
        best = min(arms, key=lambda a: seconds(arms[a][0].get((preset, arms[a][1]))))
        row = arms[best][0].get((preset, arms[best][1]))
        ours = seconds(row)
        ok = ref is not None and math.isfinite(ours) and ours <= GOAL * float(ref["train_seconds"])
        met += ok
        lines.append(f"| {preset} | {cell_text(ref)} | {cell_text(ref_fast)} | {best}: {cell_text(row)} | "
                     f"{ratio_cell(ours, ref)}{' ✓' if ok else ''} | {ratio_cell(ours, ref_fast)} |")
    lines.append(f"\nWithin {GOAL}× of ncsn at its defaults on {met} of {len(presets)} presets "
                 "(training seconds; steps in brackets; ✓ where the goal is met).")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    add_sweep_arguments(parser, "time-to-quality")
    parser.add_argument("--budgets", default=None, help="comma-separated training steps instead of the spec's")
    parser.add_argument("--no-fast", action="store_true", help="skip time_to_quality_fast.toml")
    parser.add_argument("--out-table", default=str(Path(__file__).with_name("RESULTS.md")))
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")] if args.budgets else None
    rows, spec, wall_s = run_spec("time_to_quality", args, steps=budgets)
    default = first_reaching(rows)
    fast: dict = {}
    walls = [f"{wall_s:.0f} s wall" if wall_s is not None else "resumed, not timed"]
    if not args.no_fast:
        fast_args = copy.copy(args)
        fast_args.out, fast_args.losses = f"{args.out}-fast", None
        fast_rows, fast_spec, fast_wall = run_spec("time_to_quality_fast", fast_args)
        fast = first_reaching(fast_rows)
        walls.append(f"fast sweep {fast_wall:.0f} s wall" if fast_wall is not None else "fast sweep resumed")
    lines = [f"\n## Time to quality — {date.today()} — {machine(args)}; SW2 within {TARGET}x of data-vs-data with "
             f"{spec['n']} samples; {', '.join(walls)}\n"]
    lines += per_loss_table(f"Default settings (sweeps/time_to_quality.toml), budgets "
                            f"{', '.join(str(s) for s in spec['steps'])} steps:\n", default)
    if fast:
        lines += ["", *per_loss_table(f"lr {fast_spec['lr']:g}, fm with {fast_spec['t_sampling']} times "
                                      f"(sweeps/time_to_quality_fast.toml), budgets "
                                      f"{', '.join(str(s) for s in fast_spec['steps'])} steps:\n", fast)]
        lines += ["", f"Issue 15's target, the fastest {' / '.join(MODERN)} (either sweep) against ncsn:\n",
                  *target_table(default, fast, f"lr {fast_spec['lr']:g}")]
    append_results("\n".join(lines) + "\n", args.out_table)


if __name__ == "__main__":
    main()
