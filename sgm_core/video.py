"""Atomic GIF, MP4 and PNG writers for rendered frames (HxWx3 uint8), on maintained libraries.

GIF goes through Pillow (one adaptive palette per frame, looping forever), MP4 through the FFmpeg
that imageio-ffmpeg ships (H.264, yuv420p, which every player and browser decodes). Every writer
fills a temp file beside the target, checks that the write finished (FFmpeg's exit status, every
OSError such as ENOSPC), reopens the temp file to verify it (it decodes, with the size and frame
count written), and only then renames it over the target. So a cancelled (`abort()`) or failed
export, a full disk included, leaves no partial file, never harms an existing one, and ends in
one DataError sentence.

    with open_video("out.mp4", fps=20, size=(512, 512)) as video:
        for frame in frames:
            video.append(frame)
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np

from .errors import ConfigError, DataError
from .io import atomic_write, one_line, publish, reserve_temp, write_error
from .limits import MAX_FRAMES, MAX_SIDE

VIDEO_SUFFIXES = (".gif", ".mp4")

MAX_FPS = 1000  # frames per second; GIF plays at most 50, and no screen shows more than a few hundred
GIF_MAX_BYTES = 2 * 2**30  # a GIF keeps every frame (1 byte/pixel) until it closes: at most 2 GiB
MP4_PRESET = "veryfast"  # x264 speed/size trade-off: ~3x faster than "medium" at ~1.2x the size
MP4_CRF = 10  # x264 constant rate factor (0 lossless .. 51): crisp dots and thin lines survive
FFMPEG_LOG_LINES = 20  # FFmpeg's last stderr lines kept for the one-line reason of a failure


def check_video_path(path: str | os.PathLike) -> Path:
    """The output path, if its extension names a format we write (else one ConfigError sentence)."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        kind = path.suffix or "no extension"
        raise ConfigError(f"cannot write a video to {path.name!r} ({kind}); use a .gif or .mp4 file name")
    return path


def check_video_request(path: str | os.PathLike, frames: int, size: Iterable[int]) -> Path:
    """Refuse, before any work, an animation no writer should attempt: a bad extension, frames
    outside 1..MAX_FRAMES, a side outside 1..MAX_SIDE, or a GIF over GIF_MAX_BYTES in memory."""
    path = check_video_path(path)
    if not 1 <= frames <= MAX_FRAMES:
        raise ConfigError(f"an animation has 1 to {MAX_FRAMES:,} frames, got {frames:,}")
    w, h = _check_size(size)
    if path.suffix.lower() == ".gif" and frames * w * h > GIF_MAX_BYTES:
        raise ConfigError(f"a GIF of {frames:,} frames at {w}x{h} would hold {frames * w * h / 2**30:.1f} GiB "
                          f"in memory (at most {GIF_MAX_BYTES // 2**30} GiB): use .mp4, fewer frames or a smaller size")
    return path


def _check_size(size: Iterable[int]) -> tuple[int, int]:
    w, h = (int(v) for v in size)
    if not (1 <= w <= MAX_SIDE and 1 <= h <= MAX_SIDE):
        raise ConfigError(f"video size must be between 1x1 and {MAX_SIDE}x{MAX_SIDE} pixels, got {w}x{h}")
    return w, h


def _reserve(path: Path, suffix: str) -> Path:
    try:
        return reserve_temp(path, suffix)
    except OSError as exc:
        raise write_error(path, exc) from exc


