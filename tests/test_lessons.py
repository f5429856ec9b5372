"""Every lesson shows, measured on seeds 0, 1 and 2, each claim of its caption, and every network
it trains has learned; the claim records, the loss summary and the exact-score loss floor are
checked against hand-made results and direct Monte Carlo."""

import json
import math
import os
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

from sgm_core.config import LossConfig, NoiseConfig, RunConfig
from sgm_core.datasets import load_dataset
from sgm_core.errors import ConfigError
from sgm_core.lessons import (
    FLOW_CHECK_SAMPLER,
    LEARNED_ERROR,
    LEARNED_SW_RATIO,
    LESSON_DIR,
    METRICS,
    Claim,
    TrainedNet,
    check_lesson,
    evaluate_claims,
    learned_claim,
    learned_measure,
    load_lessons,
    loss_floor,
    loss_summary,
    own_sigma,
    parse_lesson,
    run_lesson,
    trained_networks,
)
from sgm_core.losses import dsm_loss
from sgm_core.truth import reference_score_fn

LESSONS = load_lessons()
SEEDS = (0, 1, 2)
FLOOR_SIGMAS = 4.0  # the Monte-Carlo floor and a direct Monte-Carlo loss agree within 4 combined s.e.


def test_every_lesson_file_ships_and_loads():
    assert len(LESSONS) == len(list(LESSON_DIR.glob("*.json"))) >= 9
    assert len({lesson.id for lesson in LESSONS}) == len(LESSONS)
    assert all(lesson.caption and lesson.expect for lesson in LESSONS)
    assert all(e["metric"] in METRICS for lesson in LESSONS for e in lesson.expect)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("lesson", LESSONS, ids=[lesson.id for lesson in LESSONS])
def test_lesson_holds_and_its_nets_have_learned(lesson, seed):
    """The lesson as shipped (its own particle count and steps): every claim holds, and each
    trained variant carries a learned claim that holds (score nets: error ≤ 0.5 and ≤ half the
    untrained one; flows: many-step SW ratio ≤ LEARNED_SW_RATIO and ≤ half the untrained one)."""
    results = run_lesson(lesson, seed=seed)
    claims = evaluate_claims(lesson, results)
    assert [c.sentence for c in claims if not c.holds] == [], results
    nets = trained_networks(results, lesson)
    if lesson.score == "learned":
        assert [n.name for n in nets] == [v.label for v in lesson.variants]
        for net in nets:
            run = next(v.run for v in lesson.variants if v.label == net.name)
            assert net.measure == learned_measure(run)
            if net.measure == "sw_ratio":
                assert net.trained <= min(LEARNED_SW_RATIO, 0.5 * net.untrained)
            else:
                assert net.trained <= min(LEARNED_ERROR, 0.5 * net.untrained)
                assert net.sigma == pytest.approx(own_sigma(run)[0])
        assert sum(c.name.startswith("learned[") for c in claims) == len(lesson.variants)
    else:
        assert nets == []
    assert check_lesson(lesson, results) == []


# --------------------------------------------------------------------------- claims from hand-made results

MIXTURE = next(lesson for lesson in LESSONS if lesson.id == "mixture-weights")


def test_a_bound_and_a_ratio_claim_hold_or_fail_with_their_numbers():
    good = {"plain Langevin": {"mode_weight_error": 0.1, "stayed_in_basin": 0.99},
            "annealed Langevin": {"mode_weight_error": 0.02}}
    claims = evaluate_claims(MIXTURE, good)
    assert [c.holds for c in claims] == [True, True, True]
    ratio = next(c for c in claims if "≥" in c.name)
    assert ratio.value == pytest.approx(5.0) and ratio.threshold == 2.0
    assert "0.1" in ratio.sentence and "0.02" in ratio.sentence
    bad = {"plain Langevin": {"mode_weight_error": 0.01, "stayed_in_basin": 0.5},
           "annealed Langevin": {"mode_weight_error": 0.3}}
    claims = evaluate_claims(MIXTURE, bad)
    assert [c.holds for c in claims] == [False, False, False]
    stayed = claims[0]
    assert (stayed.value, stayed.threshold) == (0.5, 0.95) and "50.0%" in stayed.sentence and "95.0%" in stayed.sentence
    failures = check_lesson(MIXTURE, bad)
    assert len(failures) == 3 and all(f.startswith("mixture-weights: ") for f in failures)


