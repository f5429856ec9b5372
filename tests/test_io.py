"""Every loader on real files written here, every bad input, and atomic writes."""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw
from plyfile import PlyData, PlyElement

from sgm_core.errors import DataError
from sgm_core.io import IMAGE_HALF_SPAN, atomic_write, load_points, save_points

EXAMPLES = Path(__file__).resolve().parents[1] / "assets" / "examples"


def cloud(n: int = 50, d: int = 2, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((n, d)) * 3).astype(np.float32)


def leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if ".tmp-" in p.name]


# --------------------------------------------------------------------------- npy / csv / txt


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("suffix", [".npy", ".csv"])
def test_save_then_load_is_exact(tmp_path, d, suffix):
    x = cloud(d=d)
    path = save_points(tmp_path / f"pts{suffix}", x)
    assert path == tmp_path / f"pts{suffix}"
    y = load_points(path)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y, x)  # %.9g is enough digits for float32 to round-trip
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize(("d", "header"), [(2, "x,y"), (3, "x,y,z")])
def test_save_csv_writes_header(tmp_path, d, header):
    save_points(tmp_path / "p.csv", torch.from_numpy(cloud(d=d)))  # tensors are accepted too
    assert (tmp_path / "p.csv").read_text().splitlines()[0] == header


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("plain.csv", "1,2\n3,4\n5,6\n"),
        ("header.csv", "px,py\n1,2\n3,4\n5,6\n"),
        ("spaces.txt", "1 2\n  3\t4  \n\n5    6\n"),
        ("semicolon.csv", "# exported by a spreadsheet\n1;2\n3;4\n5;6 # last row\n"),
        ("crlf-bom.csv", "\ufeffx,y\r\n1,2\r\n3,4\r\n5,6\r\n"),
    ],
)
def test_table_variants(tmp_path, name, text):
    (tmp_path / name).write_text(text, encoding="utf-8", newline="")
    np.testing.assert_array_equal(load_points(tmp_path / name), [[1, 2], [3, 4], [5, 6]])


def test_npy_any_numeric_dtype_becomes_float32(tmp_path):
    np.save(tmp_path / "i.npy", np.arange(9, dtype=np.int16).reshape(3, 3))
    x = load_points(str(tmp_path / "i.npy"))
    assert x.dtype == np.float32 and x.shape == (3, 3)


# --------------------------------------------------------------------------- images


def white(size: tuple[int, int], mode: str = "L") -> Image.Image:
    return Image.new(mode, size, 255 if mode == "L" else (255, 255, 255))


def pixel_box_to_data(box, width, height):
    """Data-space bounds of pixel box (left, top, right, bottom), right/bottom exclusive."""
    unit = 2 * IMAGE_HALF_SPAN / max(width, height)
    left, top, right, bottom = box
    x0, x1 = (left - width / 2) * unit, (right - width / 2) * unit
    return x0, x1, (height / 2 - bottom) * unit, (height / 2 - top) * unit


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".jpg"])
def test_image_points_land_in_the_dark_region_upright(tmp_path, suffix):
    img = white((80, 60))
    box = (10, 5, 30, 20)  # a dark rectangle in the upper-left of the picture
    ImageDraw.Draw(img).rectangle((box[0], box[1], box[2] - 1, box[3] - 1), fill=0)
    img.save(tmp_path / f"box{suffix}", quality=95)
    x = load_points(tmp_path / f"box{suffix}", n_image_points=3000, seed=1)
    assert x.shape == (3000, 2) and x.dtype == np.float32
    x0, x1, y0, y1 = pixel_box_to_data(box, 80, 60)
    margin = 0.0 if suffix != ".jpg" else 2 * 8 / 80  # JPEG blurs edges by ~a pixel or two
    inside = (x[:, 0] >= x0 - margin) & (x[:, 0] <= x1 + margin) & (x[:, 1] >= y0 - margin) & (x[:, 1] <= y1 + margin)
    assert inside.mean() > (0.99 if suffix == ".jpg" else 0.9999)
    assert (x[:, 0] < 0).all() and (x[:, 1] > 0).all()  # upper-left of picture = upper-left in data


