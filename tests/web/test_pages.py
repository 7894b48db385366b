"""The Queue and Job pages and their static assets, through Starlette's in-process TestClient."""

from __future__ import annotations

import html
import io
import json
from pathlib import Path

import pytest
from PIL import Image
from starlette.testclient import TestClient

from sharpmld.cli.serve import build
from sharpmld.core.config import load
from sharpmld.queue.record import Job, JobRecord
from sharpmld.web import pages
from sharpmld.web.app import STATIC_DIR

DONE = "20260501T090000Z-garden-abcd"
FAILED = "20260501T080000Z-broken-beef"
RUNNING = "20260501T100000Z-porch-cafe"
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
    running = root / "working" / RUNNING
    (running / "input").mkdir(parents=True)
    for n in ("x.jpg", "y.jpg", HOSTILE_PHOTO):
        (running / "input" / n).write_bytes(b"\xff\xd8\xff")
    Job(running, JobRecord(RUNNING, "porch", "folder")).save()
    photos = [
        {"source": "x.jpg", "state": "done"},
        {"source": HOSTILE_PHOTO, "state": "working"},
        {"source": "y.jpg", "state": "waiting"},
    ]
    progress = {"images_total": 3, "images_done": 1, "current": HOSTILE_PHOTO, "photos": photos}
    (running / "progress.json").write_text(json.dumps({**progress, "started_at": 1000.0}))


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
    rows = page.split("<tr data-id=")[1:]
    states = ("inbox", "working", "done", "failed")
    by_state = {s: next(row for row in rows if f'class="state {s}"' in row) for s in states}
    assert ">fresh</a>" in by_state["inbox"] and "<td>2</td>" in by_state["inbox"]
    assert "<td>2</td>" in by_state["done"] and "12.3 s" in by_state["done"]
    assert "The model ran out of memory. (out_of_memory)" in by_state["failed"]
    assert f'class="retry" data-id="{FAILED}"' in by_state["failed"]
    assert "retry" not in by_state["done"] and "retry" not in by_state["inbox"]
    assert 'class="cancel" data-id="fresh"' in by_state["inbox"]
    assert f'class="cancel" data-id="{RUNNING}"' in by_state["working"]
    assert "cancel" not in by_state["done"] and "cancel" not in by_state["failed"]
    assert "1 made, 1 not used" in by_state["done"]
    assert f'href="/jobs/{DONE}"' in by_state["done"]
    assert '<script type="module" src="/static/queue.js">' in page


def test_queue_page_escapes_a_hostile_job_name(client: TestClient) -> None:
    _assert_escaped(client.get("/").text, HOSTILE)
    _assert_escaped(client.get("/").text, HOSTILE_PHOTO)  # a running job's photo names


def test_queue_page_shows_a_running_job_photo_by_photo(client: TestClient) -> None:
    page = client.get("/").text
    row = page.split(f'<tr data-id="{RUNNING}">')[1].split("</tr>")[0]
    assert '<progress max="3" value="1"></progress>' in row and "1 of 3 photos" in row
    photo = html.escape(HOSTILE_PHOTO, quote=True)
    assert '<li class="photo done"><span class="source">x.jpg</span> <span class="photo-state">done' in row
    assert f'<li class="photo working"><span class="source">{photo}</span>' in row
    assert '<li class="photo waiting"><span class="source">y.jpg</span>' in row
    assert " min " in row  # running since started_at, long ago


def test_queue_page_shows_the_engine_and_disk_state(client: TestClient) -> None:
    panel = client.get("/").text.split('<ul id="status"')[1].split("</ul>")[0]
    assert "No daemon is running on this folder" in panel  # no daemon in this tree
    assert "inbox 1 · working 1 · done 1 · failed 1" in panel
    assert "Disk: " in panel and " free; jobs wait below " in panel
    status = client.get("/api/status").json()
    assert status["disk"]["free_bytes"] > 0 and status["disk"]["min_free_bytes"] > 0


