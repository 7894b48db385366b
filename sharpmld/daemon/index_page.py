"""``index.html`` in a finished job's folder: the previews and downloads of every image.

A plain self-contained page (inline CSS, no scripts, nothing fetched from the network) that
works opened straight from the disk. Every name is escaped, every link is a relative,
percent-encoded path to a file that exists in the job folder when the page is written; an
output whose file is missing or whose path would leave the folder gets no link.

Standard library only: the daemon writes the page, and the daemon never imports torch.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

from sharpmld.core import fsio
from sharpmld.daemon.report import display
from sharpmld.queue.layout import RESULT_FILE

INDEX_FILE = "index.html"
LABELS = {
    "ply": "3DGS .ply (Gaussian splats)",
    "splat": "Splat (.splat, for web viewers)",
    "spz": "SPZ (compressed splats)",
    "glb": "glTF binary (.glb)",
    "image": "Input image",
    "preview": "Preview",
    "orbit": "Camera sway",
}
"""How known outputs are called on the page; any other output is shown by its name."""

_CSS = """
:root { color-scheme: light dark; --fg: #1d1d1f; --bg: #f5f5f7; --card: #fff; --muted: #6e6e73;
  --line: #d2d2d7; --accent: #0066cc; }
@media (prefers-color-scheme: dark) { :root { --fg: #f5f5f7; --bg: #1d1d1f; --card: #2c2c2e;
  --muted: #a1a1a6; --line: #424245; --accent: #4da3ff; } }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px; background: var(--bg); color: var(--fg);
  font: 15px/1.45 -apple-system, BlinkMacSystemFont, "Segoe UI", Helvetica, Arial, sans-serif; }
h1 { font-size: 22px; margin: 0 0 4px; overflow-wrap: anywhere; }
h2 { font-size: 17px; margin: 28px 0 12px; }
h3 { font-size: 15px; margin: 0 0 8px; overflow-wrap: anywhere; }
.meta { color: var(--muted); margin: 0 0 16px; }
.grid { display: grid; gap: 16px; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 14px; }
.pics { display: flex; gap: 8px; flex-wrap: wrap; margin-bottom: 10px; }
.pics img { max-width: 100%; height: auto; border-radius: 6px; background: #000; }
.pics a { flex: 1 1 150px; }
.facts { color: var(--muted); font-size: 13px; margin: 0 0 8px; }
ul { margin: 0; padding-left: 18px; }
li { margin: 2px 0; overflow-wrap: anywhere; }
a { color: var(--accent); text-decoration: none; }
a:hover { text-decoration: underline; }
.size { color: var(--muted); font-size: 13px; }
.code { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; color: var(--muted); }
""".strip()


def write_index(job_dir: Path, result: dict[str, Any]) -> None:
    """Write ``<job_dir>/index.html`` for the job described by ``result`` (result.json)."""
    fsio.write_text(job_dir / INDEX_FILE, render_index(job_dir, result))


def render_index(job_dir: Path, result: dict[str, Any]) -> str:
    """The page as text; links are made only to files that exist under ``job_dir``."""
    name = str(result.get("original_name") or result.get("job_id") or job_dir.name)
    images = [i for i in _list(result.get("images")) if isinstance(i, dict)]
    rejected = [r for r in _list(result.get("rejected")) if isinstance(r, dict)]
    ignored = [str(n) for n in _list(result.get("ignored"))]
    facts = [f"Job {_text(result.get('job_id', job_dir.name))}", _text(result.get("status", ""))]
    facts.append(_count(len(images), "image"))
    if rejected:
        facts.append(f"{_count(len(rejected), 'file')} not used")
    if isinstance(result.get("duration_seconds"), int | float):
        facts.append(f"{float(result['duration_seconds']):.1f} s")
    if result.get("finished_at"):
        facts.append(f"finished {_text(result['finished_at'])}")
    body = [
        f"<h1>{_text(name)}</h1>",
        f'<p class="meta">{" · ".join(f for f in facts if f)}</p>',
    ]
    if images:
        # A page opened from disk cannot stream the splats into a viewer (browsers refuse
        # file:// fetches), so it says where the interactive one is instead of linking out.
        body.append(
            '<p class="meta">To orbit these scenes in 3D, run “sharpmld serve” and open '
            "this job from the queue page it prints.</p>"
        )
        body.append('<div class="grid">')
        body += [_image_card(job_dir, image) for image in images]
        body.append("</div>")
    else:
        body.append("<p>No image of this job produced a scene.</p>")
    if rejected:
        body.append("<h2>Files that could not be used</h2>")
        body.append("<ul>")
        for r in rejected:
            code = f' <span class="code">{_text(r["code"])}</span>' if r.get("code") else ""
            body.append(
                f"<li><strong>{_text(r.get('source', ''))}</strong>: {_text(r.get('message', ''))}{code}</li>"
            )
        body.append("</ul>")
    if ignored:
        body.append("<h2>Ignored (hidden or system files)</h2>")
        body.append("<ul>" + "".join(f"<li>{_text(n)}</li>" for n in ignored[:200]) + "</ul>")
    link = _link(job_dir, RESULT_FILE)
    if link:
        body.append(f'<p class="meta"><a href="{link}">{RESULT_FILE}</a> — the full account of this job</p>')
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_text(name)} — sharpmld</title>\n"
        f"<style>\n{_CSS}\n</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


def _image_card(job_dir: Path, image: dict[str, Any]) -> str:
    source = str(image.get("source", ""))
    outputs = image.get("outputs") if isinstance(image.get("outputs"), dict) else {}
    assert isinstance(outputs, dict)
    links = {key: _link(job_dir, _path_of(entry)) for key, entry in outputs.items()}
    pics = []
    shown = [k for k in ("preview", "orbit") if links.get(k)] or [k for k in ("image",) if links.get(k)]
    for key in shown:
        pics.append(
            f'<a href="{links[key]}"><img src="{links[key]}" alt="{LABELS[key]} of {_text(source)}" '
            f'loading="lazy"></a>'
        )
    facts = []
    if isinstance(image.get("width"), int) and isinstance(image.get("height"), int):
        facts.append(f"{image['width']}×{image['height']} px")
    if isinstance(image.get("gaussians"), int):
        facts.append(f"{image['gaussians']:,} Gaussians")
    if isinstance(image.get("f_px"), int | float):
        facts.append(f"f = {float(image['f_px']):.0f} px")
    downloads = []
    for key, entry in outputs.items():
        link = links.get(key)
        if not link:
            continue
        path = _path_of(entry) or ""
        size = entry.get("bytes") if isinstance(entry, dict) else None
        size_text = f' <span class="size">{human_size(size)}</span>' if isinstance(size, int) else ""
        label = _text(LABELS.get(str(key), str(key)))
        downloads.append(
            f'<li><a href="{link}" download>{label}</a> '
            f'<span class="code">{_text(PurePosixPath(path).name)}</span>{size_text}</li>'
        )
    parts = [f'<div class="card">\n<h3>{_text(source)}</h3>']
    if pics:
        parts.append('<div class="pics">' + "".join(pics) + "</div>")
    if facts:
        parts.append(f'<p class="facts">{" · ".join(facts)}</p>')
    if downloads:
        parts.append("<ul>" + "".join(downloads) + "</ul>")
    parts.append("</div>")
    return "\n".join(parts)


def human_size(n: int) -> str:
    """Bytes in decimal units as macOS shows them: 999 B, 1.2 KB, 66.1 MB."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


def _link(job_dir: Path, rel: str | None) -> str | None:
    """The percent-encoded relative URL of ``rel`` if it is a file inside ``job_dir``."""
    if not rel:
        return None
    parts = PurePosixPath(rel.replace(os.sep, "/")).parts
    if not parts or parts[0] == "/" or ".." in parts or not job_dir.joinpath(*parts).is_file():
        return None
    # Each segment fully encoded: a ":" cannot read as a scheme, "#" or "?" as a fragment/query.
    return "/".join(quote(os.fsencode(p), safe="") for p in parts)


def _path_of(entry: Any) -> str | None:
    path = entry.get("path") if isinstance(entry, dict) else None
    return path if isinstance(path, str) else None


def _list(value: Any) -> Iterable[Any]:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str:
    return html.escape(display(str(value)), quote=True)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