def test_bounds_are_strict_and_a_missing_metric_is_one_config_error():
    lesson = next(lesson for lesson in LESSONS if lesson.id == "score-field")
    label = lesson.variants[0].label
    assert not evaluate_claims(lesson, {label: {"on_mode": 0.9}})[0].holds  # "above 0.9" is strict
    assert evaluate_claims(lesson, {label: {"on_mode": 0.901}})[0].holds
    with pytest.raises(ConfigError, match="on_mode of 'Langevin on the true score' was not measured"):
        evaluate_claims(lesson, {label: {}})


def test_a_ratio_over_zero_is_infinite_and_its_json_value_is_null():
    lesson = next(lesson for lesson in LESSONS if lesson.id == "annealing-fix")
    worse, better = (v.label for v in lesson.variants)
    results = {worse: {"off_data": 0.1}, better: {"off_data": 0.0}}
    claim = evaluate_claims(lesson, results)[0]
    assert claim.value == math.inf and claim.holds
    assert claim.to_json() == {"name": claim.name, "value": None, "threshold": 3.0, "holds": True}
    assert json.dumps(claim.to_json())  # valid JSON: no Infinity


@pytest.mark.parametrize(("trained", "untrained", "holds"), [
    (0.5, 1.0, True),  # both bounds exactly met
    (0.51, 1.2, False),  # above 0.5
    (0.3, 0.59, False),  # above half the untrained error: barely better than the initial net
    (0.29, 0.59, True),
])
def test_a_net_has_learned_only_below_half_and_below_half_its_untrained_error(trained, untrained, holds):
    claim = learned_claim(TrainedNet("net", 0.05, "its σ", trained, untrained))
    assert claim.holds is holds
    assert claim.threshold == pytest.approx(min(0.5, 0.5 * untrained))
    assert claim.name == "learned[net]" and "σ = 0.05" in claim.sentence


def test_every_trained_variant_gets_a_learned_claim():
    lesson = next(lesson for lesson in LESSONS if lesson.id == "annealing-fix")
    worse, better = (v.label for v in lesson.variants)
    net = {"score_error": 0.9, "score_error_untrained": 1.0, "score_sigma": 0.05}
    results = {worse: {"off_data": 0.2, **net}, better: {"off_data": 0.01, **net}}
    claims = evaluate_claims(lesson, results)
    learned = [c for c in claims if c.name.startswith("learned[")]
    assert [c.name for c in learned] == [f"learned[{worse}]", f"learned[{better}]"]
    assert not any(c.holds for c in learned)  # an untrained net fails the lesson whatever else holds
    nets = trained_networks(results, lesson)
    assert nets[0].to_json() == {"name": worse, "learned_by": "score_error", "sigma": 0.05,
                                 "sigma_is": "the one σ it is trained at",
                                 "score_error_trained": 0.9, "score_error_untrained": 1.0}


STRAIGHT = next(lesson for lesson in LESSONS if lesson.id == "straight-paths")


def test_flows_are_judged_by_many_step_samples_and_score_nets_by_their_score_error():
    assert {learned_measure(v.run) for v in STRAIGHT.variants} == {"sw_ratio"}
    assert learned_measure(RunConfig(loss=LossConfig(name="dsm"))) == "score_error"
    assert learned_measure(RunConfig(loss=LossConfig(name="edm"))) == "score_error"
    claim = learned_claim(TrainedNet("flow", math.nan, "", 1.9, 4.0, "sw_ratio"))
    assert claim.holds and claim.threshold == min(LEARNED_SW_RATIO, 2.0)  # min(3, 0.5 × 4)
    assert learned_claim(TrainedNet("flow", math.nan, "", 1.9, 9.0, "sw_ratio")).threshold == LEARNED_SW_RATIO
    assert f"{FLOW_CHECK_SAMPLER.steps} Heun steps" in claim.sentence and "σ" not in claim.sentence
    assert not learned_claim(TrainedNet("flow", math.nan, "", 2.1, 4.0, "sw_ratio")).holds  # > half of 4
    assert not learned_claim(TrainedNet("flow", math.nan, "", 3.2, 9.0, "sw_ratio")).holds  # > 3
    results = {v.label: {"sw_ratio": 1.0, "learned_sw_ratio": 1.9, "learned_sw_ratio_untrained": 4.0}
               for v in STRAIGHT.variants}
    label = STRAIGHT.variants[0].label
    assert trained_networks(results, STRAIGHT)[0].to_json() == {
        "name": label, "learned_by": "sw_ratio", "solver": "32 Heun steps", "sw_ratio_trained": 1.9,
        "sw_ratio_untrained": 4.0}


