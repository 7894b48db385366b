"""The JSON API, /files and the security rules, through Starlette's in-process TestClient."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from sharpmld.cli.serve import build
from sharpmld.core.config import load
from sharpmld.queue.record import Job, JobRecord
from sharpmld.web.security import TOKEN_FILE, load_or_create_token

DONE = "20260501T090000Z-garden-abcd"
FAILED = "20260501T080000Z-broken-beef"
HOSTILE = "<script>alert('x')<script><img src=x onerror=\"alert(1)\">"


def _tree(root: Path) -> None:
    for state in ("inbox", "working", "done", "failed", ".sharpmld"):
        (root / state).mkdir(parents=True)
    done = root / "done" / DONE
    (done / "input").mkdir(parents=True)
    (done / "input" / "a.jpg").write_bytes(b"\xff\xd8\xff photo")
    Job(done, JobRecord(DONE, HOSTILE, "folder")).save()
    (done / "result.json").write_text(json.dumps({"images": 1}))
    (done / "a.ply").write_bytes(bytes(range(256)) * 400)
    failed = root / "failed" / FAILED
    (failed / "input").mkdir(parents=True)
    (failed / "input" / "b.jpg").write_bytes(b"\xff\xd8\xff other")
    Job(failed, JobRecord(FAILED, "broken", "folder")).save()
    (failed / "error.json").write_text(json.dumps({"code": "decode_failed", "message": "not a photo"}))
    secret = root.parent / "secret.txt"
    secret.write_text("secret")
    (done / "leak.txt").symlink_to(secret)
    (root / "inbox" / HOSTILE).mkdir()


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "root"
    _tree(r)
    return r


def _client(root: Path, host: str = "127.0.0.1", port: int = 8642) -> tuple[TestClient, str | None]:
    app, token = build(load(root=str(root)), host, port)
    shown = f"[{host}]" if ":" in host else host
    return TestClient(app, base_url=f"http://{shown}:{port}"), token


def test_jobs_lists_every_state_with_names_and_errors(root: Path) -> None:
    client, token = _client(root)
    assert token is None
    jobs = {j["id"]: j for j in client.get("/api/jobs").json()["jobs"]}
    assert jobs[DONE]["state"] == "done" and jobs[DONE]["name"] == HOSTILE
    assert jobs[FAILED]["error"] == {"code": "decode_failed", "message": "not a photo"}
    assert jobs[HOSTILE]["state"] == "inbox"
    one = client.get(f"/api/jobs/{DONE}").json()
    assert f"done/{DONE}/a.ply" in one["files"] and f"done/{DONE}/leak.txt" not in one["files"]
    assert client.get("/api/jobs/nope").status_code == 404


def test_status_is_the_cli_status(root: Path) -> None:
    client, _ = _client(root)
    info = client.get("/api/status").json()
    assert info["counts"] == {"inbox": 1, "working": 0, "done": 1, "failed": 1}


def test_retry_moves_a_failed_job_back(root: Path) -> None:
    client, _ = _client(root)
    r = client.post(f"/api/jobs/{FAILED}/retry", headers={"Origin": "http://127.0.0.1:8642"})
    assert r.status_code == 200
    assert not (root / "failed" / FAILED).exists() and (root / "inbox" / "broken").is_dir()
    assert client.post(f"/api/jobs/{FAILED}/retry").status_code == 404


def test_retry_by_url_needs_the_whole_id(root: Path) -> None:
    client, _ = _client(root)
    assert client.post(f"/api/jobs/{FAILED[:10]}/retry").status_code == 404
    assert (root / "failed" / FAILED).is_dir()


def test_files_serve_types_and_ranges(root: Path) -> None:
    client, _ = _client(root)
    whole = (root / "done" / DONE / "a.ply").read_bytes()
    r = client.get(f"/files/done/{DONE}/a.ply")
    assert r.status_code == 200 and r.content == whole
    assert r.headers["content-type"] == "application/octet-stream"
    assert (
        client.get(f"/files/done/{DONE}/result.json").headers["content-type"].startswith("application/json")
    )
    part = client.get(f"/files/done/{DONE}/a.ply", headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206 and part.content == whole[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(whole)}"
    bad = client.get(f"/files/done/{DONE}/a.ply", headers={"Range": f"bytes={len(whole) + 10}-"})
    assert bad.status_code == 416
    stale = client.get(
        f"/files/done/{DONE}/a.ply", headers={"Range": "bytes=0-9", "If-Range": '"not-the-etag"'}
    )
    assert stale.status_code == 200 and stale.content == whole  # a changed file is sent whole


@pytest.mark.parametrize(
    "path",
    [
        f"done/{DONE}/leak.txt",
        f"done/{DONE}/../{FAILED}/error.json",
        f"done/{DONE}/%2e%2e/%2e%2e/../secret.txt",
        ".sharpmld/web-token",
        f"done/{DONE}",
        "done//etc/passwd",
    ],
)
def test_files_never_leave_the_root_or_follow_links(root: Path, path: str) -> None:
    client, _ = _client(root)
    r = client.get(f"/files/{path}")
    assert r.status_code == 404 and b"secret" not in r.content


def test_files_refuse_a_linked_job_folder(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.ply").write_text("secret")
    (root / "done" / "20260501T100000Z-link-abcd").symlink_to(outside)
    client, _ = _client(root)
    assert client.get("/files/done/20260501T100000Z-link-abcd/x.ply").status_code == 404


def test_foreign_host_is_refused(root: Path) -> None:
    client, _ = _client(root)
    assert client.get("/api/jobs", headers={"Host": "evil.example:8642"}).status_code == 421
    assert client.get("/api/jobs", headers={"Host": "localhost:8642"}).status_code == 200


def test_foreign_origin_may_not_change_anything(root: Path) -> None:
    client, _ = _client(root)
    r = client.post(f"/api/jobs/{FAILED}/retry", headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and (root / "failed" / FAILED).is_dir()
    r = client.post(f"/api/jobs/{FAILED}/retry", headers={"Referer": "http://evil.example/page"})
    assert r.status_code == 403 and (root / "failed" / FAILED).is_dir()


def test_no_cors_headers(root: Path) -> None:
    client, _ = _client(root)
    r = client.get("/api/jobs", headers={"Origin": "http://evil.example"})
    assert not any(h.lower().startswith("access-control-") for h in r.headers)
    pre = client.options(
        "/api/jobs", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert not any(h.lower().startswith("access-control-") for h in pre.headers)


def test_other_address_needs_the_token(root: Path) -> None:
    client, token = _client(root, host="192.0.2.7")
    assert token
    assert client.get("/api/jobs").status_code == 401
    assert client.get("/api/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/api/jobs", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.get(f"/api/jobs?token={token}").status_code == 200
    cookie = {"Cookie": f"sharpmld_token={token}"}
    assert client.get(f"/files/done/{DONE}/a.ply", headers=cookie).status_code == 200


def test_token_is_made_once_private(tmp_path: Path) -> None:
    first = load_or_create_token(tmp_path)
    assert load_or_create_token(tmp_path) == first
    mode = stat.S_IMODE(os.stat(tmp_path / TOKEN_FILE).st_mode)
    assert mode == 0o600


def test_token_in_the_url_becomes_a_strict_cookie(root: Path) -> None:
    """The printed URL carries the token once; the page's later requests rely on the cookie."""
    client, token = _client(root, host="192.0.2.7")
    r = client.get(f"/api/jobs?token={token}")
    assert r.status_code == 200
    set_cookie = r.headers["set-cookie"]
    assert set_cookie.startswith(f"sharpmld_token={token};")
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
    # The client now holds the cookie: a bare request goes through.
    assert client.get(f"/files/done/{DONE}/a.ply").status_code == 200
    # A wrong token in the URL sets nothing and is refused.
    fresh, _ = _client(root, host="192.0.2.7")
    wrong = fresh.get("/api/jobs?token=wrong")
    assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
    # A request authorised by its header gets no cookie it did not ask for.
    assert "set-cookie" not in fresh.get("/api/jobs", headers={"Authorization": f"Bearer {token}"}).headers


