"""The playground's colours, one place for the window (app/views/colors.py reads them) and the
headless renderer (sgm_core.render), so an exported animation looks like the app.

Colours are 0-255 RGBA; colour maps are a few anchor colours linearly interpolated. The anchors
of `VIRIDIS` sample the perceptually uniform viridis map (van der Walt & Smith, 2015).
"""

from __future__ import annotations

import numpy as np

RGBA = tuple[int, int, int, int]

BACKGROUND_RGB = (255, 255, 255)  # a light theme, for slides
FOREGROUND: RGBA = (60, 60, 60, 255)  # axes, ticks, labels
GRID_ALPHA = 0.12

DATA: RGBA = (82, 105, 140, 150)  # dataset points: grey-blue, translucent so density shows
STROKE_PREVIEW: RGBA = (40, 70, 120, 220)  # points of the stroke being drawn
SOURCE: RGBA = (40, 150, 90, 150)  # a flow's source distribution (the Source layer): green, beside the data's blue
SOURCE_PREVIEW: RGBA = (20, 120, 60, 220)  # points of a source stroke being drawn
PARTICLE: RGBA = (232, 93, 18, 210)  # particles: orange-red, the only warm colour on the plot
TRAIL: RGBA = (232, 93, 18, 45)  # one path: overlapping trails do not darken
TRUE_FIELD: RGBA = (120, 120, 120, 170)  # the reference field: thin grey arrows
CURSOR: RGBA = (30, 30, 30, 200)
ERASER_CURSOR: RGBA = (200, 40, 40, 220)
CONDITION_LINE: RGBA = (20, 20, 20, 200)  # the Condition tool's line x = x0 / y = y0
CONDITION_TRUTH: RGBA = (40, 40, 40, 255)  # the analytic p(y | x0) in the conditional plot
NOISY_DATA: RGBA = (0, 150, 136, 90)  # q_σ samples (data + σ·noise): teal, fainter than the data

LOSS: RGBA = (150, 170, 200, 255)  # raw loss, light
LOSS_EMA: RGBA = (31, 80, 160, 255)  # smoothed loss on top, dark

# anchors at 0, 0.1, ..., 1 of viridis
VIRIDIS = np.array([
    (68, 1, 84), (72, 36, 117), (65, 68, 135), (53, 95, 141), (42, 120, 142), (33, 145, 140),
    (34, 168, 132), (68, 191, 112), (122, 209, 81), (189, 223, 38), (253, 231, 37),
], dtype=np.float64)
ARROW_TOP = 0.85  # arrows use viridis up to here: its yellow vanishes on a white background

# light sequential maps for heatmaps under the arrows: white at the low end so the plot stays bright
DENSITY = np.array([(255, 255, 255), (236, 246, 240), (200, 232, 212), (150, 208, 178), (98, 178, 142)],
                   dtype=np.float64)
ERROR = np.array([(255, 255, 255), (252, 236, 243), (242, 204, 224), (228, 164, 200), (210, 120, 172)],
                 dtype=np.float64)
# diverging map for signed curl: blue (clockwise) through white (curl-free) to red (anticlockwise)
CURL = np.array([(44, 98, 166), (150, 188, 224), (255, 255, 255), (240, 164, 140), (186, 48, 42)], dtype=np.float64)


def sample(anchors: np.ndarray, t: np.ndarray | float) -> np.ndarray:
    """Colours of a map at positions t in [0, 1] (linear between anchors), as float RGB."""
    t = np.clip(np.asarray(t, dtype=np.float64), 0.0, 1.0)
    x = np.linspace(0.0, 1.0, len(anchors))
    return np.stack([np.interp(t, x, anchors[:, c]) for c in range(anchors.shape[1])], axis=-1)


def lut(anchors: np.ndarray, n: int = 256) -> np.ndarray:
    """An (n, 3) uint8 lookup table (the window's `pg.ImageItem.setLookupTable`, the renderer's arrows)."""
    return np.round(sample(anchors, np.linspace(0.0, 1.0, n))).astype(np.uint8)


def bin_colors(n_bins: int, lo: float = 0.0, hi: float = ARROW_TOP, anchors: np.ndarray = VIRIDIS) -> list[RGBA]:
    """One opaque colour per arrow-magnitude bin, low to high. `hi` < 1 stops before viridis'
    yellow, which vanishes on a white background."""
    rgb = np.round(sample(anchors, np.linspace(lo, hi, n_bins))).astype(int)
    return [(int(r), int(g), int(b), 255) for r, g, b in rgb]


def over_background(rgba: RGBA, background: tuple[int, int, int] = BACKGROUND_RGB) -> tuple[int, int, int]:
    """The opaque colour a translucent RGBA shows over the background (one layer of it)."""
    a = rgba[3] / 255.0
    return tuple(int(round(a * c + (1 - a) * b)) for c, b in zip(rgba[:3], background, strict=True))


# One colour per class (Okabe & Ito's colour-blind-safe palette, then two more): the window's brush
# palette, its particles asked for a class, and `sgm render --class` all take class k's colour here.
CLASS_COLORS: tuple[tuple[int, int, int], ...] = (
    (230, 159, 0), (86, 180, 233), (0, 158, 115), (204, 121, 167), (213, 94, 0), (0, 114, 178), (240, 228, 66),
    (120, 120, 120))


PARTICLE_CLASS_ALPHA = 235  # particles asked for a class: nearly opaque, so the class colour reads at 5 px


def class_color(c: int) -> tuple[int, int, int]:
    """Class c's colour (the palette repeats beyond its 8 colours)."""
    return CLASS_COLORS[int(c) % len(CLASS_COLORS)]


def particle_color(guide_class: int | None) -> RGBA:
    """The particles' RGBA: the class they are asked for (every view draws them so), else `PARTICLE`."""
    return PARTICLE if guide_class is None else (*class_color(guide_class), PARTICLE_CLASS_ALPHA)
