"""The GIF/MP4/PNG writers: what they write opens in imageio with the asked frames and size, and
a cancelled or failed export leaves no file behind and never harms an existing one."""

from __future__ import annotations

import numpy as np
import pytest

iio = pytest.importorskip("imageio.v3")

from sgm_core.errors import ConfigError, DataError  # noqa: E402
from sgm_core.video import GifWriter, Mp4Writer, open_video, save_png  # noqa: E402

W, H = 48, 32
MP4_TOLERANCE = 40  # H.264 + yuv420p are lossy; flat colour patches stay within this per channel
BACKGROUND = (255, 255, 255)
BOX = (200, 40, 20)


def moving_box(n: int, size: tuple[int, int] = (W, H)) -> list[np.ndarray]:
    """n frames of a box sliding right, so consecutive frames always differ."""
    w, h = size
    frames = []
    for i in range(n):
        f = np.full((h, w, 3), BACKGROUND, np.uint8)
        x0 = 2 + 4 * i
        f[8:24, x0:x0 + 12] = BOX
        frames.append(f)
    return frames


def leftovers(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_video_has_the_asked_frames_and_size(tmp_path, suffix):
    path = tmp_path / f"clip{suffix}"
    frames = moving_box(6)
    with open_video(path, fps=10, size=(W, H)) as video:
        assert isinstance(video, GifWriter if suffix == ".gif" else Mp4Writer)
        for f in frames:
            video.append(f)
    back = iio.imread(path, index=None)[..., :3]
    assert back.shape == (6, H, W, 3)
    assert leftovers(tmp_path) == [path.name]  # the temp file was renamed, not copied
    for a, b in zip(back[:-1], back[1:], strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() > 100  # the box moved
    tol = 0 if suffix == ".gif" else MP4_TOLERANCE  # GIF: <= 256 colours, no dither -> exact
    assert np.abs(back[0, 12:20, 4:12].astype(int) - np.array(BOX)).max() <= tol
    assert np.abs(back[0, 2:6, 40:46].astype(int) - np.array(BACKGROUND)).max() <= tol


def test_gif_loops_forever_at_the_asked_rate(tmp_path):
    from PIL import Image

    path = tmp_path / "clip.gif"
    with open_video(path, fps=20, size=(W, H)) as video:
        for f in moving_box(3):
            video.append(f)
    with Image.open(path) as im:
        assert im.info.get("loop") == 0
        assert im.info.get("duration") == 50
        assert im.n_frames == 3


def test_mp4_pads_an_odd_size_to_even(tmp_path):
    path = tmp_path / "odd.mp4"
    with open_video(path, fps=10, size=(W - 1, H - 1)) as video:
        assert video.encoded_size == (W, H)
        for f in moving_box(3, (W - 1, H - 1)):
            video.append(f)
    assert iio.imread(path, index=None).shape == (3, H, W, 3)


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_abort_leaves_no_file_and_keeps_an_existing_one(tmp_path, suffix):
    path = tmp_path / f"keep{suffix}"
    path.write_bytes(b"precious")
    video = open_video(path, fps=10, size=(W, H))
    for f in moving_box(3):
        video.append(f)
    video.abort()
    assert path.read_bytes() == b"precious"
    assert leftovers(tmp_path) == [path.name]
    video.abort()  # idempotent
    with pytest.raises(RuntimeError):
        video.append(moving_box(1)[0])


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_an_exception_inside_the_block_aborts(tmp_path, suffix):
    path = tmp_path / f"new{suffix}"
    with pytest.raises(KeyError), open_video(path, fps=10, size=(W, H)) as video:
        video.append(moving_box(1)[0])
        raise KeyError("boom")
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_close_replaces_an_existing_file(tmp_path, suffix):
    path = tmp_path / f"old{suffix}"
    path.write_bytes(b"old")
    with open_video(path, fps=10, size=(W, H)) as video:
        for f in moving_box(2):
            video.append(f)
    assert iio.imread(path, index=None).shape[0] == 2


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_no_frames_is_an_error_and_leaves_nothing(tmp_path, suffix):
    video = open_video(tmp_path / f"empty{suffix}", fps=10, size=(W, H))
    with pytest.raises(DataError, match="no frames"):
        video.close()
    assert leftovers(tmp_path) == []


def test_wrong_frame_shape_is_refused(tmp_path):
    with open_video(tmp_path / "x.gif", fps=10, size=(W, H)) as video:
        with pytest.raises(ValueError, match="uint8 frame"):
            video.append(np.zeros((W, H, 3), np.uint8))  # transposed
        with pytest.raises(ValueError, match="uint8 frame"):
            video.append(np.zeros((H, W, 3), np.float32))
        video.append(moving_box(1)[0])


@pytest.mark.parametrize("name", ["clip.avi", "clip", "clip.png"])
def test_unknown_extension_is_one_config_error(tmp_path, name):
    with pytest.raises(ConfigError, match=r"\.gif or \.mp4") as info:
        open_video(tmp_path / name, fps=10, size=(W, H))
    assert "\n" not in str(info.value)
    assert leftovers(tmp_path) == []


def test_unwritable_place_fails_at_open(tmp_path):
    with pytest.raises(DataError, match="cannot write"):
        open_video(tmp_path / "missing" / "clip.gif", fps=10, size=(W, H))
    assert leftovers(tmp_path) == []


def test_bad_fps_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError):
        open_video(tmp_path / "clip.gif", fps=0, size=(W, H))


def test_save_png_round_trips_atomically(tmp_path):
    frame = moving_box(1)[0]
    path = tmp_path / "frame.png"
    path.write_bytes(b"old")
    save_png(path, frame)
    assert np.array_equal(iio.imread(path)[..., :3], frame)
    assert leftovers(tmp_path) == ["frame.png"]
    with pytest.raises(ConfigError):
        save_png(tmp_path / "frame.jpg", frame)
    with pytest.raises(DataError):
        save_png(tmp_path / "missing" / "frame.png", frame)


# --------------------------------------------------------------------------- verified before publishing


def truncate_after_finish(monkeypatch, writer_cls, keep: float = 0.5) -> None:
    """Make the encoder 'succeed' with a cut file: what a lying disk or a killed encoder leaves."""
    finish = writer_cls._finish

    def cut(self) -> None:
        finish(self)
        data = self._tmp.read_bytes()
        self._tmp.write_bytes(data[: int(len(data) * keep)])

    monkeypatch.setattr(writer_cls, "_finish", cut)


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_a_cut_file_is_refused_and_the_old_one_kept(tmp_path, monkeypatch, suffix):
    path = tmp_path / f"keep{suffix}"
    path.write_bytes(b"precious")
    truncate_after_finish(monkeypatch, GifWriter if suffix == ".gif" else Mp4Writer)
    with pytest.raises(DataError, match="cannot write") as info:
        with open_video(path, fps=10, size=(W, H)) as video:
            for f in moving_box(6):
                video.append(f)
    assert "\n" not in str(info.value)
    assert path.read_bytes() == b"precious"
    assert leftovers(tmp_path) == [path.name]


def test_ffmpeg_failure_is_one_line_and_its_log_stays_off_stderr(tmp_path, monkeypatch, capfd):
    import sgm_core.video as video_mod

    monkeypatch.setattr(video_mod, "MP4_PRESET", "no-such-preset")  # x264 refuses it: FFmpeg exits non-zero
    path = tmp_path / "keep.mp4"
    path.write_bytes(b"precious")
    with pytest.raises(DataError, match="FFmpeg failed") as info:
        with open_video(path, fps=10, size=(W, H)) as video:
            for f in moving_box(3):
                video.append(f)
    assert "\n" not in str(info.value)
    assert path.read_bytes() == b"precious" and leftovers(tmp_path) == [path.name]
    assert capfd.readouterr().err == ""  # FFmpeg's log went to us, not to the terminal


def test_identical_frames_merge_in_the_gif_but_count_in_its_time(tmp_path):
    """Pillow folds a repeated frame into the one before (longer delay): the verification counts
    time, so a GIF of repeats is accepted and plays for frames x delay."""
    from PIL import Image, ImageSequence

    path = tmp_path / "still.gif"
    a, b = moving_box(2)
    with open_video(path, fps=20, size=(W, H)) as video:
        for f in (a, a, a, b, b):
            video.append(f)
    with Image.open(path) as im:
        delays = [frame.info["duration"] for frame in ImageSequence.Iterator(im)]
    assert delays == [150, 100]
    with open_video(tmp_path / "one.gif", fps=20, size=(W, H)) as video:
        for _ in range(4):
            video.append(a)
    with Image.open(tmp_path / "one.gif") as im:
        assert im.n_frames == 1 and im.info["duration"] == 200


def test_save_png_refuses_a_file_that_does_not_read_back(tmp_path, monkeypatch):
    from PIL import Image

    path = tmp_path / "frame.png"
    path.write_bytes(b"old")
    save = Image.Image.save
    monkeypatch.setattr(Image.Image, "save", lambda self, f, **kw: (save(self, f, **kw), f.truncate(40)))
    with pytest.raises(DataError, match="cannot write") as info:
        save_png(path, moving_box(1)[0])
    assert "\n" not in str(info.value)
    assert path.read_bytes() == b"old" and leftovers(tmp_path) == ["frame.png"]


@pytest.mark.parametrize(("frames", "size", "match"), [
    (0, (64, 64), "frames"), (10**6, (64, 64), "frames"), (10, (5000, 64), "size"),
    (5000, (1024, 1024), "GiB")])
def test_absurd_animation_requests_are_refused_before_any_work(tmp_path, frames, size, match):
    from sgm_core.video import check_video_request

    with pytest.raises(ConfigError, match=match):
        check_video_request(tmp_path / "a.gif", frames, size)
    assert leftovers(tmp_path) == []
