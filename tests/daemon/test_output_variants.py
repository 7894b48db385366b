"""The ``[outputs]`` variants for viewers reach the worker's request and the cache key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sharpmld.core.config import Config
from sharpmld.daemon.jobrun import JobRun
from sharpmld.protocol import JobRequest
from sharpmld.queue.claim import claim
from sharpmld.queue.layout import Layout
from sharpmld.queue.lease import Owner
from tests.intake import corpus


def _request(tmp_path: Path, name: str, outputs: dict[str, Any]) -> JobRequest:
    layout = Layout(tmp_path / "root")
    layout.ensure()
    (layout.inbox / name).mkdir()
    corpus.write_jpeg(layout.inbox / name / "a.jpg")
    job = claim(layout, name, Owner.current())
    assert job is not None
    sections = {"outputs": outputs, "cache": {"enabled": True}}
    config = Config(root=layout.root, path=None, sections=sections)
    request = JobRun(job, layout, config, engine={}).prepare()
    assert request is not None
    return request


def test_defaults_reach_the_request(tmp_path: Path) -> None:
    request = _request(tmp_path, "plain", {})
    assert (request.ply_layout, request.spz_version) == ("3dgs", 2)


def test_configured_variants_reach_the_request_and_change_the_cache_key(tmp_path: Path) -> None:
    plain = _request(tmp_path, "plain", {})
    sharp = _request(tmp_path, "sharp", {"ply_layout": "ml-sharp"})
    v3 = _request(tmp_path, "v3", {"spz_version": 3})
    assert sharp.ply_layout == "ml-sharp" and v3.spz_version == 3
    # Outputs cached under one variant must not be reused for another.
    assert len({plain.cache_salt, sharp.cache_salt, v3.cache_salt}) == 3
    assert plain.cache_salt == _request(tmp_path, "again", {}).cache_salt
