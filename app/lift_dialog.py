"""Tools ▸ Make 3D from drawing…: turn the 2D canvas points into a 3D point cloud.

The three constructions of `sgm_core.lift3d` (place on a plane, extrude, revolve), one page of
settings each, and a preview of how many 3D points OK makes. The dialog only computes; the
window pushes the result as one undoable `ReplaceData` (undo brings the 2D drawing back).
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QLabel,
    QSpinBox,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from sgm_core.errors import DataError
from sgm_core.lift3d import extrude, lift_sources, place_on_plane, revolve

from .panels import int_box, tipped_combo

METHODS = {
    "plane": ("On a plane", "The drawing as a flat sheet inside 3D: a zero-thickness direction for the score"),
    "extrude": ("Extrude", "The drawing swept along z: a prism of the shape"),
    "revolve": ("Revolve", "The drawing turned about one of its axes: a solid of revolution (a vase from a profile)"),
}
NORMALS = {"x": (1.0, 0.0, 0.0), "y": (0.0, 1.0, 0.0), "z": (0.0, 0.0, 1.0)}
MAX_POINTS = 60_000  # larger lifts are subsampled: training draws batches, and the view stays fluid
DEPTH_FRACTION = 0.5  # default extrusion depth, as a fraction of the drawing's larger side


def normal_from_angles(azimuth_deg: float, elevation_deg: float) -> tuple[float, float, float]:
    """The unit vector at `azimuth` degrees about +z from +x and `elevation` degrees above the
    x-y plane (the 3D view's camera convention)."""
    a, e = math.radians(azimuth_deg), math.radians(elevation_deg)
    return (math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e))


def _spin(lo: float, hi: float, value: float, step: float, tip: str, decimals: int = 2, suffix: str = "") -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(lo, hi)
    box.setDecimals(decimals)
    box.setSingleStep(step)
    box.setValue(value)
    box.setSuffix(suffix)
    box.setKeyboardTracking(False)
    box.setToolTip(tip)
    return box