def test_image_longer_side_spans_minus4_to_4_centred(tmp_path):
    Image.new("L", (40, 20), 0).save(tmp_path / "black.png")  # every pixel equally dark
    x = load_points(tmp_path / "black.png", n_image_points=20_000, seed=0)
    assert x[:, 0].min() >= -4 and x[:, 0].max() <= 4 and x[:, 1].min() >= -2 and x[:, 1].max() <= 2
    assert x[:, 0].min() < -3.9 and x[:, 0].max() > 3.9 and x[:, 1].min() < -1.9 and x[:, 1].max() > 1.9
    # Uniform within pixels, so no grid: almost every point is distinct.
    assert len(np.unique(x, axis=0)) > 19_900


def test_image_density_is_proportional_to_darkness(tmp_path):
    img = Image.new("L", (40, 20), 0)
    ImageDraw.Draw(img).rectangle((20, 0, 39, 19), fill=128)  # right half mid-grey
    img.save(tmp_path / "half.png")
    n = 20_000
    x = load_points(tmp_path / "half.png", n_image_points=n, seed=2)
    p_black = 1.0 / (1.0 + (1 - 128 / 255))  # weights 1 and 1 - luminance
    frac = float((x[:, 0] < 0).mean())
    assert abs(frac - p_black) < 5 * np.sqrt(p_black * (1 - p_black) / n)  # 5 standard errors


def test_transparent_pixels_count_as_white(tmp_path):
    img = Image.new("RGBA", (40, 20), (0, 0, 0, 0))  # black but fully transparent
    ImageDraw.Draw(img).rectangle((20, 0, 39, 19), fill=(0, 0, 0, 255))
    img.save(tmp_path / "alpha.png")
    x = load_points(tmp_path / "alpha.png", n_image_points=2000)
    assert (x[:, 0] >= 0).all()


def test_image_sampling_is_seeded(tmp_path):
    Image.new("L", (16, 16), 0).save(tmp_path / "b.png")
    a = load_points(tmp_path / "b.png", seed=3)
    np.testing.assert_array_equal(a, load_points(tmp_path / "b.png", seed=3))
    assert not np.array_equal(a, load_points(tmp_path / "b.png", seed=4))
    assert a.shape == (5000, 2)


MODE_W, MODE_H = 80, 60
MODE_BOX = (10, 35, 30, 50)  # (left, top, right, bottom) pixels: lower-left, so a flipped read fails
ON_SHAPE = 0.95  # fraction of points inside the drawn box: anti-aliasing-free boxes give ~1.0


def _box_mask() -> np.ndarray:
    mask = np.zeros((MODE_H, MODE_W), bool)
    left, top, right, bottom = MODE_BOX
    mask[top:bottom, left:right] = True
    return mask


