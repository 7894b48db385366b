"""A video dropped alone or in a folder becomes a job of its sharpest frames."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import imageio_ffmpeg
import numpy as np
import pytest

from tests.support.harness import Daemon, jobs

pytestmark = pytest.mark.timeout(180)


def make_video(path: Path, seconds: float = 3.0, fps: int = 10, blur_every: int = 3) -> Path:
    """A small H.264 clip: a moving bar over noise, every few frames blurred."""
    writer = imageio_ffmpeg.write_frames(str(path), (160, 120), fps=fps, codec="libx264", macro_block_size=8)
    writer.send(None)
    rng = np.random.default_rng(0)
    for i in range(int(seconds * fps)):
        img = (rng.random((120, 160, 3)) * 255).astype(np.uint8)
        img[:, (i * 5) % 140 : (i * 5) % 140 + 20] = 255
        if i % blur_every:
            img = (img.astype(np.uint16) + np.roll(img, 1, 0) + np.roll(img, 1, 1) + np.roll(img, 2, 1)) // 4
            img = img.astype(np.uint8)
        writer.send(img.tobytes())
    writer.close()
    return path


def test_video_jobs(root: Path, tmp_path: Path, daemons: list) -> None:
    clip = make_video(tmp_path / "walk.mp4")
    folder = root / "inbox" / "trip"
    folder.mkdir(parents=True)
    shutil.copy(clip, folder / "clip.mov.bin")  # recognised by content, whatever the name
    (folder / "job.toml").write_text("video_frames = 4\n")
    shutil.copy(clip, root / "inbox" / "alone.mp4")
    (root / "inbox" / "broken.mp4").write_bytes(clip.read_bytes()[:400])

    d = Daemon(root, "--burst")
    daemons.append(d)
    assert d.wait(timeout=150) == 0, d.text()[-3000:]
    done = {json.loads((j / "result.json").read_text())["original_name"]: j for j in jobs(root, "done")}
    failed = {json.loads((j / "error.json").read_text())["original_name"]: j for j in jobs(root, "failed")}
    assert sorted(done) == ["alone.mp4", "trip"]
    assert sorted(failed) == ["broken.mp4"]

    trip = json.loads((done["trip"] / "result.json").read_text())
    sources = [i["source"] for i in trip["images"]]
    assert len(sources) == 4 and all(s.startswith("clip.mov.bin@") and s.endswith("s") for s in sources)
    times = [float(s.split("@")[1][:-1]) for s in sources]
    assert times == sorted(times) and times[-1] - times[0] > 1.0  # spread over the clip
    assert all(t * 10 % 3 < 0.5 or abs(t * 10 % 3 - 3) < 0.5 for t in times)  # the sharp frames
    for image in trip["images"]:
        assert (done["trip"] / image["outputs"]["ply"]["path"]).is_file()
        assert image["width"] == 160 and image["height"] == 120

    alone = json.loads((done["alone.mp4"] / "result.json").read_text())
    assert len(alone["images"]) == 8  # the configured default

    broken = json.loads((failed["broken.mp4"] / "result.json").read_text())
    assert [r["code"] for r in broken["rejected"]] == ["decode_failed"]
