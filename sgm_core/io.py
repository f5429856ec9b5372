"""Reading point clouds from files and writing them back atomically.

Every reader ends in `validate_points`, and every failure, whatever the format, becomes one
`DataError` sentence that names the file, so the CLI and the GUI can show it as is. Images are
read as densities (darker = more points), so a drawing is a distribution to learn.

Every writer fills a temp file beside its target, checks that the write finished (flush, fsync)
and that the file reads back (`verify`) before one atomic rename: a full disk never replaces a
good file with a cut one.
"""

from __future__ import annotations

import os
import secrets
import struct
import tokenize
import warnings
import zlib
from collections.abc import Callable, Sequence
from io import BytesIO
from pathlib import Path
from typing import IO, Any

import numpy as np

from sgm_core.datasets import validate_labels, validate_points
from sgm_core.errors import DataError
from sgm_core.lazy import lazy_module
from sgm_core.limits import MAX_POINTS

torch = lazy_module("torch")  # imported on first use: the GUI process never needs it

TABLE_SUFFIXES = (".csv", ".txt")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")  # TIFF: where I and F images come from
LOAD_SUFFIXES = (".npy", ".npz", *TABLE_SUFFIXES, *IMAGE_SUFFIXES, ".ply", ".xyz")
LABEL_COLUMNS = ("label", "class")  # a table header column of either name holds class labels
SAVE_SUFFIXES = (".npy", ".csv")

IMAGE_HALF_SPAN = 4.0  # the longer image side maps to [-4, 4], the scale of the presets
IMAGE_MAX_SIDE = 1024  # larger images are shrunk first: sampling needs no more resolution
IMAGE_WHITE_FLOOR = 0.02  # darkness below this is paper, not ink (JPEG/scan near-white haze)
NPY_MAX_HEADER = 10_000  # bytes; numpy's own safety limit, far above any real (N, D) header
PLY_MAX_HEADER = 65_536  # bytes; a real PLY header is a few hundred
PLY_MAX_ROWS = 4 * MAX_POINTS  # rows of a non-vertex element: a triangle mesh has ~2 faces per vertex
PLY_TYPE_BYTES = {"char": 1, "int8": 1, "uchar": 1, "uint8": 1, "short": 2, "int16": 2, "ushort": 2,
                  "uint16": 2, "int": 4, "int32": 4, "uint": 4, "uint32": 4, "float": 4, "float32": 4,
                  "double": 8, "float64": 8}
PLY_FORMATS = ("ascii", "binary_little_endian", "binary_big_endian")


# --------------------------------------------------------------------------- writing


def _create_temp(path: Path, suffix: str) -> tuple[Path, int]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):  # a clash of 32 random bits is rare; 100 clashes means something else
        tmp = path.with_name(f"{path.name}.tmp-{secrets.token_hex(4)}{suffix}")
        try:
            return tmp, os.open(tmp, flags, 0o666)  # 0o666 & umask: the same mode as a plain open()
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a temporary file beside {path}")


def reserve_temp(path: str | os.PathLike, suffix: str = "") -> Path:
    """Create an empty, new temp file beside `path` (O_EXCL: never someone else's file), so an
    unwritable folder fails before any work; the name ends in `suffix` for tools that go by it."""
    tmp, fd = _create_temp(Path(path), suffix)
    os.close(fd)
    return tmp


def publish(tmp: Path, path: str | os.PathLike, verify: Callable[[Path], None] | None = None) -> Path:
    """fsync the finished temp file, let `verify(tmp)` check it, then rename it over `path`.

    The rename is the only step that touches `path`, and it is atomic within one directory, so
    on any failure (fsync's late ENOSPC/EIO, or `verify` raising) the old file is left byte for
    byte and the temp file is removed; the error propagates unchanged.
    """
    try:
        _settle(tmp, verify)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Path(path)


def _settle(tmp: Path, verify: Callable[[Path], None] | None) -> None:
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())  # the data is on disk (or its write error is known) before the rename
    if verify is not None:
        verify(tmp)


