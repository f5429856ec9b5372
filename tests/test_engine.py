"""The engine's Qt-free parts, driven directly: no thread, no process, no window.

`ParticleChain` (one sampler walking particles), `FrameBuilder` (engine state -> Frame, with its
caches), and `Engine` (typed commands in, typed events out) as its hosts drive it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import replace

import numpy as np
import pytest
import torch

from sgm_core import engine as core
from sgm_core.chain import ParticleChain
from sgm_core.config import LossConfig, ModelConfig, RunConfig, SamplerConfig, TrainConfig
from sgm_core.datasets import make_preset
from sgm_core.frames import TRAINING_FIELD_EVERY, FrameBuilder, FrameRequest, particle_status
from sgm_core.live import FieldView, LiveEngine, decimated_losses, default_bounds
from sgm_core.metrics import SWBaseline
from sgm_core.samplers import make_sampler

SMALL = RunConfig(model=ModelConfig(width=32, depth=2), loss=LossConfig(name="ncsn"),
                  train=TrainConfig(batch=128, steps=60))
DEADLINE_S = 20.0  # a loaded 2-core box; each loop below finishes in well under a second alone


@pytest.fixture(scope="module")
def data():
    return make_preset("8gaussians", n_points=500)


def _chain(name: str, steps: int, n: int = 50, **kw) -> ParticleChain:
    sampler = make_sampler(SamplerConfig(name=name, steps=steps), SMALL.noise, SMALL.loss.name)
    return ParticleChain.from_prior(sampler, n, 2, torch.Generator().manual_seed(0), **kw)


def _zero_score(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    return torch.zeros_like(x)


# -- ParticleChain ------------------------------------------------------------------------------
def test_chain_stops_at_its_schedule_end_only_when_asked():
    chain = _chain("ode", steps=10)
    assert chain.advance(_zero_score, 7, stop_at_end=True) == 7 and not chain.done
    assert chain.advance(_zero_score, 7, stop_at_end=True) == 3 and chain.done and chain.step == 10
    langevin = _chain("annealed", steps=4)
    assert langevin.advance(_zero_score, 9) == 9 and langevin.step == 9  # live chains go on past the end


def test_chain_trails_keep_the_last_positions_oldest_first():
    chain = _chain("annealed", steps=50, trail_length=3)
    seen = []
    for _ in range(5):
        chain.advance(_zero_score, 1)
        seen.append(chain.particles.clone())
    assert len(chain.trail) == 3
    for kept, expected in zip(chain.trail, seen[-3:], strict=True):
        torch.testing.assert_close(kept, expected, rtol=0, atol=0)
    chain.set_trails(1)
    torch.testing.assert_close(chain.trail[0], seen[-1], rtol=0, atol=0)
    chain.restart(chain.particles[:5].clone())
    assert chain.step == 0 and chain.trail == []


def _exploding(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """A score that sends the first two particles to infinity."""
    out = torch.zeros_like(x)
    out[:2] = float("inf")
    return out


def test_a_blown_up_particle_restarts_at_its_start_or_from_the_prior():
    start = torch.arange(20, dtype=torch.float32).reshape(10, 2)
    sampler = make_sampler(SamplerConfig(name="annealed", steps=10), SMALL.noise, SMALL.loss.name)
    kept = ParticleChain(sampler, start.clone(), torch.Generator().manual_seed(1), initial=start)
    kept.advance(_exploding, 1)
    torch.testing.assert_close(kept.particles[:2], start[:2], rtol=0, atol=0)  # back where they began
    fresh = ParticleChain(sampler, start.clone(), torch.Generator().manual_seed(1))
    fresh.advance(_exploding, 1)
    assert torch.isfinite(fresh.particles).all() and not torch.equal(fresh.particles[:2], start[:2])


def _pull(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """A score that moves every particle (toward the origin), row by row: slices see what the whole does."""
    return -x


def test_round_robin_slices_take_exactly_the_step_the_whole_set_takes():
    whole, sliced = _chain("ode", steps=10, n=10), _chain("ode", steps=10, n=10)
    start = whole.particles.clone()
    whole.advance(_pull, 1)
    one_step = whole.particles.clone()
    whole.advance(_pull, 1)
    assert [sliced.advance_some(_pull, 3) for _ in range(3)] == [3, 3, 3]
    assert sliced.step == 0 and sliced.cursor == 9  # mid-sweep: the step counts once all took it
    torch.testing.assert_close(sliced.particles[:9], one_step[:9], rtol=0, atol=1e-6)
    torch.testing.assert_close(sliced.particles[9:], start[9:], rtol=0, atol=0)  # not yet its turn
    assert sliced.advance_some(_pull, 3) == 3  # wraps: the last one, then two of the next sweep
    assert sliced.step == 1 and sliced.cursor == 2
    torch.testing.assert_close(sliced.particles[2:], one_step[2:], rtol=0, atol=1e-6)
    torch.testing.assert_close(sliced.particles[:2], whole.particles[:2], rtol=0, atol=1e-6)
    assert sliced.advance_some(_pull, 50) == 10 and sliced.cursor == 2  # never more than all n a call
    sliced.restart(start.clone())
    assert sliced.cursor == 0 and sliced.step == 0


def test_round_robin_restarts_a_blown_up_particle_of_its_slice_only():
    start = torch.arange(20, dtype=torch.float32).reshape(10, 2)
    sampler = make_sampler(SamplerConfig(name="annealed", steps=10), SMALL.noise, SMALL.loss.name)
    chain = ParticleChain(sampler, start.clone(), torch.Generator().manual_seed(1), initial=start)
    chain.advance_some(_exploding, 4)  # the slice's first two rows are particles 0 and 1
    torch.testing.assert_close(chain.particles[:2], start[:2], rtol=0, atol=0)
    assert torch.isfinite(chain.particles).all() and torch.equal(chain.particles[4:], start[4:])


# -- shared helpers -------------------------------------------------------------------------------
def test_loss_decimation_keeps_at_most_the_budget_with_true_step_numbers():
    history = np.arange(10_001, dtype=np.float32) * 0.5
    losses, steps = decimated_losses(history, 1000)
    assert len(losses) <= 1001 and losses.dtype == np.float64
    np.testing.assert_array_equal(losses, history[steps - 1])  # each value sits at its own step
    assert steps[0] == 1 and np.all(np.diff(steps) == np.diff(steps)[0])
    short, short_steps = decimated_losses(history[:10], 1000)
    np.testing.assert_array_equal(short_steps, np.arange(1, 11))


def test_sw_baseline_ratio_is_about_one_for_data_and_large_far_away(data):
    baseline = SWBaseline(data.sample, 400, seed=3)
    # A third independent data draw is as far from the reference as the baseline draw: ratio ~1
    # (three 400-point draws; the SW of such draws varies by a few tens of percent).
    _, same = baseline.distance(data.sample(400, torch.Generator().manual_seed(99)))
    _, far = baseline.distance(data.sample(400, torch.Generator().manual_seed(99)) + 10.0)
    assert 0.5 < same < 2.0 and far > 20


# -- FrameBuilder ---------------------------------------------------------------------------------
def test_frame_builder_caches_the_field_until_the_model_steps(data):
    eng = LiveEngine(data, SMALL, n_particles=30)
    builder = FrameBuilder()
    view = FieldView(default_bounds(data.points), resolution=8, sigma=0.2, heatmap_resolution=12)
    request = FrameRequest(view, "error", training=False)
    first = builder.build(eng, request, gen=1)
    again = builder.build(eng, request, gen=1)
    assert again.field is first.field and again.true_field is first.true_field  # nothing changed: no recompute
    assert first.error_map.shape == (12, 12) and first.heatmap_bounds == view.bounds[:2]
    eng.train(2)
    stepped = builder.build(eng, request, gen=1)
    assert stepped.field is not first.field and stepped.true_field is first.true_field  # truth has no step
    assert builder.build(eng, request, gen=2).true_field is not first.true_field  # a new engine generation


def test_while_training_the_field_refreshes_on_its_throttle_and_at_once_when_training_stops(data):
    """At 30 frames/s the field of a model that steps every frame took ~5% of the engine's time that
    training gets; while training it refreshes every TRAINING_FIELD_EVERY, else at once."""
    eng = LiveEngine(data, SMALL, n_particles=30)
    builder = FrameBuilder()
    view = FieldView(default_bounds(data.points), resolution=8, sigma=0.2)
    training = FrameRequest(view, "off", training=True)
    first = builder.build(eng, training, gen=1, now=100.0)
    eng.train(2)
    soon = builder.build(eng, training, gen=1, now=100.0 + TRAINING_FIELD_EVERY / 2)
    assert soon.field is first.field  # the model stepped, the throttle holds the field
    later = builder.build(eng, training, gen=1, now=100.0 + 2 * TRAINING_FIELD_EVERY)
    assert later.field is not first.field
    np.testing.assert_allclose(later.field.vectors, eng.field(view).vectors)
    eng.train(1)
    stopped = builder.build(eng, FrameRequest(view, "off", training=False), gen=1, now=100.0 + 2 * TRAINING_FIELD_EVERY)
    np.testing.assert_allclose(stopped.field.vectors, eng.field(view).vectors)  # this step's field, at once
    assert not np.allclose(stopped.field.vectors, later.field.vectors)


def test_frame_builder_ignores_a_view_of_another_dimension_and_gives_an_eta(data):
    eng = LiveEngine(data, SMALL, n_particles=30)
    cube = FieldView(((-1.0, 1.0),) * 3, resolution=6)
    frame = FrameBuilder().build(eng, FrameRequest(cube), gen=1)
    assert frame.field is None and frame.error_map is None and frame.particles.shape == (30, 2)
    eng._rate = 100.0  # steps/s as the engine measured them
    timed = FrameBuilder().build(eng, FrameRequest(None, training=True, target=250, train_seconds=1.5), gen=1)
    assert timed.eta == pytest.approx(2.5) and timed.elapsed == 1.5


# -- Engine ---------------------------------------------------------------------------------------
class Driven:
    """Hosts an Engine the way the worker does, in this thread: commands, work, and the events."""

    def __init__(self) -> None:
        self.events: list[object] = []
        self.engine = core.Engine(self.events.append)

    def send(self, *commands: object) -> None:
        self.engine.handle(list(commands))

    def run_until(self, done, ack: bool = True) -> None:  # noqa: ANN001
        deadline = time.monotonic() + DEADLINE_S
        while not done():
            assert time.monotonic() < deadline, f"engine did not get there; events: {self.events[-5:]}"
            if ack and not self.engine.drawn:
                self.send(core.FrameDrawn())
            if not self.engine.work():
                time.sleep(min(0.005, self.engine.idle_timeout()))

    def of(self, kind: type) -> list:
        return [e for e in self.events if isinstance(e, kind)]


def test_engine_trains_to_its_target_and_reports_each_state(data):
    h = Driven()
    view = FieldView(default_bounds(data.points), resolution=8, sigma=0.2)
    h.send(core.SetView(view), core.SetEngine(core.EngineSpec(data, SMALL, SamplerConfig(name="annealed"), 40)),
           core.Train())
    assert h.of(core.StateChanged)[-1].state == core.EngineState(True, True, False, True, 60)  # Train plays too
    h.run_until(lambda: h.of(core.FinishedTraining))
    assert h.of(core.FinishedTraining)[0].step == 60 and not h.engine.state.training
    h.run_until(lambda: h.of(core.FrameReady)[-1].frame.step == 60)
    frame = h.of(core.FrameReady)[-1].frame
    assert frame.field is not None and len(frame.losses) == 60 and frame.elapsed > 0


def test_particles_step_on_their_own_thread_beside_training_and_every_reader_waits_for_them(data):
    """While training, a frame's particle steps run on the particle thread, overlapping the chunk
    (issue 12: on one thread they took a third of the engine's time from training); a command
    that touches the chain, a frame and the metrics come only after those steps ended."""
    h = Driven()
    h.send(core.SetEngine(core.EngineSpec(data, replace(SMALL, train=replace(SMALL.train, steps=100_000)),
                                          SamplerConfig(name="annealed"), 200)), core.SetMetrics(True), core.Train())
    eng = h.engine.engine
    threads, overlapped, moving = set(), [], threading.Event()
    advance, train = eng.advance, eng.train

    def slow_advance(n: int) -> None:
        threads.add(threading.current_thread().name)
        moving.set()
        time.sleep(0.01)  # long enough that the main thread's chunk runs meanwhile
        advance(n)
        moving.clear()

    def watched_train(n: int) -> None:
        overlapped.append(moving.is_set())
        train(n)

    eng.advance, eng.train = slow_advance, watched_train
    h.run_until(lambda: len(h.of(core.FrameReady)) >= 8 and h.of(core.MetricsUpdated))
    assert threads and all(name.startswith("particles") for name in threads)
    assert any(overlapped), "no training chunk ran while the particles stepped"
    h.run_until(lambda: h.engine._moving is not None, ack=False)
    h.send(core.FrameDrawn())  # touches no particle: the particle steps go on beside training
    assert h.engine._moving is not None
    before = eng.sampler_step
    h.send(core.ResetParticles(50))  # joins the particle thread first: the chain is reset, not raced
    assert h.engine._moving is None and len(eng.particles) == 50 and eng.sampler_step == 0 <= before
    frame = h.engine.build_frame()
    assert frame.particles.shape == (50, 2)
    h.send(core.StopTraining())
    h.engine.close()  # the thread ends with the engine
    assert not any(t.name.startswith("particles") for t in threading.enumerate())


def test_one_costly_frame_does_not_slow_the_frame_clock_but_steadily_costly_frames_do(data):
    """FRAME_BUDGET caps the share of the engine's time that frames take, on their mean cost: a
    single 30 ms frame (a slow part's refresh) keeps the 30 Hz clock, frames that cost 30 ms
    every time stretch it to 30 / FRAME_BUDGET ms."""
    h = Driven()
    h.send(core.SetEngine(core.EngineSpec(data, SMALL, SamplerConfig(name="annealed"), 40)))
    build, costs = h.engine.build_frame, iter([0.0] * 5 + [0.03] + [0.0] * 3 + [0.03] * 30)

    def timed_build():  # noqa: ANN202
        time.sleep(next(costs))
        return build()

    h.engine.build_frame = timed_build
    periods = []
    for _ in range(39):
        now = time.perf_counter()
        h.engine._next_frame = now  # due now
        h.engine._emit_frame(now)
        periods.append(h.engine._next_frame - now)
    assert max(periods[:9]) == pytest.approx(1 / core.MAX_FPS)
    assert periods[-1] > 0.8 * 0.03 / core.FRAME_BUDGET


def test_engine_steps_particles_inline_when_not_training(data):
    h = Driven()
    h.send(core.SetEngine(core.EngineSpec(data, SMALL, SamplerConfig(name="annealed"), 40)), core.Play())
    h.run_until(lambda: len(h.of(core.FrameReady)) >= 3)
    assert h.engine._mover is None  # nothing to overlap with: no second thread


def test_engine_sends_no_frame_until_the_last_was_drawn(data):
    h = Driven()
    h.send(core.SetEngine(core.EngineSpec(data, SMALL, SamplerConfig(name="annealed"), 40)), core.Play())
    h.run_until(lambda: h.of(core.FrameReady), ack=False)
    for _ in range(30):
        h.engine.work()
    assert len(h.of(core.FrameReady)) == 1 and h.engine.frames_emitted == 1  # newest wins: no backlog
    h.send(core.FrameDrawn())
    h.run_until(lambda: len(h.of(core.FrameReady)) >= 2, ack=False)
    assert h.of(core.FrameReady)[1].frame.sampler_step > h.of(core.FrameReady)[0].frame.sampler_step


def test_engine_builds_only_the_newest_of_several_rebuilds(data):
    h = Driven()
    specs = [core.EngineSpec(data, SMALL, SamplerConfig(name="annealed"), n) for n in (10, 20, 30)]
    h.send(*(core.SetEngine(s) for s in specs))
    assert h.engine.state.gen == 1 and len(h.engine.engine.particles) == 30


def test_engine_commands_without_data_fail_politely_and_strangers_are_refused(data):
    h = Driven()
    h.send(core.SetEngine(core.EngineSpec(None, SMALL, SamplerConfig(), 10)), core.Train(), core.Play())
    assert [e.message for e in h.of(core.Failed)] == [
        "there is no data to train on: draw at least 2 points or load a preset"] * 2
    assert h.of(core.StateChanged) == [] and not h.engine.state.training  # nothing changed: nothing published
    with pytest.raises(TypeError, match="not an engine command"):
        h.send("train")


def test_engine_tasks_always_answer_with_their_token(data):
    h = Driven()
    h.send(core.SetEngine(core.EngineSpec(data, SMALL, SamplerConfig(name="annealed"), 10)),
           core.RunTask(7, lambda eng: eng.trainer.step), core.RunTask(8, lambda eng: 1 / 0),
           core.ReplaceEngine(9, lambda: (_ for _ in ()).throw(OSError("disk full"))))
    assert h.of(core.TaskFinished) == [core.TaskFinished(7, 0)]
    assert [(e.token, e.message) for e in h.of(core.TaskFailed)] == [
        (8, "unexpected error (ZeroDivisionError: division by zero)"), (9, "disk full")]
    assert h.engine.engine is not None  # a failed replacement leaves the engine as it was


def test_engine_stops_integrators_at_their_end_and_shows_it(data):
    h = Driven()
    h.send(core.SetEngine(core.EngineSpec(data, replace(SMALL), SamplerConfig(name="ode", steps=6), 20)),
           core.SetStepsPerFrame(2), core.Play())
    h.run_until(lambda: not h.engine.state.playing)
    h.run_until(lambda: h.of(core.FrameReady)[-1].frame.sampler_done)
    assert h.of(core.StateChanged)[-1].state.playing is False


def test_engine_sends_its_weights_where_training_rests_and_they_restore_exactly(data):
    h = Driven()
    spec = core.EngineSpec(data, SMALL, SamplerConfig(name="annealed"), 20)
    h.send(core.SetEngine(spec), core.Train())
    h.run_until(lambda: h.of(core.FinishedTraining))
    saved = h.of(core.Checkpoint)[-1]
    assert saved.step == 60 and saved.gen == h.of(core.EngineBuilt)[-1].gen
    assert all(isinstance(v, np.ndarray) for v in saved.model.values())  # no torch needed to hold them
    restored, _, step = core.restore_engine(spec, saved)
    view = FieldView(default_bounds(data.points), resolution=8, sigma=0.2)
    np.testing.assert_array_equal(restored.field(view).vectors, h.engine.engine.field(view).vectors)
    assert step == 60 and restored.trainer.step == 60 and len(restored.trainer.losses) == 60
    other = replace(SMALL, model=replace(SMALL.model, width=16))  # settings changed since: weights do not fit
    fresh, _, step = core.restore_engine(replace(spec, config=other), saved)
    assert step == 0 and fresh.trainer.step == 0


def test_particle_status_says_how_many_how_often_and_how_many_per_update():
    parts = np.zeros((100_000, 2), np.float32)
    base = core.Frame(step=0, losses=np.zeros(0), loss_steps=np.zeros(0, int), particles=parts, trails=None,
                      sampler_step=0, sampler_sigma=1.0, sampler_done=False, field=None, true_field=None,
                      field_sigma=0.1, heatmap=None, error_map=None, heatmap_bounds=None, score_error=None,
                      reference_kind="analytic", steps_per_second=0.0, elapsed=0.0, eta=None, device="cpu", dim=2)
    assert particle_status(base) == "100,000 particles"
    assert particle_status(replace(base, particle_rate=6.2, particles_moved=500_000)) == "100,000 particles, 6 updates/s"
    assert (particle_status(replace(base, particle_rate=25.0, particles_moved=12_000))
            == "100,000 particles, 25 updates/s (12,000 move per update)")
    assert (particle_status(replace(base, acceptance_rate=0.634, particle_rate=6.0, particles_moved=500_000))
            == "100,000 particles, 63% accepted, 6 updates/s")  # MALA's Metropolis acceptance
    # paused particles: the rate last measured said "6 updates/s" under a still cloud
    assert particle_status(replace(base, particle_rate=6.2, particles_moved=500_000), moving=False) == "100,000 particles"


def test_too_many_particles_for_the_budget_move_round_robin_and_all_move_within_ceil_n_over_slice_frames(
        data, monkeypatch):
    """A frame's budget far below one whole step: every frame moves a slice, each particle moves
    within the frames whose slices first add up to n, and the frames report it."""
    n = 20_000
    monkeypatch.setattr(core, "PLAY_BUDGET", 0.002)  # playing, not training: the play budget applies
    h = Driven()
    h.send(core.SetEngine(core.EngineSpec(data, SMALL, SamplerConfig(name="annealed"), n)), core.Play())
    h.run_until(lambda: len(h.of(core.FrameReady)) >= 4)  # the cost estimate settles
    first = len(h.of(core.FrameReady))
    frames = lambda: [e.frame for e in h.of(core.FrameReady)[first:]]  # noqa: E731
    h.run_until(lambda: sum(f.particles_moved for f in frames()) >= n)
    window = frames()
    slices = [f.particles_moved for f in window]
    assert all(0 < m < n for m in slices), slices  # slices, not whole steps
    assert len(window) <= -(-n // min(slices))  # ceil(n / slice) frames at most
    before = h.of(core.FrameReady)[first - 1].frame.particles
    assert (window[-1].particles != before).any(axis=1).all()  # every particle moved in those frames
    assert window[-1].particle_rate > 0
    text = particle_status(window[-1])
    assert text.startswith("20,000 particles, ") and "updates/s (" in text and text.endswith(" move per update)")


def test_a_chain_begun_by_a_measuring_slice_goes_on_in_whole_steps_per_frame(data, monkeypatch):
    """More particles than FIRST_SLICE: a new chain's first frame moves a slice to measure the
    cost; with room in the budget the next frame ends that sweep and the ones after take
    steps-per-frame whole steps (it used to stay mid-sweep: one step a frame for good)."""
    n, per_frame = core.FIRST_SLICE + 500, 6
    monkeypatch.setattr(core, "PLAY_BUDGET", 10.0)  # room for every step asked
    h = Driven()
    h.send(core.SetEngine(core.EngineSpec(data, SMALL, SamplerConfig(name="annealed"), n)),
           core.SetStepsPerFrame(per_frame), core.Play())
    h.run_until(lambda: len(h.of(core.FrameReady)) >= 4)
    frames = [e.frame for e in h.of(core.FrameReady)]
    first = next(i for i, f in enumerate(frames) if f.particles_moved == core.FIRST_SLICE)  # the measuring slice
    assert frames[first + 1].particles_moved == n - core.FIRST_SLICE + (per_frame - 1) * n  # its sweep, then whole steps
    later = frames[first + 2:]
    assert later and all(f.particles_moved == per_frame * n for f in later), [f.particles_moved for f in frames]
    steps = [f.sampler_step for f in frames[first + 1:]]
    assert all(b - a == per_frame for a, b in zip(steps, steps[1:], strict=False)), steps


def test_engine_measures_a_lessons_claims_from_its_own_particle_pass_only_once_it_ends():
    """CheckLesson (issue 14): nothing is measured before the sampler's pass ends; then one
    LessonChecked with the lesson's claims, measured on the engine's own particles (the pass is
    replaced by a collapsed one: the claim must fail, so the engine's particles, not a headless
    run, were measured); a new pass is measured again."""
    from sgm_core.datasets import load_dataset
    from sgm_core.lessons import lesson_by_id

    lesson = lesson_by_id("score-field")
    variant = lesson.variants[0]
    h = Driven()
    h.send(core.SetReferenceScore(True),
           core.SetEngine(core.EngineSpec(load_dataset(lesson.data), variant.run, variant.sampler, 300)),
           core.CheckLesson(lesson, variant.label), core.Play())
    for _ in range(3):
        h.engine.work()
    assert not h.of(core.LessonChecked) and not h.engine.engine.chain.done
    h.run_until(lambda: h.of(core.LessonChecked))
    (checked,) = h.of(core.LessonChecked)
    assert checked.label == variant.label and [c.holds for c in checked.claims] == [True]
    assert "share on a mode" in checked.claims[0].line and "above 90.0%" in checked.claims[0].line
    h.send(core.PauseParticles())
    eng = h.engine.engine
    eng.chain.restart(torch.full_like(eng.particles, 50.0))  # far from every mode
    eng.chain.step = eng.sampler.n_steps  # ... at the end of its schedule
    h.run_until(lambda: len(h.of(core.LessonChecked)) == 2)
    assert [c.holds for c in h.of(core.LessonChecked)[1].claims] == [False]


def test_a_lesson_left_open_over_3d_data_is_not_measured_and_raises_nothing():
    """Found by the GUI monkey test: a 2D lesson's checks, still on when a 3D preset was loaded,
    mixed 2D and 3D coordinates (RuntimeError in the engine). Other data is simply not judged."""
    from sgm_core.datasets import load_dataset
    from sgm_core.lessons import lesson_by_id

    lesson = lesson_by_id("score-field")
    variant = lesson.variants[0]
    h = Driven()
    h.send(core.SetReferenceScore(True), core.CheckLesson(lesson, variant.label),
           core.SetEngine(core.EngineSpec(load_dataset("helix", n_points=500), variant.run, variant.sampler, 100)),
           core.Play())
    h.run_until(lambda: h.engine.engine.chain.done)
    for _ in range(5):
        h.engine.work()
    assert not h.of(core.Failed) and not h.of(core.LessonChecked)


@pytest.mark.parametrize("sampler", ["ode", "annealed"])
def test_metrics_measure_the_schedules_end_at_once_not_a_refresh_later(data, monkeypatch, sampler):
    """With the sample-metrics refresh set to a day, the only measurement past the first is the one
    the end of the schedule asks for: ode stops there (the particles rest), annealed plays on."""
    monkeypatch.setattr(core, "METRICS_SAMPLES_EVERY", 86_400.0)
    h = Driven()
    h.send(core.SetEngine(core.EngineSpec(data, SMALL, SamplerConfig(name=sampler, steps=4), 30)),
           core.SetMetrics(True), core.SetStepsPerFrame(3), core.Play())
    n_steps = h.engine.engine.sampler.n_steps

    def measured_end() -> bool:
        return any("samples" in e.metrics["updated"] and e.metrics["sampler_step"] >= n_steps
                   for e in h.of(core.MetricsUpdated))

    h.run_until(measured_end)
    samples = [e.metrics for e in h.of(core.MetricsUpdated) if "samples" in e.metrics["updated"]]
    assert samples[0]["sampler_step"] < n_steps  # the first, at the start, on the throttle
    assert samples[-1]["sampler_step"] >= n_steps and len(samples) <= 3  # then the end, not a stream
