"""The Queue and Job pages, rendered on the server from the same dicts the JSON API returns.

Job and photo names come from strangers, so every piece of data goes through ``html.escape``
(text and attributes alike) and every URL part through ``quote``; nothing here trusts a name.
The pages read without JavaScript; ``static/queue.js`` keeps the queue fresh and makes its
buttons work, and it builds the same rows from ``/api/jobs`` with ``textContent`` only.
"""

from __future__ import annotations

import time
from html import escape
from typing import Any
from urllib.parse import quote

from sharpmld.queue.layout import INPUT_DIR, JOB_FILE, LEASE_FILE, PROGRESS_FILE

PREVIEW_SUFFIXES = (".png", ".gif", ".jpg", ".jpeg", ".webp")
# Photos a browser can show as they are; others (HEIC, RAW) are offered as downloads only.
SHOWABLE_PHOTOS = (".jpg", ".jpeg", ".png", ".gif", ".webp")
# Files of a job folder that are sharpmld's bookkeeping rather than something to download.
_BOOKKEEPING = frozenset({JOB_FILE, LEASE_FILE, PROGRESS_FILE})
# What each state may be asked to do from the page (the API refuses the rest anyway).
CANCELLABLE = frozenset({"inbox", "working"})
GB = 1024**3
MB = 1024**2


def _t(value: object) -> str:
    return escape(str(value), quote=True)


def _files_url(path: str) -> str:
    return "/files/" + "/".join(quote(p, safe="") for p in path.split("/"))


def job_url(job_id: str) -> str:
    """The job page's address; the id may be an inbox name a stranger chose."""
    return "/jobs/" + quote(job_id, safe="")


def viewer_url(job_id: str, stem: str) -> str:
    """The interactive viewer's address for one output (served by the viewer's own module)."""
    return f"/view/{quote(job_id, safe='')}/{quote(stem, safe='')}"


def _clock(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s"
    return f"{int(seconds) // 60} min {int(seconds) % 60:02d} s"


def duration(job: dict[str, Any], now: float | None = None) -> str:
    """The run time from result.json; for a running job, the time since its try began."""
    seconds = (job.get("result") or {}).get("duration_seconds")
    if job.get("state") == "working":
        started = (job.get("progress") or {}).get("started_at")
        if isinstance(started, int | float) and not isinstance(started, bool):
            return _clock(max(0.0, (time.time() if now is None else now) - started))
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return ""
    return _clock(seconds)


def error_text(job: dict[str, Any]) -> str:
    """The failure in a person's words, with the stable code after it."""
    error = job.get("error") or {}
    message, code = error.get("message"), error.get("code")
    if message and code:
        return f"{message} ({code})"
    return str(message or code or "")


def _page(title: str, body: list[str], *, script: str = "") -> str:
    """A whole page; ``script`` names one of the app's static scripts to load, if any."""
    js = f'<script type="module" src="/static/{script}"></script>\n' if script else ""
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_t(title)} — sharpmld</title>\n"
        '<link rel="manifest" href="/manifest.webmanifest" crossorigin="use-credentials">\n'
        '<link rel="icon" type="image/png" href="/icons/icon-192.png">\n'
        '<link rel="apple-touch-icon" href="/icons/icon-192.png">\n'
        '<meta name="theme-color" content="#1d3557">\n'
        '<link rel="stylesheet" href="/static/app.css">\n'
        f"{js}</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


def _progress(job: dict[str, Any]) -> str:
    """Per photo while the job runs (progress.json); a short tally once it has ended."""
    state = job.get("state")
    if state == "working":
        progress = job.get("progress") or {}
        photos = [p for p in progress.get("photos") or [] if isinstance(p, dict)]
        total = int(progress.get("images_total") or len(photos) or 0)
        done = int(progress.get("images_done") or 0)
        if not total:
            return '<span class="meta">starting</span>'
        items = "".join(
            f'<li class="photo {_t(p.get("state", ""))}">'
            f'<span class="source">{_t(p.get("source", ""))}</span> '
            f'<span class="photo-state">{_t(p.get("state", ""))}</span></li>'
            for p in photos
        )
        return (
            f'<progress max="{total}" value="{done}"></progress> '
            f'<span class="tally">{done} of {total} photos</span>'
            f'<ol class="photos">{items}</ol>'
        )
    result = job.get("result") or {}
    made, refused = len(result.get("images") or []), len(result.get("rejected") or [])
    if not result:
        return ""
    return f'<span class="tally">{made} made' + (f", {refused} not used" if refused else "") + "</span>"


def _row(job: dict[str, Any], now: float | None = None) -> str:
    state = str(job.get("state", ""))
    job_id = _t(job["id"])
    action = ""
    if state == "failed":
        action = f'<button class="retry" data-id="{job_id}">Retry</button>'
    elif state in CANCELLABLE:
        action = f'<button class="cancel" data-id="{job_id}">Cancel</button>'
    cells = [
        f'<td><a href="{_t(job_url(str(job["id"])))}">{_t(job.get("name", job["id"]))}</a></td>',
        f"<td>{_t(job.get('photos', ''))}</td>",
        f'<td class="state {_t(state)}">{_t(state)}</td>',
        f'<td class="progress">{_progress(job)}</td>',
        f"<td>{_t(duration(job, now))}</td>",
        f'<td class="error">{_t(error_text(job))}</td>',
        f"<td>{action}</td>",
    ]
    return f'<tr data-id="{job_id}">' + "".join(cells) + "</tr>"