def _write_temp(path: Path, write_fn: Callable[[IO[Any]], None], mode: str) -> Path:
    """A new temp file beside `path` holding what `write_fn(f)` wrote, flushed; removed on failure."""
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    tmp, fd = _create_temp(path, "")
    try:
        encoding = None if mode == "wb" else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding, newline=None if mode == "wb" else "") as f:
            write_fn(f)
            f.flush()  # a buffered write's ENOSPC surfaces here, inside the try
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def atomic_write(
    path: str | os.PathLike, write_fn: Callable[[IO[Any]], None], *, mode: str = "wb",
    verify: Callable[[Path], None] | None = None,
) -> Path:
    """Call `write_fn(f)` on a temp file beside `path`, then, once it is flushed, fsynced and
    accepted by `verify(tmp_path)` (if given), rename it over `path`.

    A full disk, a crash or an error mid-write (or a `verify` that raises) leaves the old file
    intact and no temp file behind. `mode` is "wb" (binary) or "w" (UTF-8 text). Errors from
    opening, writing or verifying propagate unchanged (OSError, the writer's or verify's own).
    """
    path = Path(path)
    return publish(_write_temp(path, write_fn, mode), path, verify)


Write = tuple[Path, Callable[[IO[Any]], None], str, Callable[[Path], None] | None]  # path, write_fn, mode, verify


def atomic_write_all(writes: Sequence[Write]) -> list[Path]:
    """`atomic_write` for several files that belong together (a table and its plot): every temp
    file is written, fsynced and verified before the first rename, so a failure in any one leaves
    every target as it was and no temp file behind. Each failure is `write_error`'s DataError
    naming the user's path, never the temp file's."""
    temps: list[Path] = []
    try:
        for path, write_fn, mode, verify in writes:
            try:
                temps.append(_write_temp(Path(path), write_fn, mode))
                _settle(temps[-1], verify)
            except (OSError, DataError) as exc:
                raise write_error(path, exc) from exc
        for (path, *_), tmp in zip(writes, temps, strict=True):
            try:
                os.replace(tmp, path)
            except OSError as exc:
                raise write_error(path, exc) from exc
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)  # the renamed ones are gone already
    return [Path(path) for path, *_ in writes]


def check_output(path: str | os.PathLike) -> Path:
    """Refuse, before any work, an output path that cannot be written: a directory, a missing
    folder, or one that takes no new file (a temp file is made and removed beside it, which
    also answers for read-only mounts and ACLs that os.access misreads). One DataError naming it."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"cannot write {str(path)!r}: it is a directory")
    if not path.parent.is_dir():
        problem = "is not a folder" if path.parent.exists() else "does not exist"
        raise DataError(f"cannot write {str(path)!r}: the folder {str(path.parent)!r} {problem}")
    try:
        reserve_temp(path).unlink()
    except OSError as exc:
        raise write_error(path, exc) from exc
    return path


def write_error(path: str | os.PathLike, exc: BaseException) -> DataError:
    """The one sentence for a failed write: OSError's reason (e.g. 'No space left on device'),
    or the verifier's sentence; the caller raises it `from exc`."""
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return DataError(f"cannot write {str(path)!r}: {one_line(reason)}")


