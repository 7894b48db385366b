"""Video input, in the worker: pick the sharpest frames of a clip and hand them on as photos.

ffmpeg (the static binary that the ``imageio-ffmpeg`` package ships) does all the decoding,
in its own process with a time limit, so a hostile file costs that video and nothing more.
Selection: the clip is sampled at a low rate and small size, each sample scored by the
variance of its Laplacian (blur flattens it), the clip is cut into N equal spans and the
sharpest sample of each span is extracted again at full resolution.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from sharpmld.core.errors import DecodeFailed, ImageTooLarge, VideoTooLong

SAMPLE_WIDTH = 320
MAX_SAMPLES = 600
FFMPEG_TIMEOUT = 300.0
_DURATION = re.compile(rb"Duration:\s*(\d+):(\d\d):(\d\d(?:\.\d+)?)")
_SIZE = re.compile(rb"Video:.*?(\d{2,5})x(\d{2,5})")
_FPS = re.compile(rb"(\d+(?:\.\d+)?) fps")


@dataclass(frozen=True)
class Frame:
    """One chosen frame: where it was written and when it is in the clip."""

    path: Path
    seconds: float


def ffmpeg() -> str:
    """The path of the ffmpeg binary shipped with imageio-ffmpeg."""
    import imageio_ffmpeg

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def _run(args: list[str], timeout: float = FFMPEG_TIMEOUT) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(
            [ffmpeg(), "-hide_banner", "-nostdin", *args], capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise DecodeFailed("The video took too long to decode; it may be damaged.") from None


def probe(path: Path) -> tuple[float, int, int, float]:
    """(duration in seconds, width, height, frame rate) from ffmpeg's description of the file."""
    info = _run(["-i", str(path)], timeout=60).stderr
    duration = _DURATION.search(info)
    size = _SIZE.search(info)
    if duration is None or size is None:
        raise DecodeFailed("The video could not be read; it may be damaged or in an unknown codec.")
    h, m, s = duration.groups()
    fps = _FPS.search(info)
    rate = float(fps.group(1)) if fps else 0.0
    return int(h) * 3600 + int(m) * 60 + float(s), int(size.group(1)), int(size.group(2)), rate


def sharpness(gray: npt.NDArray[np.uint8]) -> float:
    """Variance of the 4-neighbour Laplacian: high for crisp frames, low for blurred ones."""
    g = gray.astype(np.float32)
    lap = -4 * g[1:-1, 1:-1] + g[:-2, 1:-1] + g[2:, 1:-1] + g[1:-1, :-2] + g[1:-1, 2:]
    return float(lap.var())


def sample(path: Path, duration: float, fps: float) -> list[tuple[float, float]]:
    """(time, sharpness) of every frame of a short clip, or of MAX_SAMPLES spread over a long one.

    Frames are decoded small and grey: enough to tell sharp from blurred, cheap to hold.
    """
    if fps > 0 and duration * fps <= MAX_SAMPLES:
        rate, filters = fps, f"scale={SAMPLE_WIDTH}:-2"
    else:
        rate = MAX_SAMPLES / max(duration, 1e-3)
        filters = f"fps={rate:.6f},scale={SAMPLE_WIDTH}:-2"
    out = _run(["-i", str(path), "-vf", filters, "-f", "rawvideo", "-pix_fmt", "gray", "-"])
    width = SAMPLE_WIDTH
    frame_bytes = None
    info = _SIZE.findall(out.stderr)
    if info:
        w, h = (int(v) for v in info[-1])
        width, frame_bytes = w, w * h
    if not out.stdout or frame_bytes is None or len(out.stdout) < frame_bytes:
        raise DecodeFailed("No frame of the video could be decoded; it may be damaged.")
    n = len(out.stdout) // frame_bytes
    frames = np.frombuffer(out.stdout[: n * frame_bytes], np.uint8).reshape(n, -1, width)
    return [(i / rate, sharpness(f)) for i, f in enumerate(frames)]


def choose(samples: list[tuple[float, float]], n: int) -> list[float]:
    """The sharpest sample in each of ``n`` equal spans of the clip (fewer if it is short)."""
    if not samples:
        return []
    spans = np.array_split(np.arange(len(samples)), min(n, len(samples)))
    return [samples[int(max(span, key=lambda i: samples[i][1]))][0] for span in spans if len(span)]


def extract(
    path: Path, out_dir: Path, *, frames: int, max_seconds: float, max_pixels_side: int
) -> list[Frame]:
    """Write the chosen frames of ``path`` as PNGs in ``out_dir``; rejections raise."""
    duration, width, height, fps = probe(path)
    if duration > max_seconds:
        raise VideoTooLong(VideoTooLong.advice.format(max_seconds=f"{max_seconds:g}"))
    if max(width, height) > max_pixels_side:
        raise ImageTooLarge(
            f"Video frames must be at most {max_pixels_side} pixels on each side; "
            f"this one is {width}x{height}."
        )
    times = choose(sample(path, duration, fps), frames)
    out_dir.mkdir(parents=True, exist_ok=True)
    chosen = []
    early = 0.25 / fps if fps > 0 else 0.0  # seek just before the frame's timestamp: land on it
    for t in times:
        target = out_dir / f"t{t:08.3f}.png"
        seek = f"{max(0.0, t - early):.4f}"
        done = _run(["-ss", seek, "-i", str(path), "-frames:v", "1", "-y", str(target)])
        if done.returncode == 0 and target.is_file() and target.stat().st_size:
            chosen.append(Frame(target, t))
    if not chosen:
        raise DecodeFailed("No frame of the video could be extracted; it may be damaged.")
    return chosen
