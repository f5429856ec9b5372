"""The views' palette: the core's (sgm_core/palette.py, shared with exported animations), plus
what only pyqtgraph needs (its background name)."""

from __future__ import annotations

from sgm_core.palette import (  # noqa: F401 - re-exported: the views read their colours here
    CONDITION_LINE,
    CONDITION_TRUTH,
    CURL,
    CURSOR,
    DATA,
    DENSITY,
    ERASER_CURSOR,
    ERROR,
    FOREGROUND,
    GRID_ALPHA,
    LOSS,
    LOSS_EMA,
    NOISY_DATA,
    PARTICLE,
    RGBA,
    SOURCE,
    SOURCE_PREVIEW,
    STROKE_PREVIEW,
    TRAIL,
    TRUE_FIELD,
    VIRIDIS,
    bin_colors,
    lut,
    sample,
)

BACKGROUND = "w"