def one_line(text: str, limit: int = 300) -> str:
    """Collapse a library's message (FFmpeg's, numpy's) into one line of at most `limit` chars."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def save_points(path: str | os.PathLike, x: np.ndarray | torch.Tensor) -> Path:
    """Write (N, D) points to `.npy` or `.csv` (header `x,y` / `x,y,z`), atomically.

    CSV uses 9 significant digits, enough for float32 values to read back bit-exact.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SAVE_SUFFIXES:
        raise DataError(f"cannot save {path.name!r}: use a .npy or .csv file name")
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    try:
        points = validate_points(np.asarray(x), min_points=1, dims=None)
    except DataError as e:
        raise DataError(f"cannot save {path.name!r}: {e}") from e

    if suffix == ".npy":

        def write(f: IO[Any]) -> None:
            # Through f.write, not np.save(f): numpy's C-level fwrite reports a full disk as
            # "6000 requested and 2016 written", without the OS's reason.
            buffer = BytesIO()
            np.save(buffer, points, allow_pickle=False)
            f.write(buffer.getbuffer())

        def read_back(tmp: Path) -> np.ndarray:
            return load_npy(tmp, max_elements=points.size)

        write_mode = "wb"
    else:
        d = points.shape[1]
        header = ",".join("xyz"[:d] if d <= 3 else [f"x{i}" for i in range(d)])

        def write(f: IO[Any]) -> None:
            f.write(header + "\n")
            np.savetxt(f, points, fmt="%.9g", delimiter=",")

        write_mode = "w"

        def read_back(tmp: Path) -> np.ndarray:
            try:
                return np.loadtxt(tmp, delimiter=",", skiprows=1, dtype=np.float64, ndmin=2).astype(np.float32)
            except ValueError as e:
                raise DataError(f"the written table does not read back ({one_line(str(e), 80)})") from e

    def verify(tmp: Path) -> None:
        """The file on disk holds exactly these points (9 digits round-trip float32 exactly)."""
        back = read_back(tmp)
        if back.shape != points.shape or not np.array_equal(back, points):
            raise DataError(f"the written file reads back as {back.shape} values that differ from the "
                            f"{points.shape} points saved")

    try:
        return atomic_write(path, write, mode=write_mode, verify=verify)
    except (OSError, DataError) as e:
        raise write_error(path, e) from e


# --------------------------------------------------------------------------- reading


def load_points(
    path: str | os.PathLike, *, n_image_points: int = 5000, seed: int = 0
) -> np.ndarray:
    """Read an (N, 2) or (N, 3) float32 point array from a file, chosen by extension.

    `.npy`; `.npz` (its `points`); `.csv`/`.txt` (comma or whitespace columns, optional header
    line; a `label`/`class` column is not a coordinate); `.xyz` (first 3 columns); `.ply` (vertex
    x, y[, z]); `.png/.jpg/.jpeg/.bmp` as a density, from which `n_image_points` points are drawn
    reproducibly with `seed`.
    """
    return load_labelled_points(path, n_image_points=n_image_points, seed=seed)[0]


def load_labelled_points(
    path: str | os.PathLike, *, n_image_points: int = 5000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray | None, tuple[str, ...]]:
    """`load_points`, with the file's class labels: (points, labels (N,) int64 or None, class names).

    Labels come from a table's header column named `label` or `class` (whole numbers or names)
    or an `.npz` file's `labels` array beside its `points`; `validate_labels` checks them.
    """
    path = Path(path)
    name = repr(path.name)
    if not path.exists():
        raise DataError(f"file not found: {str(path)!r}")
    if not path.is_file():
        raise DataError(f"{str(path)!r} is not a file")
    suffix = path.suffix.lower()
    if suffix not in LOAD_SUFFIXES:
        kinds = ", ".join(LOAD_SUFFIXES)
        kind = suffix or "(none)"
        raise DataError(f"cannot read {name}: unknown file type {kind!r}; use {kinds}")
    try:
        raw_labels = None
        if suffix == ".npy":
            x = _read_npy(path)
        elif suffix == ".npz":
            x, raw_labels = _read_npz(path)
        elif suffix in TABLE_SUFFIXES:
            x, raw_labels = _read_labelled_table(path)
        elif suffix == ".xyz":
            x = _read_table(path, max_columns=3)
        elif suffix == ".ply":
            x = _read_ply(path)
        else:
            x = _read_image(path, n_image_points, seed)
        check_point_count(len(x))  # every reader stops at the limit; an image's n_image_points too
        points = validate_points(x)
        if raw_labels is None:
            return points, None, ()
        labels, classes = validate_labels(raw_labels, len(points))
        return points, labels, classes
    except DataError as e:
        raise DataError(one_line(f"cannot read {name}: {e}")) from e
    except OSError as e:  # permissions, I/O, or Pillow's "image file is truncated"
        raise DataError(one_line(f"cannot read {name}: {e.strerror or e}")) from e
    except (ValueError, EOFError, SyntaxError, struct.error, zlib.error) as e:  # corrupt bytes
        raise DataError(
            one_line(f"cannot read {name}: it is corrupt or not a valid {suffix} file ({e})")
        ) from e


