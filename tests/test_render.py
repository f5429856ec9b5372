"""The headless renderer: pixels land where the points are, arrows point along their vectors,
3D orbits turn, and `render_run` / `sgm render` write GIF and MP4 files that imageio reads back."""

from __future__ import annotations

import math
import subprocess
import sys
import time

import numpy as np
import pytest

iio = pytest.importorskip("imageio.v3")

from sgm_core import cli, palette  # noqa: E402
from sgm_core.errors import ConfigError, DataError, SessionError  # noqa: E402
from sgm_core.limits import MAX_FRAMES, MAX_SAMPLES, MAX_STEPS  # noqa: E402
from sgm_core.render import (  # noqa: E402
    DARK_STYLE,
    Camera,
    Decor,
    FrameContent,
    FrameStyle,
    LegendRow,
    RenderCancelled,
    View,
    colormap,
    figure_layout,
    fit_camera,
    fit_view,
    grid_points,
    nice_ticks,
    render_frame,
    render_frames,
    render_run,
    write_video,
)
from sgm_core.samplers import SAMPLER_SPECS, SAMPLERS  # noqa: E402
from sgm_core.video import MAX_SIDE  # noqa: E402

STYLE = FrameStyle()
SIZE = (200, 160)  # (W, H): not square, so a swapped axis shows up
VIEW = fit_view(np.array([[-2.0, -2.0], [2.0, 2.0]]), margin=0.0, aspect=SIZE[0] / SIZE[1])
TICK_ROWS = 17  # the tick marks and their labels below a 360x300 figure's plot (9 px font)
FAST_MS = 150  # 10k particles + 32x32 arrows measure ~12 ms at 512x512; 150 only catches a Python loop


def pixel(view: View, xy, size=SIZE) -> tuple[int, int]:
    """(row, col) of a data point, by the renderer's own mapping."""
    col, row = np.rint(view.to_pixels(np.asarray([xy], float), size)[0]).astype(int)
    return int(row), int(col)


def is_bg(img: np.ndarray, style: FrameStyle = STYLE) -> np.ndarray:
    return (img == np.array(style.background, np.uint8)).all(axis=-1)


# --------------------------------------------------------------------------- geometry


def test_fit_view_keeps_square_units_and_holds_the_points():
    pts = np.array([[0.0, 0.0], [4.0, 1.0], [1.0, -1.0]])
    for aspect in (1.0, 2.0, 0.5):
        v = fit_view(pts, margin=0.1, aspect=aspect)
        width, height = v.xlim[1] - v.xlim[0], v.ylim[1] - v.ylim[0]
        assert width / height == pytest.approx(aspect)
        assert v.xlim[0] < 0 and v.xlim[1] > 4 and v.ylim[0] < -1 and v.ylim[1] > 1


def test_fit_view_survives_one_point_and_nans():
    v = fit_view(np.array([[3.0, 3.0], [np.nan, 1.0]]))
    assert v.xlim[0] < 3 < v.xlim[1] and v.ylim[0] < 3 < v.ylim[1]
    assert all(math.isfinite(c) for c in (*v.xlim, *v.ylim))


def test_view_maps_corners_to_corner_pixels():
    view = View((0.0, 10.0), (0.0, 8.0))
    px = view.to_pixels(np.array([[0.0, 8.0], [10.0, 0.0], [5.0, 4.0]]), (100, 80))
    np.testing.assert_allclose(px, [[-0.5, -0.5], [99.5, 79.5], [49.5, 39.5]])  # pixel centres at integers


