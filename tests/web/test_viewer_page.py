"""The viewer's page route: which file it streams, which camera it starts from, and that no
name from a stranger escapes into the markup."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from sharpmld.cli.serve import build
from sharpmld.core.config import load
from sharpmld.queue.layout import RESULT_FILE, Layout
from tests.support import roots

HOSTILE = "</script><script>alert('x')</script><img src=x onerror=\"alert(1)\">"


def _job(
    root: Path, name: str, images: list[dict[str, Any]], files: dict[str, bytes], state: str = "done"
) -> str:
    job = roots.finished_job(Layout(root), name, {"input/a.png": b"png", **files}, state=state)
    result = json.loads((job / RESULT_FILE).read_text())
    result["images"] = images
    (job / RESULT_FILE).write_text(json.dumps(result))
    return job.name


def _client(root: Path) -> TestClient:
    app, _ = build(load(root=str(root)), "127.0.0.1", 8642)
    return TestClient(app, base_url="http://127.0.0.1:8642")


def _scene(page: str) -> dict[str, Any]:
    found = re.search(r'<script type="application/json" id="scene">(.*?)</script>', page, re.S)
    assert found is not None
    data: dict[str, Any] = json.loads(found.group(1))
    return data


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    Layout(r).ensure()
    return r


def test_the_page_names_the_splat_and_the_input_camera(root: Path) -> None:
    facts = {"width": 4032, "height": 3024, "f_px": 3100.5}
    outputs = {"ply": {"path": "a.ply"}, "splat": {"path": "a.splat"}}
    job = _job(
        root, "garden", [{"source": "a.png", **facts, "outputs": outputs}], {"a.ply": b"p", "a.splat": b"s"}
    )
    r = _client(root).get(f"/view/{job}/a")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    scene = _scene(r.text)
    assert scene["url"] == f"/files/done/{job}/a.splat" and scene["kind"] == "splat"
    assert scene["camera"] == {"f_px": 3100.5, "width": 4032, "height": 3024}
    assert "script-src 'self'" in r.headers["content-security-policy"]


def test_a_ply_is_streamed_when_there_is_no_splat(root: Path) -> None:
    job = _job(
        root, "p", [{"source": "a.png", "outputs": {"ply": {"path": "a.ply"}}}], {"a.ply": b"p"}, "failed"
    )
    scene = _scene(_client(root).get(f"/view/{job}/a").text)
    assert scene["url"] == f"/files/failed/{job}/a.ply" and scene["kind"] == "ply"
    assert scene["camera"] is None  # an old result.json without the camera facts


def test_a_hostile_job_and_photo_name_stay_text(root: Path) -> None:
    stem = "<b onclick=alert(1)>x&\"'"
    images = [
        {
            "source": "a.png",
            "width": 8,
            "height": 6,
            "f_px": 7,
            "outputs": {"splat": {"path": f"{stem}.splat"}},
        }
    ]
    job = _job(root, HOSTILE, images, {f"{stem}.splat": b"s"})
    r = _client(root).get(f"/view/{job}/{stem}")
    assert r.status_code == 200
    assert "<script>alert" not in r.text and "<img" not in r.text and "<b " not in r.text
    assert "&lt;b onclick=alert(1)&gt;x&amp;" in r.text
    scene = _scene(r.text)  # the JSON block holds the names intact, and cannot end early
    assert scene["name"] == HOSTILE and scene["stem"] == stem
    assert scene["url"].endswith("/%3Cb%20onclick%3Dalert%281%29%3Ex%26%22%27.splat")


@pytest.mark.parametrize(
    "path",
    ["/view/{job}/missing", "/view/{job}/a.splat", "/view/not-a-job/a", "/view/{job}/gone"],
)
def test_no_page_without_a_listed_file(root: Path, path: str) -> None:
    images = [
        {"source": "a.png", "outputs": {"splat": {"path": "a.splat"}}},
        {"source": "b.png", "outputs": {"splat": {"path": "gone.splat"}}},  # listed, not on disk
        {"source": "c.png", "outputs": {"splat": {"path": "../../escape.splat"}}},
    ]
    job = _job(root, "j", images, {"a.splat": b"s"})
    assert _client(root).get(path.format(job=job)).status_code == 404


def test_a_listed_path_that_leaves_the_job_is_refused(root: Path) -> None:
    (root / "done" / "escape.splat").write_bytes(b"s")
    images = [{"source": "a.png", "outputs": {"splat": {"path": "../escape.splat"}}}]
    job = _job(root, "j", images, {})
    assert _client(root).get(f"/view/{job}/escape").status_code == 404


def test_the_scripts_are_served_as_javascript(root: Path) -> None:
    client = _client(root)
    for name in (
        "main.js",
        "renderer.js",
        "sort-worker.js",
        "loader.js",
        "ply.js",
        "camera.js",
        "controls.js",
    ):
        r = client.get(f"/static/viewer/{name}")
        assert r.status_code == 200 and "javascript" in r.headers["content-type"], name
    assert client.get("/static/viewer/../viewer_page.py").status_code == 404