def check_point_count(n: int) -> None:
    """Refuse more than MAX_POINTS points while reading, so a too-large file fails at load time,
    not after training when its run is saved."""
    if n > MAX_POINTS:
        raise DataError(f"it holds more than {MAX_POINTS:,} points, the most this program reads")


def load_npy(
    source: str | os.PathLike | bytes, *, max_elements: int, max_rows: int | None = None
) -> np.ndarray:
    """Read an NPY array without pickles, refusing a header that asks for more than `max_elements`
    values, or an (N, D) array of more than `max_rows` rows, before any of them is allocated (a
    100-byte header can claim 10^12 elements).

    Every failure is one DataError sentence; the caller adds which file or member it was.
    """
    try:
        f: IO[bytes] = BytesIO(source) if isinstance(source, bytes) else open(source, "rb")  # noqa: SIM115
    except OSError as e:
        raise DataError(f"it cannot be opened ({e.strerror or e})") from e
    with f:
        if f.read(6) != b"\x93NUMPY":  # np.load would call anything else "pickled data"
            raise DataError("it is not a NumPy .npy file")
        f.seek(0)
        try:
            version = np.lib.format.read_magic(f)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                raise DataError(f"it has an unknown .npy format version {version}")
            shape, _, dtype = read_header(f, max_header_size=NPY_MAX_HEADER)
        except DataError:
            raise
        except ValueError as e:
            if "max_header_size" in str(e) or "large" in str(e):
                raise DataError(f"its header is larger than {NPY_MAX_HEADER} bytes, which no point array needs") from e
            raise DataError("it is corrupt: its header is damaged") from e  # numpy quotes the whole header
        except (EOFError, SyntaxError, TypeError, tokenize.TokenError) as e:  # TokenError: an unclosed '{'
            raise DataError("it is corrupt: its header is damaged") from e
        if dtype.hasobject:
            raise DataError("it holds Python objects (pickled data), which are never loaded "
                            "because unpickling can run arbitrary code")
        if max_rows is not None and len(shape) == 2 and shape[0] > max_rows:
            raise DataError(f"it declares {shape[0]:,} points; the most this program reads is {max_rows:,} points")
        count = int(np.prod(shape, dtype=object)) if shape else 1
        if count > max_elements:
            raise DataError(f"it declares {count:,} values; the most this program reads is {max_elements:,}")
        f.seek(0)
        try:
            return np.lib.format.read_array(f, allow_pickle=False, max_header_size=NPY_MAX_HEADER)
        except (ValueError, EOFError, OSError) as e:
            raise DataError(f"it is corrupt or truncated ({e})") from e


