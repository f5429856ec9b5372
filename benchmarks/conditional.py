"""Conditional sampling against the analytic conditional: every sampler, held vs imputed.

For each loss family's process, the exact joint score of a preset mixture (truth.reference_score_fn)
drives each sampler it supports through ConditionedSampler, given x = X0; the table is the largest
error of the samples' component weights against p(y | x0)'s (Bayes: GaussianMixture.conditional)
and the fraction of samples within 3 std of a conditional mode. Run:
    python benchmarks/conditional.py [--preset 6gaussians-unequal] [--x0 1.25] [--n 4000]
"""

from __future__ import annotations

import argparse

import torch

from sgm_core.conditioning import Condition, ConditionedSampler, conditional_weights, reference_mixture
from sgm_core.config import NoiseConfig, SamplerConfig
from sgm_core.datasets import make_preset
from sgm_core.errors import ConfigError
from sgm_core.losses import loss_spec
from sgm_core.samplers import SAMPLERS, WithLogDensity, make_sampler, run_sampler
from sgm_core.truth import reference_score_fn

LOSSES = ("ncsn", "ve-sde", "vp-sde", "fm", "edm", "ddpm")


def measure(preset: str, x0: float, n: int, seed: int = 0, losses=LOSSES, samplers=tuple(SAMPLERS)):
    data = make_preset(preset)
    std = data.standardizer()
    cond = Condition.from_data({0: x0}, std, data.dim)
    gmm, _ = reference_mixture(data, std)
    for loss in losses:
        noise = NoiseConfig()
        process = loss_spec(loss).process(noise)
        score, _ = reference_score_fn(data, std, kind=process)
        if loss == "ncsn":  # VE-type: MALA can use the exact log-density
            score = WithLogDensity(score, lambda x, s: gmm.log_prob(x, float(s.reshape(-1)[0])))
        for name in samplers:
            try:
                make_sampler(SamplerConfig(name=name), noise, process)
            except ConfigError:
                continue
            if name == "mala" and loss != "ncsn":
                continue
            for fixed in ("hold", "impute"):
                if fixed == "impute" and name in ("langevin", "annealed", "mala"):
                    continue
                fresh = make_sampler(SamplerConfig(name=name), noise, process)  # its own history / tally
                sampler = ConditionedSampler(fresh, cond, process, fixed)
                g = torch.Generator().manual_seed(seed)
                x = run_sampler(sampler, score, sampler.init(n, data.dim, g), g)
                got, want = conditional_weights(gmm, cond, x)
                resp_cond = gmm.conditional(cond.fixed, cond.values)
                y = x[:, list(cond.free)].double()
                idx = resp_cond.responsibilities(y).argmax(1)
                sd = resp_cond.covs[idx].diagonal(dim1=-2, dim2=-1).sqrt().max(-1).values
                on = float(((y - resp_cond.means[idx]).norm(dim=1) <= 3 * sd).double().mean())
                yield loss, name, fixed, float((got - want).abs().max()), on


def floor(preset: str, x0: float, n: int, seed: int = 0) -> float:
    """The measurement's own floor: the weight error of n exact draws of the analytic conditional."""
    data = make_preset(preset)
    std = data.standardizer()
    cond = Condition.from_data({0: x0}, std, data.dim)
    gmm, _ = reference_mixture(data, std)
    y = gmm.conditional(cond.fixed, cond.values).sample(n, torch.Generator().manual_seed(seed))
    got, want = conditional_weights(gmm, cond, cond.assemble(y, cond.fixed_tensor(y)))
    return float((got - want).abs().max())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="6gaussians-unequal")
    ap.add_argument("--x0", type=float, default=1.25)
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--losses", default=",".join(LOSSES))
    ap.add_argument("--samplers", default=",".join(SAMPLERS))
    a = ap.parse_args()
    print("| loss | sampler | fixed | max weight error | on a mode |")
    print("|---|---|---|---|---|")
    print(f"| - | exact draws of p(y given x0) | - | {floor(a.preset, a.x0, a.n):.3f} | 1.000 |", flush=True)
    for loss, name, fixed, err, on in measure(a.preset, a.x0, a.n, losses=a.losses.split(","),
                                                         samplers=a.samplers.split(",")):
        print(f"| {loss} | {name} | {fixed} | {err:.3f} | {on:.3f} |", flush=True)


if __name__ == "__main__":
    main()