class VideoWriter:
    """Base of the format writers: frame checks, the temp file, and the close/abort life cycle.

    Use it as a context manager: a normal exit closes (publishes) the file, an exception aborts.
    """

    suffix = ""

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int]) -> None:
        self.path = Path(path)
        if not 0 < fps <= MAX_FPS:  # also refuses NaN and inf
            raise ConfigError(f"frames per second must be above 0 and at most {MAX_FPS}, got {fps}")
        self.fps = float(fps)
        self.size = _check_size(size)  # (width, height) of the frames appended
        self.frames_written = 0
        self._tmp: Path | None = _reserve(self.path, self.suffix)
        self._done = False

    # -- the life cycle ---------------------------------------------------------------------
    def append(self, frame: np.ndarray) -> None:
        """Add one (H, W, 3) uint8 frame of the size given at open."""
        if self._done:
            raise RuntimeError(f"the writer for {self.path.name} is already closed")
        w, h = self.size
        frame = np.asarray(frame)
        if frame.shape != (h, w, 3) or frame.dtype != np.uint8:
            raise ValueError(f"expected a ({h}, {w}, 3) uint8 frame, got {frame.shape} {frame.dtype}")
        self._append(frame)
        self.frames_written += 1

    def close(self) -> Path:
        """Finish the file, verify it and rename it over the target; on any failure (one
        DataError sentence) nothing is left behind and an existing target is untouched."""
        if self._done:
            return self.path
        self._done = True
        try:
            if self.frames_written == 0:
                raise DataError("no frames were rendered")
            self._finish()
            publish(self._tmp, self.path, self._verify)
        except (OSError, DataError) as exc:  # DataError here is a reason: the sentence names the file
            self._discard()
            raise write_error(self.path, exc) from exc
        except BaseException:
            self._discard()
            raise
        self._tmp = None
        return self.path

    def abort(self) -> None:
        """Drop everything written so far; an existing file at the target stays untouched."""
        if self._done:
            return
        self._done = True
        try:
            self._cancel()
        finally:
            self._discard()

    @property
    def closed(self) -> bool:
        return self._done

    def _discard(self) -> None:
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    # -- what each format does ----------------------------------------------------------------
    def _append(self, frame: np.ndarray) -> None:
        raise NotImplementedError

    def _finish(self) -> None:
        raise NotImplementedError

    def _verify(self, tmp: Path) -> None:
        """Reopen the finished temp file; raise DataError (the reason only) if it is not the video written."""
        raise NotImplementedError

    def _cancel(self) -> None:
        pass


class GifWriter(VideoWriter):
    """Animated GIF via Pillow: each frame gets its own 256-colour palette (no dithering, so flat
    colours stay flat and frame-to-frame deltas stay small), and the animation loops forever.

    Pillow merges a frame identical to the one before into one longer frame, so the file may hold
    fewer frames than were appended, but their delays always add up to `frames_written` x the
    delay: that sum is the frame count the verification checks. GIF delays are whole centiseconds,
    so the delay is rounded to one (fps above 50 plays at 50 fps, the fastest browsers honour).
    """

    suffix = ".gif"

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int]) -> None:
        super().__init__(path, fps, size)
        self.delay_ms = 10 * max(2, round(100.0 / self.fps))  # whole centiseconds, at least 2
        self._frames: list = []  # palette ("P") images: 1 byte per pixel until close

    def _append(self, frame: np.ndarray) -> None:
        from PIL import Image

        if (self.frames_written + 1) * frame.shape[0] * frame.shape[1] > GIF_MAX_BYTES:
            raise DataError(f"cannot write {str(self.path)!r}: a GIF keeps every frame in memory and "
                            f"{self.frames_written + 1:,} frames pass {GIF_MAX_BYTES // 2**30} GiB; use .mp4")
        image = Image.fromarray(frame)
        self._frames.append(image.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE))

    def _finish(self) -> None:
        first, *rest = self._frames
        with open(self._tmp, "wb") as f:
            first.save(f, format="GIF", save_all=True, append_images=rest, loop=0, duration=self.delay_ms)
        self._frames = []

    def _verify(self, tmp: Path) -> None:
        from PIL import Image, ImageSequence, UnidentifiedImageError

        try:
            with Image.open(tmp) as im:
                if im.format != "GIF" or im.size != self.size:
                    raise DataError(f"it reads back as a {im.format} image of {im.size[0]}x{im.size[1]}, "
                                    f"not a {self.size[0]}x{self.size[1]} GIF")
                shown, total_ms = 0, 0
                for frame in ImageSequence.Iterator(im):
                    frame.load()  # decodes the frame: a truncated file fails here
                    shown += 1
                    total_ms += int(frame.info.get("duration", 0))
        except (UnidentifiedImageError, EOFError, ValueError) as exc:
            raise DataError(f"the GIF written does not read back ({one_line(str(exc), 80)})") from exc
        if total_ms != self.frames_written * self.delay_ms or not 1 <= shown <= self.frames_written:
            raise DataError(f"the GIF written reads back as {total_ms / self.delay_ms:g} of "
                            f"{self.frames_written} frames")

    def _cancel(self) -> None:
        self._frames = []


