"""Headless frames: data, particles, trails and the score field rasterised by numpy into (H, W, 3)
uint8 arrays, and `render_run`, which animates a saved run's sampler into a GIF or MP4.

No Qt and no matplotlib, so `sgm render` works on a server. Every layer is drawn with a few
vectorised scatters (no Python loop over points): dots are disk stencils, lines are point samples
at most one pixel apart, and 3D uses an orthographic (or perspective) camera with a z-buffer.
`render_model` is the one pipeline from a model to a file: `render_run` feeds it a saved run, the
GUI's export a `ModelSnapshot` of its live engine (in a thread of its own). Its pieces:

    frames = render_frames(contents, size=(w, h), view=view, data=data)  # lazily, one per content
    write_video(frames, "out.mp4", fps=20, size=(w, h), total=n, progress=..., should_cancel=...)
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from . import palette
from .errors import ConfigError, SGMError
from .limits import MAX_SAMPLES, MAX_STEPS
from .param import SCORE
from .video import check_video_request, open_video

RGB = tuple[int, int, int]
Field = tuple[np.ndarray, np.ndarray]  # (P, D) arrow anchors and (P, D) vectors, data coordinates

FIELD_GRID = 24  # arrows per side of the field drawn by render_run
MAX_DATA_POINTS = 5000  # render_run draws at most this many reference points (a stride subsample)
TRAIL_LENGTH = 6  # render_run's trails: segments kept per particle


class RenderCancelled(SGMError):
    """The caller asked to stop; the partial video was discarded and no file was written."""


# --------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class View:
    """The rectangle of the plane a frame shows: data coordinates in 2D, the camera's screen
    coordinates (centred on its target) in 3D. y points up; pixel rows point down."""

    xlim: tuple[float, float]
    ylim: tuple[float, float]

    def to_pixels(self, uv: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        """(N, 2) plane coordinates -> (N, 2) float pixel coordinates (column, row)."""
        w, h = size
        (x0, x1), (y0, y1) = self.xlim, self.ylim
        col = (uv[:, 0] - x0) * (w / (x1 - x0)) - 0.5  # pixel centres at integer coordinates
        row = (y1 - uv[:, 1]) * (h / (y1 - y0)) - 0.5
        return np.stack([col, row], axis=1)


@dataclass(frozen=True)
class Camera:
    """Looks at `target` from `azimuth` degrees about the vertical z axis and `elevation` degrees
    above the x-y plane. An orbit is the same camera with the azimuth advancing per frame."""

    azimuth: float = -60.0  # degrees, about +z
    elevation: float = 25.0  # degrees above the horizontal plane
    distance: float | None = None  # None: orthographic; else perspective from this far (data units)
    target: tuple[float, float, float] = (0.0, 0.0, 0.0)  # the point looked at and orbited

    def rotation(self) -> np.ndarray:
        """Rows: screen right, screen up, towards the viewer (a right-handed orthonormal frame)."""
        a, e = math.radians(self.azimuth), math.radians(self.elevation)
        right = (-math.sin(a), math.cos(a), 0.0)
        up = (-math.sin(e) * math.cos(a), -math.sin(e) * math.sin(a), math.cos(e))
        toward = (math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e))
        return np.array([right, up, toward])

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N, 3) data points -> (N, 2) screen coordinates and (N,) depth (larger = nearer).
        Points at or behind a perspective camera come back as NaN (not drawn)."""
        p = (np.asarray(points, dtype=np.float64) - np.asarray(self.target, dtype=np.float64)) @ self.rotation().T
        uv, depth = p[:, :2], p[:, 2]
        if self.distance is not None:
            ahead = self.distance - depth
            scale = np.where(ahead > 1e-6 * self.distance, self.distance / np.maximum(ahead, 1e-12), np.nan)
            uv = uv * scale[:, None]
        return uv, depth

    def orbited(self, degrees: float) -> Camera:
        return replace(self, azimuth=self.azimuth + degrees)


def _finite_rows(points: np.ndarray) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    return points[np.isfinite(points).all(axis=1)]


def fit_view(points: np.ndarray, margin: float = 0.15, aspect: float = 1.0, camera: Camera | None = None) -> View:
    """The smallest view holding `points` plus `margin` (a fraction of the span on each side),
    with equal units per pixel on both axes for a frame of width/height `aspect`.

    With a camera (3D) the view holds the points' bounding sphere around the camera's target,
    so it fits every orbit angle and the picture does not jump while the camera turns.
    """
    pts = _finite_rows(points)
    if camera is not None:
        r = float(np.sqrt(((pts - np.asarray(camera.target)) ** 2).sum(axis=1)).max()) if len(pts) else 1.0
        center, half = np.zeros(2), np.array([r, r])
    elif len(pts):
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        center, half = (lo + hi) / 2, (hi - lo) / 2
    else:
        center, half = np.zeros(2), np.ones(2)
    if not half.max() > 0:  # one point (or none): a unit box around it
        half = np.ones(2)
    half = half * (1 + 2 * margin)
    if half[0] / half[1] < aspect:
        half[0] = half[1] * aspect
    else:
        half[1] = half[0] / aspect
    return View((float(center[0] - half[0]), float(center[0] + half[0])),
                (float(center[1] - half[1]), float(center[1] + half[1])))


def fit_camera(points: np.ndarray, azimuth: float = -60.0, elevation: float = 25.0) -> Camera:
    """An orthographic camera aimed at the centre of the points' bounding box."""
    pts = _finite_rows(points)
    target = (pts.min(axis=0) + pts.max(axis=0)) / 2 if len(pts) else np.zeros(3)
    return Camera(azimuth, elevation, None, tuple(float(v) for v in target))


def grid_points(view: View, n: int = FIELD_GRID) -> np.ndarray:
    """(n*n, 2) cell centres of an n x n grid over the view: where field arrows are anchored."""
    (x0, x1), (y0, y1) = view.xlim, view.ylim
    xs = x0 + (np.arange(n) + 0.5) * (x1 - x0) / n
    ys = y0 + (np.arange(n) + 0.5) * (y1 - y0) / n
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


# --------------------------------------------------------------------------- style


def _rgb(rgba: palette.RGBA) -> RGB:
    return palette.over_background(rgba)