def test_cancel_moves_a_queued_entry_to_failed_as_cancelled_by_the_web(root: Path) -> None:
    client, _ = _client(root)
    (root / "inbox" / "porch").mkdir()
    (root / "inbox" / "porch" / "c.jpg").write_bytes(b"\xff\xd8\xff porch")
    r = client.post("/api/jobs/porch/cancel", headers={"Origin": "http://127.0.0.1:8642"})
    assert r.status_code == 200 and r.json()["state"] == "failed"
    moved = root / "failed" / r.json()["id"]
    assert (moved / "input" / "c.jpg").read_bytes() == b"\xff\xd8\xff porch"
    error = json.loads((moved / "error.json").read_text())
    assert error["code"] == "cancelled" and error["details"]["by"] == "web"
    assert not (root / "inbox" / "porch").exists()


def test_cancel_of_a_running_job_leaves_a_request_and_unknown_ids_are_404(root: Path) -> None:
    client, _ = _client(root)
    running = root / "working" / "20260501T100000Z-porch-cafe"
    (running / "input").mkdir(parents=True)
    r = client.post(f"/api/jobs/{running.name}/cancel?now=1")
    assert r.status_code == 200 and r.json()["state"] == "requested"
    assert json.loads((running / "CANCEL").read_text())["now"] is True
    assert client.post(f"/api/jobs/{running.name[:12]}/cancel").status_code == 404
    assert client.post(f"/api/jobs/{DONE}/cancel").status_code == 404


def test_cancel_from_a_foreign_origin_is_refused_and_changes_nothing(root: Path) -> None:
    client, _ = _client(root)
    (root / "inbox" / "porch").mkdir()
    r = client.post("/api/jobs/porch/cancel", headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    assert (root / "inbox" / "porch").is_dir() and list((root / "failed").iterdir()) == [
        root / "failed" / FAILED
    ]