class Mp4Writer(VideoWriter):
    """H.264 MP4 via the FFmpeg inside imageio-ffmpeg, frames streamed to its stdin as they come.

    FFmpeg runs as our own child process (not imageio-ffmpeg's `write_frames`, which ignores its
    exit status and lets its log through to our stderr): its exit status is checked, its stderr is
    kept for the one-line reason of a failure (e.g. ENOSPC), and the file is decoded once and its
    frames counted before it is published. yuv420p stores colour at half resolution, so width and
    height must be even: an odd size is padded by one edge-replicated column or row
    (`encoded_size` says what the file holds).
    """

    suffix = ".mp4"

    def __init__(self, path: str | os.PathLike, fps: float, size: tuple[int, int]) -> None:
        super().__init__(path, fps, size)
        w, h = self.size
        self.encoded_size = (w + w % 2, h + h % 2)
        self._pad = ((0, h % 2), (0, w % 2), (0, 0))
        self._process: subprocess.Popen | None = None
        self._log: deque[str] = deque(maxlen=FFMPEG_LOG_LINES)
        self._log_reader: threading.Thread | None = None

    def _start(self) -> None:
        import imageio_ffmpeg

        try:
            exe = imageio_ffmpeg.get_ffmpeg_exe()
        except RuntimeError as exc:
            raise write_error(self.path, DataError("no FFmpeg executable was found")) from exc
        w, h = self.encoded_size
        fps = str(Fraction(self.fps).limit_denominator())
        cmd = [exe, "-hide_banner", "-nostats", "-v", "error", "-y",
               "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", fps, "-i", "-", "-an",
               "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", str(MP4_CRF), "-preset", MP4_PRESET,
               "-movflags", "+faststart", "-f", "mp4", str(self._tmp)]
        # Its own process group: a Ctrl-C reaches us only, and abort() stops FFmpeg and drops the file.
        group = ({"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP} if sys.platform == "win32"
                 else {"start_new_session": True})
        try:
            self._process = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                             stderr=subprocess.PIPE, **group)
        except OSError as exc:
            raise write_error(self.path, exc) from exc
        self._log_reader = threading.Thread(target=self._read_log, args=(self._process.stderr,),
                                            name="ffmpeg-log", daemon=True)
        self._log_reader.start()

    def _read_log(self, stream) -> None:
        """Drain FFmpeg's stderr (a full pipe would stall it), keeping the last lines."""
        with stream:
            for raw in stream:
                line = raw.decode(errors="replace").strip()
                if line:
                    self._log.append(line)

    def _append(self, frame: np.ndarray) -> None:
        if self._process is None:
            self._start()
        if any(p for pad in self._pad for p in pad):
            frame = np.pad(frame, self._pad, mode="edge")
        try:
            self._process.stdin.write(np.ascontiguousarray(frame).data)
        except OSError as exc:  # FFmpeg died (disk full, bad path): say why in one line
            self._stop(kill=True)
            raise write_error(self.path, DataError(self._reason(exc))) from exc

    def _stop(self, kill: bool = False) -> int | None:
        """End FFmpeg: close its stdin and wait for it to finish the file (or kill it); its exit status."""
        process, self._process = self._process, None
        if process is None:
            return None
        try:
            if kill:
                process.kill()
            process.stdin.close()
        except OSError:
            pass  # a broken pipe: FFmpeg is gone already
        finally:
            code = process.wait()
            if self._log_reader is not None:
                self._log_reader.join()
        return code

    def _reason(self, exc: BaseException | None = None, code: int | None = None) -> str:
        """FFmpeg's first error line, without its '[muxer @ 0x…]' prefix, shortened to the OS's
        reason where it gives one ('…: No space left on device')."""
        for line in self._log:
            text = _ffmpeg_message(line)
            if not text.lower().startswith("last message repeated"):
                return "FFmpeg failed: " + one_line(text.rsplit(": ", 1)[-1], 160)
        if isinstance(exc, OSError):
            return f"the video encoder stopped ({exc.strerror or exc})"
        return "the video encoder stopped" + ("" if code is None else f" (exit status {code})")

    def _finish(self) -> None:
        code = self._stop()
        if code != 0:
            raise DataError(self._reason(code=code))

    def _verify(self, tmp: Path) -> None:
        import imageio_ffmpeg

        try:
            frames, _ = imageio_ffmpeg.count_frames_and_secs(str(tmp))  # decodes every frame
            reader = imageio_ffmpeg.read_frames(str(tmp))
            try:
                size = tuple(next(reader)["size"])
            finally:
                reader.close()
        except (RuntimeError, OSError, StopIteration, KeyError) as exc:
            # FFmpeg's decode log is dozens of lines with no single verdict: say what it means.
            raise DataError("the MP4 written does not decode (it is incomplete or damaged)") from exc
        if frames != self.frames_written or size != self.encoded_size:
            raise DataError(f"the MP4 written reads back as {frames} frames of {size[0]}x{size[1]}, not "
                            f"{self.frames_written} of {self.encoded_size[0]}x{self.encoded_size[1]}")

    def _cancel(self) -> None:
        self._stop(kill=True)


