"""The Queue and Job pages and their static assets, through Starlette's in-process TestClient."""

from __future__ import annotations

import html
import json
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from sharpmld.cli.serve import build
from sharpmld.core.config import load
from sharpmld.queue.record import Job, JobRecord
from sharpmld.web.app import STATIC_DIR

DONE = "20260501T090000Z-garden-abcd"
FAILED = "20260501T080000Z-broken-beef"
HOSTILE = "<script>alert(1)</script>\"'&"
HOSTILE_PHOTO = "<img src=x onerror=alert(2)>.jpg"


def _tree(root: Path) -> None:
    for state in ("inbox", "working", "done", "failed", ".sharpmld"):
        (root / state).mkdir(parents=True)
    done = root / "done" / DONE
    (done / "input").mkdir(parents=True)
    (done / "input" / "a.jpg").write_bytes(b"\xff\xd8\xff photo")
    (done / "input" / HOSTILE_PHOTO).write_bytes(b"\xff\xd8\xff other")
    (done / "previews").mkdir()
    (done / "previews" / "a.png").write_bytes(b"\x89PNG preview")
    (done / "a.ply").write_bytes(b"ply\n")
    (done / "a.splat").write_bytes(b"\0" * 32)
    Job(done, JobRecord(DONE, HOSTILE, "folder")).save()
    result = {
        "job_id": DONE,
        "status": "done",
        "duration_seconds": 12.34,
        "images": [{"source": "a.jpg"}],
        "rejected": [{"source": HOSTILE_PHOTO, "code": "decode_failed", "message": "not a photo"}],
    }
    (done / "result.json").write_text(json.dumps(result))
    failed = root / "failed" / FAILED
    (failed / "input").mkdir(parents=True)
    (failed / "input" / "b.jpg").write_bytes(b"\xff\xd8\xff other")
    Job(failed, JobRecord(FAILED, HOSTILE, "folder")).save()
    (failed / "error.json").write_text(
        json.dumps({"code": "out_of_memory", "message": "The model ran out of memory."})
    )
    (root / "inbox" / "fresh").mkdir()
    for n in ("1.jpg", "2.jpg", ".DS_Store"):
        (root / "inbox" / "fresh" / n).write_bytes(b"x")


@pytest.fixture
def client(tmp_path: Path) -> TestClient:
    root = tmp_path / "root"
    _tree(root)
    app, _ = build(load(root=str(root)), "127.0.0.1", 8642)
    return TestClient(app, base_url="http://127.0.0.1:8642")


def _assert_escaped(page: str, raw: str) -> None:
    assert raw not in page
    assert html.escape(raw, quote=True) in page


def test_queue_page_lists_every_job_with_its_facts(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    page = r.text
    rows = page.split("<tr>")[2:]
    states = ("inbox", "done", "failed")
    by_state = {s: next(row for row in rows if f'class="state {s}"' in row) for s in states}
    assert ">fresh</a>" in by_state["inbox"] and "<td>2</td>" in by_state["inbox"]
    assert "<td>2</td>" in by_state["done"] and "12.3 s" in by_state["done"]
    assert "The model ran out of memory. (out_of_memory)" in by_state["failed"]
    assert f'class="retry" data-id="{FAILED}"' in by_state["failed"]
    assert "retry" not in by_state["done"] and "retry" not in by_state["inbox"]
    assert f'href="/jobs/{DONE}"' in by_state["done"]
    assert '<script type="module" src="/static/queue.js">' in page


def test_queue_page_escapes_a_hostile_job_name(client: TestClient) -> None:
    _assert_escaped(client.get("/").text, HOSTILE)


def test_job_page_shows_previews_downloads_and_result_facts(client: TestClient) -> None:
    page = client.get(f"/jobs/{DONE}").text
    assert f'<img src="/files/done/{DONE}/previews/a.png"' in page
    for out in ("a.ply", "a.splat", "result.json", "previews/a.png"):
        assert f'href="/files/done/{DONE}/{out}" download' in page
    assert "job.json" not in page and "/input/" not in page
    assert "Photos used (1)" in page and "<li>a.jpg</li>" in page
    assert "Photos not used (1)" in page and "decode_failed" in page and "not a photo" in page
    for link in (f"/files/done/{DONE}/a.ply", f"/files/done/{DONE}/previews/a.png"):
        assert client.get(link).status_code == 200


def test_job_page_escapes_hostile_job_and_photo_names(client: TestClient) -> None:
    page = client.get(f"/jobs/{DONE}").text
    _assert_escaped(page, HOSTILE)
    _assert_escaped(page, HOSTILE_PHOTO)
    _assert_escaped(client.get(f"/jobs/{FAILED}").text, HOSTILE)


def test_failed_job_page_shows_the_error(client: TestClient) -> None:
    page = client.get(f"/jobs/{FAILED}").text
    assert '<p class="error">The model ran out of memory. (out_of_memory)</p>' in page


def test_unknown_job_page_is_404(client: TestClient) -> None:
    assert client.get("/jobs/20260501T000000Z-nope-0000").status_code == 404


def test_static_assets_are_served_by_name_only(client: TestClient) -> None:
    css = client.get("/static/app.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    js = client.get("/static/queue.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert client.get("/static/..%2Fapp.py").status_code == 404
    assert client.get("/static/missing.js").status_code == 404


def test_the_queue_script_never_parses_html_from_data() -> None:
    """Names are set with textContent; any innerHTML or outerHTML would reopen the XSS door."""
    for script in STATIC_DIR.glob("*.js"):
        source = script.read_text("utf-8")
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
            assert sink not in source, f"{script.name} uses {sink}"
    assert "/api/jobs" in (STATIC_DIR / "queue.js").read_text("utf-8")