def test_an_untrained_flow_has_not_learned():
    """The flow lesson with 0 training steps: its nets' many-step samples are those of the
    untrained nets, so every learned claim fails while the measured values are the real ones."""
    results = run_lesson(replace(STRAIGHT, train_steps=0), seed=0)
    learned = [c for c in evaluate_claims(STRAIGHT, results) if c.name.startswith("learned[")]
    assert len(learned) == len(STRAIGHT.variants) and not any(c.holds for c in learned)
    for m in results.values():
        assert m["learned_sw_ratio"] == m["learned_sw_ratio_untrained"] > 2.0  # a Gaussian is not 8 Gaussians


def test_claims_are_frozen_records():
    claim = Claim("x", 1.0, 2.0, False, "x is 1")
    with pytest.raises(AttributeError):
        claim.holds = True  # type: ignore[misc]


# --------------------------------------------------------------------------- what the metrics mean

def test_loss_drop_is_positive_when_a_negative_loss_falls():
    falling_negative = [-15.6] * 10 + [-60.0] * 80 + [-118.5] * 10  # exact SM: -15.6 -> -118.5
    summary = loss_summary(falling_negative)
    assert summary["loss_first"] == pytest.approx(-15.6) and summary["loss_last"] == pytest.approx(-118.5)
    assert summary["loss_drop"] == pytest.approx((118.5 - 15.6) / 15.6)  # +6.6: it fell by 6.6 × |first|
    assert loss_summary([1.0] * 10 + [0.75] * 10)["loss_drop"] == pytest.approx(0.25)
    assert loss_summary([-2.0] * 10 + [-1.0] * 10)["loss_drop"] == pytest.approx(-0.5)  # rose: negative


@pytest.mark.parametrize("loss", ["dsm", "dsm-eps"])
def test_loss_floor_is_the_loss_of_the_exact_score(loss):
    """The floor from E|∇log q_σ|² against a direct Monte-Carlo average of the DSM loss itself
    with the exact score plugged in (independent draws)."""
    dataset = load_dataset("mixture-unequal", seed=0)
    standardizer = dataset.standardizer()
    run = RunConfig(data="mixture-unequal", noise=NoiseConfig(sigma=0.1), loss=LossConfig(name=loss))
    floor, se, zero = loss_floor(dataset, standardizer, run, torch.Generator().manual_seed(1))
    reference, _ = reference_score_fn(dataset, standardizer)
    g = torch.Generator().manual_seed(2)
    x = standardizer.forward(dataset.sample(200_000, g)).double()
    direct = dsm_loss(reference, x, 0.1, g, weight_power=2.0 if loss == "dsm-eps" else 0.0)
    direct_se = float(direct.std()) / math.sqrt(len(direct))
    assert float(direct.mean()) == pytest.approx(floor, abs=FLOOR_SIGMAS * math.hypot(se, direct_se))
    weight = 0.01 if loss == "dsm-eps" else 1.0
    assert zero == pytest.approx(0.5 * weight * 2 / 0.01)  # predicting 0: ½ σ^p D / σ²
    assert floor < zero