def test_status_panel_names_the_engine_a_pause_and_a_low_disk() -> None:
    info = {
        "daemons": [{"pid": 7, "host": "mini", "engine": "ready", "device": "mps", "paused": "low disk"}],
        "counts": {"inbox": 2},
        "disk": {"free_bytes": 100 * 1024**2, "min_free_bytes": 500 * 1024**2},
        "held_back": [{"name": "<b>trip</b>", "message": "still copying"}],
    }
    lines = pages.status_lines(info)
    assert ("engine", "Engine ready on mps (daemon 7@mini)") in lines
    assert ("warn", "Paused: low disk") in lines
    assert ("warn", "Disk: 100 MB free; jobs wait below 500 MB") in lines
    assert ("held", "Held back: <b>trip</b>: still copying") in lines
    assert "<b>" not in pages.render_status(info) and "&lt;b&gt;trip" in pages.render_status(info)


def test_job_page_shows_previews_downloads_and_result_facts(client: TestClient) -> None:
    page = client.get(f"/jobs/{DONE}").text
    assert f'<img src="/files/done/{DONE}/previews/a.png"' in page
    for out in ("a.ply", "a.splat", "result.json", "previews/a.png"):
        assert f'href="/files/done/{DONE}/{out}" download' in page
    assert "job.json" not in page
    downloads = page.split('<ul class="downloads">')[1].split("</ul>")[0]
    assert "/input/" not in downloads  # the originals are shown, not offered as outputs
    assert f'<img src="/files/done/{DONE}/input/a.jpg" alt="a.jpg"' in page
    assert "Photos used (1)" in page and "<tr><td>a.jpg</td>" in page
    assert "<dt>Duration</dt><dd>12.3 s</dd>" in page and "<dt>Status</dt><dd>done</dd>" in page
    assert "Photos not used (1)" in page and "decode_failed" in page and "not a photo" in page
    for link in (f"/files/done/{DONE}/a.ply", f"/files/done/{DONE}/previews/a.png"):
        assert client.get(link).status_code == 200


def test_job_page_escapes_hostile_job_and_photo_names(client: TestClient) -> None:
    page = client.get(f"/jobs/{DONE}").text
    _assert_escaped(page, HOSTILE)
    _assert_escaped(page, HOSTILE_PHOTO)
    _assert_escaped(client.get(f"/jobs/{FAILED}").text, HOSTILE)


def test_job_page_embeds_and_links_the_viewer_for_each_splat(client: TestClient) -> None:
    page = client.get(f"/jobs/{DONE}").text
    assert f'<iframe src="/view/{DONE}/a"' in page and f'<a href="/view/{DONE}/a">' in page
    assert page.count("<iframe") == 1  # a.ply has no viewer of its own here: one per .splat


def test_a_hostile_output_name_is_quoted_in_the_viewer_address(tmp_path: Path) -> None:
    stem = '"><img src=x onerror=x()>'
    job = {"id": DONE, "state": "done", "files": [f"done/{DONE}/{stem}.splat"]}
    page = pages.render_job(job)
    assert "<img src=x" not in page
    assert f'<iframe src="/view/{DONE}/%22%3E%3Cimg%20src%3Dx%20onerror%3Dx%28%29%3E"' in page


def test_the_manifest_and_its_icons_let_a_home_screen_add_the_page(client: TestClient) -> None:
    assert '<link rel="manifest" href="/manifest.webmanifest"' in client.get("/").text
    r = client.get("/manifest.webmanifest")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/manifest+json")
    manifest = r.json()
    assert manifest["start_url"] == "/" and manifest["display"] == "standalone"
    sizes = set()
    for entry in manifest["icons"]:
        icon = client.get(entry["src"])
        assert icon.status_code == 200 and icon.headers["content-type"] == "image/png"
        with Image.open(io.BytesIO(icon.content)) as im:
            im.load()  # decodes every row: a broken IDAT or CRC fails here
            assert f"{im.width}x{im.height}" == entry["sizes"]
            corner, centre = im.getpixel((0, 0)), im.getpixel((im.width // 2, im.height // 2))
        assert corner != centre  # a picture, not a blank square
        sizes.add(entry["sizes"])
    assert {"192x192", "512x512"} <= sizes
    assert client.get("/icons/icon-64.png").status_code == 404


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


def test_the_queue_leads_to_the_upload_page(client: TestClient) -> None:
    page = client.get("/").text
    assert '<a id="upload-link" href="/upload">' in page
    assert client.get("/upload").status_code == 200
