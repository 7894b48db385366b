"""index.html: parses, links only to files of the job by relative percent-encoded paths,
escapes every name, and references nothing on the network."""

from __future__ import annotations

import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from sharpmld.daemon import index_page
from sharpmld.daemon.index_page import INDEX_FILE, human_size, write_index

ODD = "a <b>&amp; \"q\" 's' #1?x=y:z %41"
"""A name with everything that could break HTML or a URL."""


class Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.urls: list[tuple[str, str]] = []
        self.text: list[str] = []
        self.attrs_text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        for name, value in attrs:
            if name in ("href", "src"):
                assert value is not None
                self.urls.append((tag, value))
            elif value:
                self.attrs_text.append(value)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _file(job: Path, rel: str, size: int = 10) -> dict[str, Any]:
    path = job / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    return {"path": rel, "bytes": size, "sha256": "0" * 64}


def sample_job(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    job = tmp_path / "done" / "20260101-120000-abcd"
    job.mkdir(parents=True)
    (job / "result.json").write_text("{}")
    stem = ODD
    outputs = {
        "ply": _file(job, f"{stem}.ply", 1_500_000),
        "splat": _file(job, f"{stem}.splat", 2048),
        "image": _file(job, f"images/{stem}.png"),
        "preview": _file(job, f"previews/{stem}.png"),
        "orbit": _file(job, f"previews/{stem}.orbit.gif"),
        "gone": {"path": "deleted.ply", "bytes": 5},
        "escape": {"path": "../outside.ply", "bytes": 5},
        "absolute": {"path": "/etc/passwd", "bytes": 5},
    }
    (tmp_path / "done" / "outside.ply").write_bytes(b"x")
    plain = {"ply": _file(job, "plain.ply", 999), "image": _file(job, "images/plain.png")}
    result = {
        "job_id": "20260101-120000-abcd",
        "original_name": 'My <b>photos</b> & "friends"',
        "status": "done",
        "finished_at": "2026-01-01T12:00:05Z",
        "duration_seconds": 5.25,
        "images": [
            {
                "source": f"{ODD}.jpg",
                "width": 4032,
                "height": 3024,
                "f_px": 3100.5,
                "gaussians": 1179648,
                "outputs": outputs,
            },
            {"source": "plain.jpg", "width": 64, "height": 48, "gaussians": 6144, "outputs": plain},
        ],
        "rejected": [
            {
                "source": "bad <file> & 'x'.jpg",
                "code": "decode_failed",
                "message": 'can\'t read <this> & "that"',
            },
            {"source": "caf\udcc3.heic", "code": "unsupported", "message": "not an image"},
        ],
        "ignored": [".DS_Store"],
    }
    return job, result


def test_page_parses_and_every_link_is_a_relative_existing_file(tmp_path: Path) -> None:
    job, result = sample_job(tmp_path)
    write_index(job, result)
    text = (job / INDEX_FILE).read_text("utf-8")
    page = Page()
    page.feed(text)
    page.close()
    assert set(page.tags) <= {
        "html",
        "head",
        "meta",
        "title",
        "style",
        "body",
        "h1",
        "h2",
        "h3",
        "p",
        "div",
        "a",
        "img",
        "ul",
        "li",
        "span",
        "strong",
    }
    assert page.urls, "expected links"
    for _tag, url in page.urls:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc and not parts.query and not parts.fragment, url
        assert not url.startswith("/") and ".." not in url.split("/"), url
        target = job / unquote(url)
        assert target.is_file(), url
        assert target.resolve().is_relative_to(job.resolve())
    linked = {unquote(u) for _, u in page.urls}
    assert (
        f"{ODD}.ply" in linked and f"previews/{ODD}.png" in linked and f"previews/{ODD}.orbit.gif" in linked
    )
    assert "images/plain.png" in linked  # no preview: the input image stands in
    assert "result.json" in linked
    assert not {"deleted.ply", "../outside.ply", "/etc/passwd"} & linked
    assert (
        "img",
        "previews/"
        + "%20".join(["a", "%3Cb%3E%26amp%3B", "%22q%22", "%27s%27", "%231%3Fx%3Dy%3Az", "%2541.png"]),
    ) in page.urls


def test_names_are_escaped_and_nothing_comes_from_the_network(tmp_path: Path) -> None:
    job, result = sample_job(tmp_path)
    write_index(job, result)
    text = (job / INDEX_FILE).read_text("utf-8")
    assert "http://" not in text and "https://" not in text and "//" not in text
    assert "<script" not in text.lower() and "@import" not in text and "url(" not in text
    assert "<b>" not in text and "<this>" not in text and "<file>" not in text
    page = Page()
    page.feed(text)
    words = "".join(page.text)
    # The parser undoes the escaping: the names come back exactly as they were.
    assert 'My <b>photos</b> & "friends"' in words
    assert f"{ODD}.jpg" in words
    assert "bad <file> & 'x'.jpg" in words and 'can\'t read <this> & "that"' in words
    assert "caf\\xc3.heic" in words  # undecodable bytes shown as escapes, not dropped
    assert any(ODD in a for a in page.attrs_text)  # alt text, escaped inside the attribute
    assert "1.5 MB" in words and "2.0 KB" in words and "999 B" in words
    assert "1,179,648 Gaussians" in words and "4032×3024 px" in words


def test_human_sizes() -> None:
    assert [human_size(n) for n in (0, 999, 1000, 1_234_567, 66_100_000, 3 * 10**9)] == [
        "0 B",
        "999 B",
        "1.0 KB",
        "1.2 MB",
        "66.1 MB",
        "3.0 GB",
    ]


def test_an_empty_job_still_gets_a_page(tmp_path: Path) -> None:
    write_index(tmp_path, {"job_id": "j", "status": "failed", "images": [], "rejected": []})
    text = (tmp_path / INDEX_FILE).read_text("utf-8")
    Page().feed(text)
    assert "No image of this job produced a scene." in text
    assert [p.name for p in tmp_path.iterdir()] == [INDEX_FILE]  # written atomically: no temp left


def test_the_page_module_does_not_load_torch_numpy_or_pillow() -> None:
    code = (
        "import sys, sharpmld.daemon.index_page, sharpmld.worker.preview\n"
        "print([m for m in ('torch', 'numpy', 'PIL') if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


class Links(HTMLParser):
    """The text of each ``<a download>`` link, by the file it points to."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.texts: dict[str, str] = {}
        self._href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and "download" in values:
            self._href = unquote(values.get("href") or "")
            self.texts[self._href] = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._href = None

    def handle_data(self, data: str) -> None:
        if self._href is not None:
            self.texts[self._href] += data


def test_every_output_format_has_a_human_label(tmp_path: Path) -> None:
    from sharpmld.core.config import KNOWN_FORMATS

    job = tmp_path / "job"
    job.mkdir()
    outputs = {name: _file(job, f"scene.{name}") for name in KNOWN_FORMATS}
    write_index(job, {"job_id": "j", "status": "done", "images": [{"source": "a.jpg", "outputs": outputs}]})
    page = Links()
    page.feed((job / INDEX_FILE).read_text("utf-8"))
    labels = {name: page.texts[f"scene.{name}"].strip() for name in KNOWN_FORMATS}
    for name, label in labels.items():
        assert label.lower() not in (name, f".{name}"), f"{name} is labelled only {label!r}"
        assert " " in label, f"{name}: {label!r} says nothing about what the file is"
    assert len(set(labels.values())) == len(labels), labels


def test_a_page_with_scenes_says_where_to_orbit_them(tmp_path: Path) -> None:
    result = {"job_id": "j", "status": "done", "images": [{"source": "a.jpg", "outputs": {}}]}
    assert "sharpmld serve" in index_page.render_index(tmp_path, result)
    assert "sharpmld serve" not in index_page.render_index(tmp_path, {"job_id": "j", "images": []})
