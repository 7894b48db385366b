"""The real daemon, as a subprocess: a Display P3 photo reaches the model in sRGB, and
result.json says so; ``[model] colour = "as-is"`` leaves it alone."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageCms

from tests.support import harness
from tests.support.harness import Daemon, jobs
from tests.worker import icc

pytestmark = pytest.mark.timeout(180)


def _run(root: Path, daemons: list[Daemon]) -> tuple[dict[str, dict[str, object]], np.ndarray]:
    job = root / "inbox" / "phone"
    job.mkdir(parents=True)
    rgb = (np.random.default_rng(7).random((120, 160, 3)) * 255).astype(np.uint8)
    Image.fromarray(rgb).save(job / "iphone.jpg", quality=95, icc_profile=icc.p3())
    Image.fromarray(rgb).save(job / "broken.png", icc_profile=b"not a profile")
    d = Daemon(root, "--burst")
    daemons.append(d)
    assert d.wait() == 0, d.text()
    (done,) = jobs(root, "done")
    result = json.loads((done / "result.json").read_text())
    by_source = {image["source"]: image for image in result["images"]}
    with Image.open(done / "images" / "iphone.png") as working:
        pixels = np.asarray(working)
    return {k: v["colour"] for k, v in by_source.items()}, pixels


def _raw_and_converted(root: Path) -> tuple[np.ndarray, np.ndarray]:
    (done,) = jobs(root, "done")
    with Image.open(done / "input" / "iphone.jpg") as im:
        raw = im.convert("RGB")
    src = ImageCms.ImageCmsProfile(io.BytesIO(icc.p3()))
    dst = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
    intent = ImageCms.Intent.RELATIVE_COLORIMETRIC
    converted = ImageCms.profileToProfile(raw, src, dst, renderingIntent=intent, outputMode="RGB")
    assert converted is not None
    return np.asarray(raw), np.asarray(converted)


def test_p3_photo_is_converted_and_named(root: Path, daemons: list[Daemon]) -> None:
    colours, working = _run(root, daemons)
    assert colours["iphone.jpg"] == {"profile": "Display P3", "converted": True}
    assert colours["broken.png"]["profile"] == "unreadable"
    assert "could not be read" in str(colours["broken.png"]["note"])
    raw, converted = _raw_and_converted(root)
    assert np.array_equal(working, converted) and not np.array_equal(working, raw)


def test_as_is_keeps_ml_sharps_pixels(tmp_path: Path, checkpoint: Path, daemons: list[Daemon]) -> None:
    root = tmp_path / "as-is-root"
    harness.write_config(root, checkpoint, model={"colour": "as-is"})
    colours, working = _run(root, daemons)
    assert colours["iphone.jpg"] == {"profile": "Display P3", "converted": False}
    raw, _ = _raw_and_converted(root)
    assert np.array_equal(working, raw)
