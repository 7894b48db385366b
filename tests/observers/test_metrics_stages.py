"""Metrics record every stage the worker times, and show each stage from the start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client import generate_latest

from sharpmld.core.config import KNOWN_FORMATS
from sharpmld.observers.metrics import Metrics
from sharpmld.queue.layout import Layout
from sharpmld.worker.model import load_model
from tests.worker.test_pipeline_events import _done, _photos, _request, _run


def _count(metrics: Metrics, stage: str) -> float:
    value = metrics.registry.get_sample_value("sharpmld_stage_duration_seconds_count", {"stage": stage})
    return -1.0 if value is None else value


def test_every_stage_the_worker_reports_is_recorded(tmp_path: Path, checkpoint: Path) -> None:
    model = load_model("tiny_sharp:create", checkpoint, "cpu")
    req = _request(tmp_path / "job", _photos(tmp_path / "in", 1), formats=KNOWN_FORMATS)
    (event,) = _done(_run(req, model))
    stages = set(event.timings)
    assert {"write_spz", "write_glb", "write_image", "previews"} <= stages

    metrics = Metrics(Layout(tmp_path / "root"))
    text = generate_latest(metrics.registry).decode()
    for stage in stages:
        assert f'stage="{stage}"' in text, stage  # registered before any image, at 0
    run: Any = None
    metrics.on_image(run, event)
    assert {stage: _count(metrics, stage) for stage in stages} == dict.fromkeys(stages, 1.0)
