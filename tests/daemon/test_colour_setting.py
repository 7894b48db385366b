"""``[model] colour`` reaches the worker's request and the cache key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sharpmld.core.config import Config
from sharpmld.daemon.jobrun import JobRun
from sharpmld.protocol import JobRequest, decode, encode
from sharpmld.queue.claim import claim
from sharpmld.queue.layout import Layout
from sharpmld.queue.lease import Owner
from tests.intake import corpus


def _request(tmp_path: Path, name: str, model: dict[str, Any]) -> JobRequest:
    layout = Layout(tmp_path / "root")
    layout.ensure()
    (layout.inbox / name).mkdir()
    corpus.write_jpeg(layout.inbox / name / "a.jpg")
    job = claim(layout, name, Owner.current())
    assert job is not None
    config = Config(root=layout.root, path=None, sections={"model": model, "cache": {"enabled": True}})
    request = JobRun(job, layout, config, engine={}).prepare()
    assert request is not None
    return request


def test_colour_setting_reaches_the_worker_and_the_cache_key(tmp_path: Path) -> None:
    default = _request(tmp_path, "default", {})
    srgb = _request(tmp_path, "srgb", {"colour": "srgb"})
    as_is = _request(tmp_path, "as-is", {"colour": "as-is"})
    assert (default.colour, as_is.colour) == ("srgb", "as-is")
    assert decode(encode(as_is)) == as_is
    # Outputs made from unconverted pixels must never answer a converting job.
    assert as_is.cache_salt != srgb.cache_salt == default.cache_salt
