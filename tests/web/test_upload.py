"""``POST /api/jobs``: limits while streaming, safe names, and nothing left behind on refusal."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Iterator, MutableMapping
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from starlette.testclient import TestClient

from sharpmld.cli.serve import build
from sharpmld.core.config import load
from sharpmld.queue.layout import JOB_FILE

ORIGIN = {"Origin": "http://127.0.0.1:8642"}
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 2000
PDF = b"%PDF-1.7\n" + b"x" * 2000

FileSpec = tuple[str, tuple[str, bytes, str]]


def _root(tmp_path: Path, **limits: Any) -> Path:
    root = tmp_path / "root"
    root.mkdir()
    config: dict[str, Any] = {"limits": {"max_file_mb": 0.01, "max_job_mb": 0.02, "max_images": 3, **limits}}
    (root / "sharpmld.toml").write_text(tomli_w.dumps(config))
    return root


def _client(root: Path, host: str = "127.0.0.1") -> TestClient:
    app, _ = build(load(root=str(root)), host, 8642)
    return TestClient(app, base_url=f"http://{host}:8642")


def _inbox(root: Path) -> list[str]:
    """Everything in the inbox, temp names included (``os.listdir`` hides nothing)."""
    return sorted(os.listdir(root / "inbox")) if (root / "inbox").is_dir() else []


def _files(*named: tuple[str, bytes]) -> list[FileSpec]:
    return [("file", (name, data, "application/octet-stream")) for name, data in named]


def _post(client: TestClient, files: list[FileSpec], name: str | None = None, **headers: str) -> Any:
    data = {"name": name} if name is not None else None
    return client.post("/api/jobs", files=files, data=data, headers={**ORIGIN, **headers})


def test_a_folder_becomes_one_inbox_entry_with_its_paths(tmp_path: Path) -> None:
    root = _root(tmp_path)
    client = _client(root)
    files = _files(("a.jpg", JPEG), ("sub/b.png", PNG), ("job.toml", b'formats = ["ply"]\n'))
    r = _post(client, files, name="garden <b>")
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["inbox"] == "garden <b>" and body["files"] == 3 and body["id"] is None
    entry = root / "inbox" / "garden <b>"
    assert (entry / "a.jpg").read_bytes() == JPEG
    assert (entry / "sub" / "b.png").read_bytes() == PNG
    assert (entry / "job.toml").read_text() == 'formats = ["ply"]\n'
    assert _inbox(root) == ["garden <b>"]
    assert client.get(body["follow"]).json() == {"state": "inbox", "id": None}


def test_without_a_name_the_job_is_named_after_the_first_file(tmp_path: Path) -> None:
    root = _root(tmp_path)
    r = _post(_client(root), _files(("IMG_0001.jpg", JPEG)))
    assert r.status_code == 201
    assert _inbox(root) == ["IMG_0001"]


def test_a_second_upload_of_the_same_name_gets_a_free_variant(tmp_path: Path) -> None:
    root = _root(tmp_path)
    client = _client(root)
    assert _post(client, _files(("a.jpg", JPEG)), name="porch").json()["inbox"] == "porch"
    assert _post(client, _files(("a.jpg", JPEG)), name="porch").json()["inbox"] == "porch (2)"


@pytest.mark.parametrize(
    ("files", "status", "code"),
    [
        ([("big.jpg", JPEG + b"\x00" * 11_000)], 413, "file_too_large"),
        ([("a.jpg", JPEG * 7), ("b.jpg", JPEG * 7), ("c.jpg", JPEG * 7)], 413, "job_too_large"),
        ([(f"{i}.jpg", JPEG) for i in range(4)], 400, "too_many_images"),
        ([("a.jpg", JPEG), ("photo.jpg", PDF)], 415, "unsupported_type"),
        ([("empty.jpg", b"")], 422, "empty_file"),
        ([("tiny.jpg", b"\xff\xd8")], 415, "unsupported_type"),
        ([("a/b/c/d/e/f/g/h/i/j.jpg", JPEG)], 400, "too_many_entries"),
        ([("a.jpg", JPEG), ("a.jpg", JPEG)], 400, "unsafe_name"),
        ([("a", JPEG), ("a/b.jpg", JPEG)], 400, "unsafe_name"),
    ],
)
def test_each_limit_refuses_the_whole_upload_and_leaves_nothing(
    tmp_path: Path, files: list[tuple[str, bytes]], status: int, code: str
) -> None:
    root = _root(tmp_path)
    r = _post(_client(root), _files(*files), name="refused")
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == code and body["message"] and "file" in body
    assert _inbox(root) == []


def test_a_wrong_type_is_named_for_what_it_is(tmp_path: Path) -> None:
    root = _root(tmp_path)
    body = _post(_client(root), _files(("holiday.jpg", PDF))).json()
    assert body["file"] == "holiday.jpg" and "PDF" in body["message"]


def test_the_limits_are_the_configured_ones(tmp_path: Path) -> None:
    """The same 11 KB photo passes when [limits] max_file_mb allows it."""
    root = _root(tmp_path, max_file_mb=1, max_job_mb=1)
    r = _post(_client(root), _files(("big.jpg", JPEG + b"\x00" * 11_000)))
    assert r.status_code == 201 and (root / "inbox" / "big" / "big.jpg").stat().st_size == len(JPEG) + 11_000


@pytest.mark.parametrize(
    "name",
    ["../evil.jpg", "/etc/evil.jpg", "a/../../evil.jpg", "a//b.jpg", "./a.jpg", "a\\..\\evil.jpg"],
)
def test_names_that_climb_or_confuse_are_refused(tmp_path: Path, name: str) -> None:
    root = _root(tmp_path)
    r = _post(_client(root), _files(("ok.jpg", JPEG), (name, JPEG)))
    assert r.status_code == 400, r.text
    assert r.json()["code"] == "unsafe_name"
    assert _inbox(root) == []
    assert not (tmp_path / "evil.jpg").exists() and not (root / "evil.jpg").exists()


@pytest.mark.parametrize("name", ["x\x01.jpg", "line%0Abreak.jpg", "a/%2E%2E/b.jpg%0D"])
def test_control_bytes_in_a_name_are_refused_as_the_browser_sent_them(tmp_path: Path, name: str) -> None:
    """Browsers escape only quote, CR and LF (as %22, %0D, %0A); the name is judged unescaped."""
    root = _root(tmp_path)
    body = _multipart("XyZ", name, JPEG)
    headers = {**ORIGIN, "Content-Type": "multipart/form-data; boundary=XyZ"}
    r = _client(root).post("/api/jobs", content=body, headers=headers)
    assert r.status_code == 400 and r.json()["code"] == "unsafe_name", r.text
    assert _inbox(root) == []


def test_clutter_the_intake_would_ignore_is_not_stored(tmp_path: Path) -> None:
    root = _root(tmp_path)
    files = _files(("a.jpg", JPEG), (".DS_Store", b"\x00\x00\x00\x01Bud1"), ("__MACOSX/._a.jpg", b"x"))
    r = _post(_client(root), files, name="trip")
    assert r.status_code == 201
    assert sorted(r.json()["ignored"]) == [".DS_Store", "__MACOSX/._a.jpg"]
    assert sorted(os.listdir(root / "inbox" / "trip")) == ["a.jpg"]


@pytest.mark.parametrize(
    ("given", "expected"), [(".hidden", "hidden"), ("a/b", "a-b"), ("x.part", "x"), ("  ", "a")]
)
def test_the_job_name_is_one_the_intake_claims(tmp_path: Path, given: str, expected: str) -> None:
    root = _root(tmp_path)
    r = _post(_client(root), _files(("a.jpg", JPEG)), name=given)
    assert r.status_code == 201 and _inbox(root) == [expected]


def test_skipped_clutter_still_counts_against_the_job_size(tmp_path: Path) -> None:
    """Clutter is thrown away unread, but a body of nothing else cannot go on for ever."""
    root = _root(tmp_path)
    r = _post(_client(root), _files(("a.jpg", JPEG), (".DS_Store", b"\x00" * 30_000)), name="junk")
    assert r.status_code == 413 and r.json()["code"] == "job_too_large"
    assert _inbox(root) == []


def test_a_body_past_the_job_limit_is_refused_whatever_it_holds(tmp_path: Path) -> None:
    """Parts with no file name are neither stored nor counted; the body itself is bounded.

    Sent chunked, with no Content-Length, so only the count of bytes streamed can stop it."""
    root = _root(tmp_path)
    part = b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename=""\r\n\r\n\r\n'

    def endless() -> Iterator[bytes]:
        for _ in range(400):  # 400 x 70 KB: 28 MB, past 0.02 MB and the 16 MB slack
            yield part * 1000

    headers = {**ORIGIN, "Content-Type": "multipart/form-data; boundary=XyZ"}
    r = _client(root).post("/api/jobs", content=endless(), headers=headers)
    assert r.status_code == 413 and r.json()["code"] == "job_too_large"
    assert _inbox(root) == []


def test_an_upload_with_no_photo_is_refused(tmp_path: Path) -> None:
    root = _root(tmp_path)
    r = _post(_client(root), _files((".DS_Store", b"junk")), name="none")
    assert r.status_code == 400 and r.json()["code"] == "no_valid_images"
    assert _inbox(root) == []


def test_a_body_that_is_not_multipart_is_refused(tmp_path: Path) -> None:
    root = _root(tmp_path)
    r = _client(root).post("/api/jobs", content=JPEG, headers={**ORIGIN, "Content-Type": "image/jpeg"})
    assert r.status_code == 400 and r.json()["code"] == "bad_upload"
    assert _inbox(root) == []


def test_a_foreign_origin_is_refused_and_leaves_nothing(tmp_path: Path) -> None:
    root = _root(tmp_path)
    r = _post(_client(root), _files(("a.jpg", JPEG)), Origin="http://evil.example")
    assert r.status_code == 403
    assert _inbox(root) == []


def test_another_address_needs_the_token_to_upload(tmp_path: Path) -> None:
    root = _root(tmp_path)
    client = _client(root, host="192.0.2.7")
    r = client.post("/api/jobs", files=_files(("a.jpg", JPEG)), headers={"Origin": "http://192.0.2.7:8642"})
    assert r.status_code == 401
    assert _inbox(root) == []


def _multipart(boundary: str, name: str, data: bytes) -> bytes:
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
        "Content-Type: image/jpeg\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode()


def _scope(boundary: str, length: int) -> dict[str, Any]:
    headers = [
        (b"host", b"127.0.0.1:8642"),
        (b"origin", b"http://127.0.0.1:8642"),
        (b"content-type", f"multipart/form-data; boundary={boundary}".encode()),
        (b"content-length", str(length).encode()),
    ]
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/jobs",
        "raw_path": b"/api/jobs",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8642),
    }


def _drive(root: Path, chunks: list[bytes], then_disconnect: bool, length: int) -> list[str]:
    """Feed ``chunks`` to the app as a server would; return the inbox seen before the end."""
    app, _ = build(load(root=str(root)), "127.0.0.1", 8642)
    queue = list(chunks)
    seen: list[str] = []
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if queue:
            chunk = queue.pop(0)
            return {"type": "http.request", "body": chunk, "more_body": bool(queue) or then_disconnect}
        seen.extend(_inbox(root))
        if then_disconnect:
            return {"type": "http.disconnect"}
        await asyncio.sleep(3600)  # a well-behaved server sends nothing more
        raise AssertionError("unreachable")

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(_scope("XyZ", length), receive, send))
    return seen


def test_a_client_gone_mid_upload_leaves_nothing(tmp_path: Path) -> None:
    root = _root(tmp_path, max_file_mb=1, max_job_mb=1)
    body = _multipart("XyZ", "a.jpg", JPEG * 100)
    seen = _drive(root, [body[:30_000], body[30_000:60_000]], then_disconnect=True, length=len(body))
    assert any(name.startswith(".sharpmld-tmp-") for name in seen), "the bytes were staged meanwhile"
    assert _inbox(root) == []


def test_a_body_cut_before_its_last_boundary_never_becomes_a_job(tmp_path: Path) -> None:
    root = _root(tmp_path, max_file_mb=1, max_job_mb=1)
    body = _multipart("XyZ", "a.jpg", JPEG * 10)
    _drive(root, [body[:-20]], then_disconnect=False, length=len(body) - 20)
    assert _inbox(root) == []


def test_follow_names_the_job_the_daemon_made_of_the_upload(tmp_path: Path) -> None:
    root = _root(tmp_path)
    client = _client(root)
    body = _post(client, _files(("a.jpg", JPEG)), name="porch").json()
    since = body["follow"].rsplit("=", 1)[1]
    older = f"{since[:4]}0101T000000Z-porch-1111"  # an earlier job of the same name
    newer = f"{since}-porch-2222"
    for job_id in (older, newer):
        (root / "done" / job_id).mkdir(parents=True)
        (root / "done" / job_id / JOB_FILE).write_text(json.dumps({"original_name": "porch"}))
    assert client.get(body["follow"]).json() == {"state": "inbox", "id": None}
    (root / "inbox" / "porch" / "a.jpg").unlink()
    (root / "inbox" / "porch").rmdir()  # as the daemon's claim takes it away
    assert client.get(body["follow"]).json() == {"state": "done", "id": newer}


def _check(client: TestClient, files: list[tuple[str, bytes, int]], **headers: str) -> Any:
    entries = [{"path": p, "size": n, "head": base64.b64encode(h[:4096]).decode()} for p, h, n in files]
    body = {"files": entries}
    return client.post("/api/jobs/check", json=body, headers={**ORIGIN, **headers})


@pytest.mark.parametrize(
    ("files", "status", "code"),
    [
        ([("big.jpg", JPEG, 11_000)], 413, "file_too_large"),
        ([("a.jpg", JPEG, 9000), ("b.jpg", JPEG, 9000), ("c.jpg", JPEG, 9000)], 413, "job_too_large"),
        ([(f"{i}.jpg", JPEG, 100) for i in range(4)], 400, "too_many_images"),
        ([("a.jpg", JPEG, 100), ("photo.jpg", PDF, 100)], 415, "unsupported_type"),
        ([("empty.jpg", b"", 0)], 422, "empty_file"),
        ([("../a.jpg", JPEG, 100)], 400, "unsafe_name"),
        ([("a.jpg", JPEG, 100), ("a.jpg", JPEG, 100)], 400, "unsafe_name"),
    ],
)
def test_the_check_gives_the_upload_s_answer_at_once(
    tmp_path: Path, files: list[tuple[str, bytes, int]], status: int, code: str
) -> None:
    """Sizes as declared and heads only: the page learns the refusal before sending photos."""
    root = _root(tmp_path)
    r = _check(_client(root), files)
    assert r.status_code == status, r.text
    assert r.json()["code"] == code
    assert _inbox(root) == []


def test_the_check_passes_what_the_upload_takes_and_keeps_nothing(tmp_path: Path) -> None:
    root = _root(tmp_path)
    files = [("a.jpg", JPEG, 9000), ("sub/b.png", PNG, 100), ("job.toml", b"x", 1), (".DS_Store", b"", 0)]
    r = _check(_client(root), files)
    assert r.status_code == 200 and r.json() == {"ok": True, "ignored": [".DS_Store"]}
    assert _inbox(root) == []


def test_the_check_refuses_a_malformed_body_and_a_foreign_origin(tmp_path: Path) -> None:
    root = _root(tmp_path)
    client = _client(root)
    assert client.post("/api/jobs/check", content=b"nope", headers=ORIGIN).json()["code"] == "bad_upload"
    bad = {"files": [{"path": "a.jpg", "size": 1, "head": "%%%"}]}
    assert client.post("/api/jobs/check", json=bad, headers=ORIGIN).json()["code"] == "bad_upload"
    assert _check(client, [("a.jpg", JPEG, 1)], Origin="http://evil.example").status_code == 403