def _mode_image(mode: str) -> tuple[Image.Image, str]:
    """A picture in `mode` with a mid-tone box on paper, and the suffix that stores that mode."""
    mask = _box_mask()
    if mode == "1":
        return Image.fromarray(~mask), ".png"  # bool: a 1-bit image, ink = False = black
    if mode == "L":
        return Image.fromarray(np.where(mask, 128, 255).astype(np.uint8)), ".png"
    if mode in ("LA", "RGBA"):  # ink: opaque mid-tone; paper: transparent BLACK (must count as white)
        ink = (128,) if mode == "LA" else (200, 40, 20)
        px = np.zeros((MODE_H, MODE_W, len(ink) + 1), np.uint8)
        px[mask] = (*ink, 255)
        return Image.fromarray(px, mode), ".png"
    if mode == "RGB":
        px = np.full((MODE_H, MODE_W, 3), 255, np.uint8)
        px[mask] = (200, 40, 20)
        return Image.fromarray(px), ".png"
    if mode in ("P", "P-transparent"):
        img = Image.fromarray(np.where(mask, 1, 0).astype(np.uint8), "P")
        if mode == "P":
            img.putpalette([255, 255, 255, 40, 40, 160])
            return img, ".png"
        img.putpalette([0, 0, 0, 40, 40, 160])  # index 0 is black but transparent: paper
        img.info["transparency"] = 0
        return img, ".png"
    if mode.startswith("I;16"):  # 16-bit grey: mid-grey 32768 on white 65535 (8 bits would clip both)
        values = np.where(mask, 32768, 65535).astype(np.uint16)
        img = Image.fromarray(values) if mode == "I;16" else Image.frombytes(
            mode, (MODE_W, MODE_H), values.astype(">u2" if mode == "I;16B" else "<u2").tobytes())
        return img, ".png" if mode == "I;16" else ".tif"
    if mode == "I":  # a 12-bit sensor's range: 1000 on 4095
        return Image.fromarray(np.where(mask, 1000, 4095).astype(np.int32)), ".tif"
    if mode == "F":  # floats 0.25 on 1.0, with two NaN pixels of paper
        values = np.where(mask, 0.25, 1.0).astype(np.float32)
        values[0, 0] = values[-1, -1] = np.nan
        return Image.fromarray(values), ".tif"
    raise AssertionError(mode)


IMAGE_MODES = ["1", "L", "LA", "P", "P-transparent", "RGB", "RGBA", "I;16", "I;16B", "I;16L", "I", "F"]
OPENS_AS = {"P-transparent": "P", "I;16L": "I;16"}  # TIFF stores little-endian 16-bit as plain I;16


@pytest.mark.parametrize("mode", IMAGE_MODES)
def test_every_image_mode_is_read_by_its_real_range(tmp_path, mode):
    img, suffix = _mode_image(mode)
    path = tmp_path / f"shape{suffix}"
    img.save(path)
    with Image.open(path) as back:
        assert back.mode == OPENS_AS.get(mode, mode)  # the file really holds the mode under test
    x = load_points(path, n_image_points=4000, seed=0)
    x0, x1, y0, y1 = pixel_box_to_data(MODE_BOX, MODE_W, MODE_H)
    inside = (x[:, 0] >= x0) & (x[:, 0] <= x1) & (x[:, 1] >= y0) & (x[:, 1] <= y1)
    assert inside.mean() > ON_SHAPE


def test_16_bit_grey_darkness_is_its_value_over_65535(tmp_path):
    """Two boxes, 0 (black) and 32768 (half grey) on 65535: weights 1 and 1 - 32768/65535."""
    values = np.full((20, 40), 65535, np.uint16)
    values[:, :20], values[:, 20:] = 0, 32768
    Image.fromarray(values).save(tmp_path / "two.png")
    n = 20_000
    x = load_points(tmp_path / "two.png", n_image_points=n, seed=2)
    p_black = 1.0 / (1.0 + (1 - 32768 / 65535))
    frac = float((x[:, 0] < 0).mean())
    assert abs(frac - p_black) < 5 * np.sqrt(p_black * (1 - p_black) / n)  # 5 standard errors


def _bomb_png(path: Path, side: int = 9500) -> None:
    """A ~100 KB PNG of side x side grey pixels (90 M: over Pillow's 89.5 M bomb warning)."""
    img = Image.new("L", (side, side), 255)
    ImageDraw.Draw(img).rectangle((10, 10, 500, 500), fill=0)
    img.save(path, compress_level=1)


BOMB_MAX_S = 2.0  # the refusal reads the header only: milliseconds; decoding would take seconds
BOMB_MAX_RSS = 2 * 2**30  # the bound on any refusal's peak resident memory