def size_text(n: float) -> str:
    """Bytes as a person reads them on a disk (GB above one, else MB)."""
    return f"{n / GB:.1f} GB" if n >= GB else f"{n / MB:.0f} MB"


def status_lines(info: dict[str, Any]) -> list[tuple[str, str]]:
    """(class, text) lines for the engine and disk panel: ``sharpmld status``'s facts in words."""
    lines: list[tuple[str, str]] = []
    daemons = [d for d in info.get("daemons") or [] if isinstance(d, dict)]
    if not daemons:
        lines.append(("warn", "No daemon is running on this folder: start one with `sharpmld run`."))
    for d in daemons:
        device = f" on {d['device']}" if d.get("device") else ""
        why = f": {d['engine_message']}" if d.get("engine_message") else ""
        lines.append(
            ("engine", f"Engine {d.get('engine')}{device}{why} (daemon {d.get('pid')}@{d.get('host')})")
        )
        if d.get("paused"):
            lines.append(("warn", f"Paused: {d['paused']}"))
    c = info.get("counts") or {}
    lines.append(("counts", " · ".join(f"{s} {c.get(s, 0)}" for s in ("inbox", "working", "done", "failed"))))
    disk = info.get("disk") or {}
    free, minimum = disk.get("free_bytes"), disk.get("min_free_bytes")
    if isinstance(free, int):
        low = isinstance(minimum, int) and free < minimum
        limit = f"; jobs wait below {size_text(minimum)}" if isinstance(minimum, int) else ""
        lines.append(("warn" if low else "disk", f"Disk: {size_text(free)} free{limit}"))
    for h in info.get("held_back") or []:
        if isinstance(h, dict):
            lines.append(("held", f"Held back: {h.get('name')}: {h.get('message') or h.get('reason')}"))
    return lines


def render_status(info: dict[str, Any]) -> str:
    """The engine and disk panel (queue.js rebuilds it from ``/api/status``)."""
    items = "".join(f'<li class="{_t(k)}">{_t(text)}</li>' for k, text in status_lines(info))
    return f'<ul id="status" class="status">{items}</ul>'


def render_queue(jobs: list[dict[str, Any]], status: dict[str, Any], now: float | None = None) -> str:
    """The Queue page: every job, newest facts on each load, refreshed by queue.js."""
    body = [
        "<h1>sharpmld queue</h1>",
        '<p><a id="upload-link" href="/upload">Upload photos</a></p>',
        render_status(status),
        '<p id="notice" class="meta" role="status"></p>',
        '<table id="jobs"><thead><tr><th>Name</th><th>Photos</th><th>State</th><th>Progress</th>'
        "<th>Duration</th><th>Error</th><th></th></tr></thead>",
        "<tbody>" + "".join(_row(j, now) for j in jobs) + "</tbody></table>",
    ]
    body.append(
        f'<p id="empty" class="meta"{"" if not jobs else " hidden"}>'
        'No jobs yet: drop a folder of photos into the inbox, or <a href="/upload">upload them</a>.</p>'
    )
    return _page("Queue", body, script="queue.js")


def _outputs(files: list[str], prefix: str) -> list[str]:
    """The files worth downloading: everything but the originals and the bookkeeping."""
    return [
        f
        for f in files
        if not f.startswith(f"{prefix}/{INPUT_DIR}/") and f.rsplit("/", 1)[-1] not in _BOOKKEEPING
    ]


def splat_stems(files: list[str], prefix: str) -> list[str]:
    """The stems of the job's ``.splat`` outputs (the worker writes them at the job's top level)."""
    top = [f[len(prefix) + 1 :] for f in files if f.startswith(prefix + "/")]
    return [f[: -len(".splat")] for f in top if "/" not in f and f.endswith(".splat")]


def _photos(files: list[str], prefix: str) -> list[str]:
    inputs = [f for f in files if f.startswith(f"{prefix}/{INPUT_DIR}/")]
    if not inputs:
        return []
    out = ['<h2>Photos</h2><div class="grid">']
    for f in inputs:
        label = _t(f[len(prefix) + len(INPUT_DIR) + 2 :])
        if f.lower().endswith(SHOWABLE_PHOTOS):
            out.append(f'<figure><img src="{_t(_files_url(f))}" alt="{label}" loading="lazy">')
        else:
            out.append(f'<figure><a href="{_t(_files_url(f))}" download>{label}</a>')
        out.append(f"<figcaption>{label}</figcaption></figure>")
    out.append("</div>")
    return out


def _viewers(job_id: str, stems: list[str]) -> list[str]:
    if not stems:
        return []
    out = ["<h2>In 3D</h2>"]
    for stem in stems:
        url = _t(viewer_url(job_id, stem))
        out.append(
            f'<figure class="viewer"><iframe src="{url}" title="3D view of {_t(stem)}" loading="lazy">'
            f'</iframe><figcaption><a href="{url}">Open {_t(stem)} in the viewer</a></figcaption></figure>'
        )
    return out