@pytest.mark.parametrize("azimuth,elevation", [(0, 0), (-60, 25), (123, -40), (270, 89)])
def test_camera_rotation_is_right_handed_orthonormal(azimuth, elevation):
    r = Camera(azimuth, elevation).rotation()
    np.testing.assert_allclose(r @ r.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(r) == pytest.approx(1.0)


def test_camera_projection_axes():
    # Looking from +x along -x, z up: +y is screen right, +z screen up, +x towards the viewer.
    uv, depth = Camera(azimuth=0, elevation=0).project(np.array([[0, 1.0, 0], [0, 0, 1.0], [1.0, 0, 0]]))
    np.testing.assert_allclose(uv, [[1, 0], [0, 1], [0, 0]], atol=1e-12)
    np.testing.assert_allclose(depth, [0, 0, 1], atol=1e-12)
    # Perspective: nearer points spread out; a point behind the camera is dropped (NaN).
    uv, _ = Camera(0, 0, distance=4.0).project(np.array([[2.0, 1.0, 0], [-2.0, 1.0, 0], [5.0, 1.0, 0]]))
    assert uv[0, 0] > 1.0 > uv[1, 0] and np.isnan(uv[2]).all()


def test_grid_points_cover_the_view():
    g = grid_points(VIEW, 8)
    assert g.shape == (64, 2)
    assert VIEW.xlim[0] < g[:, 0].min() < g[:, 0].max() < VIEW.xlim[1]
    assert VIEW.ylim[0] < g[:, 1].min() < g[:, 1].max() < VIEW.ylim[1]


def test_colormap_runs_through_its_anchors():
    lut = colormap(((0, 0, 0), (255, 255, 255)), 256)
    assert lut.shape == (256, 3) and lut.dtype == np.uint8
    assert tuple(lut[0]) == (0, 0, 0) and tuple(lut[-1]) == (255, 255, 255)
    assert (np.diff(lut[:, 0].astype(int)) >= 0).all()


# --------------------------------------------------------------------------- 2D frames


def test_empty_frame_is_background_of_the_asked_size():
    img = render_frame(SIZE, VIEW)
    assert img.shape == (SIZE[1], SIZE[0], 3) and img.dtype == np.uint8
    assert is_bg(img).all()
    dark = render_frame(SIZE, VIEW, style=DARK_STYLE)
    assert is_bg(dark, DARK_STYLE).all()


def test_particles_land_on_their_pixels():
    pts = np.array([[-1.0, 1.0], [1.5, -0.5], [0.0, 0.0]])
    img = render_frame(SIZE, VIEW, particles=pts)
    for p in pts:
        r, c = pixel(VIEW, p)
        assert tuple(img[r, c]) == STYLE.particle_color
        assert tuple(img[r, c + math.ceil(STYLE.particle_radius)]) == STYLE.particle_color  # a dot, not a pixel
    assert is_bg(img[:10, :10]).all()  # far from every particle: untouched
    n_painted = (~is_bg(img)).sum()
    assert 3 * 13 <= n_painted <= 3 * 25  # three radius-2 disks


def test_y_points_up():
    img = render_frame(SIZE, VIEW, particles=np.array([[0.0, 1.8]]))
    rows = np.nonzero(~is_bg(img))[0]
    assert rows.max() < SIZE[1] // 4  # near the top of the frame


def test_data_is_faint_and_under_the_particles():
    img = render_frame(SIZE, VIEW, data=np.array([[0.5, 0.5], [-1.0, -1.0]]), particles=np.array([[0.5, 0.5]]))
    assert tuple(img[pixel(VIEW, (-1.0, -1.0))]) == STYLE.data_color
    assert tuple(img[pixel(VIEW, (0.5, 0.5))]) == STYLE.particle_color


def test_non_finite_and_far_points_are_skipped():
    pts = np.array([[np.nan, 0.0], [np.inf, 1.0], [1e30, -1e30], [0.0, 0.0]])
    img = render_frame(SIZE, VIEW, particles=pts, data=pts, trails=np.stack([pts, pts[::-1]]),
                       field=(pts, pts))
    assert tuple(img[pixel(VIEW, (0.0, 0.0))]) == STYLE.particle_color


def test_3d_points_without_a_camera_are_refused():
    with pytest.raises(ValueError, match="camera"):
        render_frame(SIZE, VIEW, particles=np.zeros((4, 3)))


def arrow_centroid_offset(direction, magnitude=1.0):
    anchor = np.array([[0.0, 0.0]])
    img = render_frame(SIZE, VIEW, field=(anchor, np.array([direction], float) * magnitude))
    rows, cols = np.nonzero(~is_bg(img))
    r0, c0 = pixel(VIEW, anchor[0])
    return np.array([cols.mean() - c0, -(rows.mean() - r0)]), img  # (right, up) in pixels


@pytest.mark.parametrize("direction", [(1, 0), (0, 1), (-1, 0), (0, -1), (1, 1), (-2, 1)])
def test_arrow_points_along_its_vector(direction):
    # A centred arrow's shaft is symmetric about its anchor, so its head pulls the drawn
    # pixels' centroid towards the tip: that shift must point along the vector.
    offset, img = arrow_centroid_offset(direction)
    unit = np.array(direction, float) / np.linalg.norm(direction)
    assert offset @ unit / np.linalg.norm(offset) > 0.95  # within ~18 degrees
    assert (~is_bg(img)).sum() > 10


def test_arrow_tip_and_tail():
    anchor, vec = np.array([[0.0, 0.0]]), np.array([[1.0, 0.0]])
    img = render_frame(SIZE, VIEW, field=(anchor, vec))
    r, c = pixel(VIEW, anchor[0])
    cols = np.nonzero(~is_bg(img[r]))[0]
    tip, tail = cols.max(), cols.min()
    assert tip - c == pytest.approx(c - tail, abs=1.5)  # centred on the anchor
    # Barbs above and below the shaft exist only near the tip.
    above = np.nonzero(~is_bg(img[: r - 1]))[1]
    assert above.size and above.min() > c


def test_arrow_colour_follows_magnitude():
    # As the window colours arrows: |v| linear from 0 to its 95th percentile (the legend's top), clipped.
    anchors = np.array([[-1.5, 0.0], [-0.5, 0.0], [0.5, 0.0], [1.5, 0.0]])
    mags = np.array([0.0, 1.0, 2.0, 3.0])
    img = render_frame(SIZE, VIEW, field=(anchors, np.stack([np.zeros(4), mags + 1e-9], axis=1)))
    top = float(np.percentile(mags, 95))  # 2.85
    lut = colormap(STYLE.arrow_colors).astype(int)
    for a, m in zip(anchors[1:], mags[1:], strict=True):
        drawn = img[pixel(VIEW, a)].astype(int)
        assert np.abs(drawn - lut[min(255, int(m / top * 255))]).max() <= 2, (m, drawn)
    assert STYLE.arrow_colors[0] == palette.bin_colors(8)[0][:3]  # the app's arrow colours, low to high


def test_trails_fade_with_age():
    p = [np.array([[x, 0.0]]) for x in (-0.6, -0.2, 0.2)]  # oldest first, 16 px steps to the right
    img = render_frame(SIZE, VIEW, trails=np.stack(p), particles=p[-1])
    old, new = img[pixel(VIEW, (-0.4, 0.0))].astype(int), img[pixel(VIEW, (0.0, 0.0))].astype(int)
    bg, colour = np.array(STYLE.background), np.array(STYLE.particle_color)
    assert np.abs(old - bg).sum() > 0 and np.abs(new - bg).sum() > np.abs(old - bg).sum()
    assert np.abs(new - colour).sum() > 0  # translucent, not the particle colour


def test_trail_jumps_are_not_drawn():
    # A move longer than trail_jump of the frame is Langevin noise at a high sigma, not a path.
    p = np.array([[[-1.5, 0.0]], [[1.5, 0.0]]])
    assert is_bg(render_frame(SIZE, VIEW, trails=p)).all()
    assert not is_bg(render_frame(SIZE, VIEW, trails=p, style=FrameStyle(trail_jump=1.0))).all()


def test_title_is_drawn_top_left():
    img = render_frame(SIZE, VIEW, title="step 12/100  sigma 0.5")
    h, w = SIZE[1], SIZE[0]
    assert (~is_bg(img[: h // 5, : w // 2])).sum() > 30
    assert is_bg(img[h // 3:]).all()


def test_the_style_is_the_apps_palette():
    assert STYLE.particle_color == palette.PARTICLE[:3] and STYLE.text_color == palette.FOREGROUND[:3]
    assert STYLE.data_color == palette.over_background(palette.DATA)  # translucent grey-blue over white
    assert STYLE.background == (255, 255, 255)


def _figure(size=(360, 300), caption="annealed  step 3/10  σ 0.5", **decor):
    """One decorated frame of a dense field over the whole plot, particles at its four corners."""
    rows = (LegendRow("ramp", STYLE.arrow_colors, "Learned score"), LegendRow("dot", (STYLE.particle_color,), "Particles"))
    d = Decor(**({"legend": rows} | decor))
    layout = figure_layout(size, d)
    x, y, pw, ph = layout.plot
    view = fit_view(np.array([[-2.0, -2.0], [2.0, 2.0]]), margin=0.0, aspect=pw / ph)
    anchors = grid_points(view, 30)
    corners = np.array([[view.xlim[i], view.ylim[j]] for i in (0, 1) for j in (0, 1)]) * 0.97
    content = FrameContent(particles=corners, field=(anchors, -anchors), title=caption)
    (img,) = render_frames([content], size=size, view=view, trail_length=0, decor=d)
    return img, layout, view


def _arrowish(px: np.ndarray) -> np.ndarray:
    """Pixels of the arrow palette (viridis is never grey: its channels differ by > 40)."""
    return (px.max(axis=-1).astype(int) - px.min(axis=-1)) > 40


def test_a_figure_puts_caption_axes_and_legend_in_bands_of_their_own():
    img, layout, view = _figure()
    x, y, pw, ph = layout.plot
    assert layout.caption and layout.axes and layout.legend_lines
    plot = img[y:y + ph, x:x + pw]
    assert _arrowish(plot[:ph // 4, :pw // 3]).sum() > 100  # the field reaches the plot's top-left: not veiled
    caption = img[:y - 1]
    assert (~is_bg(caption)).sum() > 40  # the caption's text...
    assert not _arrowish(caption).any()  # ...and nothing of the field above the plot
    left, below = img[y:y + ph, :x - 1], img[y + ph + 1:]
    assert not (_arrowish(left).any() or _arrowish(below[: TICK_ROWS]).any())  # ticks: grey text only
    legend = img[y + ph + 1 + TICK_ROWS:]
    assert (np.abs(legend.astype(int) - STYLE.particle_color).max(axis=-1) <= 10).sum() >= 10  # the particle swatch
    assert (np.abs(legend.astype(int) - STYLE.arrow_colors[0]).max(axis=-1) <= 10).sum() >= 3  # the field's ramp
    # a tick mark under x = 0, in the axis colour, right below the plot's frame
    col = int(round(x + (0 - view.xlim[0]) / (view.xlim[1] - view.xlim[0]) * pw - 0.5))
    assert tuple(img[y + ph + 2, col]) == STYLE.axis_color
    assert list(nice_ticks(-2.3, 2.3)) == [-2.0, -1.0, 0.0, 1.0, 2.0]


def test_a_frame_too_small_for_the_bands_drops_legend_then_axes():
    img, layout, _ = _figure(size=(64, 48))
    assert (layout.axes, layout.legend_lines) == (False, ())
    assert layout.plot[3] >= 0.55 * 48
    _, no_axes, _ = _figure(axes=False, legend=())
    assert not no_axes.axes and no_axes.plot[2] > _figure()[1].plot[2]  # the plot takes the room


def test_the_caption_says_sigma_with_its_glyph_or_spells_it_out():
    from PIL import ImageFont

    from sgm_core.render import _ascii, _font

    font = _font(12)
    plain = ImageFont.load_default(size=12)  # Pillow's own font has no Greek
    assert _ascii("σ 0.5", plain) == "sigma 0.5"
    text = _ascii("σ 0.5", font)
    assert text == ("σ 0.5" if font.getname()[0] != plain.getname()[0] else "sigma 0.5")


def test_fast_enough_for_live_export():
    rng = np.random.default_rng(0)
    view = fit_view(np.array([[-3.0, -3.0], [3.0, 3.0]]))
    particles = rng.uniform(-3, 3, (10_000, 2))
    anchors = grid_points(view, 32)
    field = (anchors, -anchors)
    render_frame((512, 512), view, particles=particles, field=field)  # warm caches
    best = math.inf
    for _ in range(5):
        t = time.perf_counter()
        render_frame((512, 512), view, particles=particles, field=field, title="step 1")
        best = min(best, time.perf_counter() - t)
    assert best * 1e3 < FAST_MS


# --------------------------------------------------------------------------- 3D frames


HELIX = np.stack([2 * np.cos(t := np.linspace(-3 * np.pi, 3 * np.pi, 600)), 2 * np.sin(t), t / np.pi], axis=1)


def test_3d_nearer_dots_win_and_are_darker():
    cam = Camera(azimuth=0, elevation=0)  # viewer on +x
    view = fit_view(np.array([[0, -2.0, -2.0], [0, 2.0, 2.0]]), camera=cam, margin=0)
    near, far = np.array([[1.0, 0.0, 0.0]]), np.array([[-1.0, 0.0, 0.0]])
    both = render_frame(SIZE, view, particles=np.concatenate([far, near]), camera=cam)
    only_near = render_frame(SIZE, view, particles=near, camera=cam)
    only_far = render_frame(SIZE, view, particles=far, camera=cam)
    r, c = SIZE[1] // 2, SIZE[0] // 2
    assert np.array_equal(both[r, c], only_near[r, c])  # z-buffer: the nearer dot covers the farther
    assert only_near[r, c].astype(int).sum() < only_far[r, c].astype(int).sum()  # far fades to white


def test_3d_orbit_frames_differ_and_come_back():
    cam = fit_camera(HELIX)
    view = fit_view(HELIX, camera=cam)
    contents = [FrameContent(particles=HELIX[::3])] * 5
    frames = list(render_frames(contents, size=SIZE, view=view, data=HELIX, camera=cam, orbit_step=90.0))
    for a, b in zip(frames[:-1], frames[1:], strict=True):
        assert (a != b).any(axis=-1).mean() > 0.005
    assert np.array_equal(frames[0], frames[4])  # 4 x 90 degrees is a full turn
    # A bounding-sphere view keeps every orbit angle inside the frame.
    for f in frames:
        edge = np.concatenate([f[0], f[-1], f[:, 0], f[:, -1]])
        assert (edge == np.array(STYLE.background, np.uint8)).all()


def test_3d_field_arrows_are_projected():
    cam = Camera(azimuth=0, elevation=0)
    view = fit_view(np.array([[0, -2.0, -2.0], [0, 2.0, 2.0]]), camera=cam, margin=0)
    img = render_frame(SIZE, view, field=(np.zeros((1, 3)), np.array([[0.0, 0.0, 1.0]])), camera=cam)
    rows, _ = np.nonzero(~is_bg(img))
    assert rows.mean() < SIZE[1] / 2  # +z is screen up: the head pulls the centroid up


# --------------------------------------------------------------------------- animations


def test_render_frames_trails_reset_when_the_particle_count_changes():
    a, b = np.array([[-0.2, 0.0]]), np.array([[0.2, 0.0]])
    contents = [FrameContent(particles=a), FrameContent(particles=b),
                FrameContent(particles=np.concatenate([b, b]))]
    f0, f1, f2 = render_frames(contents, size=SIZE, view=VIEW)
    mid = pixel(VIEW, (0.0, 0.0))
    assert is_bg(f0[mid]) and not is_bg(f1[mid]) and is_bg(f2[mid])


def counting_frames(n: int, produced: list[int]):
    try:
        for i in range(n):
            produced.append(i)
            yield np.full((SIZE[1], SIZE[0], 3), 20 * i, np.uint8)
    finally:
        produced.append(-1)  # closed


def test_write_video_reports_progress(tmp_path):
    calls: list[tuple[int, int]] = []
    out = write_video(counting_frames(4, []), tmp_path / "a.gif", fps=10, size=SIZE, total=4,
                      progress=lambda i, n: calls.append((i, n)))
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert iio.imread(out, index=None).shape[0] == 4


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_write_video_cancel_leaves_no_file_and_keeps_the_old_one(tmp_path, suffix):
    out = tmp_path / f"old{suffix}"
    out.write_bytes(b"precious")
    produced: list[int] = []
    done = []
    with pytest.raises(RenderCancelled):
        write_video(counting_frames(10, produced), out, fps=10, size=SIZE, total=10,
                    progress=lambda i, n: done.append(i), should_cancel=lambda: len(done) >= 2)
    assert out.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]
    assert produced == [0, 1, -1]  # cancel is asked before the next frame is made; the source is closed


def test_qt_free():
    code = "import sys, sgm_core.render, sgm_core.video; sys.exit(any('PySide' in m or 'Qt' in m for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# --------------------------------------------------------------------------- runs


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Tiny trained runs (30 steps, 2x16 net, 4 noise levels so annealing is 400 steps)."""
    import torch

    from sgm_core.checkpoint import save_run
    from sgm_core.config import ModelConfig, NoiseConfig, RunConfig, TrainConfig
    from sgm_core.datasets import load_dataset
    from sgm_core.training import Trainer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    made = {}
    try:
        for name in ("8gaussians", "helix"):
            config = RunConfig(data=name, model=ModelConfig(width=16, depth=2), noise=NoiseConfig(n_levels=4),
                               train=TrainConfig(steps=30, batch=128, device="cpu"))
            dataset = load_dataset(name, n_points=500)
            trainer = Trainer(dataset, config)
            trainer.run(30)
            made[name] = save_run(tmp_path_factory.mktemp(name), config, trainer.model, trainer.ema_model,
                                  trainer.standardizer, trainer.step, trainer.loss_history(), dataset.points)
        yield made
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("preset", ["8gaussians", "helix"])
@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_render_run_writes_the_asked_frames(runs, tmp_path, preset, suffix):
    out = tmp_path / f"anim{suffix}"
    calls = []
    result = render_run(runs[preset], out, frames=5, fps=10, size=(64, 48), n=200, steps=3,
                        progress=lambda i, n: calls.append((i, n)))
    assert result == out
    frames = iio.imread(out, index=None)[..., :3]
    assert frames.shape == (5, 48, 64, 3)
    assert calls[-1] == (5, 5) and len(calls) == 5
    for a, b in zip(frames[:-1], frames[1:], strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() > 40
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


@pytest.mark.parametrize("sampler", list(SAMPLERS))
def test_render_run_with_every_sampler(runs, tmp_path, sampler):
    if SAMPLER_SPECS[sampler].needs_density:  # these runs are score nets: mala refuses, in one sentence
        with pytest.raises(ConfigError, match="log-density"):
            render_run(runs["8gaussians"], tmp_path / "s.gif", frames=3, size=(48, 48), n=100, sampler=sampler, steps=2)
        assert not list(tmp_path.iterdir())
        return
    out = render_run(runs["8gaussians"], tmp_path / "s.gif", frames=3, size=(48, 48), n=100, sampler=sampler,
                     steps=2, trails=False, field=sampler != "ode")  # one without the field too
    assert iio.imread(out, index=None).shape[:3] == (3, 48, 48)


def test_render_run_cancel(runs, tmp_path):
    out = tmp_path / "old.mp4"
    out.write_bytes(b"precious")
    done = []
    with pytest.raises(RenderCancelled):
        render_run(runs["helix"], out, frames=20, size=(48, 48), n=100, steps=2,
                   progress=lambda i, n: done.append(i), should_cancel=lambda: len(done) >= 3)
    assert done == [1, 2, 3]
    assert out.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.mp4"]


def test_render_run_errors_are_one_sentence(runs, tmp_path):
    with pytest.raises(ConfigError, match=r"\.gif or \.mp4"):
        render_run(tmp_path / "no-such-run", tmp_path / "a.avi")  # the extension is checked first
    with pytest.raises(SessionError):
        render_run(tmp_path / "no-such-run", tmp_path / "a.gif")
    with pytest.raises(ConfigError, match="sampler"):
        render_run(runs["8gaussians"], tmp_path / "a.gif", sampler="nope")
    with pytest.raises(DataError, match="cannot write"):
        render_run(runs["8gaussians"], tmp_path / "missing" / "a.gif", frames=2, n=10, steps=1)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"frames": 0}, "frames"), ({"frames": MAX_FRAMES + 1}, "frames"), ({"n": 0}, "particles"),
    ({"n": MAX_SAMPLES + 1}, "particles"), ({"size": (MAX_SIDE + 1, 64)}, "size"), ({"size": (64, 0)}, "size"),
    ({"steps": 0}, "steps"), ({"steps": MAX_STEPS + 1}, "steps"),
    ({"frames": 5000, "size": (1024, 1024)}, "GiB"),  # a GIF holds every frame until it closes: 5 GiB
])
def test_render_run_bounds_every_count_before_loading_the_run(tmp_path, kwargs, match):
    """The core's own ceilings (sgm_core.limits), checked before the run is read: a missing run
    dir would be a SessionError, so a ConfigError here proves the order."""
    with pytest.raises(ConfigError, match=match) as info:
        render_run(tmp_path / "no-such-run", tmp_path / "a.gif", **kwargs)
    assert "\n" not in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("fps", [0, -1, float("nan"), float("inf"), 10_000])
def test_render_refuses_a_bad_frame_rate(runs, tmp_path, fps):
    with pytest.raises(ConfigError, match="frames per second"):
        render_run(runs["8gaussians"], tmp_path / "a.mp4", frames=2, fps=fps, n=10, steps=1)
    assert list(tmp_path.iterdir()) == []


def test_cli_render(runs, tmp_path, capsys):
    out = tmp_path / "x.gif"
    assert cli.main(["render", str(runs["8gaussians"]), "--out", str(out), "--frames", "6", "--size", "64x48"]) == 0
    assert iio.imread(out, index=None)[..., :3].shape == (6, 48, 64, 3)
    bare, full = tmp_path / "bare.gif", tmp_path / "full.gif"
    for out_, flags in ((bare, ["--no-axes", "--no-legend"]), (full, [])):
        assert cli.main(["render", str(runs["8gaussians"]), "--out", str(out_), "--frames", "2", "--size", "360x300",
                         "--steps", "2", *flags]) == 0
    plain, decorated = (iio.imread(p, index=0)[..., :3] for p in (bare, full))
    def text_pixels(img):  # the legend's words along the bottom: dark grey (antialiased) pixels
        px = img[-20:].astype(int)
        return int(((px.max(axis=-1) < 170) & (px.max(axis=-1) - px.min(axis=-1) < 20)).sum())
    assert text_pixels(decorated) > text_pixels(plain) + 50
    assert cli.main(["render", str(runs["8gaussians"]), "--out", str(tmp_path / "x.webm")]) == 2
    err = capsys.readouterr().err
    assert "sgm: error:" in err and ".gif or .mp4" in err
    assert not (tmp_path / "x.webm").exists()