@dataclass(frozen=True)
class FrameStyle:
    """Colours and sizes of a frame (pixels, 0-255 RGB). The defaults are the window's palette
    (sgm_core/palette.py), so an export looks like the app: translucent colours are taken as
    one layer over the white background."""

    background: RGB = palette.BACKGROUND_RGB
    data_color: RGB = _rgb(palette.DATA)  # the reference points: the app's grey-blue, behind everything
    data_radius: float = 1.0
    particle_color: RGB = tuple(palette.PARTICLE[:3])
    particle_radius: float = 2.0
    trail_alpha: float = 0.4  # opacity of the newest trail segment; older ones fade linearly
    trail_jump: float = 0.15  # segments longer than this fraction of the frame are noise jumps: not drawn
    # small -> large |v|: the app's arrow colours, viridis up to palette.ARROW_TOP
    arrow_colors: tuple[RGB, ...] = tuple(c[:3] for c in palette.bin_colors(8))
    arrow_length: float = 0.8  # fraction of the spacing between arrow anchors
    arrow_head: float = 0.35  # head barbs, as a fraction of the arrow's length
    line_width: int = 1  # pixels, for arrows and trails
    text_color: RGB = tuple(palette.FOREGROUND[:3])  # captions, tick labels, legend text
    axis_color: RGB = tuple(palette.FOREGROUND[:3])  # the plot's frame and ticks
    depth_fade: float = 0.65  # 3D: how far the farthest dots blend into the background


DARK_STYLE = FrameStyle(
    background=(17, 18, 22), data_color=(72, 74, 82), particle_color=(255, 146, 60),
    arrow_colors=((40, 58, 92), (70, 128, 200), (170, 215, 255)), text_color=(225, 225, 225),
    axis_color=(160, 160, 160))


@lru_cache(maxsize=16)
def colormap(anchors: tuple[RGB, ...], n: int = 256) -> np.ndarray:
    """(n, 3) uint8 lookup table interpolating linearly through the anchor colours."""
    stops = np.linspace(0.0, 1.0, len(anchors))
    t = np.linspace(0.0, 1.0, n)
    table = np.stack([np.interp(t, stops, [c[k] for c in anchors]) for k in range(3)], axis=1)
    table = np.rint(table).astype(np.uint8)
    table.setflags(write=False)
    return table


@lru_cache(maxsize=16)
def _disk(radius: float) -> np.ndarray:
    """(K, 2) integer (dx, dy) offsets of a round dot; r = 2 gives a 5x5 disk without corners."""
    r = math.ceil(radius)
    dy, dx = np.mgrid[-r:r + 1, -r:r + 1]
    keep = dx**2 + dy**2 <= radius**2 + 0.8 * radius
    return np.stack([dx[keep], dy[keep]], axis=1)


@lru_cache(maxsize=4)
def _brush(width: int) -> np.ndarray:
    w = max(1, int(width))
    dy, dx = np.mgrid[0:w, 0:w] - (w - 1) // 2
    return np.stack([dx.ravel(), dy.ravel()], axis=1)


# Fonts with the Greek and maths glyphs the captions use (σ, θ, −, ·), tried in turn; Pillow's
# bundled default (Aileron) has none of them, so with it the text falls back to ASCII (`_ascii`).
FONTS = ("DejaVuSans.ttf", "NotoSans-Regular.ttf", "LiberationSans-Regular.ttf", "Arial.ttf", "arial.ttf",
         "Helvetica.ttc", "FreeSans.ttf", "Verdana.ttf", "segoeui.ttf")
ASCII = {"σ": "sigma", "θ": "theta", "−": "-", "–": "-", "·": "*", "×": "x", "∇": "grad "}


@lru_cache(maxsize=8)
def _font(size: int):
    """The first font of FONTS that Pillow finds (its system font folders), else its default."""
    from PIL import ImageFont

    for name in FONTS:
        try:
            font = ImageFont.truetype(name, size)
        except OSError:
            continue
        if _has_glyphs(font, "σθ−"):
            return font
    return ImageFont.load_default(size=size)


def _has_glyphs(font, chars: str) -> bool:  # noqa: ANN001 - a PIL font
    """Whether `font` draws each char as itself, not as its missing-glyph box."""
    def drawn(c: str) -> bytes:
        mask = font.getmask(c)
        return str(mask.size).encode() + bytes(mask)  # (w, h) and the coverage bytes

    try:
        missing = drawn("\uffff")
        return all(drawn(c) != missing for c in chars)
    except Exception:  # noqa: BLE001 - a font Pillow cannot measure: treat as lacking them
        return False


def _ascii(text: str, font) -> str:  # noqa: ANN001
    """`text` as `font` can draw it: σ, θ, − and friends spelled out where it has no glyph."""
    if all(ord(c) < 128 for c in text) or _has_glyphs(font, "".join({c for c in text if c in ASCII})):
        return text
    return "".join(ASCII.get(c, c) for c in text)


# --------------------------------------------------------------------------- rasterisation


def _visible(px: np.ndarray, size: tuple[int, int], pad: float) -> np.ndarray:
    """Finite pixel coordinates within `pad` pixels of the frame (safe to round to int)."""
    w, h = size
    with np.errstate(invalid="ignore"):
        return ((px[:, 0] > -pad - 1) & (px[:, 0] < w + pad) & (px[:, 1] > -pad - 1) & (px[:, 1] < h + pad))