class LiftDialog(QDialog):
    """Settings for lifting `points2d` (N, 2) into 3D; `points()` gives the (M, 3) result."""

    def __init__(self, points2d: np.ndarray, seed: int = 0, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Make 3D from drawing")
        self._points2d = np.asarray(points2d, dtype=np.float32).reshape(-1, 2)
        self._seed = int(seed)
        span = float(np.ptp(self._points2d, axis=0).max()) if len(self._points2d) else 1.0
        self._span = span if span > 0 else 1.0

        self.method_combo = tipped_combo((text, key, tip) for key, (text, tip) in METHODS.items())
        self.method_combo.setToolTip("How the 2D drawing becomes a 3D point cloud")
        self.pages = QStackedWidget()
        self.pages.addWidget(self._plane_page())
        self.pages.addWidget(self._extrude_page())
        self.pages.addWidget(self._revolve_page())

        self.preview_label = QLabel()
        self.preview_label.setToolTip("How many 3D points OK makes (they replace the data; Undo brings the drawing back)")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setToolTip("Replace the data with the 3D points")
        self.buttons.button(QDialogButtonBox.StandardButton.Cancel).setToolTip("Keep the 2D drawing")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)

        top = QFormLayout()
        top.addRow("Method", self.method_combo)
        layout = QVBoxLayout(self)
        layout.addLayout(top)
        layout.addWidget(self.pages)
        layout.addWidget(self.preview_label)
        layout.addWidget(self.buttons)

        self.method_combo.currentIndexChanged.connect(self._on_method)
        for box in (self.layers_box, self.copies_box):
            box.valueChanged.connect(self._update_preview)
        self._on_method()

    # -- pages ------------------------------------------------------------------------------
    def _plane_page(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self.normal_combo = QComboBox()
        for key in NORMALS:
            self.normal_combo.addItem(f"{key} axis", key)
        self.normal_combo.addItem("custom (azimuth, elevation)", "custom")
        self.normal_combo.setCurrentIndex(self.normal_combo.findData("z"))
        self.normal_combo.setToolTip("The plane's normal: a coordinate axis, or a direction given by two angles")
        form.addRow("Normal", self.normal_combo)
        self.azimuth_box = _spin(-180.0, 180.0, 30.0, 5.0, "Normal's angle about +z from +x, in degrees", 1, "°")
        self.elevation_box = _spin(-90.0, 90.0, 45.0, 5.0, "Normal's angle above the x-y plane, in degrees", 1, "°")
        form.addRow("Azimuth", self.azimuth_box)
        form.addRow("Elevation", self.elevation_box)
        self.offset_box = _spin(-1e4, 1e4, 0.0, 0.1, "Distance of the plane from the origin along its normal")
        form.addRow("Offset", self.offset_box)
        self.rotation_box = _spin(-180.0, 180.0, 0.0, 15.0, "Turn the drawing within the plane, in degrees", 1, "°")
        form.addRow("Rotation", self.rotation_box)
        self.normal_combo.currentIndexChanged.connect(self._on_normal)
        self._on_normal()
        return page

    def _extrude_page(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        depth = round(DEPTH_FRACTION * self._span, 2) or 0.5
        self.depth_box = _spin(0.0, 1e4, depth, 0.1, "Thickness of the prism along z (data units), centred on z = 0")
        form.addRow("Depth", self.depth_box)
        self.layers_box: QSpinBox = int_box(1, 256, 8, "Copies of the drawing along z")
        form.addRow("Layers", self.layers_box)
        self.fill_check = QCheckBox("Random depths (fill the slab)")
        self.fill_check.setChecked(True)
        self.fill_check.setToolTip("Each copied point draws its own depth, filling the prism; off: evenly spaced sheets")
        form.addRow("", self.fill_check)
        return page

    def _revolve_page(self) -> QWidget:
        page = QWidget()
        form = QFormLayout(page)
        self.axis_combo = QComboBox()
        self.axis_combo.addItem("y axis (vertical)", "y")
        self.axis_combo.addItem("x axis (horizontal)", "x")
        self.axis_combo.setToolTip("The drawing's axis the profile turns about; the other coordinate is the radius")
        form.addRow("Axis", self.axis_combo)
        self.copies_box: QSpinBox = int_box(1, 720, 24, "Copies of the drawing around the axis")
        form.addRow("Copies", self.copies_box)
        self.random_angles_check = QCheckBox("Random angles (fill the surface)")
        self.random_angles_check.setChecked(True)
        self.random_angles_check.setToolTip("Each copied point draws its own angle; off: evenly spaced copies")
        form.addRow("", self.random_angles_check)
        return page

    # -- state ------------------------------------------------------------------------------
    def method(self) -> str:
        return str(self.method_combo.currentData())

    def set_method(self, key: str) -> None:
        index = self.method_combo.findData(key)
        if index < 0:
            raise ValueError(f"unknown method {key!r}; expected one of {', '.join(METHODS)}")
        self.method_combo.setCurrentIndex(index)

    def normal(self) -> tuple[float, float, float]:
        key = self.normal_combo.currentData()
        if key == "custom":
            return normal_from_angles(self.azimuth_box.value(), self.elevation_box.value())
        return NORMALS[key]

    def raw_count(self) -> int:
        """Points the construction makes before any subsampling."""
        n = len(self._points2d)
        return {"plane": n, "extrude": n * self.layers_box.value(), "revolve": n * self.copies_box.value()}[self.method()]

    def count(self) -> int:
        return min(self.raw_count(), MAX_POINTS)

    def description(self) -> str:
        """The new data's name."""
        return {"plane": "drawing on a plane", "extrude": "extruded drawing", "revolve": "revolved drawing"}[self.method()]

    def points(self) -> np.ndarray:
        """The (M, 3) float32 points; DataError when the drawing or a setting cannot be used."""
        return self.lifted()[0]

    def lifted(self) -> tuple[np.ndarray, np.ndarray]:
        """The (M, 3) float32 points and, for each, the index of the drawn point it came from (so
        a labelled drawing's classes follow the lift); DataError as `points`."""
        if len(self._points2d) == 0:
            raise DataError("the drawing is empty: draw some points in 2D first")
        rng = np.random.default_rng(self._seed)  # randomness is an argument: the run's seed
        method = self.method()
        if method == "plane":
            out = place_on_plane(self._points2d, self.normal(), self.offset_box.value(), self.rotation_box.value())
        elif method == "extrude":
            out = extrude(self._points2d, self.depth_box.value(), self.layers_box.value(),
                          rng if self.fill_check.isChecked() else None)
        else:
            out = revolve(self._points2d, self.axis_combo.currentData(), self.copies_box.value(),
                          rng if self.random_angles_check.isChecked() else None)
        sources = lift_sources(len(self._points2d), len(out) // len(self._points2d))
        if len(out) > MAX_POINTS:
            keep = np.sort(rng.choice(len(out), MAX_POINTS, replace=False))
            out, sources = out[keep], sources[keep]
        return out, sources

    # -- slots ------------------------------------------------------------------------------
    def _on_method(self) -> None:
        self.pages.setCurrentIndex(self.method_combo.currentIndex())
        self._update_preview()

    def _on_normal(self) -> None:
        custom = self.normal_combo.currentData() == "custom"
        self.azimuth_box.setEnabled(custom)
        self.elevation_box.setEnabled(custom)

    def _update_preview(self) -> None:
        n2, raw = len(self._points2d), self.raw_count()
        text = f"{n2:,} drawn points → {min(raw, MAX_POINTS):,} points in 3D"
        if raw > MAX_POINTS:
            text += f" (a random {MAX_POINTS:,} of {raw:,})"
        self.preview_label.setText(text)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(n2 > 0)