def _ffmpeg_message(line: str) -> str:
    """An FFmpeg log line without its '[mov,mp4 @ 0x…] ' source prefix."""
    return line.split("] ", 1)[1] if line.startswith("[") and "] " in line else line


WRITERS = {".gif": GifWriter, ".mp4": Mp4Writer}


def open_video(path: str | os.PathLike, fps: float, size: tuple[int, int]) -> VideoWriter:
    """A writer for `path`, chosen by its extension (.gif or .mp4); size is (width, height).

    Fails at once, with one sentence, on an unknown extension (ConfigError) or an unwritable
    place (DataError), before any frame is rendered.
    """
    path = check_video_path(path)
    return WRITERS[path.suffix.lower()](path, fps, size)


def save_png(path: str | os.PathLike, frame: np.ndarray) -> Path:
    """Write one (H, W, 3) uint8 frame as a PNG, atomically, after reading it back pixel-exact."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ConfigError(f"cannot write an image to {path.name!r}; use a .png file name")
    frame = np.ascontiguousarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 frame, got {frame.shape} {frame.dtype}")
    image = Image.fromarray(frame)

    def verify(tmp: Path) -> None:
        try:
            with Image.open(tmp) as back:
                same = back.format == "PNG" and back.size == image.size and np.array_equal(
                    np.asarray(back.convert("RGB")), frame)
        except (UnidentifiedImageError, EOFError, ValueError, SyntaxError) as exc:
            raise DataError(f"the PNG written does not read back ({one_line(str(exc), 80)})") from exc
        if not same:
            raise DataError("the PNG written does not read back as the image saved")

    try:
        return atomic_write(path, lambda f: image.save(f, format="PNG"), verify=verify)
    except (OSError, DataError) as exc:
        raise write_error(path, exc) from exc


def save_svg(path: str | os.PathLike, svg: bytes | str, size: tuple[int, int] | None = None) -> Path:
    """Write an SVG document atomically, after reading it back: it must parse as XML with an <svg>
    root (and, given `size`, have a viewBox of that width and height in user units). A full disk or
    a bad folder raises DataError in one sentence and leaves no file (and an existing one intact)."""
    import xml.etree.ElementTree as ET

    path = Path(path)
    if path.suffix.lower() != ".svg":
        raise ConfigError(f"cannot write a vector figure to {path.name!r}; use a .svg file name")
    data = svg.encode("utf-8") if isinstance(svg, str) else bytes(svg)

    def verify(tmp: Path) -> None:
        try:
            root = ET.parse(tmp).getroot()
        except ET.ParseError as exc:
            raise DataError(f"the SVG written does not read back ({one_line(str(exc), 80)})") from exc
        if not root.tag.endswith("svg"):
            raise DataError("the file written is not an SVG document")
        if size is not None:
            box = str(root.get("viewBox", "")).replace(",", " ").split()
            try:
                declared = tuple(round(float(v)) for v in box[2:4])
            except ValueError:
                declared = ()
            if declared != tuple(int(v) for v in size):
                raise DataError(f"the SVG written has the view box {' '.join(box) or 'none'}, not 0 0 {size[0]} {size[1]}")

    try:
        return atomic_write(path, lambda f: f.write(data), verify=verify)
    except (OSError, DataError) as exc:
        raise write_error(path, exc) from exc