def _facts(result: dict[str, Any]) -> list[str]:
    """The facts of result.json a person asks about: when, how long, on what, with what."""
    engine = result.get("engine") or {}
    rows = [
        ("Status", result.get("status")),
        ("Finished", result.get("finished_at")),
        ("Duration", duration({"result": result})),
        ("Attempts", result.get("attempts")),
        ("Host", result.get("host")),
        ("Model", engine.get("model") if isinstance(engine, dict) else None),
        ("Device", engine.get("device") if isinstance(engine, dict) else None),
    ]
    settings = result.get("settings")
    if isinstance(settings, dict):
        rows += [
            (f"Setting {k}", v if not isinstance(v, list) else ", ".join(map(str, v)))
            for k, v in settings.items()
        ]
    items = "".join(f"<dt>{_t(k)}</dt><dd>{_t(v)}</dd>" for k, v in rows if v not in (None, ""))
    return [f'<h2>Facts</h2><dl class="facts">{items}</dl>']


def _image_rows(result: dict[str, Any]) -> list[str]:
    images = [i for i in result.get("images") or [] if isinstance(i, dict)]
    rejected = [r for r in result.get("rejected") or [] if isinstance(r, dict)]
    out = [f"<h2>Photos used ({len(images)})</h2>"]
    if images:
        rows = "".join(
            f"<tr><td>{_t(i.get('source', ''))}</td><td>{_t(i.get('gaussians', ''))}</td>"
            f"<td>{_t(_size(i))}</td><td>{_t(i.get('f_px_source', ''))}</td></tr>"
            for i in images
        )
        out.append(
            '<table class="images"><thead><tr><th>Photo</th><th>Gaussians</th><th>Size</th>'
            f"<th>Focal length from</th></tr></thead><tbody>{rows}</tbody></table>"
        )
    out.append(f"<h2>Photos not used ({len(rejected)})</h2>")
    if rejected:
        items = "".join(
            f"<li><strong>{_t(r.get('source', ''))}</strong>: {_t(r.get('message', ''))} "
            f'<span class="code">{_t(r.get("code", ""))}</span></li>'
            for r in rejected
        )
        out.append(f"<ul>{items}</ul>")
    return out


def _size(image: dict[str, Any]) -> str:
    w, h = image.get("width"), image.get("height")
    return f"{w} × {h}" if w and h else ""


def revision(job: dict[str, Any]) -> str:
    """What a job's page shows that changes while it runs: its state and each photo's. A page
    drawn with one revision reloads itself (job.js) when ``/api/jobs/<id>`` has another."""
    progress = job.get("progress") or {}
    photos = [p for p in progress.get("photos") or [] if isinstance(p, dict)]
    return ":".join([str(job.get("state", "")), *(str(p.get("state", "")) for p in photos)])


def render_job(job: dict[str, Any]) -> str:
    """The Job page: photos, previews, the 3D views, downloads and result.json's facts."""
    name = str(job.get("name", job["id"]))
    state = str(job.get("state", ""))
    prefix = f"{state}/{job['id']}"
    files = [str(f) for f in job.get("files") or []]
    meta = [state, f"{job.get('photos', 0)} photos", duration(job)]
    body = [
        '<p><a href="/">← Queue</a></p>',
        f"<h1>{_t(name)}</h1>",
        f'<p class="meta">{" · ".join(_t(m) for m in meta if m)}</p>',
    ]
    if state == "failed":
        body.append(f'<p class="error">{_t(error_text(job)) or "failed"}</p>')
    if state == "working":
        body.append(f'<div class="progress">{_progress(job)}</div>')
        body.append(
            f'<div id="live" hidden data-job="{_t(job["id"])}" data-revision="{_t(revision(job))}"></div>'
        )
    body += _viewers(str(job["id"]), splat_stems(files, prefix))
    previews = [f for f in files if "/previews/" in f and f.lower().endswith(PREVIEW_SUFFIXES)]
    if previews:
        body.append('<h2>Previews</h2><div class="grid">')
        for f in previews:
            label = _t(f.rsplit("/", 1)[-1])
            body.append(f'<figure><img src="{_t(_files_url(f))}" alt="{label}" loading="lazy">')
            body.append(f"<figcaption>{label}</figcaption></figure>")
        body.append("</div>")
    outputs = _outputs(files, prefix)
    body.append("<h2>Downloads</h2>")
    if outputs:
        links = "".join(
            f'<li><a href="{_t(_files_url(f))}" download>{_t(f[len(prefix) + 1 :])}</a></li>' for f in outputs
        )
        body.append(f'<ul class="downloads">{links}</ul>')
    else:
        body.append('<p class="meta">No output files yet.</p>')
    result = job.get("result")
    if isinstance(result, dict):
        body += _facts(result)
        body += _image_rows(result)
    body += _photos(files, prefix)
    return _page(name, body, script="job.js" if state == "working" else "")