def _read_npy(path: Path) -> np.ndarray:
    return load_npy(path, max_elements=MAX_POINTS * 3, max_rows=MAX_POINTS)


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """An .npz archive's `points` (N, D) and optional `labels` (N,), each read as a checked .npy
    member (no pickles; sizes refused before allocation)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            names = set(z.namelist())
            if "points.npy" not in names:
                raise DataError("an .npz file needs a 'points' array (and optionally 'labels')")
            members = {}
            for key, limit in (("points", MAX_POINTS * 3), ("labels", MAX_POINTS)):
                if f"{key}.npy" in names:
                    if z.getinfo(f"{key}.npy").file_size > 64 * limit + NPY_MAX_HEADER:
                        raise DataError(f"its '{key}' array is larger than any point set this program reads")
                    try:
                        members[key] = load_npy(z.read(f"{key}.npy"), max_elements=limit, max_rows=MAX_POINTS)
                    except DataError as e:
                        raise DataError(f"its '{key}' array cannot be used: {e}") from e
    except zipfile.BadZipFile as e:
        raise DataError("it is not a valid .npz archive") from e
    labels = members.get("labels")
    if labels is not None and labels.ndim != 1:
        raise DataError(f"its 'labels' must be one label per point, shape (N,), not {labels.shape}")
    return members["points"], labels


def _read_labelled_table(path: Path) -> tuple[np.ndarray, list[str] | None]:
    """A table whose header names a `label` or `class` column: the other columns' numbers and that
    column's tokens ('' where a row has none). Tables without such a header are `_read_table`'s."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError("it is not a text file") from e
    lines = [(n, raw.split("#", 1)[0].strip()) for n, raw in enumerate(text.splitlines(), start=1)]
    lines = [(n, line) for n, line in lines if line]
    if not lines:
        raise DataError("it contains no rows of numbers")

    def split(line: str) -> list[str]:
        sep = "," if "," in line else ";" if ";" in line else None
        return [t.strip() for t in (line.split(sep) if sep else line.split())]

    header = [t.lower() for t in split(lines[0][1])]
    column = next((i for i, t in enumerate(header) if t in LABEL_COLUMNS), None)
    if column is None:
        return _read_table(path, max_columns=None), None
    rows: list[list[float]] = []
    labels: list[str] = []
    for lineno, line in lines[1:]:
        tokens = split(line)
        if len(tokens) == len(header) - 1 and column == len(header) - 1:
            tokens.append("")  # the last column, the label, left off: a missing label
        if len(tokens) != len(header):
            raise DataError(f"line {lineno} has {len(tokens)} columns, expected {len(header)}")
        check_point_count(len(rows) + 1)
        try:
            rows.append([float(t) for i, t in enumerate(tokens) if i != column])
        except ValueError:
            raise DataError(f"line {lineno} is not numeric: {line[:40]!r}") from None
        labels.append(tokens[column])
    if not rows:
        raise DataError("it contains no rows of numbers")
    return np.asarray(rows, dtype=np.float64), labels


