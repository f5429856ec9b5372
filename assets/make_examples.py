"""Regenerate the example data files in assets/examples/ (run: python assets/make_examples.py).

One small file per format the loaders read, so users can try "open file" at once and the
tests can check that every shipped example loads. Everything is seeded: rerunning gives the
same points (the PNGs are drawn, not sampled).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from plyfile import PlyData, PlyElement

OUT = Path(__file__).resolve().parent / "examples"


def heart_png(path: Path, size: int = 160) -> None:
    """A filled black heart on white, from the classic parametric heart curve."""
    t = np.linspace(0, 2 * math.pi, 400, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = 13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t)
    scale = 0.42 * size / 17
    poly = [(size / 2 + scale * a, size / 2 - scale * b - 0.03 * size) for a, b in zip(x, y, strict=True)]
    img = Image.new("L", (size, size), 255)
    ImageDraw.Draw(img).polygon(poly, fill=0)
    img.save(path, optimize=True)


def letters_png(path: Path) -> None:
    """The letters "SGM" in thick strokes; grey strokes are half as dense as black ones."""
    img = Image.new("L", (240, 100), 255)
    d = ImageDraw.Draw(img)
    w = 12
    # S: two half-rings
    d.arc((10, 14, 62, 52), 90, 360, fill=0, width=w)
    d.arc((10, 46, 62, 86), 270, 180, fill=0, width=w)
    # G: an open ring and its bar (grey, so it gets fewer points)
    d.arc((86, 14, 158, 86), 40, 340, fill=0, width=w)
    d.line((124, 56, 156, 56), fill=128, width=w)
    d.line((150, 50, 150, 80), fill=128, width=w)
    # M: four strokes
    d.line((178, 88, 178, 14, 202, 56, 226, 14, 226, 88), fill=0, width=w, joint="curve")
    img.save(path, optimize=True)


def trefoil_ply(path: Path, rng: np.random.Generator, n: int = 2000) -> None:
    """A trefoil knot (a closed curve in 3D) with a thin tube of noise, as binary PLY."""
    t = rng.uniform(0, 2 * math.pi, n)
    x = np.stack([np.sin(t) + 2 * np.sin(2 * t), np.cos(t) - 2 * np.cos(2 * t), -np.sin(3 * t)], 1)
    x += 0.05 * rng.standard_normal(x.shape)
    vertex = np.empty(n, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
    vertex["x"], vertex["y"], vertex["z"] = x.T
    PlyData([PlyElement.describe(vertex, "vertex")], text=False).write(str(path))


def saddle_xyz(path: Path, rng: np.random.Generator, n: int = 1500) -> None:
    """Points exactly on the saddle z = (x^2 - y^2) / 3: a curved 2D surface in 3D."""
    xy = rng.uniform(-2.5, 2.5, (n, 2))
    z = (xy[:, 0] ** 2 - xy[:, 1] ** 2) / 3
    np.savetxt(path, np.column_stack([xy, z]), fmt="%.5f", header="x y z", comments="# ")


def galaxy_csv(path: Path, rng: np.random.Generator, n: int = 1500) -> None:
    """A two-armed logarithmic spiral around a dense core, with header "x,y"."""
    core = rng.standard_normal((n // 5, 2)) * 0.35
    m = n - len(core)
    s = rng.uniform(0, 1, m)
    arm = rng.integers(0, 2, m)
    r = 0.5 * np.exp(2.0 * s)  # r from 0.5 to ~3.7
    angle = 2.2 * math.pi * s + math.pi * arm
    arms = np.column_stack([r * np.cos(angle), r * np.sin(angle)])
    arms += rng.standard_normal(arms.shape) * (0.08 + 0.05 * r[:, None])
    x = np.concatenate([core, arms])[rng.permutation(n)]
    np.savetxt(path, x, fmt="%.5f", delimiter=",", header="x,y", comments="")


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    heart_png(OUT / "heart.png")
    letters_png(OUT / "sgm-letters.png")
    trefoil_ply(OUT / "trefoil.ply", rng)
    saddle_xyz(OUT / "saddle.xyz", rng)
    galaxy_csv(OUT / "galaxy.csv", rng)
    for f in sorted(OUT.iterdir()):
        print(f"{f.name:18s} {f.stat().st_size:7d} bytes")


if __name__ == "__main__":
    main()