def test_own_sigma_follows_the_loss():
    base = RunConfig(noise=NoiseConfig(sigma=0.07, sigma_min=0.02))
    assert own_sigma(replace(base, loss=LossConfig(name="dsm")))[0] == 0.07
    assert own_sigma(replace(base, loss=LossConfig(name="sm")))[0] == 0.0
    assert own_sigma(replace(base, loss=LossConfig(name="ncsn")))[0] == 0.02
    assert own_sigma(replace(base, loss=LossConfig(name="ve-sde")))[0] == 0.02
    vp_sigma = own_sigma(replace(base, loss=LossConfig(name="vp-sde")))[0]
    assert 0 < vp_sigma < 0.05


def test_ula_closed_form_variance_matches_a_direct_simulation_and_the_truth_has_its_log_density():
    """Lesson langevin-bias: ULA on N(mu, v I), x' = x - (ε/v)(x - mu) + sqrt(2ε) z, has stationary
    variance v / (1 - ε/2v) (`_ula_variance`), checked against 20,000 chains; and the analytic
    reference carries log q_σ, whose gradient is its score (what MALA's accept step relies on)."""
    from sgm_core.gmm import GaussianMixture
    from sgm_core.lessons import _ula_variance

    v, eps = 0.04, 0.03
    gmm = GaussianMixture.isotropic(torch.ones(1), torch.zeros(1, 2), math.sqrt(v))
    x = torch.zeros(20_000, 2, dtype=torch.float64)
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        x = x + eps * gmm.score(x) + math.sqrt(2 * eps) * torch.randn(x.shape, generator=g, dtype=x.dtype)
    measured = float((x**2).sum(1).mean()) / (2 * v)
    assert _ula_variance(x, gmm, eps) == pytest.approx(1 / (1 - eps / (2 * v)))  # 1.6
    assert measured == pytest.approx(1.6, abs=0.05)  # s.e. ~0.016
    assert _ula_variance(x, gmm, 2.5 * v) == math.inf  # unstable from ε = 2v on
    dataset = load_dataset("8gaussians", seed=0)
    reference, _ = reference_score_fn(dataset, dataset.standardizer())
    y = torch.randn(50, 2, generator=g).requires_grad_(True)
    sigma = torch.full((50,), 0.1)
    grad = torch.autograd.grad(reference.log_density(y, sigma).sum(), y)[0]
    assert torch.allclose(grad, reference(y.detach(), sigma), atol=1e-4)


# --------------------------------------------------------------------------- files and the CLI

def _raw(name: str) -> dict:
    return json.loads((LESSON_DIR / name).read_text())


def test_malformed_lesson_is_a_config_error():
    raw = _raw("01-score-field.json")
    del raw["variants"]
    with pytest.raises(ConfigError, match="malformed"):
        parse_lesson(raw)


@pytest.mark.parametrize(("change", "message"), [
    ({"metric": "charm"}, "unknown metric 'charm'"),
    ({"variant": "nobody"}, "names 'nobody', which is not one of its variants"),
    ({"above": None}, "bound must be a finite number"),
])
def test_an_expectation_must_name_a_metric_a_variant_and_a_bound(change, message):
    raw = _raw("01-score-field.json")
    raw["expect"] = [{**raw["expect"][0], **change}]
    with pytest.raises(ConfigError, match=message):
        parse_lesson(raw)
    raw["expect"] = [{"metric": "on_mode", "variant": raw["variants"][0]["label"]}]
    with pytest.raises(ConfigError, match="needs 'above', 'below' or 'ratio_at_least'"):
        parse_lesson(raw)


def test_cli_lesson_json_prints_one_object_of_claims_and_trained_nets():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "sgm_core.cli", "lesson", "tiny-sigma", "--json", "--seed", "1"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)  # one object, nothing else on stdout
    assert out["lesson"] == "tiny-sigma" and out["seed"] == 1
    assert out["claims"] and all(set(c) == {"name", "value", "threshold", "holds"} for c in out["claims"])
    assert all(c["holds"] for c in out["claims"])
    (net,) = out["trained"]
    assert net["name"] == "DSM at σ = 0.1" and net["sigma"] == 0.1
    assert net["score_error_trained"] <= 0.5 * net["score_error_untrained"]
    assert out["measured"]["DSM at σ = 0.1"]["loss_zero"] == pytest.approx(1.0)