def _read_table(path: Path, max_columns: int | None) -> np.ndarray:
    """Numbers separated by commas, semicolons or whitespace; '#' comments and one header line
    are skipped. `max_columns` keeps only the first columns (.xyz files often add normals)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise DataError("it is not a text file") from e
    rows: list[list[float]] = []
    n_cols: int | None = None
    seen_line = False
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        tokens = line.replace(",", " ").replace(";", " ").split()
        try:
            values = [float(t) for t in tokens[:max_columns]]
        except ValueError:
            if not seen_line:  # the first line may be a header such as "x,y"
                seen_line = True
                continue
            raise DataError(f"line {lineno} is not numeric: {raw.strip()[:40]!r}") from None
        seen_line = True
        if max_columns is not None and len(values) < max_columns:
            raise DataError(f"line {lineno} has {len(values)} columns; need {max_columns}")
        if n_cols is None:
            n_cols = len(values)
        elif len(values) != n_cols:
            raise DataError(f"line {lineno} has {len(values)} columns, expected {n_cols}")
        check_point_count(len(rows) + 1)
        rows.append(values)
    if not rows:
        raise DataError("it contains no rows of numbers")
    return np.asarray(rows, dtype=np.float64)


def check_ply_header(data: bytes) -> None:
    """Refuse a PLY file whose header (the text up to `end_header`) cannot describe a point cloud
    we read, before plyfile sees it: malformed lines, no vertex x/y, more than MAX_POINTS vertices,
    or more rows than the file's bytes (binary) or lines (ASCII) can hold. plyfile would loop for
    hours over 10^12 rows of an element with no properties, each row zero bytes long.
    """
    def bad(reason: str) -> DataError:
        return DataError(f"it is not a valid PLY file ({reason})")

    nl = b"\r\n" if data.startswith(b"ply\r\n") else data[3:4]
    if not data.startswith(b"ply") or nl not in (b"\n", b"\r", b"\r\n"):
        raise bad("it does not start with a 'ply' line")
    end = data.find(nl + b"end_header" + nl, 0, PLY_MAX_HEADER)
    if end < 0:
        raise bad(f"no 'end_header' line in its first {PLY_MAX_HEADER:,} bytes")
    body = len(data) - (end + len(nl) * 2 + len(b"end_header"))
    try:
        lines = data[len(nl) + 3:end].decode("ascii").split(nl.decode("ascii"))
    except UnicodeDecodeError:
        raise bad("its header is not ASCII text") from None
    fmt = None
    elements: list[tuple[str, int, list[str], int]] = []  # name, count, property names, least bytes a row takes
    for number, line in enumerate(lines, start=2):
        fields = line.split()
        if not fields or fields[0] in ("comment", "obj_info"):
            continue
        keyword = fields[0]
        if keyword == "format" and fmt is None and not elements:
            if len(fields) != 3 or fields[1] not in PLY_FORMATS or fields[2] != "1.0":
                raise bad(f"header line {number}: expected 'format ascii|binary_little_endian|binary_big_endian 1.0'")
            fmt = fields[1]
        elif keyword == "element" and fmt is not None:
            if len(fields) != 3 or not fields[2].isdigit():
                raise bad(f"header line {number}: expected 'element NAME COUNT'")
            elements.append((fields[1], int(fields[2]), [], 0))
        elif keyword == "property" and elements:
            name, count, names, size = elements[-1]
            if fields[1:2] == ["list"]:
                ok = len(fields) == 5 and fields[2] in PLY_TYPE_BYTES and "float" not in fields[2] \
                    and fields[2] != "double" and fields[3] in PLY_TYPE_BYTES
                least = PLY_TYPE_BYTES.get(fields[2], 0)  # an empty list: its length only
            else:
                ok = len(fields) == 3 and fields[1] in PLY_TYPE_BYTES
                least = PLY_TYPE_BYTES.get(fields[1], 0)
            if not ok:
                raise bad(f"header line {number}: bad property {' '.join(fields[1:])[:40]!r}")
            elements[-1] = (name, count, [*names, fields[-1]], size + least)
        else:
            raise bad(f"header line {number}: unexpected {keyword[:20]!r}")
    if fmt is None:
        raise bad("its header has no 'format' line")
    vertex = next((e for e in elements if e[0] == "vertex"), None)
    if vertex is None:
        raise DataError("it has no 'vertex' element")
    if "x" not in vertex[2] or "y" not in vertex[2]:
        raise DataError("its vertices have no x and y properties")
    if vertex[1] > MAX_POINTS:
        raise DataError(f"its header declares {vertex[1]:,} vertices; the most this program reads is {MAX_POINTS:,} points")
    for name, count, names, _ in elements:
        if count > PLY_MAX_ROWS:
            raise DataError(f"its header declares {count:,} {name[:20]!r} rows; the most this program reads is "
                            f"{PLY_MAX_ROWS:,}")
        if count and not names:
            raise bad(f"element {name[:20]!r} has {count:,} rows but no properties")
    start = len(data) - body
    if fmt == "ascii":  # one row per line; counting both CR and LF over-counts, never under-counts
        need, room = sum(e[1] for e in elements), data.count(b"\n", start) + data.count(b"\r", start) + 1
        what = f"{need:,} rows but the file holds at most {room:,} lines"
    else:
        need, room = sum(e[1] * e[3] for e in elements), body
        what = f"at least {need:,} bytes of data but the file holds {room:,}"
    if need > room:
        raise bad(f"truncated: its header declares {what}")


def _read_ply(path: Path) -> np.ndarray:
    from plyfile import PlyData, PlyParseError  # only PLY readers need it

    data = path.read_bytes()
    check_ply_header(data)
    try:
        # From memory: plyfile leaves its text wrapper of an open file unclosed (ASCII PLY).
        with np.errstate(over="ignore", invalid="ignore"):  # 1e300 in a float property: inf, which validate_points names
            ply = PlyData.read(BytesIO(data), mmap=False)
    except PlyParseError as e:
        raise DataError(f"it is not a valid PLY file ({e})") from e
    except MemoryError as e:  # a corrupt header can claim trillions of vertices
        raise DataError("its header declares more vertices than can be read") from e
    if "vertex" not in ply:
        raise DataError("it has no 'vertex' element")
    vertex = ply["vertex"].data
    fields = vertex.dtype.names or ()
    if "x" not in fields or "y" not in fields:
        raise DataError("its vertices have no x and y properties")
    axes = ["x", "y", "z"] if "z" in fields else ["x", "y"]
    return np.stack([np.asarray(vertex[a], dtype=np.float64) for a in axes], axis=1)


def _read_image(path: Path, n: int, seed: int) -> np.ndarray:
    """Draw n points with density proportional to darkness, one uniform offset inside each
    chosen pixel so the cloud has no grid pattern. y points up, so the picture stays upright."""
    if n < 1:
        raise DataError(f"n_image_points must be at least 1, got {n}")
    weight = image_darkness(path)
    weight[weight < IMAGE_WHITE_FLOOR] = 0.0
    total = weight.sum()
    if total <= 0:
        raise DataError("the image is blank (no dark pixels to draw points from)")
    height, width = weight.shape
    g = torch.Generator().manual_seed(seed)
    flat = torch.from_numpy(weight.reshape(-1) / total)
    idx = torch.multinomial(flat, n, replacement=True, generator=g).numpy()
    offset = torch.rand(n, 2, generator=g, dtype=torch.float64).numpy()
    col = idx % width + offset[:, 0]
    row = idx // width + offset[:, 1]
    unit = 2 * IMAGE_HALF_SPAN / max(width, height)  # data units per pixel
    return np.stack([(col - width / 2) * unit, (height / 2 - row) * unit], axis=1)


def image_darkness(path: Path) -> np.ndarray:
    """(H, W) float64 ink weight in [0, 1] of an image file, at most IMAGE_MAX_SIDE per side:
    alpha x (1 - luminance), luminance normalised by the mode's REAL range:

    - 1, L, P, RGB, CMYK, ... (8 bits per channel) and the alpha modes LA, PA, RGBA: /255,
      ITU-R 601 luma (what Pillow's "L" uses), transparent pixels are white paper;
    - I;16 and its byte orders (16-bit grey, e.g. a 16-bit PNG): /65535, the type's range, which
      is the range such files are made for (Pillow's own 8-bit conversion clips them, so
      mid-grey 32768 would turn white);
    - I (32-bit int) and F (float), e.g. from TIFF: by the data's own finite min..max, since their
      type has no white point (a 12-bit sensor, a depth map or 0..1 floats all fit); a uniform
      image has no ink to tell from paper, and NaN/Inf pixels count as paper.

    A picture over Pillow's decompression-bomb limit is refused before it is decoded.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # local: Pillow's global limit and filters stay as they are
            warnings.simplefilter("ignore")  # e.g. TIFF's "Corrupt EXIF data": noise on stderr, not news
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img = ImageOps.exif_transpose(img)  # phone photos store rotation in EXIF
                if img.mode.startswith("I;16"):
                    img, white = img.convert("I"), 65535.0  # exact; I resizes in every Pillow
                elif img.mode in ("I", "F"):
                    white = None
                else:
                    img, white = img.convert("RGBA"), 255.0
                img.thumbnail((IMAGE_MAX_SIDE, IMAGE_MAX_SIDE))
                values = np.asarray(img, dtype=np.float64)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as e:
        raise DataError(f"it has more than {Image.MAX_IMAGE_PIXELS:,} pixels, which are not decoded "
                        "(a decompression bomb, or far more detail than a density needs)") from e
    except UnidentifiedImageError as e:
        raise DataError("it is not a readable image") from e
    except (DataError, OSError):
        raise
    except MemoryError as e:
        raise DataError("it is too large to decode in memory") from e
    except Exception as e:  # noqa: BLE001 - Pillow's parsers raise anything on corrupt bytes (TypeError, ...)
        raise DataError(f"it is corrupt or not a readable image ({type(e).__name__}: {e})") from e
    if values.ndim == 3:  # RGBA / 255
        rgba = values / white
        luma = rgba[..., :3] @ np.array([0.299, 0.587, 0.114])
        return rgba[..., 3] * (1.0 - luma)
    if white is None:  # I or F: the data's own range
        finite = np.isfinite(values)
        lo, hi = (values[finite].min(), values[finite].max()) if finite.any() else (0.0, 0.0)
        if not hi > lo:
            return np.zeros_like(values)  # uniform (or no finite value): nothing to draw
        return np.where(finite, (hi - values) / (hi - lo), 0.0)
    return 1.0 - np.clip(values / white, 0.0, 1.0)
