"""Every loader on real files written here, every bad input, and atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
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
