"""Sample quality of the default settings: sliced-Wasserstein ratio to the data-vs-data baseline.

The sweep benchmarks/sweeps/quality.toml (every 2D preset x ncsn, dsm, ssm, ve-sde, vp-sde at the
default settings; each cell trains, samples with the loss's default sampler and scores with
`Run.metrics`) runs on a local process pool or on Ray, then its results.csv becomes
benchmarks/QUALITY.md; the sweep's wall time goes to benchmarks/RESULTS.md. A ratio near 1 means
the samples are as close to the data as another draw of the data is.

    python benchmarks/quality.py [--workers N] [--engine local|ray] [--address A] [--out DIR]
                                 [--losses ncsn,dsm,...] [--presets a,b] [--steps N] [--n N]
The same sweep without the tables: sgm sweep benchmarks/sweeps/quality.toml --out runs/quality
"""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path

from results import append_results  # noqa: E402 - benchmarks/ is on sys.path when run as a script
from sweep_spec import add_sweep_arguments, machine, run_spec


def number(row: dict[str, str], key: str, fmt: str) -> str:
    return format(float(row[key]), fmt) if row.get(key) else "—"


def main() -> None:
    parser = argparse.ArgumentParser()
    add_sweep_arguments(parser, "quality")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--table", default=str(Path(__file__).with_name("QUALITY.md")))
    parser.add_argument("--results", default=str(Path(__file__).with_name("RESULTS.md")))
    args = parser.parse_args()
    rows, spec, wall_s = run_spec("quality", args, steps=args.steps, n=args.n)
    header = ("| preset | loss | SW2 ratio | SW2 | baseline | MMD | NLL | on-mode | train s | sample s |\n"
              "|---|---|---|---|---|---|---|---|---|---|")
    lines = [f"| {r['data']} | {r['loss']} | "
             + (f"error: {r['error']} | | | | | | | |" if r.get("error") else
                f"{number(r, 'sw_ratio', '.2f')} | {number(r, 'sw', '.4f')} | {number(r, 'sw_base', '.4f')} | "
                f"{number(r, 'mmd', '.2g')} | {number(r, 'nll', '.2f')} | {number(r, 'on_mode', '.3f')} | "
                f"{number(r, 'train_seconds', '.1f')} | {number(r, 'sample_seconds', '.1f')} |")
             for r in rows]
    Path(args.table).write_text(
        f"# Sample quality with default settings\n\n{machine(args)}; {spec['steps']} steps, batch 512, n={spec['n']}; "
        f"command: `python benchmarks/quality.py` (the sweep benchmarks/sweeps/quality.toml)\n\n"
        "SW2 ratio = sliced-Wasserstein(samples, fresh data) / sliced-Wasserstein(fresh data, fresh data), the "
        "latter the mean over 8 fresh draws (sgm_core.metrics.SWBaseline); "
        "1.0 is indistinguishable from another draw of the data at this sample size. NLL: nats per point by the "
        "probability-flow ODE (losses with a noise ladder or an SDE).\n\n" + header + "\n" + "\n".join(lines) + "\n")
    print(header + "\n" + "\n".join(lines))
    if wall_s is None:
        print(f"(not timed: {args.out} already held results; use a fresh --out to time the sweep)")
        return
    work = sum(float(r[k]) for r in rows for k in ("train_seconds", "sample_seconds") if r.get(k))
    append_results(f"\n## Quality sweep wall time — {date.today()} — {machine(args)}\n\n"
                   f"{len(rows)} cells of benchmarks/sweeps/quality.toml ({len(spec['data'])} presets x "
                   f"{len(spec['loss'])} losses, {spec['steps']} steps, n={spec['n']}): {wall_s:.0f} s wall; "
                   f"the cells' own training + sampling {work:.0f} s, so {wall_s / max(work, 1e-9):.2f} s of wall "
                   "per second of work (1/workers is perfect scaling; the rest: start-up, scoring, the engine).\n",
                   args.results)


if __name__ == "__main__":
    main()