def test_cli_lesson_exits_1_naming_a_failed_claim_0_when_all_hold_and_2_for_a_bad_id(monkeypatch, capsys):
    """Exit codes of `sgm lesson`: the measured results are stubbed (the lesson itself runs above),
    so this checks only how claims become an exit status."""
    from sgm_core import cli, lessons

    good = {"plain Langevin": {"mode_weight_error": 0.1, "stayed_in_basin": 0.99},
            "annealed Langevin": {"mode_weight_error": 0.02}}
    bad = {**good, "annealed Langevin": {"mode_weight_error": 0.09}}  # above 0.08, and the ratio is 1.1 < 2
    monkeypatch.setattr(lessons, "run_lesson", lambda lesson, seed=0: good)
    assert cli.main(["lesson", "mixture-weights"]) == 0
    assert "failed" not in capsys.readouterr().err
    monkeypatch.setattr(lessons, "run_lesson", lambda lesson, seed=0: bad)
    assert cli.main(["lesson", "mixture-weights", "--json"]) == 1
    out, err = capsys.readouterr()
    assert [c["holds"] for c in json.loads(out)["claims"]] == [True, False, False]
    failed = err.strip().splitlines()
    assert len(failed) == 2 and all("mixture-weights" in line and "failed" in line for line in failed)
    assert "mode-weight error" in failed[0] and "ratio 1.11" in failed[0]
    assert cli.main(["lesson", "no-such-lesson"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no lesson 'no-such-lesson'" in err


def test_cli_lesson_exits_1_when_a_trained_net_did_not_learn(monkeypatch, capsys):
    from sgm_core import cli, lessons

    untrained = {"DSM at σ = 0.1": {"loss_floor": 0.9, "loss_drop": 0.1, "gap_closed": 0.9, "score_error_drop": 0.9,
                                     "score_error": 0.6, "score_error_untrained": 1.0, "score_sigma": 0.1}}
    monkeypatch.setattr(lessons, "run_lesson", lambda lesson, seed=0: untrained)
    assert cli.main(["lesson", "tiny-sigma"]) == 1
    assert "learned" in capsys.readouterr().err


def test_cli_lesson_json_says_a_flow_was_judged_by_its_many_step_samples(monkeypatch, capsys):
    from sgm_core import cli, lessons

    results = {v.label: {"sw_ratio": 8.0 if v.label.startswith("FM") else 1.0, "learned_sw_ratio": 1.5,
                         "learned_sw_ratio_untrained": 4.0} for v in STRAIGHT.variants}
    monkeypatch.setattr(lessons, "run_lesson", lambda lesson, seed=0: results)
    assert cli.main(["lesson", "straight-paths", "--json"]) == 0
    trained = json.loads(capsys.readouterr().out)["trained"]
    assert [t["learned_by"] for t in trained] == ["sw_ratio"] * len(STRAIGHT.variants)
    assert all(t["solver"] == "32 Heun steps" and "score_error_trained" not in t for t in trained)
    results[STRAIGHT.variants[0].label]["learned_sw_ratio"] = 3.5  # above 3: not learned
    assert cli.main(["lesson", "straight-paths"]) == 1
    assert "32 Heun steps" in capsys.readouterr().err


def test_every_metric_has_a_human_name_for_the_live_checks():
    from sgm_core.lessons import METRIC_NAMES

    assert set(METRIC_NAMES) == set(METRICS)
    assert all("_" not in name for name in METRIC_NAMES.values())


def test_a_guided_variant_names_a_class_and_a_scale():
    raw = json.loads((LESSON_DIR / "12-guidance.json").read_text())
    lesson = parse_lesson(raw)
    assert [v.guide for v in lesson.variants] == [("1", 0.0), ("1", 4.0), ("1", 12.0)]
    for bad in ({"w": 2}, {"class": "1", "w": -1}, {"class": "1", "scale": 2}, "1"):
        broken = {**raw, "variants": [{**raw["variants"][0], "guidance": bad}]}
        with pytest.raises(ConfigError, match="guidance"):
            parse_lesson(broken)