def test_a_decompression_bomb_is_refused_quickly_without_a_warning(tmp_path, capfd):
    import time

    path = tmp_path / "bomb.png"
    _bomb_png(path)
    assert path.stat().st_size < 2_000_000
    capfd.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning (Pillow's DecompressionBombWarning) fails the test
        start = time.perf_counter()
        with pytest.raises(DataError, match="pixels") as info:
            load_points(path)
        seconds = time.perf_counter() - start
    assert seconds < BOMB_MAX_S and "\n" not in str(info.value) and "bomb.png" in str(info.value)
    assert capfd.readouterr().err == ""
    assert Image.MAX_IMAGE_PIXELS == 89_478_485  # Pillow's default, untouched

    # Peak memory, in a fresh interpreter (this one's peak already includes the test's own image).
    code = ("import resource, sys\nfrom sgm_core.errors import DataError\nfrom sgm_core.io import load_points\n"
            "try:\n    load_points(sys.argv[1])\nexcept DataError:\n    pass\nelse:\n    sys.exit(3)\n"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)")
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-W", "error::Warning", "-c", code, str(path)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert int(done.stdout) < BOMB_MAX_RSS


# --------------------------------------------------------------------------- ply / xyz


@pytest.mark.parametrize("text", [True, False], ids=["ascii", "binary"])
def test_ply_reads_vertex_xyz(tmp_path, text):
    x = cloud(30, 3)
    vertex = np.empty(30, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"), ("nx", "<f4")])
    vertex["x"], vertex["y"], vertex["z"] = x.T
    vertex["red"], vertex["nx"] = 200, 1.0
    faces = np.array([([0, 1, 2],)], dtype=[("vertex_indices", "i4", (3,))])
    ply = PlyData([PlyElement.describe(vertex, "vertex"), PlyElement.describe(faces, "face")], text=text)
    ply.write(str(tmp_path / "c.ply"))
    y = load_points(tmp_path / "c.ply")
    np.testing.assert_allclose(y, x, rtol=1e-6)  # ascii PLY prints ~8 digits
    if not text:
        np.testing.assert_array_equal(y, x)


def test_ply_without_z_is_2d(tmp_path):
    vertex = np.array([(0, 1), (2, 3), (4, 5)], dtype=[("x", "<f8"), ("y", "<f8")])
    PlyData([PlyElement.describe(vertex, "vertex")], text=True).write(str(tmp_path / "flat.ply"))
    np.testing.assert_array_equal(load_points(tmp_path / "flat.ply"), [[0, 1], [2, 3], [4, 5]])


def test_ply_values_beyond_the_property_type_are_one_sentence_without_a_warning(tmp_path, capfd):
    """1e300 in a float property used to print plyfile's 'overflow encountered in cast' warning
    before the refusal; now only the existing NaN/Inf sentence is said."""
    path = tmp_path / "far.ply"
    path.write_text("ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nend_header\n"
                    "1e300 2\n3 4\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError, match=r"^cannot read 'far.ply': data contains NaN or Inf in 1 row$"):
            load_points(path)
    assert capfd.readouterr().err == ""


def test_xyz_uses_first_three_columns(tmp_path):
    (tmp_path / "p.xyz").write_text("# x y z nx ny nz\n1 2 3 0 0 1\n4 5 6 0 1 0\n7 8 9 1 0 0\n")
    np.testing.assert_array_equal(load_points(tmp_path / "p.xyz"), [[1, 2, 3], [4, 5, 6], [7, 8, 9]])


# --------------------------------------------------------------------------- bad inputs


def _write_bytes(data: bytes):
    return lambda p: p.write_bytes(data)


def _write_png(img: Image.Image):
    return lambda p: img.save(p, format="PNG")


def _write_ply_without_vertex(p: Path) -> None:
    el = PlyElement.describe(np.array([(1.0,), (2.0,)], dtype=[("t", "<f4")]), "sample")
    PlyData([el], text=True).write(str(p))


def _truncated_ply(p: Path) -> None:
    vertex = np.zeros(100, dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4")])
    PlyData([PlyElement.describe(vertex, "vertex")], text=False).write(str(p))
    p.write_bytes(p.read_bytes()[:-50])


def _npy_with_header(header: str, data: bytes = b"", version: int = 2) -> Callable[[Path], None]:
    """A hand-made NPY file: magic, version, header length, the header text as given, data."""
    import struct

    text = header.encode("latin1")
    size = struct.pack("<I", len(text)) if version == 2 else struct.pack("<H", len(text))
    return _write_bytes(b"\x93NUMPY" + bytes([version, 0]) + size + text + data)


def _tiff_image(mode: str, value: float) -> Callable[[Path], None]:
    return lambda p: Image.new(mode, (30, 20), value).save(p, format="TIFF")


HUGE_HEADER = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }" + " " * 12_000 + "\n"


BAD_INPUTS = {
    "missing": ("gone.csv", None, "file not found"),
    "unknown-extension": ("points.dat", lambda p: p.write_text("1 2\n3 4\n"), "unknown file type '.dat'"),
    "corrupt-npy": ("junk.npy", _write_bytes(os.urandom(64)), "not a NumPy .npy file"),
    "truncated-npy": ("cut.npy", lambda p: p.write_bytes(_npy_bytes(cloud())[:90]), "corrupt"),
    "pickle-npy": (
        "obj.npy",
        lambda p: np.save(p, np.array([{"a": 1}, None], dtype=object), allow_pickle=True),
        "pickled",
    ),
    "wrong-shape": ("wide.npy", lambda p: np.save(p, np.zeros((5, 4))), "an N×2 or N×3 array, got shape (5, 4)"),
    "nan-csv": ("nan.csv", lambda p: p.write_text("x,y\n1,2\nnan,3\n4,inf\n"), "NaN or Inf in 2 rows"),
    "one-point": ("one.csv", lambda p: p.write_text("x,y\n1,2\n"), "data has 1 point; need at least 2"),
    "empty-csv": ("empty.csv", lambda p: p.write_text(""), "no rows of numbers"),
    "ragged-csv": ("ragged.csv", lambda p: p.write_text("1,2\n3,4,5\n"), "line 2 has 3 columns"),
    "text-in-csv": ("words.csv", lambda p: p.write_text("1,2\n3,four\n"), "line 2 is not numeric"),
    "binary-csv": ("bin.csv", _write_bytes(bytes(range(128, 256))), "not a text file"),
    "short-xyz": ("flat.xyz", lambda p: p.write_text("1 2\n3 4\n"), "need 3"),
    "white-png": ("white.png", _write_png(Image.new("RGB", (30, 20), "white")), "blank"),
    "transparent-png": ("clear.png", _write_png(Image.new("RGBA", (30, 20), (0, 0, 0, 0))), "blank"),
    "corrupt-png": ("noise.png", _write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(200)), "cannot read 'noise.png'"),
    "corrupt-jpg": ("noise.jpg", _write_bytes(os.urandom(300)), "not a readable image"),
    "ply-no-vertex": ("novertex.ply", _write_ply_without_vertex, "no 'vertex' element"),
    "ply-truncated": ("cut.ply", _truncated_ply, "not a valid PLY file"),
    "ply-garbage": ("junk.ply", _write_bytes(b"hello\n" + os.urandom(64)), "cannot read 'junk.ply'"),
    "huge-header-npy": ("wide-header.npy", _npy_with_header(HUGE_HEADER, bytes(24)), "larger than 10000 bytes"),
    "huge-claim-npy": ("claims.npy", _npy_with_header(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000, 2), }\n"), "declares 1,000,000,000,000 points"),
    "unclosed-header-npy": ("unclosed.npy", _npy_with_header("{'descr': '<f4', 'shape': (3,\n"), "header is damaged"),
    "unknown-version-npy": ("v9.npy", _npy_with_header("{}\n", version=9), "unknown .npy format version"),
    "white-16-bit-png": ("white16.png", lambda p: Image.fromarray(np.full((20, 30), 65535, np.uint16)).save(p),
                         "blank"),
    "uniform-float-tif": ("flat.tif", _tiff_image("F", 0.5), "blank"),
    "corrupt-tif": ("noise.tif", _write_bytes(b"II*\x00" + os.urandom(200)), "cannot read 'noise.tif'"),
    # PLY headers refused before plyfile reads a row (the first used to loop for hours in PlyData.read)
    "ply-huge-count-no-properties": ("spin.ply", _write_bytes(
        b"ply\nformat binary_little_endian 1.0\nelement vertex 900000000000\nend_header\n"), "no x and y"),
    "ply-empty-element-rows": ("empty.ply", _write_bytes(
        b"ply\nformat binary_little_endian 1.0\nelement vertex 1\nproperty float x\nproperty float y\n"
        b"element nothing 9000\nend_header\n" + bytes(8)), "'nothing' has 9,000 rows but no properties"),
    "ply-too-many-vertices": ("many.ply", _write_bytes(
        b"ply\nformat binary_little_endian 1.0\nelement vertex 3000000\nproperty float x\nproperty float y\n"
        b"end_header\n"), "declares 3,000,000 vertices; the most this program reads is 2,000,000"),
    "ply-too-many-faces": ("faces.ply", _write_bytes(
        b"ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nelement face 9000000000\n"
        b"property list uchar int vertex_indices\nend_header\n1 2\n3 4\n"), "9,000,000,000 'face' rows"),
    "ply-binary-short": ("short.ply", _write_bytes(
        b"ply\nformat binary_big_endian 1.0\nelement vertex 1000\nproperty double x\nproperty double y\n"
        b"end_header\n" + bytes(100)), "at least 16,000 bytes of data but the file holds 100"),
    "ply-ascii-short": ("few.ply", _write_bytes(
        b"ply\nformat ascii 1.0\nelement vertex 500\nproperty float x\nproperty float y\nend_header\n1 2\n3 4\n"),
        "declares 500 rows but the file holds at most 3 lines"),
    "ply-no-end-header": ("open.ply", _write_bytes(b"ply\nformat ascii 1.0\nelement vertex 2\n"), "no 'end_header'"),
    "ply-no-format": ("noformat.ply", _write_bytes(b"ply\nelement vertex 1\nproperty float x\nend_header\n1\n"),
                      "header line 2: unexpected 'element'"),
    "ply-bad-count": ("count.ply", _write_bytes(b"ply\nformat ascii 1.0\nelement vertex -5\nend_header\n"),
                      "header line 3: expected 'element NAME COUNT'"),
    "ply-bad-type": ("type.ply", _write_bytes(
        b"ply\nformat ascii 1.0\nelement vertex 1\nproperty quad x\nend_header\n1\n"), "bad property 'quad x'"),
    "ply-float-list-length": ("list.ply", _write_bytes(
        b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nelement face 1\n"
        b"property list float int v\nend_header\n1 2\n0\n"), "bad property 'list float int v'"),
    "ply-no-xy": ("noxy.ply", _write_bytes(b"ply\nformat ascii 1.0\nelement vertex 1\nproperty float t\nend_header\n1\n"),
                  "no x and y"),
}


def _npy_bytes(x: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, x)
    return buf.getvalue()


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_raises_one_clear_sentence(tmp_path, case):
    name, write, expected = BAD_INPUTS[case]
    path = tmp_path / name
    if write is not None:
        write(path)
    with pytest.raises(DataError) as info:
        load_points(path)
    message = str(info.value)
    assert expected in message
    assert name in message  # every message names the file
    assert "\n" not in message


def _ply_cloud(p: Path, n: int) -> None:
    vertex = np.zeros(n, dtype=[("x", "<f4"), ("y", "<f4")])
    PlyData([PlyElement.describe(vertex, "vertex")], text=False).write(str(p))


POINT_COUNT_WRITERS = {  # n points in every format that carries a count of its own
    "t.csv": lambda p, n: p.write_text("x,y\n" + "".join(f"{i},{-i}\n" for i in range(n))),
    "l.csv": lambda p, n: p.write_text("x,y,label\n" + "".join(f"{i},{-i},{i % 2}\n" for i in range(n))),
    "t.xyz": lambda p, n: p.write_text("".join(f"{i} {-i} 0\n" for i in range(n))),
    "t.npy": lambda p, n: np.save(p, np.zeros((n, 2), np.float32)),
    "t.npz": lambda p, n: np.savez(p, points=np.zeros((n, 3), np.float32)),
    "t.ply": _ply_cloud,
}


@pytest.mark.parametrize("name", sorted(POINT_COUNT_WRITERS))
def test_more_than_max_points_is_refused_at_load_time(tmp_path, monkeypatch, name):
    """A file over MAX_POINTS used to load and train, then fail at the save; now the load refuses it."""
    monkeypatch.setattr("sgm_core.io.MAX_POINTS", 10)
    path = tmp_path / name
    POINT_COUNT_WRITERS[name](path, 10)
    assert len(load_points(path)) == 10  # the limit itself is allowed
    POINT_COUNT_WRITERS[name](path, 11)
    with pytest.raises(DataError) as info:
        load_points(path)
    message = str(info.value)
    assert name in message and "10 points" in message and "\n" not in message


def test_a_huge_npy_header_is_not_called_pickled_data(tmp_path):
    """numpy's own refusal of a >10,000-byte header used to read as 'pickled data' (issue 11, 8)."""
    path = tmp_path / "wide-header.npy"
    _npy_with_header(HUGE_HEADER, bytes(24))(path)
    with pytest.raises(DataError) as info:
        load_points(path)
    assert "pickle" not in str(info.value) and "header" in str(info.value)


MUTATION_SEEDS = {  # one good file of each kind the loader reads
    "a.npy": lambda p: np.save(p, cloud(5)),
    "a.csv": lambda p: p.write_text("x,y\n1,2\n3,4\n5,6\n"),
    "a.xyz": lambda p: p.write_text("1 2 3\n4 5 6\n"),
    "a.ply": lambda p: p.write_text("ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\n"
                                    "property float y\nend_header\n1 2\n3 4\n"),
    "a.png": lambda p: Image.new("L", (8, 8), 0).save(p),
    "b.png": lambda p: Image.fromarray(np.full((8, 8), 1000, np.uint16)).save(p),
    "a.jpg": lambda p: Image.new("RGB", (8, 8), "black").save(p),
    "a.bmp": lambda p: Image.new("P", (8, 8), 0).save(p),
    "a.tif": _tiff_image("F", 0.0),
}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(sorted(MUTATION_SEEDS)), cut=st.floats(0, 1), flips=st.lists(
    st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=6))
def test_damaged_files_load_or_fail_with_one_line_and_nothing_on_stderr(tmp_path, capfd, name, cut, flips):
    """Truncations and byte flips of every readable kind: a clean load or one DataError line,
    never another exception, a warning or a word on stderr."""
    path = tmp_path / name
    MUTATION_SEEDS[name](path)
    data = bytearray(path.read_bytes())
    for where, value in flips:
        data[int(where * len(data))] = value
    path.write_bytes(bytes(data[: max(1, round(cut * len(data)))]))
    capfd.readouterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        try:
            load_points(path, n_image_points=10)
        except DataError as e:
            assert "\n" not in str(e) and name in str(e)
    assert capfd.readouterr().err == ""


def test_directory_is_not_a_file(tmp_path):
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(DataError, match="is not a file"):
        load_points(tmp_path / "d.csv")


# --------------------------------------------------------------------------- writing


def test_save_points_rejects_bad_name_and_bad_data(tmp_path):
    with pytest.raises(DataError, match=r"\.npy or \.csv"):
        save_points(tmp_path / "p.txt", cloud())
    with pytest.raises(DataError, match="NaN or Inf"):
        save_points(tmp_path / "p.csv", np.array([[0.0, np.nan]]))
    with pytest.raises(DataError, match="cannot write"):
        save_points(tmp_path / "no-such-dir" / "p.npy", cloud())
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_atomic_write_replaces_only_on_success(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def fail(f):
        f.write(b"half of the new")
        assert target.read_bytes() == b"old"  # the target is untouched while writing
        assert len(leftovers(tmp_path)) == 1 and leftovers(tmp_path)[0].startswith("out.bin.tmp-")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, fail)
    assert target.read_bytes() == b"old" and leftovers(tmp_path) == []

    assert atomic_write(target, lambda f: f.write(b"new")) == target
    assert target.read_bytes() == b"new" and leftovers(tmp_path) == []

    atomic_write(str(tmp_path / "note.txt"), lambda f: f.write("é\n"), mode="w")
    assert (tmp_path / "note.txt").read_bytes() == "é\n".encode()


def test_atomic_write_keeps_the_usual_file_mode(tmp_path):
    if os.name != "posix":
        pytest.skip("POSIX permissions")
    umask = os.umask(0)
    os.umask(umask)
    atomic_write(tmp_path / "m.bin", lambda f: f.write(b"x"))
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")
    assert (tmp_path / "m.bin").stat().st_mode == plain.stat().st_mode == 0o100666 & ~umask


def test_atomic_write_verifies_the_temp_file_before_the_rename(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    seen: list[tuple[str, bytes]] = []

    def refuse(tmp: Path) -> None:
        seen.append((tmp.name, tmp.read_bytes()))
        assert target.read_bytes() == b"old"  # not yet renamed
        raise DataError("it does not read back")

    with pytest.raises(DataError, match="does not read back"):
        atomic_write(target, lambda f: f.write(b"new"), verify=refuse)
    assert seen and seen[0][0].startswith("out.bin.tmp-") and seen[0][1] == b"new"  # the flushed bytes
    assert target.read_bytes() == b"old" and leftovers(tmp_path) == []
    assert atomic_write(target, lambda f: f.write(b"new"), verify=lambda tmp: None) == target
    assert target.read_bytes() == b"new"


@pytest.mark.parametrize("suffix", [".npy", ".csv"])
def test_save_points_refuses_a_file_that_reads_back_wrong(tmp_path, monkeypatch, suffix):
    """A writer that 'succeeds' with a short file (a lying disk): caught by reading it back."""
    path = tmp_path / f"p{suffix}"
    path.write_bytes(b"old points")
    real = np.save if suffix == ".npy" else np.savetxt
    monkeypatch.setattr(np, real.__name__, lambda f, x, **kw: real(f, x[:-1], **kw))  # one row short
    with pytest.raises(DataError, match="cannot write") as info:
        save_points(path, cloud())
    assert "\n" not in str(info.value)
    assert path.read_bytes() == b"old points" and leftovers(tmp_path) == []


# --------------------------------------------------------------------------- shipped examples


EXPECTED_EXAMPLES = {"heart.png": 2, "sgm-letters.png": 2, "galaxy.csv": 2, "trefoil.ply": 3, "saddle.xyz": 3}


@pytest.mark.parametrize("name", sorted(EXPECTED_EXAMPLES))
def test_shipped_examples_load(name):
    x = load_points(EXAMPLES / name, n_image_points=1000)
    assert x.shape[1] == EXPECTED_EXAMPLES[name] and len(x) >= 1000
    assert np.abs(x).max() < 6


def test_shipped_examples_are_small():
    assert sum(p.stat().st_size for p in EXAMPLES.iterdir()) < 200_000
