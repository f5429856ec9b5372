"""Every loss and sampler written as the math: a formula (HTML with Unicode math), a short
paragraph and the paper it comes from, keyed by the registry names of `sgm_core.losses.LOSSES`
and `sgm_core.samplers.SAMPLER_SPECS` (tests/test_explain.py fails for a registered name without
one). The window's Explain dock shows them; nothing here needs Qt or torch.

Notation: x data, z ~ N(0, I), s_θ the score net, σ a noise level, D the dimension.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class Explanation:
    title: str
    formula: str  # HTML: Unicode math with <i>, <sub>, <sup>
    text: str  # a short paragraph: what it does and why
    paper: str  # where it comes from


_DSM = "½ 𝔼 ‖<i>s</i><sub>θ</sub>(<i>x̃</i>, σ) + (<i>x̃</i> − <i>x</i>)/σ²‖²,&nbsp; <i>x̃</i> = <i>x</i> + σ<i>z</i>"
_ANNEALED = ("<i>x</i> ← <i>x</i> + ε<sub><i>i</i></sub> <i>s</i><sub>θ</sub>(<i>x</i>, σ<sub><i>i</i></sub>) "
             "+ √(2ε<sub><i>i</i></sub>) <i>z</i>,&nbsp; ε<sub><i>i</i></sub> = ε"
             " σ<sub><i>i</i></sub>²/σ<sub><i>L</i></sub>²")  # the Sampler dock's step size ε (NCSN's α_i = 2ε_i)
_SDE_PAPER = ("Song, Sohl-Dickstein, Kingma, Kumar, Ermon, Poole: Score-Based Generative Modeling through "
              "Stochastic Differential Equations, ICLR 2021")
_EDM_PAPER = ("Karras, Aittala, Aila, Laine: Elucidating the Design Space of Diffusion-Based"
              " Generative Models, NeurIPS 2022")
_DDPM_PAPER = "Ho, Jain, Abbeel: Denoising Diffusion Probabilistic Models, NeurIPS 2020"

LOSS_EXPLANATIONS: Mapping[str, Explanation] = MappingProxyType({
    "sm": Explanation(
        "Score matching (exact)",
        "𝔼<sub><i>p</i></sub> [ tr ∇<sub><i>x</i></sub><i>s</i><sub>θ</sub>(<i>x</i>) +"
        " ½‖<i>s</i><sub>θ</sub>(<i>x</i>)‖² ]",
        "Fisher divergence ½𝔼‖s_θ − ∇log p‖² without the unknown ∇log p: integration by parts leaves the trace of "
        "the net's Jacobian, which costs D extra backward passes. The loss is negative at the optimum.",
        "Hyvärinen: Estimation of Non-Normalized Statistical Models by Score Matching, JMLR 2005"),
    "ssm": Explanation(
        "Sliced score matching",
        "𝔼<sub><i>p</i></sub> 𝔼<sub><i>v</i></sub> ["
        " <i>v</i>ᵀ∇<sub><i>x</i></sub><i>s</i><sub>θ</sub>(<i>x</i>)<i>v</i> "
        "+ ½(<i>v</i>ᵀ<i>s</i><sub>θ</sub>(<i>x</i>))² ]",
        "Score matching along random directions v: one Jacobian-vector product per projection replaces the "
        "trace, so the cost no longer grows with D.",
        "Song, Garg, Shi, Ermon: Sliced Score Matching: A Scalable Approach to Density and Score Estimation, UAI 2019"),
    "ssm-vr": Explanation(
        "Sliced score matching, variance-reduced",
        "𝔼<sub><i>p</i></sub> 𝔼<sub><i>v</i></sub> ["
        " <i>v</i>ᵀ∇<sub><i>x</i></sub><i>s</i><sub>θ</sub>(<i>x</i>)<i>v</i> "
        "+ ½‖<i>s</i><sub>θ</sub>(<i>x</i>)‖² ]",
        "For directions with 𝔼 vvᵀ = I the second term's expectation is known in closed form; using it removes "
        "part of the Monte-Carlo noise of plain sliced SM.",
        "Song, Garg, Shi, Ermon: Sliced Score Matching, UAI 2019 (SSM-VR)"),
    "dsm": Explanation(
        "Denoising score matching (score form)",
        _DSM,
        "Perturb the data with Gaussian noise of one σ and regress the net on the score of the noising kernel: "
        "its minimiser is the score of the data smoothed by σ, not of the data itself.",
        "Vincent: A Connection Between Score Matching and Denoising Autoencoders, Neural Computation 2011"),
    "dsm-eps": Explanation(
        "Denoising score matching (noise prediction)",
        "½ 𝔼 ‖ε<sub>θ</sub>(<i>x</i> + σ<i>z</i>) − <i>z</i>‖²,&nbsp; <i>s</i><sub>θ</sub> = −ε<sub>θ</sub>/σ",
        "The same objective as DSM multiplied by σ²: the net predicts the noise that was added. Predicting zero "
        "scores D/2; the exact score scores less, but at a small σ not much less.",
        f"Vincent 2011; the ε-parameterisation of {_DDPM_PAPER}"),
    "ncsn": Explanation(
        "NCSN: denoising score matching over a σ ladder",
        "(1/<i>L</i>) Σ<sub><i>i</i></sub> σ<sub><i>i</i></sub>² · " + _DSM.replace("σ", "σ<sub><i>i</i></sub>"),
        "One noise-conditional net learns the score at every level of a geometric ladder σ₁ > … > σ_L. Large σ "
        "fill the space between modes with training samples, small σ are accurate near the data; the weight σ² "
        "makes every level's loss about the same size.",
        "Song, Ermon: Generative Modeling by Estimating Gradients of the Data Distribution, NeurIPS 2019"),
    "ve-sde": Explanation(
        "VE SDE (continuous-time DSM)",
        "𝔼<sub><i>t</i></sub> σ(<i>t</i>)² · ½𝔼‖<i>s</i><sub>θ</sub>(<i>x</i><sub><i>t</i></sub>, <i>t</i>) + "
        "<i>z</i>/σ(<i>t</i>)‖²,&nbsp; <i>x</i><sub><i>t</i></sub> = <i>x</i> + σ(<i>t</i>)<i>z</i>,&nbsp; "
        "σ(<i>t</i>) = σ<sub>min</sub>(σ<sub>max</sub>/σ<sub>min</sub>)<sup><i>t</i></sup>",
        "The σ ladder made continuous: t ~ U(0, 1) and the forward SDE dx = √(dσ²/dt) dw, whose variance explodes. "
        "The same net then drives the reverse SDE and the probability-flow ODE.",
        _SDE_PAPER),
    "vp-sde": Explanation(
        "VP SDE (continuous-time DSM)",
        "𝔼<sub><i>t</i></sub> ½𝔼‖<i>s</i>(<i>t</i>) <i>s</i><sub>θ</sub>(<i>x</i><sub><i>t</i></sub>, <i>t</i>) + "
        "<i>z</i>‖²,&nbsp; <i>x</i><sub><i>t</i></sub> = α(<i>t</i>)<i>x</i> + <i>s</i>(<i>t</i>)<i>z</i>,&nbsp; "
        "d<i>x</i> = −½β(<i>t</i>)<i>x</i> d<i>t</i> + √β(<i>t</i>) d<i>w</i>",
        "The forward process shrinks the data while it adds noise, so the variance stays bounded (it tends to 1). "
        "β(t) is linear; the continuous limit of DDPM.",
        _SDE_PAPER),
    "fm": Explanation(
        "Flow matching (linear interpolant)",
        "𝔼<sub><i>t</i>, <i>x</i>, <i>z</i></sub> ‖<i>v</i><sub>θ</sub>(<i>x</i><sub><i>t</i></sub>, <i>t</i>) − "
        "(<i>z</i> − <i>x</i>)‖²,&nbsp; <i>x</i><sub><i>t</i></sub> = (1 − <i>t</i>)<i>x</i> + <i>t</i><i>z</i>",
        "Regress a velocity field on the straight-line velocity between a data point x and a noise draw "
        "z ~ N(0, I) (or a draw of the Source set); integrating the learned ODE from t = 1 back to 0 carries the "
        "prior to the data. Time runs from data (t = 0) to noise (t = 1) here, as in the diffusion losses: "
        "Lipman et al. write it the other way round.",
        "Lipman, Chen, Ben-Hamu, Nickel, Le: Flow Matching for Generative Modeling, ICLR 2023; "
        "Liu, Gong, Liu: Flow Straight and Fast (rectified flow), ICLR 2023"),
    "ot-fm": Explanation(
        "Flow matching with minibatch optimal transport",
        "𝔼 ‖<i>v</i><sub>θ</sub>(<i>x</i><sub><i>t</i></sub>, <i>t</i>) − (<i>z</i> − <i>x</i>)‖²,&nbsp; "
        "(<i>x</i>, <i>z</i>) ~ π<sub>OT</sub> within each batch",
        "The same regression, with noise and data paired by an optimal-transport plan inside each batch instead of "
        "at random: the paths cross less, so the flow is straighter and needs fewer ODE steps.",
        "Tong, Fatras, Malkin, Huguet, Zhang, Rector-Brooks, Wolf, Bengio: Improving and Generalizing Flow-Based "
        "Generative Models with Minibatch Optimal Transport, TMLR 2024; Pooladian et al.: Multisample Flow Matching, "
        "ICML 2023"),
    "ddpm": Explanation(
        "DDPM (ε-prediction, discrete time)",
        "𝔼<sub><i>t</i>, <i>x</i>, ε</sub> ‖ε − ε<sub>θ</sub>(√ᾱ<sub><i>t</i></sub> <i>x</i> + "
        "√(1 − ᾱ<sub><i>t</i></sub>) ε, <i>t</i>)‖²,&nbsp; ᾱ<sub><i>t</i></sub> ="
        " Π<sub><i>s</i>≤<i>t</i></sub>(1 − β<sub><i>s</i></sub>)",
        "Ho et al.'s simplified objective: uniform t over T discrete steps of a variance-preserving chain, noise "
        "prediction, no weights. Equivalent to DSM with λ = 1 − ᾱ_t; the score is −ε_θ/√(1 − ᾱ_t).",
        _DDPM_PAPER),
    "edm": Explanation(
        "EDM (preconditioned denoiser)",
        "𝔼<sub>σ, <i>x</i>, <i>n</i></sub> λ(σ)‖<i>D</i><sub>θ</sub>(<i>x</i> + σ<i>n</i>; σ) − <i>x</i>‖²,&nbsp; "
        "ln σ ~ 𝒩(<i>P</i><sub>mean</sub>, <i>P</i><sub>std</sub>²),&nbsp; λ(σ) = (σ² +"
        " σ<sub>data</sub>²)/(σσ<sub>data</sub>)²",
        "The net F_θ is wrapped as D_θ = c_skip x + c_out F_θ(c_in x; c_noise) so its inputs and targets have unit "
        "variance at every σ; σ is drawn log-normally where training helps most. The score is (D_θ − x)/σ².",
        _EDM_PAPER),
})

SAMPLER_EXPLANATIONS: Mapping[str, Explanation] = MappingProxyType({
    "langevin": Explanation(
        "Langevin dynamics at one σ",
        "<i>x</i> ← <i>x</i> + ε <i>s</i><sub>θ</sub>(<i>x</i>) + √(2ε) <i>z</i>",
        "The unadjusted Langevin algorithm: gradient ascent on log p plus noise. It samples p only in the limit "
        "ε → 0 and many steps; in practice it rarely crosses between separated modes.",
        "Roberts, Tweedie: Exponential Convergence of Langevin Distributions and Their Discrete Approximations, "
        "Bernoulli 1996; Welling, Teh: Bayesian Learning via Stochastic Gradient Langevin Dynamics, ICML 2011"),
    "annealed": Explanation(
        "Annealed Langevin dynamics (NCSN)",
        _ANNEALED,
        "Langevin at each level of the σ ladder, largest first, T steps per level, the step shrinking with σ². "
        "The large σ mix between modes and set their weights; the small σ refine near the data.",
        "Song, Ermon: Generative Modeling by Estimating Gradients of the Data Distribution, NeurIPS 2019, Alg. 1"),
    "sde": Explanation(
        "Reverse-time SDE (Euler–Maruyama)",
        "d<i>x</i> = [<i>f</i>(<i>x</i>, <i>t</i>) − <i>g</i>(<i>t</i>)² ∇<sub><i>x</i></sub>log"
        " <i>p</i><sub><i>t</i></sub>(<i>x</i>)] "
        "d<i>t</i> + <i>g</i>(<i>t</i>) d<i>w̄</i>",
        "Anderson's reverse of the forward noising SDE, integrated from t = 1 down to t = ε with the learned score "
        "in place of ∇log p_t, one Euler–Maruyama step at a time.",
        f"Anderson: Reverse-Time Diffusion Equation Models, Stoch. Proc. Appl. 1982; {_SDE_PAPER}"),
    "pc": Explanation(
        "Predictor–corrector",
        "corrector: <i>x</i> ← <i>x</i> +"
        " ε<i>s</i><sub>θ</sub> + √(2ε)<i>z</i>,&nbsp; "
        "ε = 2α(<i>r</i>‖<i>z</i>‖/‖<i>s</i><sub>θ</sub>‖)²;&nbsp; then predictor: one reverse-SDE step",
        "Before each reverse-SDE step, one Langevin step at the same time, its size set by a target "
        "signal-to-noise ratio r: the corrector pulls the particles back to p_t where the predictor erred.",
        f"{_SDE_PAPER}, Alg. 1–5"),
    "ode": Explanation(
        "Probability-flow ODE (Heun)",
        "d<i>x</i>/d<i>t</i> = <i>f</i>(<i>x</i>, <i>t</i>) − ½<i>g</i>(<i>t</i>)²"
        " ∇<sub><i>x</i></sub>log <i>p</i><sub><i>t</i></sub>(<i>x</i>)",
        "A deterministic flow with the same marginals p_t as the SDE: no noise, so each start maps to one sample, "
        "and the change of variables gives exact log-likelihoods.",
        f"{_SDE_PAPER}, §4.3"),
    "euler": Explanation(
        "Probability-flow ODE on EDM's noise levels (Euler)",
        "d<i>x</i>/dσ = (<i>x</i> − <i>D</i>(<i>x</i>; σ))/σ,&nbsp; σ<sub><i>i</i></sub> = "
        "(σ<sub>max</sub><sup>1/ρ</sup> + <i>i</i>/<i>N</i> (σ<sub>min</sub><sup>1/ρ</sup> −"
        " σ<sub>max</sub><sup>1/ρ</sup>))<sup>ρ</sup>",
        "The ODE written in σ, with the denoiser D = x + σ²s. Levels spaced with ρ = 7 are dense at small σ, where "
        "the curvature of the trajectories is.",
        f"{_EDM_PAPER}, eq. 5"),
    "heun": Explanation(
        "Probability-flow ODE on EDM's noise levels (Heun)",
        "<i>x</i>′ = <i>x</i> + (σ<sub><i>i</i>+1</sub> − σ<sub><i>i</i></sub>) <i>d</i><sub><i>i</i></sub>,&nbsp; "
        "<i>x</i> ← <i>x</i> + (σ<sub><i>i</i>+1</sub> − σ<sub><i>i</i></sub>)"
        " ½(<i>d</i><sub><i>i</i></sub> + <i>d</i>′)",
        "Euler's step corrected with the slope at its end point: second order, so once the steps are small its "
        "error falls faster than Euler's. With few steps it can be far worse: the correction is evaluated at the "
        "small end of a long step, where the slope (x − D)/σ is stiff. Measured with the exact field of 8 "
        "Gaussians (fm), seeds 0-2: at 8 evaluations Heun's SW ratio is 20-25 and Euler's 0.9-1.6; at 32 and 16 "
        "they agree (0.72-1.54 and 0.68-1.46) — Tools ▸ Steps vs quality plots it. Every step here is a Heun step "
        "(2 evaluations) ending at σ_min; EDM's last is an Euler step to σ = 0 (tried: at 7 evaluations it "
        "read 46, no better).",
        f"{_EDM_PAPER}, Alg. 1"),
    "ddpm": Explanation(
        "DDPM ancestral sampling",
        "<i>x</i><sub><i>t</i>−1</sub> = (1/√α<sub><i>t</i></sub>)(<i>x</i><sub><i>t</i></sub> − "
        "β<sub><i>t</i></sub>/√(1 − ᾱ<sub><i>t</i></sub>)"
        " ε<sub>θ</sub>(<i>x</i><sub><i>t</i></sub>, <i>t</i>)) + σ<sub><i>t</i></sub><i>z</i>",
        "Walk the learned reverse Markov chain one discrete step at a time, T steps from pure noise; σ_t² = β̃_t = "
        "β_t(1 − ᾱ_t−1)/(1 − ᾱ_t), the posterior variance (Ho et al.'s eq. 7).",
        f"{_DDPM_PAPER}, Alg. 2"),
    "ddim": Explanation(
        "DDIM (deterministic, η = 0)",
        "<i>x</i><sub><i>t</i>−1</sub> = √ᾱ<sub><i>t</i>−1</sub> <i>x̂</i>₀ + √(1 −"
        " ᾱ<sub><i>t</i>−1</sub>) ε<sub>θ</sub>,&nbsp; "
        "<i>x̂</i>₀ = (<i>x</i><sub><i>t</i></sub> − √(1 − ᾱ<sub><i>t</i></sub>) ε<sub>θ</sub>)/√ᾱ<sub><i>t</i></sub>",
        "A non-Markovian process with DDPM's marginals: predict the clean point, then re-noise it to the next level "
        "along the predicted noise. It can skip steps; it is an Euler step of the probability-flow ODE.",
        "Song, Meng, Ermon: Denoising Diffusion Implicit Models, ICLR 2021"),
    "dpm-solver": Explanation(
        "DPM-Solver++(2M)",
        "<i>x</i><sub><i>i</i>+1</sub> = (σ<sub><i>i</i>+1</sub>/σ<sub><i>i</i></sub>) <i>x</i><sub><i>i</i></sub> + "
        "α<sub><i>i</i>+1</sub>(1 − e<sup>−<i>h</i></sup>) <i>D̂</i>,&nbsp; "
        "<i>D̂</i> = (1 + 1/2<i>r</i>)<i>D</i><sub><i>i</i></sub> − (1/2<i>r</i>)<i>D</i><sub><i>i</i>−1</sub>,&nbsp; "
        "<i>h</i> = λ<sub><i>i</i>+1</sub> − λ<sub><i>i</i></sub>,&nbsp; λ = log(α/σ)",
        "Solve the probability-flow ODE with its linear part exactly, in the log-SNR λ, and extrapolate the "
        "denoised prediction D (Tweedie) linearly from this step's and the previous step's (r is the ratio of "
        "their λ steps): second order at one network evaluation per step. The first step, and the last of a "
        "schedule under 15 steps, use D alone (first order, which equals DDIM).",
        "Lu, Zhou, Bao, Chen, Li, Zhu: DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic "
        "Models, 2022 (Alg. 2); DPM-Solver, NeurIPS 2022"),
    "mala": Explanation(
        "Metropolis-adjusted Langevin (MALA)",
        "<i>x</i>′ = <i>x</i> + ε∇log <i>p</i>(<i>x</i>) + √(2ε)<i>z</i>,&nbsp; accept with min(1, "
        "<i>p</i>(<i>x</i>′)<i>q</i>(<i>x</i> | <i>x</i>′) / <i>p</i>(<i>x</i>)<i>q</i>(<i>x</i>′ | <i>x</i>))",
        "A Langevin proposal followed by a Metropolis–Hastings test, q the proposal's Gaussian: the chain then "
        "leaves p exactly invariant at any step size, removing unadjusted Langevin's bias. The test needs log p "
        "itself, so only energy nets and the analytic truth can use it.",
        "Roberts, Tweedie: Exponential Convergence of Langevin Distributions and Their Discrete Approximations, "
        "Bernoulli 1996"),
})


def explanation_html(loss: str, sampler: str) -> str:
    """The loss's and the sampler's explanations as one HTML document (a name without one says so)."""
    parts = []
    for what, name, table in (("Loss", loss, LOSS_EXPLANATIONS), ("Sampler", sampler, SAMPLER_EXPLANATIONS)):
        e = table.get(name)
        if e is None:
            parts.append(f"<h3>{what}: {name}</h3><p>No explanation written yet.</p>")
            continue
        parts.append(f"<h3>{what}: {e.title}</h3>"
                     f"<p style='font-size:15px; margin:6px 0 6px 8px;'>{e.formula}</p>"
                     f"<p>{e.text}</p><p style='color:#57606a;'><i>{e.paper}</i></p>")
    return "".join(parts)