def _stamp(px: np.ndarray, stencil: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Flat pixel indices covered by `stencil` at each point, and which point each came from.
    `px` must be `_visible` (finite, near the frame), so rounding to int is safe."""
    w, h = size
    centres = np.rint(px).astype(np.int32)
    x = centres[:, None, 0] + stencil[None, :, 0].astype(np.int32)
    y = centres[:, None, 1] + stencil[None, :, 1].astype(np.int32)
    inside = (x >= 0) & (x < w) & (y >= 0) & (y < h)
    if len(stencil) == 1:
        inside = inside[:, 0]
        return (y[inside, 0] * w + x[inside, 0]).astype(np.intp), np.flatnonzero(inside)
    owner = np.broadcast_to(np.arange(len(px))[:, None], x.shape)[inside]
    return (y[inside] * w + x[inside]).astype(np.intp), owner


def _splat(img: np.ndarray, px: np.ndarray, radius: float, color: RGB) -> None:
    """Draw same-coloured dots (order does not matter, so plain fancy assignment)."""
    size = (img.shape[1], img.shape[0])
    px = px[_visible(px, size, radius + 1)]
    flat, _ = _stamp(px, _disk(radius), size)
    img.reshape(-1, 3)[flat] = color


def _splat_depth(img: np.ndarray, px: np.ndarray, depth: np.ndarray, radius: float, color: RGB,
                 style: FrameStyle, depth_scale: float) -> None:
    """Depth-shaded dots with a z-buffer: each pixel shows its nearest dot, and a dot fades
    towards the background as it recedes, so a turning cloud reads as 3D."""
    size = (img.shape[1], img.shape[0])
    keep = _visible(px, size, radius + 1) & np.isfinite(depth)
    flat, owner = _stamp(px[keep], _disk(radius), size)
    if not len(flat):
        return
    zbuf = np.full(size[0] * size[1], np.inf, np.float32)
    np.minimum.at(zbuf, flat, -depth[keep][owner].astype(np.float32))  # smaller key = nearer the viewer
    hit = np.flatnonzero(np.isfinite(zbuf))
    t = np.clip(0.5 + zbuf[hit] / (2 * depth_scale), 0.0, 1.0)[:, None] * style.depth_fade
    shaded = (1 - t) * np.asarray(color, np.float64) + t * np.asarray(style.background, np.float64)
    img.reshape(-1, 3)[hit] = np.rint(shaded).astype(np.uint8)


def _line_samples(p0: np.ndarray, p1: np.ndarray, max_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Points along each segment p0 -> p1 at most one pixel apart (gap-free lines), and the
    segment each belongs to (in segment order); long segments are capped at `max_samples`."""
    p0, d = p0.astype(np.float32), (p1 - p0).astype(np.float32)
    counts = np.clip(np.ceil(np.abs(d).max(axis=1)).astype(np.int64) + 1, 2, max_samples)
    seg = np.repeat(np.arange(len(p0)), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    t = (np.arange(len(seg)) - first).astype(np.float32) / np.repeat((counts - 1).astype(np.float32), counts)
    return np.repeat(p0, counts, axis=0) + t[:, None] * np.repeat(d, counts, axis=0), seg


def _draw_lines(img: np.ndarray, p0: np.ndarray, p1: np.ndarray, colors: np.ndarray, width: int) -> None:
    """Opaque segments, each in its own colour ((S, 3) uint8)."""
    size = (img.shape[1], img.shape[0])
    pts, seg = _line_samples(p0, p1, 2 * max(size) + 2)
    keep = _visible(pts, size, width)
    flat, owner = _stamp(pts[keep], _brush(width), size)
    img.reshape(-1, 3)[flat] = colors[seg[keep][owner]]


def _draw_trails(img: np.ndarray, trail_px: np.ndarray, style: FrameStyle) -> None:
    """Fading polylines through (T, N, 2) past pixel positions, oldest first. Each pixel takes
    the opacity of the newest segment over it (no build-up where trails cross), then one blend."""
    h, w = img.shape[:2]
    n_seg, n = trail_px.shape[0] - 1, trail_px.shape[1]
    p0, p1 = trail_px[:-1].reshape(-1, 2), trail_px[1:].reshape(-1, 2)  # oldest segments first
    with np.errstate(invalid="ignore"):
        length = np.abs(p1 - p0).max(axis=1)
        # On-screen segments with finite ends; a long one is a noise jump (high sigma), not a path.
        ok = (length <= style.trail_jump * min(w, h)) & (_visible(p0, (w, h), 0) | _visible(p1, (w, h), 0))
    if not ok.any():
        return
    age = np.repeat(np.arange(n_seg), n)[ok]
    pts, seg = _line_samples(p0[ok], p1[ok], max(w, h) + 2)
    keep = _visible(pts, (w, h), style.line_width)
    flat, owner = _stamp(pts[keep], _brush(style.line_width), (w, h))
    sample_age = age[seg[keep][owner]]  # non-decreasing: segments stay in age order throughout
    bounds = np.searchsorted(sample_age, np.arange(n_seg + 1))
    abuf = np.zeros(w * h, np.float32)
    for k in range(n_seg):  # one pass per age (<= trail length), newer ages overwrite older
        abuf[flat[bounds[k]:bounds[k + 1]]] = style.trail_alpha * (k + 1) / n_seg
    hit = np.flatnonzero(abuf)
    a = abuf[hit, None]
    flat_img = img.reshape(-1, 3)
    blended = (1 - a) * flat_img[hit] + a * np.asarray(style.particle_color, np.float32)
    flat_img[hit] = np.rint(blended).astype(np.uint8)


def arrow_top(magnitude: np.ndarray) -> float:
    """The |v| at which arrow colours top out: the 95th percentile of the finite magnitudes (as the
    window's `arrow_scale`)."""
    m = np.asarray(magnitude, dtype=np.float64)
    m = m[np.isfinite(m)]
    return float(np.percentile(m, 95)) if m.size else 0.0


def _draw_arrows(img: np.ndarray, anchors_px: np.ndarray, dirs_px: np.ndarray, magnitude: np.ndarray,
                 style: FrameStyle) -> None:
    """Arrows of one length centred on their anchors, pointing along `dirs_px`, coloured as the
    window colours them: |v| on a linear scale from 0 to its 95th percentile (the top colour, which
    the legend names), so the same palette serves any field."""
    h, w = img.shape[:2]
    norm = np.linalg.norm(dirs_px, axis=1)
    ok = np.isfinite(norm) & (norm > 0) & np.isfinite(magnitude) & _visible(anchors_px, (w, h), w + h)
    if not ok.any():
        return
    anchors_px, unit, magnitude = anchors_px[ok], dirs_px[ok] / norm[ok, None], magnitude[ok]
    lo, hi = anchors_px.min(axis=0), anchors_px.max(axis=0)
    area = float(np.prod(hi - lo))
    spacing = math.sqrt((area if area > 0 else w * h) / len(anchors_px))
    length = max(4.0, style.arrow_length * spacing)
    head = max(3.0, style.arrow_head * length)
    tip = anchors_px + unit * (length / 2)
    tail = anchors_px - unit * (length / 2)
    c, s = math.cos(math.radians(28)), math.sin(math.radians(28))  # barbs 28 degrees off the shaft
    barb_a = tip - head * np.stack([c * unit[:, 0] - s * unit[:, 1], s * unit[:, 0] + c * unit[:, 1]], axis=1)
    barb_b = tip - head * np.stack([c * unit[:, 0] + s * unit[:, 1], -s * unit[:, 0] + c * unit[:, 1]], axis=1)
    top = arrow_top(magnitude)
    t = np.clip(magnitude / top, 0.0, 1.0) if top > 0 else np.where(magnitude > 0, 1.0, 0.0)
    lut = colormap(tuple(style.arrow_colors))
    colors = lut[np.clip((t * (len(lut) - 1)).astype(np.int64), 0, len(lut) - 1)]
    _draw_lines(img, np.concatenate([tail, tip, tip]), np.concatenate([tip, barb_a, barb_b]),
                np.concatenate([colors, colors, colors]), style.line_width)


def _draw_text(img: np.ndarray, text: str, style: FrameStyle) -> None:
    """A label in the top-left corner on a veil of the background colour (readable over arrows),
    drawn by Pillow's default font on just the pixels it covers."""
    from PIL import Image, ImageDraw

    h, w = img.shape[:2]
    font = _font(max(9, round(min(w, h) / 36)))
    margin = max(2, min(w, h) // 80)
    _, _, right, bottom = ImageDraw.Draw(Image.new("RGB", (1, 1))).textbbox((0, 0), text, font=font)
    x1, y1 = min(w, right + 2 * margin), min(h, bottom + 2 * margin)
    if x1 <= margin or y1 <= margin:
        return
    veil = 0.25 * img[:y1, :x1] + 0.75 * np.asarray(style.background, np.float64)
    patch = Image.fromarray(np.rint(veil).astype(np.uint8))
    ImageDraw.Draw(patch).text((margin, margin), text, fill=style.text_color, font=font)
    img[:y1, :x1] = np.asarray(patch)


def _projector(camera: Camera | None, view: View, size: tuple[int, int]):
    """points (N, D) -> (pixels (N, 2), depth (N,) or None); D must be 2, or 3 with a camera."""
    want = 2 if camera is None else 3

    def project(points: np.ndarray, what: str) -> tuple[np.ndarray, np.ndarray | None]:
        points = np.asarray(points, dtype=np.float64)
        if points.ndim != 2 or points.shape[1] != want:
            hint = "" if camera is not None else " (3D points need a camera)"
            raise ValueError(f"{what} must be (N, {want}) points{hint}, got shape {points.shape}")
        if camera is None:
            return view.to_pixels(points, size), None
        uv, depth = camera.project(points)
        return view.to_pixels(uv, size), depth

    return project


def render_frame(size: tuple[int, int], view: View, *, data: np.ndarray | None = None,
                 particles: np.ndarray | None = None, trails: np.ndarray | None = None,
                 field: Field | None = None, title: str | None = None, style: FrameStyle = FrameStyle(),
                 camera: Camera | None = None) -> np.ndarray:
    """One (H, W, 3) uint8 frame of size (W, H): data dots, field arrows, particle trails,
    particles and a label, back to front.

    Points are data coordinates: (N, 2), or (N, 3) with a `camera`, which projects them and
    shades dots by depth. `trails` is (T, N, D) past particle positions, oldest first; `field`
    is ((P, D) anchors, (P, D) vectors). Non-finite points are skipped.
    """
    w, h = int(size[0]), int(size[1])
    size = (w, h)
    img = np.empty((h, w, 3), np.uint8)
    img[:] = style.background
    project = _projector(camera, view, size)
    # 3D shading runs over the depth of the view's bounding sphere (see fit_view).
    depth_scale = 0.5 * min(view.xlim[1] - view.xlim[0], view.ylim[1] - view.ylim[0])

    if data is not None and len(data):
        px, depth = project(data, "data")
        if depth is None:
            _splat(img, px, style.data_radius, style.data_color)
        else:
            _splat_depth(img, px, depth, style.data_radius, style.data_color, style, depth_scale)
    if field is not None and len(field[0]):
        anchors, vectors = (np.asarray(a, dtype=np.float64) for a in field)
        px, _ = project(anchors, "field anchors")
        flat = vectors if camera is None else vectors @ camera.rotation()[:2].T
        scale = np.array([w / (view.xlim[1] - view.xlim[0]), -h / (view.ylim[1] - view.ylim[0])])
        _draw_arrows(img, px, flat[:, :2] * scale, np.linalg.norm(vectors, axis=1), style)
    trails = None if trails is None else np.asarray(trails, dtype=np.float64)
    if trails is not None and trails.ndim == 3 and len(trails) >= 2 and trails.shape[1]:
        t, n = trails.shape[:2]
        px, _ = project(trails.reshape(t * n, -1), "trails")
        _draw_trails(img, px.reshape(t, n, 2), style)
    if particles is not None and len(particles):
        px, depth = project(particles, "particles")
        if depth is None:
            _splat(img, px, style.particle_radius, style.particle_color)
        else:
            _splat_depth(img, px, depth, style.particle_radius, style.particle_color, style, depth_scale)
    if title:
        _draw_text(img, title, style)
    return img


# --------------------------------------------------------------------------- figure decorations


@dataclass(frozen=True)
class LegendRow:
    """One legend item of an exported frame: a swatch ("dot" or "ramp") in `colors`, and a label."""

    kind: str
    colors: tuple[RGB, ...]
    label: str


@dataclass(frozen=True)
class Decor:
    """What surrounds the plot in an exported frame, each in a band of its own, so nothing covers
    the field: the caption above the plot, the axes' ticks and labels left of and below it (2D
    only), the legend in one or more lines at the bottom. A band that would leave the plot less
    than MIN_PLOT of the frame is dropped (the legend first, then the axes)."""

    caption: bool = True
    axes: bool = True
    legend: tuple[LegendRow, ...] = ()


MIN_PLOT = 0.55  # the plot keeps at least this fraction of the frame's width and height
TICK_PX = 4
SWATCH_PX = 22  # legend swatch width


@dataclass(frozen=True)
class FigureLayout:
    """Where the pieces of a decorated frame go, in pixels: `plot` is (x, y, w, h)."""

    size: tuple[int, int]
    plot: tuple[int, int, int, int]
    font_px: int
    margin: int
    line_h: int
    caption: bool
    axes: bool
    legend_lines: tuple[tuple[int, ...], ...]  # the legend rows on each line, top line first


def _text_w(font, text: str) -> int:  # noqa: ANN001
    return int(math.ceil(font.getlength(_ascii(text, font))))


def figure_layout(size: tuple[int, int], decor: Decor, is_3d: bool = False) -> FigureLayout:
    """Lay out a frame of `size` (W, H) with `decor`: bands for the caption, axes and legend."""
    w, h = int(size[0]), int(size[1])
    font_px = max(9, round(min(w, h) / 40))
    font = _font(font_px)
    margin = max(2, min(w, h) // 100)
    line_h = font_px + 4
    axes = decor.axes and not is_3d  # a camera's screen coordinates are no data units
    rows = decor.legend

    def lines_for(width: int) -> tuple[tuple[int, ...], ...]:
        lines, line, used = [], [], 0
        for i, row in enumerate(rows):
            item = SWATCH_PX + 4 + _text_w(font, row.label) + 3 * margin
            if line and used + item > width:
                lines.append(tuple(line))
                line, used = [], 0
            line.append(i)
            used += item
        return tuple(lines + ([tuple(line)] if line else []))

    def plot_for(axes_on: bool, legend_on: bool) -> tuple[tuple[int, int, int, int], tuple]:
        top = margin + (line_h + margin if decor.caption else 0)
        left = margin + (TICK_PX + _text_w(font, "−0.00") + margin if axes_on else 0)
        right = margin + (_text_w(font, "0.00") // 2 if axes_on else 0)
        lines = lines_for(w - 2 * margin) if legend_on and rows else ()
        bottom = margin + (TICK_PX + line_h if axes_on else 0) + len(lines) * line_h + (margin if lines else 0)
        return (left, top, w - left - right, h - top - bottom), lines

    for axes_on, legend_on in ((axes, bool(rows)), (axes, False), (False, False)):
        plot, lines = plot_for(axes_on, legend_on)
        if plot[2] >= MIN_PLOT * w and plot[3] >= MIN_PLOT * h:
            break
    else:
        plot, lines, axes_on = (0, 0, w, h), (), False
        if decor.caption:  # even a caption does not fit: the old look, the caption over the plot
            return FigureLayout((w, h), plot, font_px, margin, line_h, False, False, ())
    return FigureLayout((w, h), plot, font_px, margin, line_h, decor.caption, axes_on, lines)


def nice_ticks(lo: float, hi: float, n: int = 5) -> np.ndarray:
    """Round tick positions (1, 2 or 5 times a power of ten apart) inside [lo, hi], about n of them."""
    span = hi - lo
    if not (math.isfinite(span) and span > 0):
        return np.zeros(0)
    raw = span / max(n, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = np.arange(first, hi + step * 1e-9, step)
    return np.round(ticks / step) * step


def _tick_text(value: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9)) if step > 0 else 0
    text = f"{value:.{decimals}f}"
    return "0" if float(text) == 0 else text.replace("-", "−")


def decorate(plot_img: np.ndarray, layout: FigureLayout, decor: Decor, view: View, *, caption: str | None,
             style: FrameStyle) -> np.ndarray:
    """The full frame: `plot_img` (the plot area, from render_frame) placed in `layout`, with the
    axes around it, the caption above and the legend below."""
    from PIL import Image, ImageDraw

    w, h = layout.size
    x, y, pw, ph = layout.plot
    if (pw, ph) == (w, h):  # nothing fits around the plot: the caption goes over it, as before
        img = plot_img.copy()
        if caption and decor.caption:
            _draw_text(img, caption, style)
        return img
    canvas = Image.new("RGB", (w, h), tuple(style.background))
    canvas.paste(Image.fromarray(plot_img), (x, y))
    draw = ImageDraw.Draw(canvas)
    font = _font(layout.font_px)
    m, line_h = layout.margin, layout.line_h
    if layout.axes:
        draw.rectangle((x - 1, y - 1, x + pw, y + ph), outline=tuple(style.axis_color))
        for axis, (lo, hi) in enumerate((view.xlim, view.ylim)):
            ticks = nice_ticks(lo, hi)
            step = float(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
            for t in ticks:
                label = _ascii(_tick_text(float(t), step), font)
                if axis == 0:
                    px = x + (t - lo) / (hi - lo) * pw - 0.5
                    draw.line((px, y + ph, px, y + ph + TICK_PX), fill=tuple(style.axis_color))
                    draw.text((px, y + ph + TICK_PX + 1), label, fill=tuple(style.text_color), font=font, anchor="ma")
                else:
                    py = y + (hi - t) / (hi - lo) * ph - 0.5
                    draw.line((x - 1 - TICK_PX, py, x - 1, py), fill=tuple(style.axis_color))
                    draw.text((x - TICK_PX - 3, py), label, fill=tuple(style.text_color), font=font, anchor="rm")
    if caption and layout.caption:
        text = _ascii(caption, font)
        while text and font.getlength(text) > w - 2 * m:  # cut to the frame, never over it
            text = text[:-2] + "…" if len(text) > 2 else ""
        draw.text((x, m + line_h // 2), text, fill=tuple(style.text_color), font=font, anchor="lm")
    if layout.legend_lines:
        top = h - m - len(layout.legend_lines) * line_h
        for k, line in enumerate(layout.legend_lines):
            cy = top + k * line_h + line_h // 2
            cx = x
            for i in line:
                row = decor.legend[i]
                if row.kind == "ramp":
                    n = len(row.colors)
                    for j in range(SWATCH_PX):
                        c = row.colors[min(n - 1, j * n // SWATCH_PX)]
                        draw.line((cx + j, cy - 3, cx + j, cy + 3), fill=tuple(c))
                else:
                    r = max(2, layout.font_px // 5)
                    for dx in (4, 11, 18):
                        draw.ellipse((cx + dx - r, cy - r, cx + dx + r, cy + r), fill=tuple(row.colors[0]))
                draw.text((cx + SWATCH_PX + 4, cy), _ascii(row.label, font), fill=tuple(style.text_color), font=font,
                          anchor="lm")
                cx += SWATCH_PX + 4 + _text_w(font, row.label) + 3 * m
    return np.asarray(canvas)


SCORE_SHOWS = SCORE.shows  # "score s_θ(x, σ)"


def legend_rows(*, field: bool, particles: str, data: bool, shows: str = SCORE_SHOWS,
                style: FrameStyle = FrameStyle()) -> tuple[LegendRow, ...]:
    """The legend of an animation: what `render_frame` draws, in its colours. `shows` names the
    field as the window's legend does (`losses.field_shows`: a score, a flow −v, a denoiser's
    displacement)."""
    rows = []
    if field:
        rows.append(LegendRow("ramp", tuple(style.arrow_colors), f"Learned {shows}, colour ∝ |·|"))
    rows.append(LegendRow("dot", (tuple(style.particle_color),), particles))
    if data:
        rows.append(LegendRow("dot", (tuple(style.data_color),), "Data"))
    return tuple(rows)


# --------------------------------------------------------------------------- animations


@dataclass(frozen=True)
class FrameContent:
    """What one animation frame shows, in data coordinates. Hand over arrays nobody mutates
    afterwards (e.g. fresh copies from the engine): render_frames keeps them for the trails."""

    particles: np.ndarray | None = None
    field: Field | None = None
    title: str | None = None


def render_frames(contents: Iterable[FrameContent], *, size: tuple[int, int], view: View,
                  data: np.ndarray | None = None, camera: Camera | None = None, orbit_step: float = 0.0,
                  trail_length: int = TRAIL_LENGTH, style: FrameStyle = FrameStyle(),
                  decor: Decor | None = None) -> Iterator[np.ndarray]:
    """Lazily render one frame per content: the trails come from the last `trail_length` particle
    sets (reset when the particle count changes), and a 3D camera turns `orbit_step` degrees per
    frame. Lazy, so a worker thread can check for cancel and report progress between frames.

    With `decor` each frame is a figure (`figure_layout`): `view` is the plot area's, the title is
    its caption above the plot. Without, the title is drawn in the plot's top-left corner."""
    layout = figure_layout(size, decor, camera is not None) if decor is not None else None
    plot_size = tuple(size) if layout is None else tuple(layout.plot[2:])
    history: deque[np.ndarray] = deque(maxlen=max(trail_length, 0) + 1)
    for i, content in enumerate(contents):
        particles = content.particles
        if particles is None or (history and history[-1].shape != np.shape(particles)):
            history.clear()
        if particles is not None and trail_length > 0:
            history.append(np.asarray(particles))
        trails = np.stack(history) if len(history) >= 2 else None
        cam = camera.orbited(i * orbit_step) if camera is not None else None
        img = render_frame(plot_size, view, data=data, particles=particles, trails=trails, field=content.field,
                           title=content.title if layout is None else None, style=style, camera=cam)
        yield img if layout is None else decorate(img, layout, decor, view, caption=content.title, style=style)


def write_video(frames: Iterable[np.ndarray], out: str | os.PathLike, *, fps: float, size: tuple[int, int],
                total: int = 0, progress: Callable[[int, int], None] | None = None,
                should_cancel: Callable[[], bool] | None = None) -> Path:
    """Write frames to a GIF/MP4 with progress(done, total) after each frame; should_cancel() is
    asked before each frame is produced (the costly part) and True discards the file and raises
    RenderCancelled. Any failure leaves no file and an existing one untouched."""
    writer = open_video(out, fps, size)
    it = iter(frames)
    try:
        done = 0
        while True:
            if should_cancel is not None and should_cancel():
                raise RenderCancelled(f"rendering was cancelled; {Path(out).name} was not written")
            try:
                frame = next(it)
            except StopIteration:
                break
            writer.append(frame)
            done += 1
            if progress is not None:
                progress(done, total)
        return writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        close = getattr(it, "close", None)
        if close is not None:
            close()  # stop a generator early (its sampler, its run) without waiting for GC


# --------------------------------------------------------------------------- runs


def sample_contents(run, schedule, frames: int, n: int, seed: int, field_anchors: np.ndarray | None,
                    note: str = "", output=SCORE) -> Iterator[FrameContent]:  # noqa: ANN001 - param.Parameterisation
    """Drive `schedule` over `frames` frames: frame 0 shows the initial particles, frame j those
    after round(n_steps * j / (frames - 1)) steps, and the last frame is after `finish`.

    `run` is anything with `.model`, `.standardizer` and `.dim` (a loaded run, or the GUI's
    snapshot of its engine); `note` ends each frame's label; the field at `field_anchors` is what
    `output` draws (`losses.field_output`: the score, or the net's flow −v or displacement), in data
    coordinates as the window's field view draws it."""
    import torch

    model, standardizer = run.model, run.standardizer
    generator = torch.Generator().manual_seed(seed)
    anchors_t = None
    if field_anchors is not None:
        anchors_t = standardizer.forward(torch.as_tensor(field_anchors, dtype=torch.float32))
    total = schedule.n_steps
    with torch.no_grad():
        x = schedule.init(n, run.dim, generator)
        done = 0
        for j in range(frames):
            last = j == frames - 1
            target = total if last else (total * j) // max(frames - 1, 1)
            while done < target:
                x = schedule.step(model, x, done, generator)
                done += 1
            if last:
                x = schedule.finish(model, x)
            sigma = schedule.sigma_at(done)
            field = None
            if anchors_t is not None:
                sig = torch.full((len(anchors_t),), float(sigma))
                shown, power = output.field(model(anchors_t, sig), anchors_t, sig)  # the score: (s, -1)
                field = (field_anchors, (shown * standardizer.scale**power).double().numpy())
            label = "final" if last else f"step {done}/{total}"
            yield FrameContent(particles=standardizer.inverse(x).double().numpy(), field=field,
                               title=f"{schedule.name}  {label}  σ {sigma:.3g}{note}")


@dataclass(frozen=True)
class ModelSnapshot:
    """A frozen copy of a live engine's EMA network and what sampling and drawing it needs: what
    `render_model` animates for the window's export, as it animates a loaded run for `sgm render`."""

    model: object  # a ScoreNet deep-copied to the CPU, eval mode, no grad: the export thread's alone
    standardizer: object
    config: object  # RunConfig
    dim: int
    step: int
    data: np.ndarray  # the dataset's display points, data coordinates


def snapshot_engine(engine) -> ModelSnapshot | None:
    """In the engine's host: copy the EMA weights of a LiveEngine as they are now (training goes on)."""
    import copy

    if engine is None:
        return None
    model = copy.deepcopy(engine.trainer.ema_model).cpu().eval().requires_grad_(False)
    return ModelSnapshot(model, engine.standardizer, engine.config, engine.dataset.dim, engine.trainer.step,
                         np.array(engine.dataset.points, copy=True))


def frame_view(bounds: tuple[tuple[float, float], ...], aspect: float) -> View:
    """A visible rectangle (the canvas's), widened to width/height `aspect` about the same centre."""
    (x0, x1), (y0, y1) = bounds[:2]
    cx, cy, hx, hy = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    if hx / hy < aspect:
        hx = hy * aspect
    else:
        hy = hx / aspect
    return View((cx - hx, cx + hx), (cy - hy, cy + hy))


def render_model(run, out: str | os.PathLike, sampler, *, frames: int = 60, fps: float = 20,
                 size: tuple[int, int] = (512, 512), n: int = 2000, seed: int = 0,
                 bounds: tuple[tuple[float, float], ...] | None = None,
                 camera_angles: tuple[float, float] | None = None, orbit: bool = True, field: bool = True,
                 trails: bool = True, data: bool = True, note: str = "", style: FrameStyle = FrameStyle(),
                 axes: bool = True, legend: bool = True,
                 progress: Callable[[int, int], None] | None = None,
                 should_cancel: Callable[[], bool] | None = None, condition=None) -> Path:
    """The one animation pipeline: sample `n` particles of `run` (a loaded run or a ModelSnapshot:
    `.model`, `.standardizer`, `.config`, `.dim`, `.data`) with `sampler` (a SamplerConfig) and write
    `out` (.gif/.mp4). 2D frames `bounds` (the canvas's view) or else the data, with the score field
    at the sampler's current sigma; 3D orbits a camera once from `camera_angles` (azimuth, elevation)
    when `orbit`. Each frame is a figure (`Decor`): the caption above the plot, `axes` in data units
    (2D) and a `legend` below, each in its own band. `condition` (a conditioning.Condition) animates
    the conditional sampler instead. RenderCancelled when cancelled; SGMError on bad input. Any
    failure leaves no file."""
    from .conditioning import condition_sampler
    from .losses import bound_process, field_output
    from .samplers import make_sampler

    out = check_video_request(out, frames, size)  # before any sampling
    w, h = int(size[0]), int(size[1])
    process = bound_process(run.config, run.standardizer, run.dim)
    output = field_output(run.config, process)
    schedule = condition_sampler(make_sampler(sampler, run.config.noise, process), condition, process)
    if condition is not None:
        note = f"  given {condition.describe(run.standardizer)}{note}"
    points = None if run.data is None or not len(run.data) else np.asarray(run.data, dtype=np.float64)
    # Without saved data, frame where standardised data would lie (about +-2.5 std).
    box = np.array(np.meshgrid(*[[-2.5, 2.5]] * run.dim)).reshape(run.dim, -1).T
    reference = points if points is not None else np.asarray(run.standardizer.inverse(box), dtype=np.float64)
    camera = fit_camera(reference, *(camera_angles or ())) if run.dim == 3 else None
    shown = points[:: max(1, math.ceil(len(points) / MAX_DATA_POINTS))] if data and points is not None else None
    rows = legend_rows(field=field and run.dim == 2, particles=f"Particles ({sampler.name})", data=shown is not None,
                       shows=output.shows, style=style)
    decor = Decor(caption=True, axes=axes, legend=rows if legend else ())
    _, _, pw, ph = figure_layout((w, h), decor, camera is not None).plot
    if camera is None and bounds is not None:
        view = frame_view(bounds, pw / ph)
    else:
        view = fit_view(reference, margin=0.15, aspect=pw / ph, camera=camera)
    anchors = grid_points(view) if field and run.dim == 2 else None
    contents = sample_contents(run, schedule, frames, n, seed, anchors, note=note, output=output)
    images = render_frames(contents, size=(w, h), view=view, data=shown, camera=camera,
                           orbit_step=360.0 / frames if orbit and camera is not None else 0.0,
                           trail_length=TRAIL_LENGTH if trails else 0, style=style, decor=decor)
    return write_video(images, out, fps=fps, size=(w, h), total=frames, progress=progress,
                       should_cancel=should_cancel)


def render_run(run_dir: str | os.PathLike, out: str | os.PathLike, *, frames: int = 60, fps: float = 20,
               size: tuple[int, int] = (512, 512), sampler: str | None = None, n: int = 2000, seed: int = 0,
               steps: int | None = None, orbit: bool = True, field: bool = True, trails: bool = True,
               style: FrameStyle = FrameStyle(), axes: bool = True, legend: bool = True,
               progress: Callable[[int, int], None] | None = None,
               should_cancel: Callable[[], bool] | None = None, label: object = None, guidance: float = 0.0,
               given=None) -> Path:
    """Animate a saved run's sampler into `out` (.gif or .mp4) with `render_model`: the run's data
    in grey, `n` particles seeded by `seed`, their trails, and in 2D the model's score field at the
    sampler's current sigma; in 3D the camera orbits 360 degrees over the animation when `orbit`.

    `steps` overrides the sampler's step count (per level for annealed). `label` samples that class
    of a class-conditional run (as in the data file) with classifier-free guidance `guidance`; its
    particles take the class's colour and the field is the guided score. `given` ('x=0.5' or
    {'x': 0.5}, data units) animates the conditional, as `sgm sample --given`. Counts are bounded by
    sgm_core.limits (frames <= MAX_FRAMES, n <= MAX_SAMPLES, steps <= MAX_STEPS) and the size by
    video.MAX_SIDE, checked before the run is loaded. Raises ConfigError / DataError /
    SessionError (one sentence) on bad input, RenderCancelled when cancelled.
    """
    from .checkpoint import load_run
    from .config import SamplerConfig
    from .losses import loss_spec

    out = check_video_request(out, frames, size)  # extension, frames, size: before the run is loaded
    if not 1 <= n <= MAX_SAMPLES:
        raise ConfigError(f"an animation has 1 to {MAX_SAMPLES:,} particles, got {n:,}")
    if steps is not None and not 1 <= steps <= MAX_STEPS:
        raise ConfigError(f"sampler steps must be 1 to {MAX_STEPS:,}, got {steps:,}")
    run = load_run(run_dir)
    note = ""
    if label is not None or guidance:
        from dataclasses import replace

        from .api import Run  # the one place a label becomes a guided score function

        score_fn = Run(run.config, run.model, run.standardizer, None, run.step, np.zeros(0)).score_fn(label, guidance)
        c = score_fn.c
        run = replace(run, model=score_fn)
        style = replace(style, particle_color=palette.class_color(c))
        note = f"  class {run.config.model.classes[c]}  w {float(guidance):g}"
    name = sampler or loss_spec(run.config.loss.name).default_sampler
    condition = None
    if given is not None:
        from .conditioning import make_condition

        condition = make_condition(given, run.standardizer, run.dim, None if run.data is None else np.asarray(run.data))
    return render_model(run, out, SamplerConfig(name=name, steps=steps or 0), frames=frames, fps=fps, size=size,
                        n=n, seed=seed, orbit=orbit, field=field, trails=trails, style=style, axes=axes,
                        legend=legend, progress=progress,
                        should_cancel=should_cancel, note=note, condition=condition)


# --------------------------------------------------------------------------- the window's export, as a task


def packed_snapshot(engine) -> bytes | None:
    """In the engine's host: `snapshot_engine` as bytes, so the GUI can hand the frozen network to
    an export host without unpickling it (that would import torch in the GUI process)."""
    packed = packed_model(engine)
    return None if packed is None else packed.packed


@dataclass(frozen=True)
class PackedModel:
    """A ModelSnapshot for another process: what the GUI reads (config, dim, step, data) in plain
    types, and the pickled snapshot that only a torch host unpickles (`unpack`)."""

    config: object  # RunConfig
    dim: int
    step: int
    data: np.ndarray
    packed: bytes

    def unpack(self) -> ModelSnapshot:
        import pickle

        return pickle.loads(self.packed)


def packed_model(engine) -> PackedModel | None:
    """In the engine's host: `snapshot_engine` packed as a PackedModel (the compare window's
    "use the main window's model" hands it to the compare host without unpickling it)."""
    import cloudpickle

    snap = snapshot_engine(engine)
    if snap is None:
        return None
    return PackedModel(snap.config, snap.dim, snap.step, snap.data, cloudpickle.dumps(snap))


@dataclass(frozen=True)
class ExportRequest:
    """One animation of a packed ModelSnapshot (File ▸ Export ▸ Animation): `render_model`'s arguments."""

    snapshot: bytes  # packed_snapshot(engine)
    out: str
    sampler: object  # SamplerConfig
    frames: int = 60
    fps: float = 20
    size: tuple[int, int] = (512, 512)
    n: int = 2000
    seed: int = 0
    bounds: tuple[tuple[float, float], ...] | None = None
    camera_angles: tuple[float, float] | None = None
    field: bool = True
    trails: bool = True
    data: bool = True
    axes: bool = True
    legend: bool = True


def run_export(request: ExportRequest, progress: Callable[[int, int], None] | None = None,
               should_cancel: Callable[[], bool] | None = None) -> Path:
    """Render one ExportRequest on one torch thread (the other core stays the GUI's and the engine's)."""
    import pickle

    import torch

    torch.set_num_threads(1)
    snap = pickle.loads(request.snapshot)
    r = request
    return render_model(snap, r.out, r.sampler, frames=r.frames, fps=r.fps, size=r.size, n=r.n, seed=r.seed,
                        bounds=r.bounds, camera_angles=r.camera_angles, field=r.field, trails=r.trails, data=r.data,
                        axes=r.axes, legend=r.legend, note=f"  (trained {snap.step:,} steps)", progress=progress,
                        should_cancel=should_cancel)


@dataclass(frozen=True)
class StartExport:
    request: ExportRequest


@dataclass(frozen=True)
class CancelExport:
    """Stop after the current frame; no file is written and an existing one stays intact."""


@dataclass(frozen=True)
class ExportProgress:
    done: int
    total: int


@dataclass(frozen=True)
class ExportFinished:
    path: str


@dataclass(frozen=True)
class ExportFailed:
    message: str


@dataclass(frozen=True)
class ExportCancelled:
    pass


class ExportTask:
    """The export as a task a process host runs (sgm_core.engine_process, task "export"): it renders
    in a thread of its own there, so a CancelExport is read while frames are drawn."""

    max_fps = 0.0  # SetMaxFps has nothing to pace here

    def __init__(self, emit: Callable[[object], None], stopping: Callable[[], bool] = lambda: False) -> None:
        import threading

        self.emit = emit
        self.stopping = stopping
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None

    def handle(self, commands: list[object]) -> None:
        import threading

        for command in commands:
            if isinstance(command, CancelExport):
                self._cancel.set()
            elif isinstance(command, StartExport) and self._thread is None:
                self._thread = threading.Thread(target=self._render, args=(command.request,), name="export")
                self._thread.start()

    def _render(self, request: ExportRequest) -> None:
        import traceback

        cancelled = lambda: self._cancel.is_set() or self.stopping()  # noqa: E731
        try:
            path = run_export(request, lambda done, total: self.emit(ExportProgress(done, total)), cancelled)
        except RenderCancelled:
            self.emit(ExportCancelled())
        except SGMError as exc:
            self.emit(ExportFailed(str(exc)))
        except Exception as exc:  # noqa: BLE001 - the GUI waits on one of the three answers
            traceback.print_exception(exc)
            self.emit(ExportFailed(f"unexpected error while exporting ({type(exc).__name__}: {exc}); "
                                   "no file was written"))
        else:
            self.emit(ExportFinished(str(path)))

    def work(self) -> bool:
        return False

    def idle_timeout(self) -> float:
        return 0.25

    def on_error(self, exc: Exception) -> None:
        self.emit(ExportFailed(f"unexpected error while exporting ({type(exc).__name__}: {exc})"))

    def close(self) -> None:
        """The host ends: cancel and wait for the current frame (the writer then removes its temp file)."""
        self._cancel.set()
        if self._thread is not None:
            self._thread.join()
