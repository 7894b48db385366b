"""On an accelerator, only the model's thread touches the device (MPS aborts otherwise).

Linux has no MPS, so the model claims the device "mps" while it computes on the CPU: the
pipeline takes its one-thread path, and every operation that would run on the device
(preparing the input, the forward pass, the unprojection, waiting for the device, freeing its
cache, reading its memory) records the thread it ran on. The fake backend follows the calls
PyTorch documents for ``torch.mps``: ``synchronize``, ``empty_cache``,
``current_allocated_memory``. Why one thread: see ``sharpmld.worker.device``.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import torch

from sharpmld.protocol import Event, ImageDone, ImageTask, JobDone, JobRequest
from sharpmld.worker import device as accel
from sharpmld.worker import pipeline
from sharpmld.worker.model import LoadedModel, load_model
from tests.e2e.test_video_e2e import make_video
from tests.worker.test_pipeline_events import _photos, _request


class Touches:
    """Which thread did what on the (pretend) device, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.lock = threading.Lock()

    def note(self, what: str) -> None:
        with self.lock:
            self.calls.append((what, threading.get_ident()))

    def threads(self) -> set[int]:
        return {ident for _, ident in self.calls}

    def names(self) -> list[str]:
        return [what for what, _ in self.calls]


class FakeMps:
    """``torch.mps`` as the pipeline uses it."""

    def __init__(self, touches: Touches) -> None:
        self.touches = touches

    def synchronize(self) -> None:
        self.touches.note("synchronize")

    def empty_cache(self) -> None:
        self.touches.note("empty_cache")

    def current_allocated_memory(self) -> int:
        self.touches.note("allocated")
        return 123_456_789


class Forward(torch.nn.Module):
    def __init__(self, inner: torch.nn.Module, touches: Touches) -> None:
        super().__init__()
        self.inner, self.touches = inner, touches

    def forward(self, *args: Any) -> Any:
        self.touches.note("forward")
        return self.inner(*args)


@pytest.fixture
def touches(monkeypatch: pytest.MonkeyPatch) -> Touches:
    seen = Touches()
    real_prepare, real_unproject = pipeline.prepare_input, pipeline.unproject

    def prepare(image: Any, device: torch.device, *layout: Any) -> Any:
        seen.note("prepare")
        return real_prepare(image, torch.device("cpu"), *layout)

    def unproject(*args: Any) -> Any:
        seen.note("unproject")
        return real_unproject(*args)

    monkeypatch.setattr(pipeline, "prepare_input", prepare)
    monkeypatch.setattr(pipeline, "unproject", unproject)
    monkeypatch.setitem(accel.BACKENDS, "mps", FakeMps(seen))
    return seen


@pytest.fixture(scope="module")
def cpu_model(checkpoint: Path) -> LoadedModel:
    return load_model("tiny_sharp:create", checkpoint, "cpu")


def on_mps(model: LoadedModel, touches: Touches) -> LoadedModel:
    return LoadedModel(Forward(model.module, touches), torch.device("mps"), 0.0, "test")


def run(req: JobRequest, model: LoadedModel) -> list[Event]:
    events: list[Event] = []
    pipeline.run_job(req, model, events.append)
    return events


def test_a_job_of_several_photos_touches_the_device_from_one_thread(
    tmp_path: Path, cpu_model: LoadedModel, touches: Touches
) -> None:
    req = _request(tmp_path / "job", _photos(tmp_path / "in", 3), previews=True, orbit_frames=0)
    events = run(req, on_mps(cpu_model, touches))
    assert len([e for e in events if isinstance(e, ImageDone)]) == 3, events
    assert touches.names().count("forward") == 3 and touches.names().count("unproject") == 3
    assert touches.threads() == {threading.get_ident()}, touches.calls


def test_a_video_touches_the_device_from_one_thread(
    tmp_path: Path, cpu_model: LoadedModel, touches: Touches
) -> None:
    clip = make_video(tmp_path / "clip.mp4", seconds=1.0)
    job = tmp_path / "job"
    job.mkdir()
    task = ImageTask("clip.mp4", str(clip), "clip", kind="video")
    req = JobRequest(job_id="job", job_dir=str(job), images=(task,), video_frames=3, previews=False)
    events = run(req, on_mps(cpu_model, touches))
    assert len([e for e in events if isinstance(e, ImageDone)]) >= 2, events
    assert touches.threads() == {threading.get_ident()}, touches.calls


def test_the_device_is_waited_for_before_the_inference_timer_and_freed_after_the_job(
    tmp_path: Path, cpu_model: LoadedModel, touches: Touches
) -> None:
    req = _request(tmp_path / "job", _photos(tmp_path / "in", 2), previews=False)
    events = run(req, on_mps(cpu_model, touches))
    names = touches.names()
    for i, name in enumerate(names):
        if name == "forward":  # each forward pass is waited for before its result is used
            assert names[i + 1] == "synchronize", names
    assert names[-2:] == ["empty_cache", "allocated"], names
    (done,) = [e for e in events if isinstance(e, JobDone)]
    assert done.accelerator_bytes == 123_456_789


def test_on_the_cpu_nothing_is_synchronised_and_no_memory_is_reported(
    tmp_path: Path, cpu_model: LoadedModel, touches: Touches
) -> None:
    req = _request(tmp_path / "job", _photos(tmp_path / "in", 2), previews=False)
    events = run(req, cpu_model)
    assert "synchronize" not in touches.names() and "empty_cache" not in touches.names()
    (done,) = [e for e in events if isinstance(e, JobDone)]
    assert done.accelerator_bytes is None


def test_both_paths_write_the_same_bytes(tmp_path: Path, cpu_model: LoadedModel, touches: Touches) -> None:
    photos = _photos(tmp_path / "in", 2)
    run(_request(tmp_path / "cpu", photos, previews=False), cpu_model)
    run(_request(tmp_path / "mps", photos, previews=False), on_mps(cpu_model, touches))
    for suffix in (".ply", ".splat"):
        for photo in photos:
            a = (tmp_path / "cpu" / f"{photo.stem}{suffix}").read_bytes()
            assert a == (tmp_path / "mps" / f"{photo.stem}{suffix}").read_bytes()
